//! [`Database`]: one store holding the namespace and the Paxos log, plus the snapshot
//! directory; snapshots, trimming bounds, installs and replay.
//!
//! The store is any [`KvStore`]: sled in production ([`Database::open`]), or another engine
//! such as [`MemKv`](crate::MemKv) for the deterministic simulation ([`Database::open_on`]).
//! Snapshot files are real files in `config.dir/snapshots` whatever the engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libpaxos::{Committed, Slot, Storage};

use crate::codec;
use crate::command::Applied;
use crate::config::DbConfig;
use crate::durable::{self, SledSync, SyncCounters};
use crate::error::DbError;
use crate::kv::{DynKv, KvError, KvStore, WriteBatch};
use crate::kv_log_store::KvLogStore;
use crate::log_store::{COMPACTED_KEY, LOG_META_TREE, SledLogStore};
use crate::namespace::Namespace;
use crate::sled_kv::SledKv;
use crate::snapshot::{self, SnapshotFile, SnapshotInfo, SnapshotJob};
use crate::store::{self, DB_META_TREE, GENERATION_KEY, NsTrees};
use crate::transfer::{SnapshotInstaller, SnapshotReader};

/// How a database's store is made durable, and how a long fill bounds its memory: sled's
/// flush-and-fsync with its exact errors ([`SledSync`]), or the store's own `sync`.
trait Durability: Send + Sync {
    /// Makes every batch committed before the call durable. A failure is fatal.
    fn flush(&self) -> Result<(), durable::SyncError>;
    /// Writes buffered data out without making it durable (bounds a long fill's memory).
    fn flush_buffers(&self) -> Result<(), KvError>;
}

/// sled: [`SledSync::flush`] (fsyncs of the data file, blobs and directories).
struct SledDurability {
    db: sled::Db,
    sync: Arc<SledSync>,
}

impl Durability for SledDurability {
    fn flush(&self) -> Result<(), durable::SyncError> {
        self.sync.flush(&self.db)
    }

    fn flush_buffers(&self) -> Result<(), KvError> {
        self.db
            .flush()
            .map(drop)
            .map_err(|e| KvError::new("flushing sled's buffers", e))
    }
}

/// Any other engine: [`KvStore::sync`]; a failure names the database directory.
struct StoreDurability<K: KvStore> {
    kv: K,
    dir: PathBuf,
}

impl<K: KvStore> Durability for StoreDurability<K> {
    fn flush(&self) -> Result<(), durable::SyncError> {
        self.kv.sync().map_err(|e| durable::SyncError {
            path: self.dir.clone(),
            doing: e.doing,
            reason: e.reason,
        })
    }

    fn flush_buffers(&self) -> Result<(), KvError> {
        Ok(())
    }
}

/// The namespace, its store and its snapshots. The log store shares the store and is handed
/// out by [`open`](Database::open) or [`open_on`](Database::open_on) (the Paxos replica owns
/// it).
pub struct Database<K: KvStore = SledKv> {
    config: DbConfig,
    /// The store (the namespace's and the log's).
    kv: K,
    /// How `kv` is made durable (shared with install jobs).
    durability: Arc<dyn Durability>,
    /// sled's durability handle (sync counters), for a database opened with `open`.
    sled_sync: Option<Arc<SledSync>>,
    namespace: Namespace<K>,
    snapshot_dir: PathBuf,
    latest: Option<SnapshotInfo>,
    durable_applied: Slot,
    /// After a failed snapshot write: no new attempt before this applied index.
    snapshot_retry_at: Option<Slot>,
    counters: DbCounters,
    /// Test hook: abort right after an install's generation switch.
    crash_after_switch: bool,
}

/// The slow half of a snapshot install, to run off the replica loop (a blocking thread): see
/// [`Database::install_job`]. It writes only the trees of a generation that is not live.
pub struct InstallJob<K: KvStore = SledKv> {
    kv: K,
    durability: Arc<dyn Durability>,
    info: SnapshotInfo,
    generation: u64,
}

impl<K: KvStore> core::fmt::Debug for InstallJob<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InstallJob")
            .field("snapshot", &self.info.applied)
            .field("path", &self.info.path)
            .field("generation", &self.generation)
            .finish()
    }
}

/// A namespace generation filled from a snapshot and made durable, ready to be switched to by
/// [`Database::finish_install`].
#[derive(Debug)]
pub struct StagedInstall {
    file: SnapshotInfo,
    generation: u64,
}

impl StagedInstall {
    /// The snapshot's applied index.
    pub fn applied(&self) -> Slot {
        self.file.applied
    }
}

impl<K: KvStore> InstallJob<K> {
    /// The snapshot's applied index.
    pub fn applied(&self) -> Slot {
        self.info.applied
    }

    /// Fills the new generation from the file (re-verifying every record as it reads, in
    /// batches of about 64 KiB, flushed to sled between them to bound memory), and makes it durable. On failure the partial generation is
    /// dropped.
    pub fn run(self) -> Result<StagedInstall, DbError> {
        let mut file = SnapshotFile::open(&self.info.path)?;
        NsTrees::drop_trees(&self.kv, self.generation)?;
        let trees = NsTrees::open(&self.kv, self.generation);
        if let Err(err) = fill(&trees, self.durability.as_ref(), &mut file) {
            drop(trees);
            NsTrees::drop_trees(&self.kv, self.generation)?;
            return Err(err);
        }
        self.durability.flush()?;
        Ok(StagedInstall {
            file: file.info.clone(),
            generation: self.generation,
        })
    }
}

/// Counts of the database's own failure paths (the namespace and log count theirs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbCounters {
    /// Snapshot files found damaged at open and renamed to `corrupt-…` (each is also an
    /// error the operator can read in the file name; the namespace in sled is unaffected).
    pub corrupt_snapshots_set_aside: u64,
    /// Set-aside `corrupt-…` files removed at open beyond the newest
    /// `KEEP_CORRUPT_SNAPSHOTS` (2), so repeated damage cannot fill the disk.
    pub corrupt_snapshots_pruned: u64,
    /// Snapshots taken.
    pub snapshots_taken: u64,
    /// Snapshot writes that failed.
    pub snapshot_failures: u64,
    /// Removals of old snapshot files that failed (the new snapshot is in force regardless).
    pub prune_failures: u64,
    /// Snapshots installed.
    pub snapshots_installed: u64,
    /// Installs refused (file failed verification, or not ahead).
    pub installs_refused: u64,
    /// Installs that failed after the generation switch (the database must be reopened).
    pub install_failures: u64,
}

/// How many set-aside `corrupt-…` snapshot files are kept for inspection (the newest, by the
/// index in their name); older ones are removed at open.
pub const KEEP_CORRUPT_SNAPSHOTS: usize = 2;

/// The newest snapshot file that verifies. A damaged one is renamed `corrupt-<name>` (kept
/// for inspection, never used) and counted, and the next older one is tried. Then all but the
/// newest [`KEEP_CORRUPT_SNAPSHOTS`] set-aside files are removed (counted; a failed removal
/// counts as a prune failure).
fn newest_valid_snapshot(
    dir: &Path,
    counters: &mut DbCounters,
) -> Result<Option<SnapshotInfo>, DbError> {
    while let Some((_, path)) = snapshot::latest(dir)? {
        match snapshot::verify(&path) {
            Ok(info) => return Ok(Some(info)),
            Err(_) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let aside = dir.join(format!("corrupt-{name}"));
                std::fs::rename(&path, &aside).map_err(|e| DbError::snapshot_io(&path, e))?;
                counters.corrupt_snapshots_set_aside += 1;
            }
        }
    }
    Ok(None)
}

fn newest_valid_snapshot_and_prune(
    dir: &Path,
    counters: &mut DbCounters,
) -> Result<Option<SnapshotInfo>, DbError> {
    let found = newest_valid_snapshot(dir, counters)?;
    let (removed, failed) = snapshot::prune_corrupt(dir, KEEP_CORRUPT_SNAPSHOTS)?;
    counters.corrupt_snapshots_pruned += removed;
    counters.prune_failures += failed;
    Ok(found)
}

/// Opens a sled database, waiting up to a second for its file lock.
///
/// sled 0.34 finishes writing a segment on a pool thread that keeps the files (and their
/// exclusive lock) open for a moment after the last `Db` handle is dropped, so opening the same
/// directory right after closing it can fail with "could not acquire lock". A second *process*
/// holding the database still fails, after the second.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(io)) if is_lock_conflict(&io) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn is_lock_conflict(error: &std::io::Error) -> bool {
    error.to_string().contains("could not acquire lock")
}

impl Database<SledKv> {
    /// Opens (or creates) the database in `config.dir`, on sled in `config.dir/sled`. The
    /// namespace comes back at its durable applied index; replay the log from there (the
    /// replica does, given `namespace().applied()`).
    pub fn open(config: DbConfig) -> Result<(Database, SledLogStore), DbError> {
        Database::open_sled_as(config, |kv| kv)
    }
}

impl Database<DynKv> {
    /// [`open`](Database::open) (sled, every durability step the same) with the namespace's
    /// store behind [`DynKv`]: for a program that also runs databases on other engines
    /// ([`open_on`](Database::open_on) with a `DynKv`) through one type.
    pub fn open_dyn(config: DbConfig) -> Result<(Database<DynKv>, SledLogStore), DbError> {
        Database::open_sled_as(config, DynKv::new)
    }
}

impl<K: KvStore> Database<K> {
    /// The sled open, the store handed to the namespace as `wrap` makes it.
    fn open_sled_as(
        config: DbConfig,
        wrap: impl FnOnce(SledKv) -> K,
    ) -> Result<(Database<K>, SledLogStore), DbError> {
        config.validate()?;
        let sled_dir = config.dir.join("sled");
        let snapshot_dir = config.dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)
            .map_err(|e| DbError::snapshot_io(&snapshot_dir, e))?;
        let db = open_sled(
            &sled::Config::new()
                .path(&sled_dir)
                .cache_capacity(config.cache_bytes),
        )
        .map_err(|e| DbError::OpenFailed {
            dir: sled_dir.clone(),
            reason: e.to_string(),
        })?;
        let sync = Arc::new(SledSync::new(&sled_dir));
        let kv = SledKv::from_parts(db.clone(), sync.clone());
        // Before anything reads or changes the store (the stamp of a new one is made durable
        // with the layout).
        store::check_format(&kv)?;
        make_layout_durable(&db, &sync, &config.dir, &sled_dir, &snapshot_dir)?;
        kv.drop_orphan_chunk_trees()
            .map_err(store::kv_error("dropping orphan chunk trees"))?;
        let durability = Arc::new(SledDurability {
            db: db.clone(),
            sync: sync.clone(),
        });
        let mut database = Database::open_prepared(config, wrap(kv), durability, snapshot_dir)?;
        database.sled_sync = Some(sync.clone());
        let log = SledLogStore::open_shared(&db, sync)?;
        Ok((database, log))
    }

    /// The durability work done by flushes and log syncs of this database (fsyncs of files
    /// and directories, failures): sled's. All zero on another engine (its own counters, e.g.
    /// [`MemKv::counters`](crate::MemKv::counters), tell what it did).
    pub fn sync_counters(&self) -> SyncCounters {
        self.sled_sync
            .as_ref()
            .map(|sync| sync.counters())
            .unwrap_or_default()
    }

    /// Opens the database kept in `kv` (created if the store is empty), with its snapshot
    /// directory in `config.dir/snapshots` (real files, created if missing), and the log store
    /// in the same store: one `sync` of either makes both durable. `config.cache_bytes` is
    /// sled's and unused here. For sled in production use [`open`](Database::open) (it also
    /// fsyncs sled's files and repairs what a crash in a tree drop left).
    pub fn open_on(config: DbConfig, kv: K) -> Result<(Database<K>, KvLogStore<K>), DbError> {
        config.validate()?;
        let snapshot_dir = config.dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)
            .map_err(|e| DbError::snapshot_io(&snapshot_dir, e))?;
        store::check_format(&kv)?;
        let durability = Arc::new(StoreDurability {
            kv: kv.clone(),
            dir: config.dir.clone(),
        });
        // The format stamp of a new store, and the snapshot directory's name.
        durability.flush()?;
        make_dirs_durable(&config.dir, &snapshot_dir)?;
        let location = format!("store of the database in {}", config.dir.display());
        let log = KvLogStore::new(kv.clone(), location);
        let database = Database::open_prepared(config, kv, durability, snapshot_dir)?;
        Ok((database, log))
    }

    /// The engine-independent rest of an open, once the store's format is checked and the
    /// layout durable.
    fn open_prepared(
        config: DbConfig,
        kv: K,
        durability: Arc<dyn Durability>,
        snapshot_dir: PathBuf,
    ) -> Result<Database<K>, DbError> {
        drop_stale_generations(&kv)?;
        let namespace = Namespace::open_on(&kv, config.limits.clone())?;
        let mut counters = DbCounters::default();
        let latest = newest_valid_snapshot_and_prune(&snapshot_dir, &mut counters)?;
        let durable_applied = namespace.applied();
        Ok(Database {
            config,
            kv,
            durability,
            sled_sync: None,
            namespace,
            snapshot_dir,
            latest,
            durable_applied,
            snapshot_retry_at: None,
            counters,
            crash_after_switch: false,
        })
    }

    /// The store underneath (shared with the log store).
    pub fn store(&self) -> &K {
        &self.kv
    }

    /// The database's counters.
    pub fn counters(&self) -> &DbCounters {
        &self.counters
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace<K> {
        &self.namespace
    }

    /// The configuration.
    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// The snapshot directory.
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// Applies one committed slot (see [`Namespace::apply`]).
    pub fn apply(&mut self, committed: &Committed) -> Result<Applied, DbError> {
        self.namespace.apply(committed)
    }

    /// Applies consecutive committed slots in one sled transaction (see
    /// [`Namespace::apply_batch`]).
    pub fn apply_batch(&mut self, batch: &[Committed]) -> Result<Vec<Applied>, DbError> {
        self.namespace.apply_batch(batch)
    }

    /// Flushes sled and fsyncs what it wrote (durable against power loss), and records the
    /// applied index it made durable. A failure is [`DbError::SyncFailed`]: fatal, and every
    /// later flush of this database (and sync of its log store) fails the same way without
    /// trying again.
    pub fn flush(&mut self) -> Result<(), DbError> {
        let applied = self.namespace.applied();
        self.durability.flush()?;
        self.durable_applied = applied;
        Ok(())
    }

    /// Records that a flush which started when the namespace was at `applied` completed (for
    /// drivers that flush through the log store's `sync`).
    pub fn note_flushed(&mut self, applied: Slot) {
        self.durable_applied = self
            .durable_applied
            .max(applied.min(self.namespace.applied()));
    }

    /// The namespace's applied index as of the last completed flush.
    pub fn durable_applied(&self) -> Slot {
        self.durable_applied
    }

    /// The newest snapshot on disk.
    pub fn latest_snapshot(&self) -> Option<&SnapshotInfo> {
        self.latest.as_ref()
    }

    /// Whether `snapshot_every` entries have been applied since the newest snapshot. After a
    /// failed write, not again before a quarter of that interval has been applied: a broken
    /// or full disk must not cost a whole snapshot write at every call.
    pub fn snapshot_due(&self) -> bool {
        if self
            .snapshot_retry_at
            .is_some_and(|at| self.namespace.applied() < at)
        {
            return false;
        }
        let since = self.latest.as_ref().map_or(Slot::ZERO, |s| s.applied);
        self.namespace.applied().0.saturating_sub(since.0) >= self.config.snapshot_every
    }

    /// Writes a snapshot of the namespace now and prunes old ones.
    pub fn take_snapshot(&mut self) -> Result<SnapshotInfo, DbError> {
        let result = snapshot::write(&self.namespace, &self.snapshot_dir);
        self.snapshot_written(result)
    }

    /// A snapshot of the namespace as it is now, to be written by [`SnapshotJob::run`],
    /// possibly on another thread. Apply nothing until it has run and its result was handed to
    /// [`snapshot_written`](Self::snapshot_written).
    pub fn snapshot_job(&self) -> SnapshotJob<K> {
        SnapshotJob::new(&self.namespace, &self.snapshot_dir)
    }

    /// Records a snapshot written by a [`SnapshotJob`] (or its failure) and prunes old ones.
    pub fn snapshot_written(
        &mut self,
        result: Result<SnapshotInfo, DbError>,
    ) -> Result<SnapshotInfo, DbError> {
        let info = match result {
            Ok(info) => info,
            Err(err) => {
                self.counters.snapshot_failures += 1;
                let wait = (self.config.snapshot_every / 4).max(1);
                self.snapshot_retry_at =
                    Some(Slot(self.namespace.applied().0.saturating_add(wait)));
                return Err(err);
            }
        };
        self.snapshot_retry_at = None;
        self.counters.snapshots_taken += 1;
        self.latest = Some(info.clone());
        // The snapshot is written and in force; failing to delete old ones must not make the
        // caller think otherwise (it would write a full snapshot again at every drive).
        if snapshot::prune(&self.snapshot_dir, self.config.keep_snapshots).is_err() {
            self.counters.prune_failures += 1;
        }
        Ok(info)
    }

    /// How far the log may be compacted: below the newest snapshot minus the kept tail, and
    /// never past the namespace's durable applied index (restart replays from there).
    pub fn trim_point(&self) -> Option<Slot> {
        let snap = self.latest.as_ref()?.applied;
        let upto = Slot(snap.0.saturating_sub(self.config.keep_tail)).min(self.durable_applied);
        (upto > Slot::ZERO).then_some(upto)
    }

    /// A reader of the newest snapshot, in `chunk_size` pieces, for a lagging peer.
    pub fn snapshot_reader(&self) -> Result<SnapshotReader, DbError> {
        let info = self.latest.as_ref().ok_or(DbError::NoSnapshot)?;
        SnapshotReader::open(info, self.config.chunk_size)
    }

    /// Starts receiving a snapshot from a peer. A transfer announcing more than
    /// `max_snapshot_size` bytes is refused (`SnapshotTooLarge`) before any file is created.
    pub fn receive_snapshot(
        &self,
        applied: Slot,
        total: u64,
    ) -> Result<SnapshotInstaller, DbError> {
        if total > self.config.max_snapshot_size {
            return Err(DbError::SnapshotTooLarge {
                total,
                max: self.config.max_snapshot_size,
            });
        }
        SnapshotInstaller::new(&self.snapshot_dir, applied, total)
    }

    /// Installs a verified snapshot file: fills a fresh namespace generation from it, then in
    /// one sled transaction switches to that generation and compacts the log through the
    /// snapshot's index, then flushes. A crash before the switch leaves the old namespace; a
    /// failed check leaves everything as it was.
    pub fn install(&mut self, info: &SnapshotInfo) -> Result<Slot, DbError> {
        self.install_or_refuse(info).and_then(|installed| installed)
    }

    /// [`install`](Self::install), telling the two kinds of failure apart: the inner error is
    /// a refusal before the switch (bad file, not ahead, the new generation could not be
    /// filled), after which everything is as it was and the replica may carry on; the outer
    /// one a failure after the switch, or a failed sync, after which the database must be
    /// reopened.
    pub(crate) fn install_or_refuse(
        &mut self,
        info: &SnapshotInfo,
    ) -> Result<Result<Slot, DbError>, DbError> {
        let job = match self.install_job(info) {
            Ok(job) => job,
            Err(err) => {
                self.counters.installs_refused += 1;
                return Ok(Err(err));
            }
        };
        let staged = job.run();
        self.finish_install(staged)
    }

    /// The slow half of installing `info`, to run off the replica loop: [`InstallJob::run`]
    /// fills a fresh namespace generation from the file (re-verifying it) and makes it
    /// durable, touching nothing live. Hand its result to
    /// [`finish_install`](Self::finish_install). Refused at once if the snapshot is not ahead
    /// of the namespace.
    pub fn install_job(&self, info: &SnapshotInfo) -> Result<InstallJob<K>, DbError> {
        if info.applied <= self.namespace.applied() {
            return Err(DbError::SnapshotBehind {
                snapshot: info.applied,
                applied: self.namespace.applied(),
            });
        }
        let old = self.namespace.trees().generation;
        let generation = old
            .checked_add(1)
            .ok_or(DbError::GenerationExhausted(old))?;
        Ok(InstallJob {
            kv: self.kv.clone(),
            durability: self.durability.clone(),
            info: info.clone(),
            generation,
        })
    }

    /// The quick half of an install, on the replica loop: switches to the staged generation
    /// and compacts the log through the snapshot in one transaction, makes that durable,
    /// reloads the namespace and drops what the switch made garbage. The inner error is a
    /// refusal (staging failed, or the namespace moved on meanwhile: the staged trees are
    /// dropped and everything live is as it was); the outer one is fatal (a failed sync, or a
    /// failure after the switch): reopen the database.
    pub fn finish_install(
        &mut self,
        staged: Result<StagedInstall, DbError>,
    ) -> Result<Result<Slot, DbError>, DbError> {
        let staged = match staged {
            Ok(staged) => staged,
            // A failed sync is never a mere refusal: it is fatal (never retried).
            Err(err @ DbError::SyncFailed(_)) => {
                self.counters.install_failures += 1;
                return Err(err);
            }
            Err(err) => {
                self.counters.installs_refused += 1;
                return Ok(Err(err));
            }
        };
        let live = self.namespace.trees().generation;
        let refusal = if staged.generation != live.saturating_add(1) {
            Some(DbError::SnapshotRecord {
                file: staged.file.path.clone(),
                offset: 0,
                reason: format!(
                    "staged as namespace generation {}, but generation {live} is live",
                    staged.generation
                ),
            })
        } else if staged.file.applied <= self.namespace.applied() {
            Some(DbError::SnapshotBehind {
                snapshot: staged.file.applied,
                applied: self.namespace.applied(),
            })
        } else {
            None
        };
        if let Some(err) = refusal {
            self.counters.installs_refused += 1;
            if staged.generation != live {
                NsTrees::drop_trees(&self.kv, staged.generation)?;
            }
            return Ok(Err(err));
        }
        let slot = self
            .switch(&staged)
            .inspect_err(|_| self.counters.install_failures += 1)?;
        self.counters.snapshots_installed += 1;
        Ok(Ok(slot))
    }

    /// Drops a staged generation that will not be switched to (counted as a refused install).
    pub(crate) fn abandon_install(&mut self, staged: StagedInstall) -> Result<(), DbError> {
        self.counters.installs_refused += 1;
        if staged.generation != self.namespace.trees().generation {
            NsTrees::drop_trees(&self.kv, staged.generation)?;
        }
        Ok(())
    }

    /// Switches to the staged generation and compacts the log through the snapshot in one
    /// transaction, flushes, reloads the namespace and drops what the switch made garbage.
    fn switch(&mut self, staged: &StagedInstall) -> Result<Slot, DbError> {
        let applied = staged.file.applied;
        let new = staged.generation;
        let old = self.namespace.trees().generation;
        let log = KvLogStore::new(self.kv.clone(), "the database's store");
        let compacted = log.compacted_through()?.max(applied);
        let mut batch = WriteBatch::new();
        batch.insert(DB_META_TREE, GENERATION_KEY, codec::encode(&new));
        batch.insert(LOG_META_TREE, COMPACTED_KEY, codec::encode(&compacted));
        self.kv
            .commit(&batch)
            .map_err(store::kv_error("switching namespace generation"))?;
        self.durability.flush()?;
        if self.crash_after_switch {
            // Test hook: die the way a kill would, right after the switch is durable.
            std::process::abort();
        }
        self.namespace = Namespace::open_on(&self.kv, self.config.limits.clone())?;
        self.durable_applied = self.namespace.applied();
        NsTrees::drop_trees(&self.kv, old)?;
        log.purge_compacted(compacted)?;
        if staged.file.path.parent() == Some(self.snapshot_dir.as_path()) {
            self.latest = Some(staged.file.clone());
        }
        Ok(applied)
    }

    /// Test hook: abort the process right after an install's generation switch is durable
    /// (before the namespace is reloaded and the old generation dropped), as a kill there
    /// would. For crash tests only.
    #[doc(hidden)]
    pub fn crash_after_switch_for_tests(&mut self) {
        self.crash_after_switch = true;
    }

    /// Applies the log's entries from the namespace's applied index through `through`, which
    /// the caller knows to be committed (a replica learns this itself; this is for tools and
    /// tests). A missing entry is an error, never skipped.
    pub fn replay<L: Storage>(&mut self, log: &L, through: Slot) -> Result<Vec<Applied>, DbError> {
        let mut out = Vec::new();
        let mut slot = self.namespace.applied().next();
        while slot <= through {
            let entry = log.entry(slot)?.ok_or(DbError::ReplayHole(slot))?;
            out.push(self.namespace.apply(&Committed {
                slot,
                value: entry.value,
            })?);
            slot = slot.next();
        }
        Ok(out)
    }
}

/// Record bytes written to the staged generation between sled flushes during an install. The
/// peak memory of an install is sled's write path and falls with this batch (110 MB snapshot,
/// 64 MiB cache, `benches/snapshot_100mb.rs`): 8 MiB batches peaked at 594 MiB, 1 MiB at
/// 368 MiB, 256 KiB at 236 MiB, 64 KiB at 100 MiB (65 MiB with a 16 MiB cache), for an install
/// time of 19.6 s, 5.2 s, 3.6 s and 5.0 s on a shared machine. 64 KiB keeps the peak under the
/// snapshot's size.
const INSTALL_BATCH_BYTES: usize = 64 << 10;

fn fill<K: KvStore>(
    trees: &NsTrees<K>,
    durability: &dyn Durability,
    file: &mut SnapshotFile,
) -> Result<(), DbError> {
    let mut batch = WriteBatch::new();
    let mut pending = 0usize;
    let mut meta_seen = false;
    while let Some(record) = file.next_record()? {
        if record.tag == store::TreeTag::Meta {
            let meta: crate::state::Meta =
                codec::decode(&record.value).map_err(|e| DbError::SnapshotRecord {
                    file: file.info.path.clone(),
                    offset: record.offset,
                    reason: e.to_string(),
                })?;
            if meta.applied != file.info.applied {
                return Err(DbError::SnapshotRecord {
                    file: file.info.path.clone(),
                    offset: record.offset,
                    reason: format!(
                        "meta says applied {}, header says {}",
                        meta.applied, file.info.applied
                    ),
                });
            }
            meta_seen = true;
        }
        pending += record.value.len() + record.key.len();
        batch.insert(&trees.name(record.tag), record.key, record.value);
        if pending > INSTALL_BATCH_BYTES {
            flush_batch(trees, durability, &mut batch)?;
            pending = 0;
        }
    }
    if !meta_seen {
        return Err(DbError::SnapshotRecord {
            file: file.info.path.clone(),
            offset: 0,
            reason: "no namespace meta record".to_string(),
        });
    }
    flush_batch(trees, durability, &mut batch)
}

/// Writes the pending batch and flushes sled's buffers, so sled does not hold the whole
/// snapshot as dirty pages in memory while the install runs.
fn flush_batch<K: KvStore>(
    trees: &NsTrees<K>,
    durability: &dyn Durability,
    batch: &mut WriteBatch,
) -> Result<(), DbError> {
    trees
        .store
        .commit(&std::mem::take(batch))
        .map_err(store::kv_error("filling an installed namespace"))?;
    durability
        .flush_buffers()
        .map_err(store::kv_error("flushing an installed namespace"))
}

/// Makes the database's files and names durable at open: sled's config file, then sled's
/// directory and data file (a durable flush), then the snapshot directory, the data directory
/// and its parent (which hold the names created on first start). Done at every open, so a
/// power cut during a first start is covered by the next one.
fn make_layout_durable(
    db: &sled::Db,
    sync: &SledSync,
    dir: &Path,
    sled_dir: &Path,
    snapshot_dir: &Path,
) -> Result<(), DbError> {
    let conf = sled_dir.join("conf");
    durable::fsync_path(&conf).map_err(|e| {
        DbError::SyncFailed(durable::SyncError {
            path: conf.clone(),
            doing: "fsyncing sled's config file",
            reason: e.to_string(),
        })
    })?;
    sync.flush(db)?;
    make_dirs_durable(dir, snapshot_dir)
}

/// fsyncs the snapshot directory, the data directory and its parent (the names created on
/// first start).
fn make_dirs_durable(dir: &Path, snapshot_dir: &Path) -> Result<(), DbError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    durable::fsync_dirs(&[snapshot_dir, dir, parent])?;
    Ok(())
}

/// Drops namespace trees of generations other than the current one (left by an install that
/// crashed before switching, or after switching but before dropping the old trees). On sled,
/// `open` first drops chunk trees left without their tree by a crash in the middle of a drop.
fn drop_stale_generations<K: KvStore>(kv: &K) -> Result<(), DbError> {
    let current = store::current_generation(kv)?;
    let mut stale = std::collections::BTreeSet::new();
    for name in kv.tree_names().map_err(store::kv_error("listing trees"))? {
        if let Some(rest) = name.strip_prefix("ns")
            && let Some((digits, _)) = rest.split_once('.')
            && let Ok(generation) = digits.parse::<u64>()
            && generation != current
        {
            stale.insert(generation);
        }
    }
    for generation in stale {
        NsTrees::drop_trees(kv, generation)?;
    }
    Ok(())
}
