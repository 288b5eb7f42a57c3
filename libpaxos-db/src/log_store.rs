//! [`SledLogStore`]: the Paxos log and hard state in sled, beside the namespace.
//!
//! Layout: tree `log` maps a slot (8 bytes, big-endian, so sled's order is slot order) to a
//! checksummed postcard [`Entry`]; tree `log.meta` holds the hard state and the compaction
//! point. A [`Persist`] batch is one sled transaction over both trees; `sync` is `Db::flush`
//! followed by the fsyncs that make it durable against power loss (`durable.rs`: blob files,
//! directories, the data file), which makes every earlier write of the database durable,
//! namespace included. A failed sync is fatal: it is never retried, and every later write or
//! sync of this store fails with the same error.

use std::path::PathBuf;
use std::sync::Arc;

use libpaxos::{Entry, HardState, LogStore, Persist, Slot, Storage, StorageError};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Batch, Db, Tree};

use crate::codec;
use crate::durable::{SledSync, SyncCounters};

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

/// The sled implementation of libpaxos's [`Storage`] and [`LogStore`].
pub struct SledLogStore {
    db: Db,
    log: Tree,
    meta: Tree,
    location: PathBuf,
    sync: Arc<SledSync>,
    counters: std::cell::Cell<u64>,
    read_failures: std::cell::Cell<u64>,
    stats: LogCounters,
}

pub(crate) fn slot_key(slot: Slot) -> [u8; 8] {
    slot.0.to_be_bytes()
}

fn io(doing: &str, err: impl core::fmt::Display) -> StorageError {
    StorageError::Io(format!("{doing}: {err}"))
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
        let log = db
            .open_tree(LOG_TREE)
            .map_err(|e| io("opening the log tree", e))?;
        let meta = db
            .open_tree(LOG_META_TREE)
            .map_err(|e| io("opening the log.meta tree", e))?;
        Ok(SledLogStore {
            db: db.clone(),
            log,
            meta,
            location: sync.dir().to_path_buf(),
            sync,
            counters: std::cell::Cell::new(0),
            read_failures: std::cell::Cell::new(0),
            stats: LogCounters::default(),
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
        let mut stats = self.stats.clone();
        stats.corrupt_reads = self.counters.get();
        stats.read_failures = self.read_failures.get();
        stats
    }

    /// A failed sled read, counted.
    fn read_io(&self, doing: &str, err: impl core::fmt::Display) -> StorageError {
        self.read_failures.set(self.read_failures.get() + 1);
        io(doing, err)
    }

    fn corrupt(&self, slot: Slot, what: impl core::fmt::Display) -> StorageError {
        self.counters.set(self.counters.get() + 1);
        StorageError::Corrupt {
            slot,
            reason: format!(
                "{what} (sled tree `{LOG_TREE}` in {})",
                self.location.display()
            ),
        }
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<Entry, StorageError> {
        let slot = key
            .try_into()
            .map(|k: [u8; 8]| Slot(u64::from_be_bytes(k)))
            .map_err(|_| self.corrupt(Slot::ZERO, "a log key is not 8 bytes"))?;
        let entry: Entry = codec::decode(value).map_err(|e| self.corrupt(slot, e))?;
        if entry.slot != slot {
            return Err(self.corrupt(slot, format!("record holds slot {}", entry.slot)));
        }
        Ok(entry)
    }

    /// Removes entries at or below `through` that are still physically present (after a
    /// snapshot install moved the compaction point without deleting them).
    pub(crate) fn purge_compacted(&self, through: Slot) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        for key in self.log.range(..=slot_key(through)).keys() {
            batch.remove(key.map_err(|e| io("scanning the log", e))?);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io("purging compacted entries", e))
    }
}

impl Storage for SledLogStore {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        match self
            .meta
            .get(HARD_STATE_KEY)
            .map_err(|e| self.read_io("reading the hard state", e))?
        {
            None => Ok(HardState::default()),
            Some(bytes) => codec::decode(&bytes)
                .map_err(|e| self.corrupt(Slot::ZERO, format_args!("hard state: {e}"))),
        }
    }

    fn compacted_through(&self) -> Result<Slot, StorageError> {
        match self
            .meta
            .get(COMPACTED_KEY)
            .map_err(|e| self.read_io("reading the compaction point", e))?
        {
            None => Ok(Slot::ZERO),
            Some(bytes) => codec::decode(&bytes)
                .map_err(|e| self.corrupt(Slot::ZERO, format_args!("compaction point: {e}"))),
        }
    }

    fn last_slot(&self) -> Result<Slot, StorageError> {
        let compacted = self.compacted_through()?;
        let last = match self
            .log
            .last()
            .map_err(|e| self.read_io("reading the last entry", e))?
        {
            None => Slot::ZERO,
            Some((key, value)) => self.decode_entry(&key, &value)?.slot,
        };
        Ok(last.max(compacted))
    }

    fn entry(&self, slot: Slot) -> Result<Option<Entry>, StorageError> {
        if slot <= self.compacted_through()? {
            return Ok(None);
        }
        let key = slot_key(slot);
        match self
            .log
            .get(key)
            .map_err(|e| self.read_io("reading an entry", e))?
        {
            None => Ok(None),
            Some(value) => self.decode_entry(&key, &value).map(Some),
        }
    }

    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError> {
        let from = from.max(self.compacted_through()?.next());
        if from > to || max == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.log.range(slot_key(from)..=slot_key(to)) {
            let (key, value) = item.map_err(|e| self.read_io("scanning the log", e))?;
            out.push(self.decode_entry(&key, &value)?);
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }
}

impl LogStore for SledLogStore {
    fn write(&mut self, batch: &Persist) -> Result<(), StorageError> {
        let result = match self.sync.failed() {
            // After a failed sync nothing more is written: the process must restart.
            Some(err) => Err(StorageError::Io(err.to_string())),
            None => self.write_batch(batch),
        };
        if result.is_err() {
            self.stats.io_failures += 1;
        }
        result
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        match self.sync.flush(&self.db) {
            Ok(()) => {
                self.stats.syncs += 1;
                Ok(())
            }
            Err(e) => {
                self.stats.io_failures += 1;
                Err(StorageError::Io(e.to_string()))
            }
        }
    }
}

impl SledLogStore {
    /// The body of [`LogStore::write`]; every error it returns is counted there.
    fn write_batch(&mut self, batch: &Persist) -> Result<(), StorageError> {
        let compacted = self.compacted_through()?;
        let through = batch.compact_through.unwrap_or(compacted).max(compacted);
        let mut log_batch = Batch::default();
        let mut meta_batch = Batch::default();
        if through > compacted {
            for key in self.log.range(..=slot_key(through)).keys() {
                log_batch.remove(key.map_err(|e| io("scanning the log", e))?);
            }
            meta_batch.insert(COMPACTED_KEY, codec::encode(&through));
        }
        if let Some(hard_state) = &batch.hard_state {
            meta_batch.insert(HARD_STATE_KEY, codec::encode(hard_state));
        }
        let mut written = 0;
        for entry in batch.entries.iter().filter(|e| e.slot > through) {
            log_batch.insert(&slot_key(entry.slot), codec::encode(entry));
            written += 1;
        }
        let result = [&self.log, &self.meta].transaction(|trees| {
            trees[0].apply_batch(&log_batch)?;
            trees[1].apply_batch(&meta_batch)?;
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) => {
                self.stats.writes += 1;
                self.stats.entries_written += written;
                Ok(())
            }
            Err(TransactionError::Storage(e)) => Err(io("writing a persist batch", e)),
            Err(TransactionError::Abort(())) => Err(io("writing a persist batch", "aborted")),
        }
    }
}
