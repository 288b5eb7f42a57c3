//! An in-memory log storage with an explicit durability model, for tests and simulation.
//!
//! Writes are visible at once and durable only after [`LogStore::sync`]; [`MemStorage::crash`]
//! throws away everything written since the last sync, as a power cut would.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::ready::Persist;
use crate::storage::{HardState, LogStore, Storage, StorageError};
use crate::types::{Ballot, Entry, Slot};

/// The reference storage: the entries as written, in slot order in one `VecDeque` (a dense log
/// is indexed by slot directly; holes fall back to a binary search), plus, for every change
/// since the last sync, what the slot held before (an undo record; the first one of a slot is
/// what is durable there). A sync forgets the undo records; a crash plays them back, newest
/// first. So an entry is stored once, and written with one clone (which shares its payload).
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    compacted: Slot,
    /// Entries as written, strictly increasing by slot, all above `compacted`.
    entries: VecDeque<Entry>,
    durable_hard_state: HardState,
    durable_compacted: Slot,
    /// Every change since the last sync, in order: the slot and what it held before (`None`:
    /// nothing).
    undo: Vec<(Slot, Option<Entry>)>,
    /// Slots written since the last sync, in write order (repeats possible).
    written_slots: Vec<Slot>,
    /// Whether anything was written since the last sync.
    unsynced: bool,
    failing: Option<&'static str>,
}

/// Where `slot` is in `entries` (`Ok`), or where it would go (`Err`). O(1) when the log has no
/// holes between its first entry and `slot`.
fn position(entries: &VecDeque<Entry>, slot: Slot) -> Result<usize, usize> {
    let Some(first) = entries.front() else {
        return Err(0);
    };
    if slot < first.slot {
        return Err(0);
    }
    let guess = slot.0 - first.slot.0;
    if let Ok(i) = usize::try_from(guess)
        && let Some(e) = entries.get(i)
        && e.slot == slot
    {
        return Ok(i);
    }
    if entries.back().is_some_and(|last| last.slot < slot) {
        return Err(entries.len());
    }
    entries.binary_search_by_key(&slot, |e| e.slot)
}

/// Puts `entry` in its place in `entries`; returns what the slot held.
fn put(entries: &mut VecDeque<Entry>, entry: Entry) -> Option<Entry> {
    match position(entries, entry.slot) {
        Ok(i) => Some(core::mem::replace(&mut entries[i], entry)),
        Err(i) if i == entries.len() => {
            entries.push_back(entry);
            None
        }
        Err(i) => {
            entries.insert(i, entry);
            None
        }
    }
}

impl MemStorage {
    /// An empty log.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Simulates a power cut: everything written since the last sync is gone.
    pub fn crash(&mut self) {
        while let Some((slot, old)) = self.undo.pop() {
            match old {
                Some(entry) => {
                    put(&mut self.entries, entry);
                }
                None => {
                    if let Ok(i) = position(&self.entries, slot) {
                        self.entries.remove(i);
                    }
                }
            }
        }
        self.hard_state = self.durable_hard_state;
        self.compacted = self.durable_compacted;
        self.written_slots.clear();
        self.unsynced = false;
    }

    /// Whether writes are waiting for a sync.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// The slots of entries written since the last sync (what the next sync makes durable).
    pub fn unsynced_slots(&self) -> Vec<Slot> {
        self.written_slots.clone()
    }

    /// The durable entry at `slot`, as it would be found after a crash.
    pub fn durable_entry(&self, slot: Slot) -> Option<&Entry> {
        if slot <= self.durable_compacted {
            return None;
        }
        match self.undo.iter().find(|(s, _)| *s == slot) {
            Some((_, old)) => old.as_ref(),
            None => position(&self.entries, slot).ok().map(|i| &self.entries[i]),
        }
    }

    /// Every durable entry, in slot order.
    pub fn durable_entries(&self) -> Vec<Entry> {
        let mut out: BTreeMap<Slot, Option<&Entry>> =
            self.entries.iter().map(|e| (e.slot, Some(e))).collect();
        // Newest first, so the oldest record of a slot (its durable content) wins.
        for (slot, old) in self.undo.iter().rev() {
            out.insert(*slot, old.as_ref());
        }
        let out: BTreeMap<Slot, &Entry> = out
            .into_iter()
            .filter_map(|(slot, e)| Some((slot, e?)))
            .collect();
        out.into_values()
            .filter(|e| e.slot > self.durable_compacted)
            .cloned()
            .collect()
    }

    /// The slot the durable log is compacted through, as it would be found after a crash.
    pub fn durable_compacted(&self) -> Slot {
        self.durable_compacted
    }

    /// The durable hard state, as it would be found after a crash.
    pub fn durable_hard_state(&self) -> HardState {
        self.durable_hard_state
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

    /// Records what `slot` held before a change.
    fn remember(&mut self, slot: Slot, old: Option<Entry>) {
        self.undo.push((slot, old));
    }
}

impl Storage for MemStorage {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        self.check()?;
        Ok(self.hard_state)
    }

    fn compacted_through(&self) -> Result<Slot, StorageError> {
        self.check()?;
        Ok(self.compacted)
    }

    fn last_slot(&self) -> Result<Slot, StorageError> {
        self.check()?;
        let last = self.entries.back().map(|e| e.slot);
        Ok(last.unwrap_or(Slot::ZERO).max(self.compacted))
    }

    fn entry(&self, slot: Slot) -> Result<Option<Entry>, StorageError> {
        self.check()?;
        Ok(position(&self.entries, slot)
            .ok()
            .map(|i| self.entries[i].clone()))
    }

    fn ballot_at(&self, slot: Slot) -> Result<Option<Ballot>, StorageError> {
        self.check()?;
        Ok(position(&self.entries, slot)
            .ok()
            .map(|i| self.entries[i].ballot))
    }

    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError> {
        self.check()?;
        if from > to {
            return Ok(Vec::new());
        }
        let start = position(&self.entries, from).unwrap_or_else(|i| i);
        Ok(self
            .entries
            .range(start..)
            .take_while(|e| e.slot <= to)
            .take(max)
            .cloned()
            .collect())
    }
}

impl LogStore for MemStorage {
    fn write(&mut self, batch: &Persist) -> Result<(), StorageError> {
        self.check()?;
        if let Some(through) = batch.compact_through
            && through > self.compacted
        {
            self.compacted = through;
            while self.entries.front().is_some_and(|e| e.slot <= through) {
                if let Some(entry) = self.entries.pop_front() {
                    self.remember(entry.slot, Some(entry));
                }
            }
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = hard_state;
        }
        for entry in &batch.entries {
            if entry.slot > self.compacted {
                let old = put(&mut self.entries, entry.clone());
                self.remember(entry.slot, old);
                self.written_slots.push(entry.slot);
            }
        }
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check()?;
        self.undo.clear();
        self.written_slots.clear();
        self.durable_hard_state = self.hard_state;
        self.durable_compacted = self.compacted;
        self.unsynced = false;
        Ok(())
    }
}
