//! [`DbReplica`]: drives a `libpaxos` replica with this crate's log store and namespace,
//! without sockets or clocks. The server brings the transport and the time.
//!
//! One [`drive_sending`](DbReplica::drive_sending) performs one `Ready` in the order
//! `docs/libpaxos.md` requires: write the persist batch; send the messages that need no
//! durability; sync (for the sled store that one flush also makes every earlier apply
//! durable); hand out the messages that waited for the sync; apply the committed entries, now
//! that the log holds them durably; `on_persisted`. Then it
//! takes a snapshot when one is due and asks the replica to compact the log to the trim point.

use libpaxos::{
    Config, Envelope, Epoch, Event, LogStore, Message, NodeId, Persist, ProposeError, Replica,
    Slot, Time,
};

use crate::command::{Applied, Command};
use crate::config::DbConfig;
use crate::database::{Database, InstallJob, StagedInstall};
use crate::error::DbError;
use crate::kv::{DynKv, KvStore};
use crate::kv_log_store::KvLogStore;
use crate::log_store::SledLogStore;
use crate::sled_kv::SledKv;
use crate::snapshot::SnapshotJob;
use crate::transfer::{SnapshotChunk, SnapshotInstaller, SnapshotReader};

/// At most this many committed entries share one sled transaction.
const GROUP_ENTRIES: usize = 256;
/// At most about this many command bytes share one sled transaction (bounds its memory).
const GROUP_BYTES: usize = 4 << 20;

/// Splits committed entries into runs applied with one sled transaction each.
fn apply_groups(committed: &[libpaxos::Committed]) -> Vec<&[libpaxos::Committed]> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, c) in committed.iter().enumerate() {
        let size = c.value.size_hint();
        if i > start && (i - start >= GROUP_ENTRIES || bytes + size > GROUP_BYTES) {
            groups.push(&committed[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < committed.len() {
        groups.push(&committed[start..]);
    }
    groups
}

/// A failure while driving the replica. All but [`SnapshotRefused`](Self::SnapshotRefused)
/// are fatal for this replica instance: drop it, reopen the database, and start again (restart
/// recovery replays the log). See [`is_fatal`](Self::is_fatal).
#[derive(Debug, thiserror::Error)]
pub enum GlueError {
    /// A snapshot transfer could not go ahead: a chunk or a received snapshot was refused, or
    /// this replica has no snapshot to send. Nothing changed and the replica carries on (the
    /// core asks for a snapshot again later).
    #[error("snapshot transfer refused: {0}")]
    SnapshotRefused(DbError),
    /// The Paxos core refused an input (configuration or storage read failure).
    #[error("paxos core: {0}")]
    Paxos(#[from] libpaxos::Error),
    /// The log store failed to write.
    #[error("log store: {0}")]
    Log(#[from] libpaxos::StorageError),
    /// A sync (the log store's, or the namespace's flush) failed. Fatal like the others, and
    /// more: never retry it (a retried fsync can report success after the kernel dropped the
    /// pages it could not write). Stop the process; restart recovers from what is on disk.
    #[error("sync failed (fatal, never retried; restart and recover from disk): {0}")]
    SyncFailed(String),
    /// The namespace or a snapshot failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
}

impl GlueError {
    /// Whether the replica instance must be dropped and the database reopened.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, GlueError::SnapshotRefused(_))
    }
}

/// What one [`DbReplica::drive`] produced for the server.
#[derive(Debug)]
pub struct Output<K: KvStore = SledKv> {
    /// Messages to send now. From [`DbReplica::drive_sending`]: those that had to wait for the
    /// sync (it has happened); from [`DbReplica::drive`]: every message of the Ready.
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
    /// With background snapshots: a snapshot to write off the replica loop. Until its result
    /// is handed to [`DbReplica::snapshot_finished`], committed entries are not applied (they
    /// stay in the log), while persistence, messages and leases carry on.
    pub snapshot_job: Option<SnapshotJob<K>>,
    /// A snapshot write that failed (counted; the replica carries on without it).
    pub snapshot_failed: Option<DbError>,
}

impl<K: KvStore> Default for Output<K> {
    fn default() -> Output<K> {
        Output {
            messages: Vec::new(),
            applied: Vec::new(),
            events: Vec::new(),
            snapshot: None,
            performed: false,
            snapshot_job: None,
            snapshot_failed: None,
        }
    }
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
    /// Snapshot chunks or received snapshots refused (out of order, wrong snapshot, bad file,
    /// not ahead, a background snapshot running, the receive file not creatable).
    pub chunks_refused: u64,
    /// Transfers refused because they announced a snapshot above `max_snapshot_size` (also
    /// counted in `chunks_refused`).
    pub snapshots_too_large: u64,
    /// Committed entries whose apply waited for a background snapshot.
    pub deferred_applies: u64,
    /// Snapshot writes that failed.
    pub snapshot_failures: u64,
    /// Syncs that failed ([`GlueError::SyncFailed`], fatal).
    pub sync_failures: u64,
}

/// A replica of the cell with its database. Generic over the log store `S` and the
/// database's store `K`. With [`open`](DbReplica::open) (sled, the defaults) or
/// [`open_on`](DbReplica::open_on) (any [`KvStore`], the log a [`KvLogStore`] on it), the log
/// lives in the same store as the namespace, one sync makes both durable, and a snapshot
/// install compacts the log in the same batch that switches the namespace. With
/// [`new`](DbReplica::new), any log store (libpaxos's in-memory one in tests).
pub struct DbReplica<S: LogStore = SledLogStore, K: KvStore = SledKv> {
    replica: Replica<S>,
    db: Database<K>,
    incoming: Option<SnapshotInstaller>,
    counters: GlueCounters,
    /// The log's sync also flushes the namespace (same sled database).
    shared_flush: bool,
    /// Snapshots are handed out as jobs instead of written inline.
    background_snapshots: bool,
    /// The applied index of a snapshot job handed out and not yet finished.
    snapshot_pending: Option<Slot>,
    /// The highest committed slot handed out by the replica (applied or deferred).
    delivered: Slot,
    /// Installs are handed out as jobs instead of run inside `receive_snapshot_chunk`.
    background_installs: bool,
    /// An install job ready to be taken by the server.
    install_job: Option<InstallJob<K>>,
    /// The snapshot index of an install job handed out (or ready) and not yet finished.
    install_pending: Option<Slot>,
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

impl DbReplica<SledLogStore, DynKv> {
    /// [`open`](DbReplica::open) (sled, the same durability) with the database's store
    /// behind [`DynKv`] ([`Database::open_dyn`]): the same type as a replica opened with
    /// [`open_on`](DbReplica::open_on) on a `DynKv`, apart from the log store.
    pub fn open_dyn(
        config: Config,
        db_config: DbConfig,
        now: Time,
    ) -> Result<DbReplica<SledLogStore, DynKv>, GlueError> {
        let (db, log) = Database::open_dyn(db_config)?;
        let mut replica = DbReplica::new(config, db, log, now)?;
        replica.shared_flush = true;
        Ok(replica)
    }
}

impl<K: KvStore> DbReplica<KvLogStore<K>, K> {
    /// Opens the database kept in `kv` ([`Database::open_on`]: snapshot files in
    /// `db_config.dir/snapshots`) and starts a replica whose log is in the same store: one
    /// sync per Ready makes the log and the namespace durable. Restart recovery is the same as
    /// [`open`](DbReplica::open)'s: the entries the log holds past the namespace's durable
    /// applied index are applied again.
    pub fn open_on(
        config: Config,
        db_config: DbConfig,
        kv: K,
        now: Time,
    ) -> Result<DbReplica<KvLogStore<K>, K>, GlueError> {
        let (db, log) = Database::open_on(db_config, kv)?;
        let mut replica = DbReplica::new(config, db, log, now)?;
        replica.shared_flush = true;
        Ok(replica)
    }
}

impl<S: LogStore, K: KvStore> DbReplica<S, K> {
    /// Starts a replica over an opened database and a log store. Committed entries after the
    /// namespace's applied index are handed out again and applied: that is restart recovery.
    /// The namespace is flushed separately after each Ready that applied something; use
    /// [`DbReplica::open`] or [`DbReplica::open_on`], where the log's sync covers both.
    pub fn new(
        config: Config,
        db: Database<K>,
        log: S,
        now: Time,
    ) -> Result<DbReplica<S, K>, GlueError> {
        let applied = db.namespace().applied();
        let replica = Replica::new(config, log, now, applied)?;
        Ok(DbReplica {
            replica,
            db,
            incoming: None,
            counters: GlueCounters::default(),
            shared_flush: false,
            background_snapshots: false,
            snapshot_pending: None,
            delivered: applied,
            background_installs: false,
            install_job: None,
            install_pending: None,
        })
    }

    /// The Paxos core (for status, `read_fence`, `role`).
    pub fn replica(&self) -> &Replica<S> {
        &self.replica
    }

    /// The database.
    pub fn database(&self) -> &Database<K> {
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

    /// Hands mastership over (master only): see `Replica::hand_over`. The hand-over goes out
    /// in the Ready batches `drive` performs.
    pub fn hand_over(
        &mut self,
        now: Time,
        to: Option<NodeId>,
    ) -> Result<(), libpaxos::HandOverError> {
        self.replica.hand_over(now, to)
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
    ///
    /// Every message comes back in `Output::messages`, so those that need no sync (accepts to
    /// followers, heartbeats) wait behind this replica's fsync too; a server should use
    /// [`drive_sending`](Self::drive_sending), which lets them leave before it.
    pub fn drive(&mut self, now: Time) -> Result<Output<K>, GlueError> {
        let mut early = Vec::new();
        let mut out = self.drive_sending(now, &mut |envelope| early.push(envelope))?;
        early.append(&mut out.messages);
        out.messages = early;
        Ok(out)
    }

    /// Performs one Ready batch as `docs/libpaxos.md` orders it: write the persist batch; hand
    /// the messages that need no durability to `send_now` (so heartbeats and the master's
    /// accepts never wait behind the disk); sync once; then `Output::messages` holds those that
    /// could leave only after the sync, and the committed entries are applied. Call after
    /// every input until `Output::performed` is false.
    pub fn drive_sending(
        &mut self,
        now: Time,
        send_now: &mut dyn FnMut(Envelope),
    ) -> Result<Output<K>, GlueError> {
        let mut ready = self.replica.ready();
        if ready.is_empty() {
            return Ok(Output::default());
        }
        self.counters.readies += 1;
        if !ready.persist.is_empty() {
            self.replica.storage_mut().write(&ready.persist)?;
        }
        for envelope in ready.messages.drain(..) {
            send_now(envelope);
        }
        if !ready.persist.is_empty() {
            let applied_before = self.db.namespace().applied();
            self.replica
                .storage_mut()
                .sync()
                .map_err(|e| self.sync_failed(e))?;
            self.counters.syncs += 1;
            if self.shared_flush {
                // The log's flush was the whole sled database's: every apply before it is
                // durable now.
                self.db.note_flushed(applied_before);
            }
        }
        let mut out = Output {
            messages: ready.after_persist,
            events: ready.events,
            performed: true,
            ..Output::default()
        };
        if let Some(last) = ready.committed.last() {
            self.delivered = self.delivered.max(last.slot);
        }
        if self.snapshot_pending.is_some() {
            // The entries are durable in the log; `snapshot_finished` applies them from there.
            self.counters.deferred_applies += ready.committed.len() as u64;
        } else {
            // Applied only once the log holds the entries durably, so the namespace never
            // durably claims a slot the log could lose.
            for group in apply_groups(&ready.committed) {
                out.applied.extend(self.db.apply_batch(group)?);
            }
            if let Some(last) = ready.committed.last() {
                self.replica.on_applied(last.slot);
                if !self.shared_flush {
                    self.flush_namespace()?;
                }
            }
        }
        self.replica.on_persisted(now, ready.number)?;
        // No snapshot while an install is staged: its switch drops the trees a snapshot reads.
        if self.snapshot_pending.is_none()
            && self.install_pending.is_none()
            && self.db.snapshot_due()
        {
            if self.background_snapshots {
                let job = self.db.snapshot_job();
                self.snapshot_pending = Some(job.applied());
                out.snapshot_job = Some(job);
            } else {
                match self.db.take_snapshot() {
                    Ok(info) => {
                        self.counters.snapshots_taken += 1;
                        out.snapshot = Some(info.applied);
                    }
                    Err(err) => {
                        self.counters.snapshot_failures += 1;
                        out.snapshot_failed = Some(err);
                    }
                }
            }
        }
        if let Some(upto) = self.db.trim_point() {
            self.replica.compact(upto);
        }
        Ok(out)
    }

    /// Hand out snapshots as [`SnapshotJob`]s (in `Output::snapshot_job`) for the server to run
    /// off the replica loop, instead of writing them inside `drive`.
    pub fn set_background_snapshots(&mut self, on: bool) {
        self.background_snapshots = on;
    }

    /// The applied index of the snapshot job in progress, if any.
    pub fn snapshot_in_progress(&self) -> Option<Slot> {
        self.snapshot_pending
    }

    /// Takes the result of a [`SnapshotJob`] handed out by `drive`, then applies the committed
    /// entries that waited for it, reading them back from the log. The output carries their
    /// replies and events; a failed snapshot is reported in `Output::snapshot_failed` and
    /// counted, and the replica carries on.
    pub fn snapshot_finished(
        &mut self,
        result: Result<crate::SnapshotInfo, DbError>,
    ) -> Result<Output<K>, GlueError> {
        self.snapshot_pending = None;
        let mut out = Output::default();
        match self.db.snapshot_written(result) {
            Ok(info) => {
                self.counters.snapshots_taken += 1;
                out.snapshot = Some(info.applied);
            }
            Err(err) => {
                self.counters.snapshot_failures += 1;
                out.snapshot_failed = Some(err);
            }
        }
        while self.db.namespace().applied() < self.delivered {
            let from = self.db.namespace().applied().next();
            let entries = self.replica.storage().entries(from, self.delivered, 1024)?;
            if entries.is_empty() {
                return Err(DbError::ReplayHole(from).into());
            }
            let mut expected = from;
            let mut batch = Vec::with_capacity(entries.len());
            for entry in entries {
                if entry.slot != expected {
                    return Err(DbError::ReplayHole(expected).into());
                }
                expected = expected.next();
                batch.push(libpaxos::Committed {
                    slot: entry.slot,
                    value: entry.value,
                });
            }
            for group in apply_groups(&batch) {
                out.applied.extend(self.db.apply_batch(group)?);
            }
        }
        if let Some(last) = out.applied.last() {
            self.replica.on_applied(last.slot);
            if !self.shared_flush {
                self.flush_namespace()?;
            }
        }
        Ok(out)
    }

    /// A reader for sending this replica's newest snapshot to a peer that needs it. Failing
    /// (no snapshot yet, the file unreadable) is [`GlueError::SnapshotRefused`]: this replica
    /// carries on, and the peer asks again or asks another.
    pub fn snapshot_reader(&self) -> Result<SnapshotReader, GlueError> {
        self.db
            .snapshot_reader()
            .map_err(GlueError::SnapshotRefused)
    }

    /// Takes one chunk of a snapshot from a peer. Chunks must come in order; a chunk at
    /// offset 0 starts a new transfer (abandoning any other). When the last chunk arrives the
    /// file is verified and installed, the replica is told, and the installed slot returned.
    ///
    /// A chunk or snapshot that cannot be used (out of order, another transfer's, a file
    /// that fails verification, a snapshot not ahead, a background snapshot running) is
    /// refused with [`GlueError::SnapshotRefused`] and counted: nothing changed, the replica
    /// carries on and asks again. Any other error is fatal, like those of `drive`.
    pub fn receive_snapshot_chunk(
        &mut self,
        now: Time,
        chunk: &SnapshotChunk,
    ) -> Result<Option<Slot>, GlueError> {
        if self.install_pending.is_some() {
            return Err(self.refuse(DbError::InstallInProgress));
        }
        if chunk.offset == 0 {
            self.incoming = None;
            match self.db.receive_snapshot(chunk.applied, chunk.total) {
                Ok(installer) => self.incoming = Some(installer),
                Err(err) => return Err(self.refuse(err)),
            }
        }
        let Some(installer) = self.incoming.as_mut() else {
            return Err(self.refuse(DbError::ChunkOutOfOrder {
                expected: 0,
                got: chunk.offset,
            }));
        };
        if let Err(err) = installer.accept(chunk) {
            return Err(self.refuse(err));
        }
        if !installer.is_complete() {
            return Ok(None);
        }
        let Some(installer) = self.incoming.take() else {
            return Ok(None);
        };
        if self.snapshot_pending.is_some() {
            return Err(self.refuse(DbError::SnapshotInProgress));
        }
        let info = match installer.finish() {
            Ok(info) => info,
            Err(err) => return Err(self.refuse(err)),
        };
        if self.background_installs {
            match self.db.install_job(&info) {
                Ok(job) => {
                    self.install_pending = Some(job.applied());
                    self.install_job = Some(job);
                    return Ok(None);
                }
                Err(err) => return Err(self.refuse(err)),
            }
        }
        let installed = self.db.install_or_refuse(&info);
        self.installed(now, installed)
    }

    /// Install snapshots received from peers off the replica loop: the last chunk no longer
    /// installs inside [`receive_snapshot_chunk`](Self::receive_snapshot_chunk) but leaves an
    /// [`InstallJob`] for [`take_install_job`](Self::take_install_job); the server runs it on a
    /// blocking thread and passes its result to [`install_finished`](Self::install_finished).
    /// Meanwhile `drive` persists, sends, ticks and applies as usual (the job writes only a
    /// namespace generation that is not live), but takes no snapshot, and other transfers are
    /// refused (`SnapshotRefused(InstallInProgress)`).
    pub fn set_background_installs(&mut self, on: bool) {
        self.background_installs = on;
    }

    /// The install job left by the last chunk of a transfer, with background installs. It must
    /// be run and its result passed to [`install_finished`](Self::install_finished), failure
    /// included: until then no snapshot is taken and no other transfer is accepted.
    pub fn take_install_job(&mut self) -> Option<InstallJob<K>> {
        self.install_job.take()
    }

    /// The snapshot index of an install job handed out and not finished, if any.
    pub fn install_in_progress(&self) -> Option<Slot> {
        self.install_pending
    }

    /// Takes the result of an [`InstallJob`]: switches to the staged namespace (a quick
    /// transaction and a sync), tells the replica, and returns the installed slot. A refusal
    /// (the job failed, or the namespace moved past the snapshot meanwhile) is
    /// [`GlueError::SnapshotRefused`]: nothing live changed. Other errors are fatal.
    pub fn install_finished(
        &mut self,
        now: Time,
        staged: Result<StagedInstall, DbError>,
    ) -> Result<Option<Slot>, GlueError> {
        self.install_pending = None;
        self.install_job = None;
        if self.snapshot_pending.is_some() {
            // Cannot happen through this type (no snapshot job is handed out while an install
            // is pending), but the switch would drop the trees the job reads: refuse.
            if let Ok(staged) = staged {
                self.db.abandon_install(staged)?;
            }
            return Err(self.refuse(DbError::SnapshotInProgress));
        }
        let installed = self.db.finish_install(staged);
        self.installed(now, installed)
    }

    /// The common end of an install, inline or from a job.
    fn installed(
        &mut self,
        now: Time,
        installed: Result<Result<Slot, DbError>, DbError>,
    ) -> Result<Option<Slot>, GlueError> {
        let installed = match installed {
            Ok(installed) => installed,
            Err(DbError::SyncFailed(e)) => return Err(self.sync_failed(e)),
            Err(e) => return Err(e.into()),
        };
        let slot = match installed {
            Ok(slot) => slot,
            Err(err) => return Err(self.refuse(err)),
        };
        if !self.shared_flush {
            // The namespace is durably at `slot` now, but this log store was not part of the
            // install's transaction: until it too is compacted through `slot`, a crash would
            // leave slots up to it neither held nor compacted. Close that window at once
            // instead of waiting for the replica's own compaction in a later Ready.
            let log = self.replica.storage_mut();
            log.write(&Persist {
                compact_through: Some(slot),
                ..Persist::default()
            })?;
            if let Err(e) = log.sync() {
                return Err(self.sync_failed(e));
            }
        }
        self.delivered = self.delivered.max(slot);
        self.counters.snapshots_installed += 1;
        self.replica.on_snapshot_installed(now, slot)?;
        Ok(Some(slot))
    }

    /// A failed sync: counted, and reported as the fatal [`GlueError::SyncFailed`].
    fn sync_failed(&mut self, err: impl core::fmt::Display) -> GlueError {
        self.counters.sync_failures += 1;
        GlueError::SyncFailed(err.to_string())
    }

    /// The namespace's own flush (log stores other than the sled one).
    fn flush_namespace(&mut self) -> Result<(), GlueError> {
        match self.db.flush() {
            Ok(()) => Ok(()),
            Err(DbError::SyncFailed(e)) => Err(self.sync_failed(e)),
            Err(e) => Err(e.into()),
        }
    }

    fn refuse(&mut self, err: DbError) -> GlueError {
        self.counters.chunks_refused += 1;
        if matches!(err, DbError::SnapshotTooLarge { .. }) {
            self.counters.snapshots_too_large += 1;
        }
        GlueError::SnapshotRefused(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libpaxos::{Committed, Payload, Value};

    fn entry(slot: u64, bytes: usize) -> Committed {
        Committed {
            slot: Slot(slot),
            value: Value {
                epoch: Epoch(0),
                payload: Payload::Command(vec![0; bytes].into()),
            },
        }
    }

    #[test]
    fn apply_groups_are_bounded_by_count_and_bytes_and_cover_everything() {
        let many: Vec<_> = (1..=600).map(|s| entry(s, 10)).collect();
        let sizes: Vec<usize> = apply_groups(&many).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let big: Vec<_> = (1..=5).map(|s| entry(s, 2 << 20)).collect();
        let sizes: Vec<usize> = apply_groups(&big).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [1, 1, 1, 1, 1]);
        assert!(apply_groups(&[]).is_empty());
    }
}
