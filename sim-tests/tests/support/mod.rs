//! Builders for hand-written histories. Times are given in milliseconds.
#![allow(dead_code)]

pub mod register;

use sim_tests::history::{
    ClientId, DigestRecord, Event, EventRecord, FaultKind, FaultRecord, History, Line, LockMode,
    MasterRecord, MemberId, Meta, Op, OpError, OpId, OpRecord, OpResult, Reply, SCHEMA_VERSION,
    Sequencer, SimTime,
};

pub fn ms(t: u64) -> SimTime {
    SimTime(t * 1_000_000)
}

pub struct Builder {
    pub history: History,
    next: u64,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::with_meta(0, None)
    }

    /// With a lock delay and a liveness bound, both in ms.
    pub fn with_meta(lock_delay_ms: u64, liveness_bound_ms: Option<u64>) -> Builder {
        let mut history = History::new();
        history.push(Line::Meta(Meta {
            version: SCHEMA_VERSION,
            seed: 0,
            scenario: "hand-written".to_owned(),
            members: 3,
            lock_delay_ns: ms(lock_delay_ms).0,
            liveness_bound_ns: liveness_bound_ms.map(|b| ms(b).0),
            ..Meta::default()
        }));
        Builder { history, next: 1 }
    }

    /// An op invoked at `invoke` ms and completed at `complete` ms (ignored when unknown).
    pub fn op(
        &mut self,
        client: u32,
        path: &str,
        op: Op,
        invoke: u64,
        complete: u64,
        result: OpResult,
    ) -> OpId {
        let id = OpId(self.next);
        self.next += 1;
        let complete_ns = (result != OpResult::Unknown).then(|| ms(complete));
        self.history.push(Line::Op(OpRecord {
            id,
            client: ClientId(client),
            path: path.to_owned(),
            op,
            result,
            invoke_ns: ms(invoke),
            complete_ns,
        }));
        id
    }

    /// Gives the unknown op `id` a bound: it cannot take effect after `bound` ms.
    pub fn bound(&mut self, id: OpId, bound: u64) {
        for line in &mut self.history.lines {
            if let Line::Op(op) = line
                && op.id == id
            {
                op.complete_ns = Some(ms(bound));
            }
        }
    }

    pub fn event(&mut self, client: u32, at: u64, event: Event) {
        self.history.push(Line::Event(EventRecord {
            client: ClientId(client),
            at_ns: ms(at),
            event,
        }));
    }

    pub fn fault(&mut self, at: u64, fault: FaultKind, members: &[u64], clients: &[u32]) {
        self.history.push(Line::Fault(FaultRecord {
            at_ns: ms(at),
            fault,
            members: members.iter().map(|m| MemberId(*m)).collect(),
            clients: clients.iter().map(|c| ClientId(*c)).collect(),
            detail: String::new(),
        }));
    }

    pub fn master(&mut self, at: u64, member: u64, epoch: u64) {
        self.history.push(Line::Master(MasterRecord {
            at_ns: ms(at),
            member: MemberId(member),
            epoch,
        }));
    }

    pub fn digest(&mut self, at: u64, member: u64, applied: u64, digest: &str) {
        self.history.push(Line::Digest(DigestRecord {
            at_ns: ms(at),
            member: MemberId(member),
            applied,
            digest: digest.to_owned(),
        }));
    }

    pub fn build(&self) -> History {
        self.history.clone()
    }
}

// Operations.
pub fn create() -> Op {
    Op::Create { exclusive: false }
}
pub fn create_excl() -> Op {
    Op::Create { exclusive: true }
}
pub fn get() -> Op {
    Op::Get {}
}
pub fn put(data: &str) -> Op {
    Op::Put {
        data: data.to_owned(),
        cas: None,
    }
}
pub fn put_if(data: &str, cas: u64) -> Op {
    Op::Put {
        data: data.to_owned(),
        cas: Some(cas),
    }
}
pub fn delete() -> Op {
    Op::Delete {}
}
pub fn lock_ex() -> Op {
    Op::Lock {
        mode: LockMode::Exclusive,
        wait: false,
    }
}
pub fn lock_shared() -> Op {
    Op::Lock {
        mode: LockMode::Shared,
        wait: false,
    }
}
pub fn lock_wait() -> Op {
    Op::Lock {
        mode: LockMode::Exclusive,
        wait: true,
    }
}
pub fn unlock() -> Op {
    Op::Unlock {}
}
pub fn check_seq(s: Sequencer) -> Op {
    Op::CheckSequencer { sequencer: s }
}

// Results.
pub fn ok() -> OpResult {
    OpResult::Ok(Reply::default())
}
pub fn created(generation: u64) -> OpResult {
    OpResult::Ok(Reply {
        generation: Some(generation),
        ..Reply::default()
    })
}
pub fn written(generation: u64) -> OpResult {
    created(generation)
}
pub fn read(data: &str, generation: u64) -> OpResult {
    OpResult::Ok(Reply {
        data: Some(data.to_owned()),
        generation: Some(generation),
        ..Reply::default()
    })
}
pub fn absent() -> OpResult {
    OpResult::Err(OpError::NoSuchNode)
}
pub fn exists() -> OpResult {
    OpResult::Err(OpError::Exists)
}
pub fn stale_cas() -> OpResult {
    OpResult::Err(OpError::StaleCas)
}
pub fn refused() -> OpResult {
    OpResult::Err(OpError::Refused("busy".to_owned()))
}
pub fn unknown() -> OpResult {
    OpResult::Unknown
}
pub fn ex(generation: u64) -> Sequencer {
    Sequencer {
        mode: LockMode::Exclusive,
        generation,
        instance: 1,
    }
}
pub fn sh(generation: u64) -> Sequencer {
    Sequencer {
        mode: LockMode::Shared,
        generation,
        instance: 1,
    }
}
pub fn granted(s: Sequencer) -> OpResult {
    OpResult::Ok(Reply {
        sequencer: Some(s),
        ..Reply::default()
    })
}
pub fn queued() -> OpResult {
    OpResult::Ok(Reply {
        queued: true,
        ..Reply::default()
    })
}
pub fn conflict() -> OpResult {
    OpResult::Err(OpError::LockConflict)
}
pub fn stale_seq() -> OpResult {
    OpResult::Err(OpError::StaleSequencer)
}
pub fn acquired(path: &str, s: Sequencer) -> Event {
    Event::LockAcquired {
        path: path.to_owned(),
        sequencer: s,
    }
}
