//! An in-memory log storage with an explicit durability model, for tests and simulation.
//!
//! Writes are visible at once and durable only after [`LogStore::sync`]; [`MemStorage::crash`]
//! throws away everything written since the last sync, as a power cut would.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::ready::Persist;
use crate::storage::{HardState, LogStore, Storage, StorageError};
use crate::types::{Entry, Slot};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    hard_state: HardState,
    compacted: Slot,
    entries: BTreeMap<Slot, Entry>,
}

impl State {
    fn apply(&mut self, batch: &Persist) {
        if let Some(through) = batch.compact_through
            && through > self.compacted
        {
            self.compacted = through;
            self.entries = self.entries.split_off(&through.next());
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = hard_state;
        }
        for entry in &batch.entries {
            if entry.slot > self.compacted {
                self.entries.insert(entry.slot, entry.clone());
            }
        }
    }
}

/// The reference storage: a `BTreeMap` of entries plus the hard state, in two copies (what was
/// written, what is durable).
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    written: State,
    durable: State,
    unsynced: Vec<Persist>,
    failing: Option<&'static str>,
}

impl MemStorage {
    /// An empty log.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Simulates a power cut: everything written since the last sync is gone.
    pub fn crash(&mut self) {
        self.written = self.durable.clone();
        self.unsynced.clear();
    }

    /// Whether writes are waiting for a sync.
    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// The slots of entries written since the last sync (what the next sync makes durable).
    pub fn unsynced_slots(&self) -> Vec<Slot> {
        self.unsynced
            .iter()
            .flat_map(|batch| batch.entries.iter().map(|e| e.slot))
            .collect()
    }

    /// The durable entry at `slot`, as it would be found after a crash.
    pub fn durable_entry(&self, slot: Slot) -> Option<&Entry> {
        self.durable.entries.get(&slot)
    }

    /// Every durable entry, in slot order.
    pub fn durable_entries(&self) -> Vec<Entry> {
        self.durable.entries.values().cloned().collect()
    }

    /// The slot the durable log is compacted through, as it would be found after a crash.
    pub fn durable_compacted(&self) -> Slot {
        self.durable.compacted
    }

    /// The durable hard state, as it would be found after a crash.
    pub fn durable_hard_state(&self) -> HardState {
        self.durable.hard_state
    }

    /// Makes every later read and write fail with an I/O error naming `why` (or heals it with
    /// `None`), to test how drivers and the core handle a broken disk.
    pub fn set_failing(&mut self, why: Option<&'static str>) {
        self.failing = why;
    }

    fn check(&self) -> Result<(), StorageError> {
        match self.failing {
            Some(why) => Err(StorageError::Io(why.into())),
            None => Ok(()),
        }
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        self.check()?;
        Ok(self.written.hard_state)
    }

    fn compacted_through(&self) -> Result<Slot, StorageError> {
        self.check()?;
        Ok(self.written.compacted)
    }

    fn last_slot(&self) -> Result<Slot, StorageError> {
        self.check()?;
        let last = self.written.entries.keys().next_back().copied();
        Ok(last.unwrap_or(Slot::ZERO).max(self.written.compacted))
    }

    fn entry(&self, slot: Slot) -> Result<Option<Entry>, StorageError> {
        self.check()?;
        Ok(self.written.entries.get(&slot).cloned())
    }

    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError> {
        self.check()?;
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .written
            .entries
            .range(from..=to)
            .take(max)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl LogStore for MemStorage {
    fn write(&mut self, batch: &Persist) -> Result<(), StorageError> {
        self.check()?;
        self.written.apply(batch);
        self.unsynced.push(batch.clone());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check()?;
        for batch in self.unsynced.drain(..) {
            self.durable.apply(&batch);
        }
        Ok(())
    }
}
