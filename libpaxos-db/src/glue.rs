//! [`DbReplica`]: drives a `libpaxos` replica with this crate's log store and namespace,
//! without sockets or clocks. The server brings the transport and the time.
//!
//! One [`drive`](DbReplica::drive) performs one `Ready` in the order `ready.rs` requires:
//! write the persist batch and sync it (for the sled store that one flush also makes every
//! earlier apply durable); hand out the messages, including those that waited for the sync;
//! apply the committed entries, now that the log holds them durably; `on_persisted`. Then it
//! takes a snapshot when one is due and asks the replica to compact the log to the trim point.

use libpaxos::{
    Config, Envelope, Epoch, Event, LogStore, Message, NodeId, ProposeError, Replica, Slot, Time,
};

use crate::command::{Applied, Command};
use crate::config::DbConfig;
use crate::database::Database;
use crate::error::DbError;
use crate::log_store::SledLogStore;
use crate::transfer::{SnapshotChunk, SnapshotInstaller, SnapshotReader};

/// A failure while driving the replica. All are fatal for this replica instance: drop it,
/// reopen the database, and start again (restart recovery replays the log).
#[derive(Debug, thiserror::Error)]
pub enum GlueError {
    /// The Paxos core refused an input (configuration or storage read failure).
    #[error("paxos core: {0}")]
    Paxos(#[from] libpaxos::Error),
    /// The log store failed to write or sync.
    #[error("log store: {0}")]
    Log(#[from] libpaxos::StorageError),
    /// The namespace or a snapshot failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
}

/// What one [`DbReplica::drive`] produced for the server.
#[derive(Debug, Default)]
pub struct Output {
    /// Messages to send now (the durable-only ones are included: the sync already happened).
    pub messages: Vec<Envelope>,
    /// The slots applied, with replies and events for clients.
    pub applied: Vec<Applied>,
    /// Role and lease changes, and `SnapshotNeeded` (fetch chunks from that peer and feed them
    /// to [`DbReplica::receive_snapshot_chunk`]).
    pub events: Vec<Event>,
    /// A snapshot taken during this drive, if one was due.
    pub snapshot: Option<Slot>,
    /// Whether a Ready was performed; `false` means the replica had nothing to do. Call
    /// `drive` again until it is `false`.
    pub performed: bool,
}

/// Counts of the glue's work.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlueCounters {
    /// Ready batches performed.
    pub readies: u64,
    /// Syncs performed (one per Ready with something to persist).
    pub syncs: u64,
    /// Snapshots taken.
    pub snapshots_taken: u64,
    /// Snapshots installed from peers.
    pub snapshots_installed: u64,
    /// Snapshot chunks refused (out of order, wrong snapshot, bad file).
    pub chunks_refused: u64,
}

/// A replica of the cell with its database. Generic over the log store so simulations can
/// use libpaxos's in-memory store; with [`SledLogStore`] (the default), the log lives in the
/// same sled database as the namespace, one flush makes both durable, and a snapshot install
/// compacts the log in the same transaction that switches the namespace.
pub struct DbReplica<S: LogStore = SledLogStore> {
    replica: Replica<S>,
    db: Database,
    incoming: Option<SnapshotInstaller>,
    counters: GlueCounters,
    /// The log's sync also flushes the namespace (same sled database).
    shared_flush: bool,
}

impl DbReplica<SledLogStore> {
    /// Opens the database in `db_config.dir` and starts a replica whose log is the sled store
    /// in the same database: one flush per Ready makes the log and the namespace durable.
    pub fn open(config: Config, db_config: DbConfig, now: Time) -> Result<DbReplica, GlueError> {
        let (db, log) = Database::open(db_config)?;
        let mut replica = DbReplica::new(config, db, log, now)?;
        replica.shared_flush = true;
        Ok(replica)
    }
}

impl<S: LogStore> DbReplica<S> {
    /// Starts a replica over an opened database and a log store. Committed entries after the
    /// namespace's applied index are handed out again and applied: that is restart recovery.
    /// The namespace is flushed separately after each Ready that applied something; use
    /// [`DbReplica::open`] for the sled store, where the log's flush covers both.
    pub fn new(config: Config, db: Database, log: S, now: Time) -> Result<DbReplica<S>, GlueError> {
        let applied = db.namespace().applied();
        let replica = Replica::new(config, log, now, applied)?;
        Ok(DbReplica {
            replica,
            db,
            incoming: None,
            counters: GlueCounters::default(),
            shared_flush: false,
        })
    }

    /// The Paxos core (for status, `read_fence`, `role`).
    pub fn replica(&self) -> &Replica<S> {
        &self.replica
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The glue's counters.
    pub fn counters(&self) -> &GlueCounters {
        &self.counters
    }

    /// Proposes a command (master only). See `Replica::propose` for what the slot and epoch
    /// mean.
    pub fn propose(&mut self, now: Time, command: &Command) -> Result<(Slot, Epoch), ProposeError> {
        self.replica.propose(now, command.encode())
    }

    /// A message from a peer.
    pub fn on_message(&mut self, now: Time, from: NodeId, msg: Message) -> Result<(), GlueError> {
        Ok(self.replica.on_message(now, from, msg)?)
    }

    /// Lets time pass.
    pub fn on_tick(&mut self, now: Time) -> Result<(), GlueError> {
        Ok(self.replica.on_tick(now)?)
    }

    /// Whether a linearizable read may be answered from the local namespace now.
    pub fn can_read(&self, now: Time) -> bool {
        self.replica
            .read_fence(now)
            .is_some_and(|fence| fence <= self.db.namespace().applied())
    }

    /// Performs one Ready batch. Call after every input until `Output::performed` is false.
    pub fn drive(&mut self, now: Time) -> Result<Output, GlueError> {
        let ready = self.replica.ready();
        if ready.is_empty() {
            return Ok(Output::default());
        }
        self.counters.readies += 1;
        if !ready.persist.is_empty() {
            self.replica.storage_mut().write(&ready.persist)?;
            let applied_before = self.db.namespace().applied();
            self.replica.storage_mut().sync()?;
            self.counters.syncs += 1;
            if self.shared_flush {
                // The log's flush was the whole sled database's: every apply before it is
                // durable now.
                self.db.note_flushed(applied_before);
            }
        }
        let mut out = Output {
            messages: ready.messages,
            events: ready.events,
            performed: true,
            ..Output::default()
        };
        out.messages.extend(ready.after_persist);
        // Applied only once the log holds the entries durably, so the namespace never durably
        // claims a slot the log could lose.
        for committed in &ready.committed {
            out.applied.push(self.db.apply(committed)?);
        }
        if let Some(last) = ready.committed.last() {
            self.replica.on_applied(last.slot);
            if !self.shared_flush {
                self.db.flush()?;
            }
        }
        self.replica.on_persisted(now, ready.number)?;
        if self.db.snapshot_due() {
            let info = self.db.take_snapshot()?;
            self.counters.snapshots_taken += 1;
            out.snapshot = Some(info.applied);
        }
        if let Some(upto) = self.db.trim_point() {
            self.replica.compact(upto);
        }
        Ok(out)
    }

    /// A reader for sending this replica's newest snapshot to a peer that needs it.
    pub fn snapshot_reader(&self) -> Result<SnapshotReader, GlueError> {
        Ok(self.db.snapshot_reader()?)
    }

    /// Takes one chunk of a snapshot from a peer. Chunks must come in order; a chunk at
    /// offset 0 starts a new transfer (abandoning any other). When the last chunk arrives the
    /// file is verified and installed, the replica is told, and the installed slot returned.
    pub fn receive_snapshot_chunk(
        &mut self,
        now: Time,
        chunk: &SnapshotChunk,
    ) -> Result<Option<Slot>, GlueError> {
        if chunk.offset == 0 {
            self.incoming = Some(self.db.receive_snapshot(chunk.applied, chunk.total)?);
        }
        let Some(installer) = self.incoming.as_mut() else {
            self.counters.chunks_refused += 1;
            return Err(DbError::ChunkOutOfOrder {
                expected: 0,
                got: chunk.offset,
            }
            .into());
        };
        if let Err(err) = installer.accept(chunk) {
            self.counters.chunks_refused += 1;
            return Err(err.into());
        }
        if !installer.is_complete() {
            return Ok(None);
        }
        let Some(installer) = self.incoming.take() else {
            return Ok(None);
        };
        let info = installer
            .finish()
            .inspect_err(|_| self.counters.chunks_refused += 1)?;
        let slot = self.db.install(&info)?;
        self.counters.snapshots_installed += 1;
        self.replica.on_snapshot_installed(now, slot)?;
        Ok(Some(slot))
    }
}
