//! The workload (issue 12, item 3): what each client does next, drawn from a seed and from
//! what the client has learned so far.
//!
//! Clients put, put-if (compare-and-set on the generation they last saw), get, create and
//! delete a few files, and lock (try or wait, shared or exclusive), unlock and check
//! sequencers (their own and older ones) on a few locks. Every written value is unique in the
//! run (`c<client>-<n>`), which is what lets the checkers tell writes apart. The harness maps a
//! [`PlannedOp`] to `cldc` calls, records it, and feeds the outcome back with
//! [`Workload::observe`] and [`Workload::observe_event`].

use std::collections::{BTreeMap, BTreeSet};

use crate::faults::SplitMix64;
use crate::history::{ClientId, Event, LockMode, Op, OpError, OpResult, Sequencer};

/// The shape of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Files `/f/0` .. (a few, so clients contend).
    pub files: u32,
    /// Locks `/l/0` ..
    pub locks: u32,
    /// Percentage of operations on locks (the rest on files).
    pub lock_percent: u64,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            files: 3,
            locks: 2,
            lock_percent: 40,
        }
    }
}

/// The next operation of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedOp {
    /// The node.
    pub path: String,
    /// The operation.
    pub op: Op,
}

#[derive(Clone, Debug, Default)]
struct Knowledge {
    /// The content generation last seen per file.
    generation: BTreeMap<String, u64>,
    /// Locks held, with their sequencer when known.
    held: BTreeMap<String, Option<Sequencer>>,
    /// Locks with a queued request.
    queued: BTreeSet<String>,
}

/// The workload of a run.
#[derive(Clone, Debug)]
pub struct Workload {
    rng: SplitMix64,
    config: WorkloadConfig,
    written: u64,
    clients: BTreeMap<ClientId, Knowledge>,
    /// Every sequencer any client was granted, per lock (checked later, maybe stale).
    sequencers: BTreeMap<String, Vec<Sequencer>>,
}

/// The path of file `i`.
pub fn file_path(i: u32) -> String {
    format!("/f/{i}")
}

/// The path of lock `i`.
pub fn lock_path(i: u32) -> String {
    format!("/l/{i}")
}

impl Workload {
    /// The workload drawn from `seed`.
    pub fn new(seed: u64, config: WorkloadConfig) -> Workload {
        Workload {
            rng: SplitMix64::new(seed ^ 0x3c6e_f372_fe94_f82b),
            config,
            written: 0,
            clients: BTreeMap::new(),
            sequencers: BTreeMap::new(),
        }
    }

    /// The directories the harness creates before the run.
    pub fn directories(&self) -> [&'static str; 2] {
        ["/f", "/l"]
    }

    /// Every file and lock path.
    pub fn paths(&self) -> Vec<String> {
        let files = (0..self.config.files).map(file_path);
        files.chain((0..self.config.locks).map(lock_path)).collect()
    }

    /// What `client` does next.
    pub fn next(&mut self, client: ClientId) -> PlannedOp {
        if self.config.locks > 0
            && (self.config.files == 0 || self.rng.percent(self.config.lock_percent))
            && let Some(op) = self.next_lock_op(client)
        {
            return op;
        }
        self.next_file_op(client)
    }

    fn next_file_op(&mut self, client: ClientId) -> PlannedOp {
        let path = file_path(self.rng.range(0, u64::from(self.config.files.max(1))) as u32);
        let seen = self
            .clients
            .get(&client)
            .and_then(|k| k.generation.get(&path))
            .copied();
        let roll = self.rng.range(0, 100);
        let op = if roll < 35 {
            Op::Get {}
        } else if roll < 60 {
            Op::Put {
                data: self.value(client),
                cas: None,
            }
        } else if roll < 80 {
            // CAS on the generation last seen (0 if none): succeeds only if nobody wrote since.
            Op::Put {
                data: self.value(client),
                cas: Some(seen.unwrap_or(0)),
            }
        } else if roll < 93 {
            Op::Create {
                exclusive: self.rng.percent(50),
            }
        } else {
            Op::Delete {}
        };
        PlannedOp { path, op }
    }

    fn next_lock_op(&mut self, client: ClientId) -> Option<PlannedOp> {
        let path = lock_path(self.rng.range(0, u64::from(self.config.locks)) as u32);
        let knowledge = self.clients.entry(client).or_default();
        let held = knowledge.held.get(&path).copied();
        let queued = knowledge.queued.contains(&path);
        let roll = self.rng.range(0, 100);
        let op = match held {
            Some(_) if roll < 60 => Op::Unlock {},
            Some(Some(sequencer)) => Op::CheckSequencer { sequencer },
            Some(None) => Op::Unlock {},
            None if queued => {
                if roll < 30 {
                    Op::Unlock {}
                } else {
                    return None;
                }
            }
            None => {
                let seen = self.sequencers.get(&path).map_or(0, Vec::len);
                if seen > 0 && roll < 15 {
                    let pick = self.rng.range(0, seen as u64) as usize;
                    Op::CheckSequencer {
                        sequencer: self.sequencers[&path][pick],
                    }
                } else {
                    Op::Lock {
                        mode: if self.rng.percent(75) {
                            LockMode::Exclusive
                        } else {
                            LockMode::Shared
                        },
                        wait: self.rng.percent(50),
                    }
                }
            }
        };
        Some(PlannedOp { path, op })
    }

    fn value(&mut self, client: ClientId) -> String {
        self.written += 1;
        format!("c{}-{}", client.0, self.written)
    }

    /// What `client` learned from `op` on `path`.
    pub fn observe(&mut self, client: ClientId, path: &str, op: &Op, result: &OpResult) {
        let knowledge = self.clients.entry(client).or_default();
        match (op, result) {
            (Op::Get {} | Op::Put { .. } | Op::Create { .. }, OpResult::Ok(reply)) => {
                if let Some(generation) = reply.generation {
                    knowledge.generation.insert(path.to_owned(), generation);
                }
            }
            (Op::Put { .. }, OpResult::Err(OpError::StaleCas)) | (_, OpResult::Unknown) => {
                knowledge.generation.remove(path);
            }
            (Op::Delete {}, OpResult::Ok(_)) | (_, OpResult::Err(OpError::NoSuchNode)) => {
                knowledge.generation.remove(path);
            }
            (Op::Lock { .. }, OpResult::Ok(reply)) if reply.queued => {
                knowledge.queued.insert(path.to_owned());
            }
            (Op::Lock { .. }, OpResult::Ok(reply)) => {
                knowledge.held.insert(path.to_owned(), reply.sequencer);
                if let Some(sequencer) = reply.sequencer {
                    self.sequencers
                        .entry(path.to_owned())
                        .or_default()
                        .push(sequencer);
                }
            }
            _ => {}
        }
        if matches!(op, Op::Unlock {} | Op::Close {}) {
            let knowledge = self.clients.entry(client).or_default();
            knowledge.held.remove(path);
            knowledge.queued.remove(path);
        }
    }

    /// What `client`'s library told it.
    pub fn observe_event(&mut self, client: ClientId, event: &Event) {
        let knowledge = self.clients.entry(client).or_default();
        match event {
            Event::LockAcquired { path, sequencer } => {
                knowledge.queued.remove(path);
                knowledge.held.insert(path.clone(), Some(*sequencer));
                self.sequencers
                    .entry(path.clone())
                    .or_default()
                    .push(*sequencer);
            }
            Event::NodeDeleted { path } => {
                knowledge.held.remove(path);
                knowledge.queued.remove(path);
                knowledge.generation.remove(path);
            }
            Event::Expired {} => {
                knowledge.held.clear();
                knowledge.queued.clear();
            }
            Event::Jeopardy {} | Event::Safe {} | Event::MasterFailover { .. } => {}
        }
    }
}
