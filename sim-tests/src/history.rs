//! The recorded history of a run: one JSON object per line (docs/testing.md has the schema).
//!
//! A history is what the outside world saw: operations as the clients invoked them and learned
//! their outcomes, the session events the client library raised, the faults the harness
//! injected, the master changes and the members' final namespace digests. Times are simulated
//! *true* time in nanoseconds since the start of the run, never a host's skewed clock.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::error::HistoryError;

/// The schema version written in [`Meta::version`] and accepted by the reader.
pub const SCHEMA_VERSION: u32 = 1;

/// Simulated true time, in nanoseconds since the start of the run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SimTime(pub u64);

impl SimTime {
    /// This time plus `ns` nanoseconds, saturating.
    pub fn plus(self, ns: u64) -> SimTime {
        SimTime(self.0.saturating_add(ns))
    }
}

impl core::fmt::Display for SimTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// A client process of the workload (it may open several sessions in turn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub u32);

/// A cell member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub u64);

/// An operation's number, unique within a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub u64);

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// What was run: the first line.
    Meta(Meta),
    /// A client operation.
    Op(OpRecord),
    /// Something the client library told the application outside any reply.
    Event(EventRecord),
    /// A fault the harness injected or healed.
    Fault(FaultRecord),
    /// A member took office as master.
    Master(MasterRecord),
    /// A member's namespace digest, taken after healing.
    Digest(DigestRecord),
}

/// The run's parameters, which some checkers need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// The seed the run was drawn from.
    pub seed: u64,
    /// The scenario's name.
    #[serde(default)]
    pub scenario: String,
    /// How many members the cell has.
    #[serde(default)]
    pub members: u32,
    /// The cell's `lock_delay` (released-by-expiry locks are held this long), in ns.
    #[serde(default)]
    pub lock_delay_ns: u64,
    /// How soon after the last heal every live client must complete an operation, in ns.
    #[serde(default)]
    pub liveness_bound_ns: Option<u64>,
    /// The clock-drift bound the cell assumes, in parts per million (protocol 10.1: 1 % is
    /// 10,000). A server's `lock_delay` measured on its clock may be this much shorter in
    /// true time.
    #[serde(default = "default_drift_ppm")]
    pub clock_drift_ppm: u64,
}

/// The protocol's drift bound, 1 %.
pub const DEFAULT_DRIFT_PPM: u64 = 10_000;

fn default_drift_ppm() -> u64 {
    DEFAULT_DRIFT_PPM
}

impl Default for Meta {
    fn default() -> Meta {
        Meta {
            version: SCHEMA_VERSION,
            seed: 0,
            scenario: String::new(),
            members: 0,
            lock_delay_ns: 0,
            liveness_bound_ns: None,
            clock_drift_ppm: DEFAULT_DRIFT_PPM,
        }
    }
}

/// One operation: invoked by a client, completed (or not) with a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// Unique within the history.
    pub id: OpId,
    /// Who invoked it.
    pub client: ClientId,
    /// The node it acts on.
    pub path: String,
    /// What it is, with its arguments (`"op"` and `"args"` in JSON).
    #[serde(flatten)]
    pub op: Op,
    /// What the client learned.
    pub result: OpResult,
    /// When the client invoked it.
    pub invoke_ns: SimTime,
    /// When the client learned the result. For an unknown result: absent, or the time after
    /// which the op can no longer take effect, when the harness knows one (its session
    /// ended); it may then have taken effect before that time or not at all.
    #[serde(default)]
    pub complete_ns: Option<SimTime>,
}

impl OpRecord {
    /// A one-line description: client, operation, arguments and result.
    pub fn describe(&self) -> String {
        let args = match &self.op {
            Op::Create { exclusive: true } => " exclusive".to_owned(),
            Op::Put {
                data,
                cas: Some(cas),
            } => format!(" {data:?} if generation {cas}"),
            Op::Put { data, cas: None } => format!(" {data:?}"),
            Op::Lock { mode, wait } => {
                format!(" {mode:?}{}", if *wait { " wait" } else { "" }).to_lowercase()
            }
            Op::CheckSequencer { sequencer } => format!(
                " {:?} generation {} instance {}",
                sequencer.mode, sequencer.generation, sequencer.instance
            )
            .to_lowercase(),
            _ => String::new(),
        };
        let result = match &self.result {
            OpResult::Unknown => "unknown".to_owned(),
            OpResult::Err(OpError::Refused(why)) => format!("refused ({why})"),
            OpResult::Err(error) => format!("{error:?}"),
            OpResult::Ok(reply) => {
                let mut parts = vec!["ok".to_owned()];
                if let Some(data) = &reply.data {
                    parts.push(format!("{data:?}"));
                }
                if let Some(generation) = reply.generation {
                    parts.push(format!("generation {generation}"));
                }
                if let Some(sequencer) = reply.sequencer {
                    parts.push(format!(
                        "sequencer {:?} {} instance {}",
                        sequencer.mode, sequencer.generation, sequencer.instance
                    ));
                }
                if reply.queued {
                    parts.push("queued".to_owned());
                }
                parts.join(" ")
            }
        };
        format!(
            "client {} {} {}{} -> {}",
            self.client.0,
            self.op.name(),
            self.path,
            args,
            result
        )
    }
}

/// An operation and its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum Op {
    /// `Open` with `CREATE` (and `EXCLUSIVE` if set): creates an empty file if missing.
    Create {
        /// Fail with `exists` if the file is present.
        exclusive: bool,
    },
    /// `GetContentsAndStat`.
    Get {},
    /// `Put`, optionally compare-and-set on the content generation.
    Put {
        /// The new contents (the workload writes UTF-8 text, unique per write).
        data: String,
        /// Succeed only if the content generation is still this.
        #[serde(default)]
        cas: Option<u64>,
    },
    /// `Delete`.
    Delete {},
    /// `Lock`.
    Lock {
        /// Shared or exclusive.
        mode: LockMode,
        /// Queue behind a conflicting holder (`true`) or fail at once (`false`).
        wait: bool,
    },
    /// `Unlock`: the client stops believing it holds the lock when it invokes this.
    Unlock {},
    /// `Close` of the handle on `path`: releases its lock too.
    Close {},
    /// `CheckSequencer`.
    CheckSequencer {
        /// The sequencer checked (of a lock on `path`).
        sequencer: Sequencer,
    },
}

impl Op {
    /// The operation's name as written in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Get {} => "get",
            Op::Put { .. } => "put",
            Op::Delete {} => "delete",
            Op::Lock { .. } => "lock",
            Op::Unlock {} => "unlock",
            Op::Close {} => "close",
            Op::CheckSequencer { .. } => "check_sequencer",
        }
    }
}

/// Lock modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// Many holders.
    Shared,
    /// One holder.
    Exclusive,
}

/// A sequencer as the history records it (its path is the record's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sequencer {
    /// The mode the lock was held in.
    pub mode: LockMode,
    /// The node's lock generation at the grant.
    pub generation: u64,
    /// The node's instance number.
    pub instance: u64,
}

/// What the client learned of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpResult {
    /// It succeeded.
    Ok(Reply),
    /// It failed with a definite answer from the cell.
    Err(OpError),
    /// The client never learned the outcome (timeout, crash, session lost): it may or may not
    /// have taken effect.
    Unknown,
}

/// The parts of a successful reply the checkers use; absent fields were not reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// `get`: the contents read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `get`, `put`, `create`: the content generation read, written or created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// `lock` granted at once: its sequencer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<Sequencer>,
    /// `lock` with `wait`: queued; the grant comes as a `lock_acquired` event.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub queued: bool,
}

/// A definite failure. The named ones have a meaning the checkers judge; `refused` says the
/// operation certainly did not take effect, for a reason no checker judges (bad handle,
/// session expired before it ran, busy, stale epoch...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpError {
    /// The node does not exist.
    NoSuchNode,
    /// `create` exclusive of a present node.
    Exists,
    /// `put` with a CAS generation that is not current.
    StaleCas,
    /// `lock` without `wait` met a conflicting holder.
    LockConflict,
    /// `unlock` without a lock.
    NotLocked,
    /// `check_sequencer` of a stale sequencer.
    StaleSequencer,
    /// Did not take effect; the cause (the protocol's error name) for the reader.
    Refused(String),
}

/// An event the client library raised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Whose library raised it.
    pub client: ClientId,
    /// When the application got it. For `jeopardy`, the instant the client's local lease ran
    /// out (also when the client was paused then).
    pub at_ns: SimTime,
    /// What happened (`"event"` and its fields in JSON).
    #[serde(flatten)]
    pub event: Event,
}

/// Client library events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A queued lock request was granted.
    LockAcquired {
        /// The lock's node.
        path: String,
        /// Its sequencer.
        sequencer: Sequencer,
    },
    /// The node a handle was open on was deleted (its lock is gone).
    NodeDeleted {
        /// The node.
        path: String,
    },
    /// The local lease ran out: the client stops believing in its locks.
    Jeopardy {},
    /// The session was reached again in time: its locks are still held.
    Safe {},
    /// The session is gone, with its locks.
    Expired {},
    /// A new master took over.
    MasterFailover {
        /// Its epoch.
        epoch: u64,
    },
}

/// A fault injected or healed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// When.
    pub at_ns: SimTime,
    /// What kind.
    pub fault: FaultKind,
    /// The members it hits (for a partition: the side cut off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberId>,
    /// The clients it hits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientId>,
    /// Free text for the reader (loss rate, clock rate, duration...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// `members` cut off from the rest, both ways.
    Partition,
    /// Messages from `members[0]` to `members[1]` lost, the other way delivered.
    OneWay,
    /// A member crashed (unsynced writes lost).
    Crash,
    /// A member restarted.
    Restart,
    /// A member's data dir wiped (it restarts empty).
    Wipe,
    /// The whole cell crashed.
    CellCrash,
    /// Packet loss, duplication or latency changed (see `detail`).
    Network,
    /// A member's clock rate or offset changed (see `detail`).
    Clock,
    /// A member process paused (see `detail` for how long).
    MemberPause,
    /// A client process paused (see `detail`).
    ClientPause,
    /// A client process stopped for good: it is no longer live and holds nothing.
    ClientStop,
    /// Every fault healed: the liveness bound runs from the last of these.
    Heal,
}

/// A member took office as master.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterRecord {
    /// When.
    pub at_ns: SimTime,
    /// Who.
    pub member: MemberId,
    /// Its epoch.
    pub epoch: u64,
}

/// A member's namespace digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRecord {
    /// When it was taken.
    pub at_ns: SimTime,
    /// Whose.
    pub member: MemberId,
    /// The member's applied index then.
    pub applied: u64,
    /// The digest (hex).
    pub digest: String,
}

/// A whole history, in the order it was recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Every line.
    pub lines: Vec<Line>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Appends a line.
    pub fn push(&mut self, line: Line) {
        self.lines.push(line);
    }

    /// The run's meta line, if any.
    pub fn meta(&self) -> Option<&Meta> {
        self.lines.iter().find_map(|line| match line {
            Line::Meta(meta) => Some(meta),
            _ => None,
        })
    }

    /// Every operation, in recorded order.
    pub fn ops(&self) -> impl Iterator<Item = &OpRecord> {
        self.lines.iter().filter_map(|line| match line {
            Line::Op(op) => Some(op),
            _ => None,
        })
    }

    /// The longest stretch, in nanoseconds, between the first invocation and the last
    /// answer in which the cell answered no operation (no client learned a result, success
    /// or a definite error): how long the cell was unavailable at worst. `None` without an
    /// answered operation.
    pub fn longest_unanswered(&self) -> Option<u64> {
        let mut answers: Vec<u64> = self
            .ops()
            .filter(|op| !matches!(op.result, OpResult::Unknown))
            .filter_map(|op| op.complete_ns.map(|t| t.0))
            .collect();
        let first = self.ops().map(|op| op.invoke_ns.0).min()?;
        answers.sort_unstable();
        let mut last = first;
        let mut longest = None;
        for t in answers {
            longest = Some(longest.unwrap_or(0).max(t.saturating_sub(last)));
            last = last.max(t);
        }
        longest
    }

    /// Every client event, in recorded order.
    pub fn events(&self) -> impl Iterator<Item = &EventRecord> {
        self.lines.iter().filter_map(|line| match line {
            Line::Event(event) => Some(event),
            _ => None,
        })
    }

    /// Every fault, in recorded order.
    pub fn faults(&self) -> impl Iterator<Item = &FaultRecord> {
        self.lines.iter().filter_map(|line| match line {
            Line::Fault(fault) => Some(fault),
            _ => None,
        })
    }

    /// Every client named anywhere, in order.
    pub fn clients(&self) -> BTreeSet<ClientId> {
        let mut clients: BTreeSet<ClientId> = self.ops().map(|op| op.client).collect();
        clients.extend(self.events().map(|event| event.client));
        clients.extend(
            self.faults()
                .flat_map(|fault| fault.clients.iter().copied()),
        );
        clients
    }

    /// The latest time any line mentions.
    pub fn end(&self) -> SimTime {
        self.lines
            .iter()
            .map(|line| match line {
                Line::Meta(_) => SimTime(0),
                Line::Op(op) => op.complete_ns.unwrap_or(op.invoke_ns),
                Line::Event(event) => event.at_ns,
                Line::Fault(fault) => fault.at_ns,
                Line::Master(master) => master.at_ns,
                Line::Digest(digest) => digest.at_ns,
            })
            .max()
            .unwrap_or_default()
    }

    /// Writes the history as JSON lines.
    pub fn write_jsonl(&self, out: &mut impl Write) -> Result<(), HistoryError> {
        for line in &self.lines {
            serde_json::to_writer(&mut *out, line).map_err(HistoryError::Encode)?;
            out.write_all(b"\n").map_err(HistoryError::Write)?;
        }
        Ok(())
    }

    /// The history as JSON lines, in a string.
    pub fn to_jsonl(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail, and every line type serializes (no maps with
        // non-string keys): an error here is a bug in this module.
        self.write_jsonl(&mut out)
            .expect("a history always serializes to memory");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// A 64-bit FNV-1a hash of the JSON lines: equal for byte-identical histories, so two
    /// runs of one seed can be compared (and printed) cheaply.
    pub fn fingerprint(&self) -> u64 {
        self.to_jsonl()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    }

    /// Reads and validates a history written as JSON lines (blank lines are skipped).
    pub fn read_jsonl(input: impl BufRead) -> Result<History, HistoryError> {
        let mut history = History::new();
        for (index, line) in input.lines().enumerate() {
            let number = index + 1;
            let text = line.map_err(|source| HistoryError::Read {
                line: number,
                source,
            })?;
            if text.trim().is_empty() {
                continue;
            }
            let parsed: Line =
                serde_json::from_str(&text).map_err(|source| HistoryError::Parse {
                    line: number,
                    source,
                })?;
            history.lines.push(parsed);
        }
        history.validate()?;
        Ok(history)
    }

    /// Reads a history from a string of JSON lines.
    pub fn from_jsonl(text: &str) -> Result<History, HistoryError> {
        History::read_jsonl(text.as_bytes())
    }

    /// Checks what the checkers rely on: a supported version, unique op ids, known results
    /// with a completion, and no completion (or bound) before its invoke.
    pub fn validate(&self) -> Result<(), HistoryError> {
        let mut ids = BTreeSet::new();
        for (index, line) in self.lines.iter().enumerate() {
            let number = index + 1;
            let invalid = |reason: String| HistoryError::Invalid {
                line: number,
                reason,
            };
            match line {
                Line::Meta(meta) if meta.version != SCHEMA_VERSION => {
                    return Err(invalid(format!(
                        "schema version {} is not the supported {SCHEMA_VERSION}",
                        meta.version
                    )));
                }
                Line::Op(op) => {
                    if !ids.insert(op.id) {
                        return Err(invalid(format!("op id {} used twice", op.id.0)));
                    }
                    match (&op.result, op.complete_ns) {
                        (OpResult::Unknown, None) => {}
                        (_, None) => {
                            return Err(invalid(format!(
                                "op {} has a result but no complete_ns",
                                op.id.0
                            )));
                        }
                        (_, Some(complete)) if complete < op.invoke_ns => {
                            return Err(invalid(format!(
                                "op {} completes at {complete} before its invoke at {}",
                                op.id.0, op.invoke_ns
                            )));
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
