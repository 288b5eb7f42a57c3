//! [`Recorder`]: how a harness builds a history while the run goes on.
//!
//! An operation's line is written when it is invoked (so lines are in invoke order, which is
//! deterministic for a deterministic run) and filled in when its result arrives; one whose
//! result never arrives stays `"unknown"`.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::history::{
    ClientId, DigestRecord, Event, EventRecord, FaultRecord, History, Line, MasterRecord, Meta, Op,
    OpId, OpRecord, OpResult, SimTime,
};

/// A result the recorder refused (a harness bug); nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecordError {
    /// No operation with this id was invoked.
    #[error("op #{0} was never invoked")]
    NotInvoked(u64),
    /// The operation already has its result.
    #[error("op #{0} already completed")]
    AlreadyComplete(u64),
    /// The result is `unknown`: leave the op pending instead.
    #[error("op #{0}: an unknown result is recorded by never completing the op")]
    UnknownResult(u64),
    /// The result arrived before the invoke.
    #[error("op #{id} completes at {complete} before its invoke at {invoke}")]
    BeforeInvoke {
        /// The op.
        id: u64,
        /// Its invoke.
        invoke: SimTime,
        /// The refused completion.
        complete: SimTime,
    },
}

/// Builds a [`History`] line by line.
#[derive(Clone, Debug)]
pub struct Recorder {
    history: History,
    next_id: u64,
    /// Line index of each op still waiting for its result.
    pending: BTreeMap<OpId, usize>,
    /// Results refused (each a harness bug).
    pub refused: u64,
}

impl Recorder {
    /// A history that starts with `meta`.
    pub fn new(meta: Meta) -> Recorder {
        let mut history = History::new();
        history.push(Line::Meta(meta));
        Recorder {
            history,
            next_id: 1,
            pending: BTreeMap::new(),
            refused: 0,
        }
    }

    /// `client` invokes `op` on `path` at `at`; returns the op's id.
    pub fn invoke(&mut self, client: ClientId, path: &str, op: Op, at: SimTime) -> OpId {
        let id = OpId(self.next_id);
        self.next_id += 1;
        self.pending.insert(id, self.history.lines.len());
        self.history.push(Line::Op(OpRecord {
            id,
            client,
            path: path.to_owned(),
            op,
            result: OpResult::Unknown,
            invoke_ns: at,
            complete_ns: None,
        }));
        id
    }

    /// The client learned `result` for `id` at `at`.
    pub fn complete(&mut self, id: OpId, result: OpResult, at: SimTime) -> Result<(), RecordError> {
        let outcome = self.try_complete(id, result, at);
        if outcome.is_err() {
            self.refused += 1;
        }
        outcome
    }

    fn try_complete(&mut self, id: OpId, result: OpResult, at: SimTime) -> Result<(), RecordError> {
        if result == OpResult::Unknown {
            return Err(RecordError::UnknownResult(id.0));
        }
        let index = self.pending_line(id)?;
        let Some(Line::Op(record)) = self.history.lines.get_mut(index) else {
            unreachable!("pending ops index their own op lines");
        };
        if at < record.invoke_ns {
            return Err(RecordError::BeforeInvoke {
                id: id.0,
                invoke: record.invoke_ns,
                complete: at,
            });
        }
        record.result = result;
        record.complete_ns = Some(at);
        self.pending.remove(&id);
        Ok(())
    }

    /// The op's outcome will never be known, and it cannot take effect after `by` (for
    /// example its session ended at the cell): it stays unknown, with that bound.
    pub fn settle_unknown(&mut self, id: OpId, by: SimTime) -> Result<(), RecordError> {
        let outcome = self.try_settle(id, by);
        if outcome.is_err() {
            self.refused += 1;
        }
        outcome
    }

    fn try_settle(&mut self, id: OpId, by: SimTime) -> Result<(), RecordError> {
        let index = self.pending_line(id)?;
        let Some(Line::Op(record)) = self.history.lines.get_mut(index) else {
            unreachable!("pending ops index their own op lines");
        };
        if by < record.invoke_ns {
            return Err(RecordError::BeforeInvoke {
                id: id.0,
                invoke: record.invoke_ns,
                complete: by,
            });
        }
        record.complete_ns = Some(by);
        self.pending.remove(&id);
        Ok(())
    }

    fn pending_line(&self, id: OpId) -> Result<usize, RecordError> {
        match self.pending.get(&id) {
            Some(&index) => Ok(index),
            None if id.0 > 0 && id.0 < self.next_id => Err(RecordError::AlreadyComplete(id.0)),
            None => Err(RecordError::NotInvoked(id.0)),
        }
    }

    /// The ops still waiting for a result.
    pub fn pending(&self) -> impl Iterator<Item = OpId> + '_ {
        self.pending.keys().copied()
    }

    /// A client event.
    pub fn event(&mut self, client: ClientId, at: SimTime, event: Event) {
        self.history.push(Line::Event(EventRecord {
            client,
            at_ns: at,
            event,
        }));
    }

    /// A fault.
    pub fn fault(&mut self, fault: FaultRecord) {
        self.history.push(Line::Fault(fault));
    }

    /// A master change.
    pub fn master(&mut self, master: MasterRecord) {
        self.history.push(Line::Master(master));
    }

    /// A member's digest.
    pub fn digest(&mut self, digest: DigestRecord) {
        self.history.push(Line::Digest(digest));
    }

    /// The history so far (pending ops read as unknown).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The finished history: ops still pending stay unknown.
    pub fn finish(self) -> History {
        self.history
    }
}
