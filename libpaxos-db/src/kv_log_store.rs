//! [`KvLogStore`]: the Paxos log and hard state on any [`KvStore`], in the same layout as
//! [`SledLogStore`](crate::SledLogStore) (trees `log` and `log.meta`, big-endian slot keys,
//! checksummed postcard entries), so a log written by one reads the same through the other.
//!
//! Step 2 of moving the database onto the storage seam (docs/testing.md, "The storage
//! seam"): with [`MemKv`](crate::MemKv) underneath it is a log for the deterministic
//! simulation whose crashes lose exactly what was not synced. `SledLogStore` is this store on a
//! [`SledKv`](crate::SledKv) sharing the database's durability handle.

use std::cell::Cell;
use std::ops::Bound;

use libpaxos::{Entry, HardState, LogStore, Persist, Slot, Storage, StorageError};

use crate::codec;
use crate::kv::{KvError, KvStore, WriteBatch};
use crate::log_store::{
    COMPACTED_KEY, HARD_STATE_KEY, LOG_META_TREE, LOG_TREE, LogCounters, slot_key,
};

/// libpaxos's [`Storage`] and [`LogStore`] over a [`KvStore`].
pub struct KvLogStore<K: KvStore> {
    store: K,
    /// Where the store lives, for corruption messages.
    location: String,
    corrupt_reads: Cell<u64>,
    read_failures: Cell<u64>,
    stats: LogCounters,
    /// After a failed sync nothing more is written: the process must restart.
    failed: Option<String>,
}

fn io(err: KvError) -> StorageError {
    StorageError::Io(err.to_string())
}

impl<K: KvStore> KvLogStore<K> {
    /// The log kept in `store`; `location` names it in corruption messages.
    pub fn new(store: K, location: impl Into<String>) -> KvLogStore<K> {
        KvLogStore {
            store,
            location: location.into(),
            corrupt_reads: Cell::new(0),
            read_failures: Cell::new(0),
            stats: LogCounters::default(),
            failed: None,
        }
    }

    /// The store underneath (shared with the namespace).
    pub fn store(&self) -> &K {
        &self.store
    }

    /// Removes entries at or below `through` that are still physically present (after a
    /// snapshot install moved the compaction point without deleting them).
    pub(crate) fn purge_compacted(&self, through: Slot) -> Result<(), StorageError> {
        let gone = self
            .store
            .range_keys(
                LOG_TREE,
                Bound::Unbounded,
                Bound::Included(&slot_key(through)),
                usize::MAX,
            )
            .map_err(|e| StorageError::Io(format!("scanning the log: {e}")))?;
        let mut batch = WriteBatch::new();
        for key in gone {
            batch.remove(LOG_TREE, key);
        }
        self.store
            .commit(&batch)
            .map_err(|e| StorageError::Io(format!("purging compacted entries: {e}")))
    }

    /// Counts a write refused by the owner (the database's durability handle failed).
    pub(crate) fn count_io_failure(&mut self) {
        self.stats.io_failures += 1;
    }

    /// The counters (reads are counted even through `&self`).
    pub fn counters(&self) -> LogCounters {
        let mut stats = self.stats.clone();
        stats.corrupt_reads = self.corrupt_reads.get();
        stats.read_failures = self.read_failures.get();
        stats
    }

    fn read<T>(&self, result: Result<T, KvError>) -> Result<T, StorageError> {
        result.map_err(|e| {
            self.read_failures.set(self.read_failures.get() + 1);
            io(e)
        })
    }

    fn corrupt(&self, slot: Slot, what: impl core::fmt::Display) -> StorageError {
        self.corrupt_reads.set(self.corrupt_reads.get() + 1);
        StorageError::Corrupt {
            slot,
            reason: format!("{what} (tree `{LOG_TREE}` in {})", self.location),
        }
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<Entry, StorageError> {
        let slot = <[u8; 8]>::try_from(key)
            .map(|k| Slot(u64::from_be_bytes(k)))
            .map_err(|_| self.corrupt(Slot::ZERO, "a log key is not 8 bytes"))?;
        let entry: Entry = codec::decode(value).map_err(|e| self.corrupt(slot, e))?;
        if entry.slot != slot {
            return Err(self.corrupt(slot, format!("record holds slot {}", entry.slot)));
        }
        Ok(entry)
    }

    /// The body of [`LogStore::write`]; every error it returns is counted there.
    fn write_batch(&mut self, batch: &Persist) -> Result<(), StorageError> {
        let compacted = self.compacted_through()?;
        let through = batch.compact_through.unwrap_or(compacted).max(compacted);
        let mut writes = WriteBatch::new();
        if through > compacted {
            let key = slot_key(through);
            let gone = self.read(self.store.range_keys(
                LOG_TREE,
                Bound::Unbounded,
                Bound::Included(&key),
                usize::MAX,
            ))?;
            for key in gone {
                writes.remove(LOG_TREE, key);
            }
            writes.insert(LOG_META_TREE, COMPACTED_KEY, codec::encode(&through));
        }
        if let Some(hard_state) = &batch.hard_state {
            writes.insert(LOG_META_TREE, HARD_STATE_KEY, codec::encode(hard_state));
        }
        let mut written = 0;
        for entry in batch.entries.iter().filter(|e| e.slot > through) {
            writes.insert(LOG_TREE, slot_key(entry.slot), codec::encode(entry));
            written += 1;
        }
        self.store.commit(&writes).map_err(io)?;
        self.stats.writes += 1;
        self.stats.entries_written += written;
        Ok(())
    }
}

impl<K: KvStore> Storage for KvLogStore<K> {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        match self.read(self.store.get(LOG_META_TREE, HARD_STATE_KEY))? {
            None => Ok(HardState::default()),
            Some(bytes) => codec::decode(&bytes)
                .map_err(|e| self.corrupt(Slot::ZERO, format_args!("hard state: {e}"))),
        }
    }

    fn compacted_through(&self) -> Result<Slot, StorageError> {
        match self.read(self.store.get(LOG_META_TREE, COMPACTED_KEY))? {
            None => Ok(Slot::ZERO),
            Some(bytes) => codec::decode(&bytes)
                .map_err(|e| self.corrupt(Slot::ZERO, format_args!("compaction point: {e}"))),
        }
    }

    fn last_slot(&self) -> Result<Slot, StorageError> {
        let compacted = self.compacted_through()?;
        let last = match self.read(self.store.last(LOG_TREE))? {
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
        match self.read(self.store.get(LOG_TREE, &key))? {
            None => Ok(None),
            Some(value) => self.decode_entry(&key, &value).map(Some),
        }
    }

    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError> {
        let from = from.max(self.compacted_through()?.next());
        if from > to || max == 0 {
            return Ok(Vec::new());
        }
        let (low, high) = (slot_key(from), slot_key(to));
        let pairs = self.read(self.store.range(
            LOG_TREE,
            Bound::Included(&low),
            Bound::Included(&high),
            max,
        ))?;
        pairs
            .iter()
            .map(|(key, value)| self.decode_entry(key, value))
            .collect()
    }
}

impl<K: KvStore> LogStore for KvLogStore<K> {
    fn write(&mut self, batch: &Persist) -> Result<(), StorageError> {
        let result = match &self.failed {
            Some(err) => Err(StorageError::Io(err.clone())),
            None => self.write_batch(batch),
        };
        if result.is_err() {
            self.stats.io_failures += 1;
        }
        result
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if let Some(err) = &self.failed {
            self.stats.io_failures += 1;
            return Err(StorageError::Io(err.clone()));
        }
        match self.store.sync() {
            Ok(()) => {
                self.stats.syncs += 1;
                Ok(())
            }
            Err(e) => {
                self.stats.io_failures += 1;
                self.failed = Some(e.to_string());
                Err(io(e))
            }
        }
    }
}
