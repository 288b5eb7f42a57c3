//! [`SledLogStore`]: the Paxos log and hard state in sled, beside the namespace.
//!
//! Layout: tree `log` maps a slot (8 bytes, big-endian, so sled's order is slot order) to a
//! checksummed postcard [`Entry`]; tree `log.meta` holds the hard state and the compaction
//! point. A [`Persist`] batch is one sled transaction over both trees (and their chunk trees:
//! an entry above 2 KiB is stored in chunks, decision 0202); `sync` is `Db::flush`
//! followed by the fsyncs that make it durable against power loss (`durable.rs`: blob files,
//! directories, the data file), which makes every earlier write of the database durable,
//! namespace included. A failed sync is fatal: it is never retried, and every later write or
//! sync of this store fails with the same error.

use std::path::PathBuf;
use std::sync::Arc;

use libpaxos::{Entry, HardState, LogStore, Persist, Slot, Storage, StorageError};
use sled::Db;

use crate::durable::{SledSync, SyncCounters};
use crate::kv_log_store::KvLogStore;
use crate::sled_kv::SledKv;

/// The log tree's name.
pub const LOG_TREE: &str = "log";
/// The log metadata tree's name.
pub const LOG_META_TREE: &str = "log.meta";
pub(crate) const HARD_STATE_KEY: &[u8] = b"hard_state";
pub(crate) const COMPACTED_KEY: &[u8] = b"compacted_through";

/// Counts of the log store's work and failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogCounters {
    /// Persist batches written.
    pub writes: u64,
    /// Entries written.
    pub entries_written: u64,
    /// Syncs (flushes) done.
    pub syncs: u64,
    /// Writes or syncs that failed (any cause, corrupt reads during a write included).
    pub io_failures: u64,
    /// Records that failed their checksum or did not decode.
    pub corrupt_reads: u64,
    /// Reads that sled failed (I/O).
    pub read_failures: u64,
}

/// The sled implementation of libpaxos's [`Storage`] and [`LogStore`]: the [`KvLogStore`] on
/// a [`SledKv`] (so values above `CHUNK_BYTES` (2 KiB) are chunked and
/// sled never writes a blob file: decision 0202), whose durability handle is shared with the
/// [`Database`](crate::Database): a failed flush of either makes both fatal.
pub struct SledLogStore {
    db: Db,
    inner: KvLogStore<SledKv>,
    sync: Arc<SledSync>,
}

pub(crate) fn slot_key(slot: Slot) -> [u8; 8] {
    slot.0.to_be_bytes()
}

impl SledLogStore {
    /// Opens (or creates) the log trees of `db`, the sled database in directory `sled_dir`
    /// (whose files `sync` fsyncs; it also names the database in corruption messages).
    pub fn open(db: &Db, sled_dir: impl Into<PathBuf>) -> Result<SledLogStore, StorageError> {
        let sled_dir = sled_dir.into();
        SledLogStore::open_shared(db, Arc::new(SledSync::new(sled_dir)))
    }

    /// Opens the log trees with a durability handle shared with the [`Database`](crate::Database).
    pub(crate) fn open_shared(db: &Db, sync: Arc<SledSync>) -> Result<SledLogStore, StorageError> {
        let location = format!("sled database {}", sync.dir().display());
        let kv = SledKv::from_parts(db.clone(), sync.clone());
        Ok(SledLogStore {
            db: db.clone(),
            inner: KvLogStore::new(kv, location),
            sync,
        })
    }

    /// The durability work done by `sync` (fsyncs of files and directories, failures).
    pub fn sync_counters(&self) -> SyncCounters {
        self.sync.counters()
    }

    /// The database this log lives in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The counters (reads are counted even through `&self`).
    pub fn counters(&self) -> LogCounters {
        self.inner.counters()
    }
}

impl Storage for SledLogStore {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        self.inner.hard_state()
    }

    fn compacted_through(&self) -> Result<Slot, StorageError> {
        self.inner.compacted_through()
    }

    fn last_slot(&self) -> Result<Slot, StorageError> {
        self.inner.last_slot()
    }

    fn entry(&self, slot: Slot) -> Result<Option<Entry>, StorageError> {
        self.inner.entry(slot)
    }

    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError> {
        self.inner.entries(from, to, max)
    }
}

impl LogStore for SledLogStore {
    fn write(&mut self, batch: &Persist) -> Result<(), StorageError> {
        // After a failed sync (of the log or of the database) nothing more is written: the
        // process must restart.
        if let Some(err) = self.sync.failed() {
            self.inner.count_io_failure();
            // The same message as the failed sync itself returned.
            let err = crate::kv::KvError::new("syncing", err);
            return Err(StorageError::Io(err.to_string()));
        }
        self.inner.write(batch)
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.inner.sync()
    }
}
