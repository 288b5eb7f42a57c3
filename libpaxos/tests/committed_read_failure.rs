//! A storage that fails to read a committed entry in the middle of a Ready's batch: the
//! entries read before it are handed out, the rest in a later Ready, and none is skipped.
//! (Before the fix, the entries read before the failure were marked delivered and dropped.)

use libpaxos::conformance::sample_entry;
use libpaxos::*;

/// `MemStorage` whose reads of slots at or above `fail_from` fail while it is set.
struct FailsFrom {
    inner: MemStorage,
    fail_from: Option<Slot>,
}

impl FailsFrom {
    fn check(&self, slot: Slot) -> Result<(), StorageError> {
        match self.fail_from {
            Some(from) if slot >= from => Err(StorageError::Io(format!("cannot read {slot}"))),
            _ => Ok(()),
        }
    }
}

impl Storage for FailsFrom {
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
        self.check(slot)?;
        self.inner.entry(slot)
    }
    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError> {
        self.check(to)?;
        self.inner.entries(from, to, max)
    }
}

#[test]
fn a_read_failure_mid_batch_hands_out_the_rest_later_and_skips_nothing() {
    let mut log = MemStorage::new();
    let entries: Vec<Entry> = (1..=5).map(|s| sample_entry(s, 1, s as u8)).collect();
    log.write(&Persist {
        compact_through: None,
        hard_state: Some(HardState {
            promised: entries[0].ballot,
            commit: Slot(5),
        }),
        entries: entries.clone(),
    })
    .unwrap();
    log.sync().unwrap();
    let storage = FailsFrom {
        inner: log,
        fail_from: Some(Slot(3)),
    };
    let members = vec![NodeId(1), NodeId(2), NodeId(3)];
    let config = Config::new(NodeId(1), members);
    // Restarted with nothing applied: slots 1 to 5 are committed and must all be handed out.
    let mut replica = Replica::new(config, storage, Time::ZERO, Slot::ZERO).unwrap();
    let first = replica.ready();
    let slots: Vec<Slot> = first.committed.iter().map(|c| c.slot).collect();
    assert_eq!(slots, vec![Slot(1), Slot(2)], "what could be read goes out");
    replica.storage_mut().fail_from = None;
    let second = replica.ready();
    let all: Vec<Committed> = first
        .committed
        .into_iter()
        .chain(second.committed)
        .collect();
    let expected: Vec<Committed> = entries
        .into_iter()
        .map(|e| Committed {
            slot: e.slot,
            value: e.value,
        })
        .collect();
    assert_eq!(all, expected, "every committed entry once, in order");
}
