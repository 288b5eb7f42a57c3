//! What the core reads of the durable log, and what a driver's storage must promise.
//!
//! The core only ever *reads* through [`Storage`]. Writes come out of the core in
//! [`Persist`] batches and the driver performs them through [`LogStore`], the
//! write half that drivers, tests and the conformance suite use.

use serde::{Deserialize, Serialize};

use crate::ready::Persist;
use crate::types::{Ballot, Entry, Slot};

/// The state an acceptor must never forget: the highest ballot it promised, and how far it
/// knows the log to be chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// No ballot below this one may be accepted or promised, ever, even after a crash.
    pub promised: Ballot,
    /// Every slot up to here is chosen and held in this log (or compacted). Written in the
    /// same batch as the entries it covers, so it is never ahead of what is durable. Kept so
    /// that a restarted replica knows which of its entries are settled: it promises (and so
    /// reports) only the entries above it, which bounds a promise.
    pub commit: Slot,
}

/// A storage failure, reported to the driver as is. The core's in-memory state is unchanged by
/// a call that failed on storage, so the driver may retry or shut down.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The device or the engine failed; the message says what and where.
    #[error("log storage I/O failed: {0}")]
    Io(String),
    /// An entry or the hard state read back does not decode or fails its checksum.
    #[error("log entry {slot} is corrupt: {reason}")]
    Corrupt {
        /// The slot whose record is bad (slot 0 for the hard state).
        slot: Slot,
        /// What is wrong with it.
        reason: String,
    },
}

/// Read access to the durable log, as the core needs it.
///
/// What the core guarantees in return: every slot above `compacted_through()` and at or below
/// the replica's commit index holds the value chosen for it, so a driver may re-read committed
/// entries from here. Entries above the commit index may still be replaced.
///
/// Every method reads what has been *written* through [`LogStore::write`], whether or not it has
/// been synced yet: the core relies on seeing its own writes. Durability is the driver's business
/// and is reported to the core through `Replica::on_persisted`.
pub trait Storage {
    /// The hard state last written; `HardState::default()` for a new log.
    fn hard_state(&self) -> Result<HardState, StorageError>;

    /// The slot up to which the log has been compacted into a snapshot (inclusive);
    /// `Slot::ZERO` if never. Entries at or below it are gone; entries above it are all kept.
    fn compacted_through(&self) -> Result<Slot, StorageError>;

    /// The highest slot holding an entry, or `compacted_through()` if none is above it.
    fn last_slot(&self) -> Result<Slot, StorageError>;

    /// The entry at `slot`, or `None` for a hole, a slot above `last_slot()`, or a compacted slot.
    fn entry(&self, slot: Slot) -> Result<Option<Entry>, StorageError>;

    /// The ballot of the entry at `slot`, with the same `None` cases as [`Storage::entry`].
    /// The core asks this on the commit path; the default reads the whole entry, a storage
    /// that can answer without copying it should.
    fn ballot_at(&self, slot: Slot) -> Result<Option<Ballot>, StorageError> {
        Ok(self.entry(slot)?.map(|e| e.ballot))
    }

    /// The entries in `from..=to` in slot order, holes skipped, at most `max` of them.
    /// Compacted slots are skipped like holes: callers check `compacted_through()` first.
    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError>;
}

/// The write half of a log storage, used by drivers and tests (never by the core).
pub trait LogStore: Storage {
    /// Performs one persist batch, in this order: compaction, hard state, entries (an entry
    /// replaces whatever the slot held). Reads see the writes as soon as this returns; they are
    /// durable only after [`sync`](LogStore::sync). A batch is atomic with respect to a crash:
    /// after `sync` either all of it is durable or, if the crash came first, possibly none.
    /// Entries at or below `compacted_through()` are ignored.
    fn write(&mut self, batch: &Persist) -> Result<(), StorageError>;

    /// [`write`](LogStore::write) of a batch the driver no longer needs, so a store that keeps
    /// entries in memory can take them instead of cloning them. Same rules, same result; the
    /// default borrows and calls `write`.
    fn write_owned(&mut self, batch: Persist) -> Result<(), StorageError> {
        self.write(&batch)
    }

    /// Makes every write so far durable before it returns (the fsync).
    fn sync(&mut self) -> Result<(), StorageError>;
}
