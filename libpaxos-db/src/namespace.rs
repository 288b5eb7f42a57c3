//! [`Namespace`]: the replicated state machine, applied to sled one committed slot at a time.

use std::collections::BTreeMap;

use libpaxos::{Committed, Epoch, Payload, Slot};
use sha2::{Digest, Sha256};

use crate::apply::{Executed, execute};
use crate::command::{Applied, CmdError, Command, Permission, Response, Sequencer};
use crate::config::Limits;
use crate::error::DbError;
use crate::kv::KvStore;
use crate::lock::LockState;
use crate::mode::{LockMode, OpenMode};
use crate::node::{DirEntry, Handle, HandleRef, Node, NodeKind, Session, Tombstone};
use crate::sled_kv::SledKv;
use crate::state::{Dirty, State, Tx};
use crate::store::{self, NsTrees, TreeTag};
use crate::types::{HandleId, SessionId, WallTime};

/// Counts of what apply did, failures first. Per-cause command failures are keyed by the
/// error's variant name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceCounters {
    /// Slots applied.
    pub applied: u64,
    /// Replies that were errors, by cause.
    pub errors: BTreeMap<&'static str, u64>,
    /// Retries answered from the reply cache.
    pub duplicates: u64,
    /// Commits to sled that failed (each poisons the namespace).
    pub commit_failures: u64,
    /// Batches refused before anything ran: out of order, or the namespace poisoned.
    pub refused_batches: u64,
}

/// A read failed: either the request was bad (`Cmd`) or the disk was (`Db`).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The request was refused.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The whole namespace decoded from sled, for tests and tools. Order is canonical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    /// The last slot applied.
    pub applied: Slot,
    /// The current epoch.
    pub epoch: Epoch,
    /// The next instance number.
    pub next_instance: u64,
    /// Every node with its contents.
    pub nodes: BTreeMap<String, (Node, Vec<u8>)>,
    /// Every session.
    pub sessions: BTreeMap<SessionId, Session>,
    /// Every handle.
    pub handles: BTreeMap<HandleRef, Handle>,
    /// Every lock somebody holds or waits for.
    pub locks: BTreeMap<String, LockState>,
    /// Every tombstone of an ended session.
    pub tombstones: BTreeMap<SessionId, Tombstone>,
}

/// The CLD namespace on a [`KvStore`] (sled unless told otherwise). Apply committed slots in
/// order with [`apply`](Self::apply); read with the query methods (the server serves those
/// under its master lease).
pub struct Namespace<K: KvStore = SledKv> {
    trees: NsTrees<K>,
    state: State,
    limits: Limits,
    poisoned: bool,
    counters: NamespaceCounters,
}

fn error_name(err: &CmdError) -> &'static str {
    match err {
        CmdError::BadPath(_) => "bad_path",
        CmdError::MalformedCommand => "malformed_command",
        CmdError::StaleEpoch { .. } => "stale_epoch",
        CmdError::UnknownSession(_) => "unknown_session",
        CmdError::SessionExists(_) => "session_exists",
        CmdError::BadUserName => "bad_user_name",
        CmdError::RequestTooOld { .. } => "request_too_old",
        CmdError::TooManySessions(_) => "too_many_sessions",
        CmdError::TooManyHandles(_) => "too_many_handles",
        CmdError::UnknownHandle(_) => "unknown_handle",
        CmdError::BadMode(_) => "bad_mode",
        CmdError::ModeForbids(_) => "mode_forbids",
        CmdError::NoSuchNode => "no_such_node",
        CmdError::Exists => "exists",
        CmdError::ParentMissing => "parent_missing",
        CmdError::ParentNotDirectory => "parent_not_directory",
        CmdError::NotADirectory => "not_a_directory",
        CmdError::IsADirectory => "is_a_directory",
        CmdError::RootImmutable => "root_immutable",
        CmdError::DirectoryNotEmpty => "directory_not_empty",
        CmdError::FileTooLarge { .. } => "file_too_large",
        CmdError::CasConflict { .. } => "cas_conflict",
        CmdError::LockConflict => "lock_conflict",
        CmdError::AlreadyHeld => "already_held",
        CmdError::AlreadyWaiting => "already_waiting",
        CmdError::TooManyWaiters(_) => "too_many_waiters",
        CmdError::TooManyHolders(_) => "too_many_holders",
        CmdError::NotLocked => "not_locked",
        CmdError::StaleSequencer => "stale_sequencer",
        CmdError::LockDelayTooLong { .. } => "lock_delay_too_long",
        CmdError::BadSessionKeys { .. } => "bad_session_keys",
        CmdError::Barred => "barred",
    }
}

impl Namespace<SledKv> {
    /// Opens the namespace stored in the sled database `db` (creating the root in a new
    /// database). A store of another on-disk format version is refused
    /// ([`DbError::FormatVersion`]). Its owner makes it durable (this handle never syncs).
    pub fn open(db: &sled::Db, limits: Limits) -> Result<Namespace, DbError> {
        Namespace::open_on(&SledKv::unsynced(db), limits)
    }
}

impl<K: KvStore> Namespace<K> {
    /// Opens the namespace stored in `store` (creating the root in a new store). A store of
    /// another on-disk format version is refused ([`DbError::FormatVersion`]). Durability is
    /// the store owner's: `store.sync()` makes every applied slot durable.
    pub fn open_on(store: &K, limits: Limits) -> Result<Namespace<K>, DbError> {
        limits.validate()?;
        store::check_format(store)?;
        let generation = store::current_generation(store)?;
        let trees = NsTrees::open(store, generation);
        let state = match trees.load()? {
            Some(state) => state,
            None => {
                let state = State::fresh();
                trees.commit_all(&state)?;
                state
            }
        };
        Ok(Namespace {
            trees,
            state,
            limits,
            poisoned: false,
            counters: NamespaceCounters::default(),
        })
    }

    /// The last slot applied (as written to sled; durable after the next flush).
    pub fn applied(&self) -> Slot {
        self.state.meta.applied
    }

    /// The highest epoch seen in a no-op.
    pub fn epoch(&self) -> Epoch {
        self.state.meta.epoch
    }

    /// What apply has counted.
    pub fn counters(&self) -> &NamespaceCounters {
        &self.counters
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn trees(&self) -> &NsTrees<K> {
        &self.trees
    }

    /// Applies the next committed slot: executes its command and writes the changes with the
    /// new applied index in one sled transaction. Slots must come in order without gaps.
    pub fn apply(&mut self, committed: &Committed) -> Result<Applied, DbError> {
        let mut applied = self.apply_batch(std::slice::from_ref(committed))?;
        Ok(applied
            .pop()
            .expect("apply_batch returns one result per slot"))
    }

    /// Applies consecutive committed slots, executing each in order, and writes all their
    /// changes with the last slot as the applied index in one sled transaction: the namespace
    /// on disk moves from one applied index to the other with nothing in between. A batch
    /// that does not continue the applied index without gaps is refused before anything runs.
    pub fn apply_batch(&mut self, batch: &[Committed]) -> Result<Vec<Applied>, DbError> {
        if self.poisoned {
            self.counters.refused_batches += 1;
            return Err(DbError::Poisoned);
        }
        let mut expected = self.state.meta.applied.next();
        for committed in batch {
            if committed.slot != expected {
                self.counters.refused_batches += 1;
                return Err(DbError::ApplyOutOfOrder {
                    expected,
                    got: committed.slot,
                });
            }
            expected = expected.next();
        }
        let mut dirty = Dirty::default();
        let mut out = Vec::with_capacity(batch.len());
        for committed in batch {
            let mut tx = Tx::new(&mut self.state, &self.limits);
            let executed = match &committed.value.payload {
                Payload::Noop => {
                    if committed.value.epoch > tx.st.meta.epoch {
                        tx.st.meta.epoch = committed.value.epoch;
                    }
                    Executed {
                        request: None,
                        reply: Ok(Response::Noop),
                        duplicate: false,
                    }
                }
                Payload::Command(bytes) => match Command::decode(bytes) {
                    Ok(command) => execute(&mut tx, command, committed.value.epoch),
                    Err(_) => Executed {
                        request: None,
                        reply: Err(CmdError::MalformedCommand),
                        duplicate: false,
                    },
                },
            };
            tx.st.meta.applied = committed.slot;
            let Tx {
                dirty: changed,
                events,
                ..
            } = tx;
            dirty.merge(changed);
            self.counters.applied += 1;
            if executed.duplicate {
                self.counters.duplicates += 1;
            } else if let Err(err) = &executed.reply {
                *self.counters.errors.entry(error_name(err)).or_default() += 1;
            }
            out.push(Applied {
                slot: committed.slot,
                request: executed.request,
                reply: executed.reply,
                events,
            });
        }
        if let Err(err) = self.trees.commit(&self.state, &dirty) {
            self.poisoned = true;
            self.counters.commit_failures += 1;
            return Err(err);
        }
        Ok(out)
    }

    /// A node's metadata by path.
    pub fn stat(&self, path: &str) -> Result<Node, CmdError> {
        crate::path::validate(path).map_err(CmdError::BadPath)?;
        self.state
            .nodes
            .get(path)
            .cloned()
            .ok_or(CmdError::NoSuchNode)
    }

    /// A session as replicated (the master uses this to track leases after a fail-over).
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.state.sessions.get(&id)
    }

    /// Every session, in id order.
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.state.sessions.iter().map(|(id, s)| (*id, s))
    }

    /// How many live sessions `user` has (an in-memory index: O(log n)).
    pub fn sessions_of(&self, user: &str) -> usize {
        self.state.per_user.get(user).copied().unwrap_or(0)
    }

    /// The tombstone an ended session left, until `Command::PurgeTombstones` removes it.
    pub fn tombstone(&self, id: SessionId) -> Option<&Tombstone> {
        self.state.tombstones.get(&id)
    }

    /// Every tombstone, in session id order.
    pub fn tombstones(&self) -> impl Iterator<Item = (SessionId, &Tombstone)> {
        self.state.tombstones.iter().map(|(id, t)| (*id, t))
    }

    /// When the oldest tombstone's session ended (what the master compares with its purge
    /// horizon). From an in-memory index: O(log n).
    pub fn oldest_tombstone(&self) -> Option<WallTime> {
        self.state.tombstone_ends.first().map(|(ended, _)| *ended)
    }

    /// The earliest end of a lock-delay that currently blocks a lock (it may lie in the past
    /// until a command lifts it): the master proposes `Command::EndLockDelays` once its clock
    /// passes it. From an in-memory index: O(log n).
    pub fn next_lock_delay_end(&self) -> Option<WallTime> {
        self.state.delay_ends.first().map(|(until, _)| *until)
    }

    fn handle(&self, session: SessionId, handle: HandleId) -> Result<&Handle, CmdError> {
        if !self.state.sessions.contains_key(&session) {
            return Err(CmdError::UnknownSession(session));
        }
        self.state
            .handles
            .get(&HandleRef { session, handle })
            .ok_or(CmdError::UnknownHandle(handle))
    }

    /// A file's metadata and contents (the handle needs `READ`).
    pub fn read(&self, session: SessionId, handle: HandleId) -> Result<(Node, Vec<u8>), ReadError> {
        let found = self.handle(session, handle)?;
        if !found.mode.contains(OpenMode::READ) {
            return Err(CmdError::ModeForbids(Permission::Read).into());
        }
        let node = self.stat(&found.path)?;
        if node.kind == NodeKind::Directory {
            return Err(CmdError::IsADirectory.into());
        }
        let data = self.trees.data(&found.path)?;
        Ok((node, data))
    }

    /// A directory's children with their metadata, sorted by name (the handle needs `READ`).
    pub fn list(&self, session: SessionId, handle: HandleId) -> Result<Vec<DirEntry>, CmdError> {
        let found = self.handle(session, handle)?;
        if !found.mode.contains(OpenMode::READ) {
            return Err(CmdError::ModeForbids(Permission::Read));
        }
        self.list_dir(&found.path)
    }

    /// A directory's children with their metadata, sorted by name, by path (the wire
    /// protocol's ListDir needs no handle).
    pub fn list_dir(&self, path: &str) -> Result<Vec<DirEntry>, CmdError> {
        let dir = self.stat(path)?;
        if dir.kind != NodeKind::Directory {
            return Err(CmdError::NotADirectory);
        }
        let prefix = crate::path::child_prefix(path);
        let mut entries: Vec<DirEntry> = self
            .state
            .nodes
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| path.len() > prefix.len() && !path[prefix.len()..].contains('/'))
            .map(|(path, node)| DirEntry {
                name: path[prefix.len()..].to_string(),
                node: node.clone(),
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The sequencer for the lock this handle holds (GetSequencer).
    pub fn sequencer(&self, session: SessionId, handle: HandleId) -> Result<Sequencer, CmdError> {
        let found = self.handle(session, handle)?;
        let who = HandleRef { session, handle };
        let mode: LockMode = self
            .state
            .locks
            .get(&found.path)
            .and_then(|lock| lock.held_by(who))
            .ok_or(CmdError::NotLocked)?;
        let node = self.stat(&found.path)?;
        Ok(Sequencer {
            path: found.path.clone(),
            instance: node.instance,
            mode,
            generation: node.lock_generation,
        })
    }

    /// Whether a sequencer is still current (the same check as the CheckSequencer command,
    /// answered locally).
    pub fn check_sequencer(&self, sequencer: &Sequencer) -> Result<(), CmdError> {
        crate::apply_lock::check_sequencer(&self.state, sequencer)
    }

    /// SHA-256 over the canonical dump of the namespace trees: equal digests mean
    /// byte-identical namespaces.
    pub fn digest(&self) -> Result<[u8; 32], DbError> {
        let mut hasher = Sha256::new();
        for tag in TreeTag::ALL {
            hasher.update([tag as u8]);
            self.trees
                .for_each(tag, "digesting the namespace", |key, value| {
                    hasher.update((key.len() as u64).to_be_bytes());
                    hasher.update(key);
                    hasher.update((value.len() as u64).to_be_bytes());
                    hasher.update(value);
                    Ok(())
                })?;
        }
        Ok(hasher.finalize().into())
    }

    /// Decodes the namespace from the store (not from the in-memory copy), for tests and tools.
    pub fn dump(&self) -> Result<Dump, DbError> {
        let state = self.trees.load()?.unwrap_or_else(State::fresh);
        let mut nodes = BTreeMap::new();
        for (path, node) in state.nodes {
            let data = self.trees.data(&path)?;
            nodes.insert(path, (node, data));
        }
        Ok(Dump {
            applied: state.meta.applied,
            epoch: state.meta.epoch,
            next_instance: state.meta.next_instance,
            nodes,
            sessions: state.sessions,
            handles: state.handles,
            locks: state.locks,
            tombstones: state.tombstones,
        })
    }
}
