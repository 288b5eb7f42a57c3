//! The storage conformance suite: every [`LogStore`] must pass it.
//!
//! Implement [`Harness`] for your engine (how to make a fresh store, how to crash one, how to
//! reopen one) and call [`run_all`] from a test. Each check panics with the name of the rule
//! that was broken.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::ready::Persist;
use crate::storage::{HardState, LogStore, Storage};
use crate::types::{Ballot, Entry, Epoch, NodeId, Payload, Slot, Value};

/// How the suite makes, crashes and reopens stores of one engine.
pub trait Harness {
    /// The engine under test.
    type Store: LogStore;
    /// A new, empty store.
    fn fresh(&mut self) -> Self::Store;
    /// Simulates a power cut: whatever was not synced may be lost. Returns the store as it is
    /// found when reopened after the crash.
    fn crash(&mut self, store: Self::Store) -> Self::Store;
    /// Closes the store cleanly and opens it again.
    fn reopen(&mut self, store: Self::Store) -> Self::Store;
}

/// Runs every check.
pub fn run_all<H: Harness>(harness: &mut H) {
    new_store_is_empty(harness);
    writes_are_visible_before_sync(harness);
    an_entry_replaces_its_slot(harness);
    ranges_skip_holes_and_respect_limits(harness);
    ballot_at_agrees_with_entry(harness);
    hard_state_round_trips(harness);
    compaction_drops_entries_at_or_below(harness);
    compaction_never_goes_backwards(harness);
    synced_writes_survive_a_crash(harness);
    a_batch_is_atomic_across_a_crash(harness);
    reopen_keeps_everything_synced(harness);
}

/// An entry for tests: slot `slot`, ballot round `round`, payload `[tag]`.
pub fn sample_entry(slot: u64, round: u64, tag: u8) -> Entry {
    Entry {
        slot: Slot(slot),
        ballot: Ballot {
            round,
            node: NodeId(1),
        },
        value: Value {
            epoch: Epoch(round),
            payload: Payload::Command(vec![tag; 1 + (tag as usize % 7)].into()),
        },
    }
}

fn entries_batch(entries: Vec<Entry>) -> Persist {
    Persist {
        entries,
        ..Persist::default()
    }
}

/// Entries `sample_entry(i, 1, i)` for every `i` in `slots`, as one batch.
fn samples(slots: core::ops::RangeInclusive<u64>) -> Persist {
    entries_batch(slots.map(|i| sample_entry(i, 1, i as u8)).collect())
}

/// A batch that only compacts through `slot`.
fn compaction(slot: u64) -> Persist {
    Persist {
        compact_through: Some(Slot(slot)),
        ..Persist::default()
    }
}

fn ok<T, E: core::fmt::Debug>(rule: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("storage conformance: {rule}: unexpected error {err:?}"),
    }
}

fn write<S: LogStore>(rule: &str, store: &mut S, batch: &Persist) {
    ok(rule, store.write(batch));
}

fn check<T: PartialEq + core::fmt::Debug>(rule: &str, got: T, want: T) {
    assert!(
        got == want,
        "{}",
        format!("storage conformance: {rule}: got {got:?}, want {want:?}")
    );
}

fn new_store_is_empty<H: Harness>(h: &mut H) {
    let rule = "a new store is empty";
    let s = h.fresh();
    check(rule, ok(rule, s.hard_state()), HardState::default());
    check(rule, ok(rule, s.compacted_through()), Slot::ZERO);
    check(rule, ok(rule, s.last_slot()), Slot::ZERO);
    check(rule, ok(rule, s.entry(Slot(1))), None);
    check(rule, ok(rule, s.entries(Slot(1), Slot(100), 10)), vec![]);
}

fn writes_are_visible_before_sync<H: Harness>(h: &mut H) {
    let rule = "writes are visible before sync";
    let mut s = h.fresh();
    write(rule, &mut s, &entries_batch(vec![sample_entry(1, 1, 1)]));
    check(
        rule,
        ok(rule, s.entry(Slot(1))),
        Some(sample_entry(1, 1, 1)),
    );
    check(rule, ok(rule, s.last_slot()), Slot(1));
}

fn an_entry_replaces_its_slot<H: Harness>(h: &mut H) {
    let rule = "an entry replaces what its slot held";
    let mut s = h.fresh();
    write(rule, &mut s, &entries_batch(vec![sample_entry(3, 1, 1)]));
    write(rule, &mut s, &entries_batch(vec![sample_entry(3, 2, 9)]));
    check(
        rule,
        ok(rule, s.entry(Slot(3))),
        Some(sample_entry(3, 2, 9)),
    );
}

fn ranges_skip_holes_and_respect_limits<H: Harness>(h: &mut H) {
    let rule = "ranges are inclusive, skip holes and stop at max";
    let mut s = h.fresh();
    let batch = vec![
        sample_entry(1, 1, 1),
        sample_entry(2, 1, 2),
        sample_entry(4, 1, 4),
        sample_entry(5, 1, 5),
    ];
    write(rule, &mut s, &entries_batch(batch));
    let got = ok(rule, s.entries(Slot(2), Slot(5), 10));
    check(
        rule,
        got,
        vec![
            sample_entry(2, 1, 2),
            sample_entry(4, 1, 4),
            sample_entry(5, 1, 5),
        ],
    );
    let got = ok(rule, s.entries(Slot(1), Slot(5), 2));
    check(
        rule,
        got,
        vec![sample_entry(1, 1, 1), sample_entry(2, 1, 2)],
    );
    check(rule, ok(rule, s.entries(Slot(5), Slot(4), 10)), vec![]);
    check(rule, ok(rule, s.entry(Slot(3))), None);
    check(rule, ok(rule, s.last_slot()), Slot(5));
}

fn ballot_at_agrees_with_entry<H: Harness>(h: &mut H) {
    let rule =
        "ballot_at is the ballot of entry, for held, hole, replaced, compacted and later slots";
    let mut s = h.fresh();
    let batch = vec![
        sample_entry(1, 1, 1),
        sample_entry(2, 1, 2),
        sample_entry(4, 1, 4),
        sample_entry(7, 1, 7),
    ];
    write(rule, &mut s, &entries_batch(batch));
    // Replace one slot at a higher ballot, fill a hole behind the last entry, compact one.
    let batch = vec![sample_entry(2, 3, 22), sample_entry(5, 2, 5)];
    write(rule, &mut s, &entries_batch(batch));
    write(rule, &mut s, &compaction(1));
    for slot in 0..=9 {
        let expected = ok(rule, s.entry(Slot(slot))).map(|e| e.ballot);
        check(rule, ok(rule, s.ballot_at(Slot(slot))), expected);
    }
    check(
        rule,
        ok(rule, s.ballot_at(Slot(2))),
        Some(sample_entry(2, 3, 22).ballot),
    );
    check(rule, ok(rule, s.ballot_at(Slot(1))), None);
    check(rule, ok(rule, s.ballot_at(Slot(3))), None);
}

fn hard_state_round_trips<H: Harness>(h: &mut H) {
    let rule = "the hard state reads back as written";
    let mut s = h.fresh();
    let hs = HardState {
        promised: Ballot {
            round: 7,
            node: NodeId(3),
        },
        commit: Slot(5),
    };
    write(
        rule,
        &mut s,
        &Persist {
            hard_state: Some(hs),
            ..Persist::default()
        },
    );
    check(rule, ok(rule, s.hard_state()), hs);
}

fn compaction_drops_entries_at_or_below<H: Harness>(h: &mut H) {
    let rule = "compaction drops entries at or below its slot, in batch order";
    let mut s = h.fresh();
    write(rule, &mut s, &samples(1..=6));
    // Compaction comes first in a batch, so an entry above it in the same batch is kept and
    // one at or below it is ignored.
    write(
        rule,
        &mut s,
        &Persist {
            compact_through: Some(Slot(4)),
            hard_state: None,
            entries: vec![sample_entry(3, 2, 33), sample_entry(7, 1, 7)],
        },
    );
    check(rule, ok(rule, s.compacted_through()), Slot(4));
    check(rule, ok(rule, s.entry(Slot(3))), None);
    check(rule, ok(rule, s.entry(Slot(4))), None);
    check(
        rule,
        ok(rule, s.entry(Slot(5))),
        Some(sample_entry(5, 1, 5)),
    );
    check(
        rule,
        ok(rule, s.entry(Slot(7))),
        Some(sample_entry(7, 1, 7)),
    );
    check(rule, ok(rule, s.entries(Slot(1), Slot(10), 10)).len(), 3);
    write(rule, &mut s, &compaction(7));
    check(rule, ok(rule, s.last_slot()), Slot(7));
}

fn compaction_never_goes_backwards<H: Harness>(h: &mut H) {
    let rule = "compaction never goes backwards";
    let mut s = h.fresh();
    write(rule, &mut s, &samples(1..=4));
    for through in [3, 2] {
        write(rule, &mut s, &compaction(through));
    }
    check(rule, ok(rule, s.compacted_through()), Slot(3));
    write(rule, &mut s, &entries_batch(vec![sample_entry(2, 5, 2)]));
    check(rule, ok(rule, s.entry(Slot(2))), None);
}

fn synced_writes_survive_a_crash<H: Harness>(h: &mut H) {
    let rule = "synced writes survive a crash";
    let mut s = h.fresh();
    write(rule, &mut s, &entries_batch(vec![sample_entry(1, 1, 1)]));
    let hs = HardState {
        promised: Ballot {
            round: 2,
            node: NodeId(1),
        },
        commit: Slot(1),
    };
    write(
        rule,
        &mut s,
        &Persist {
            hard_state: Some(hs),
            ..Persist::default()
        },
    );
    ok(rule, s.sync());
    let s = h.crash(s);
    check(
        rule,
        ok(rule, s.entry(Slot(1))),
        Some(sample_entry(1, 1, 1)),
    );
    check(rule, ok(rule, s.hard_state()), hs);
}

fn a_batch_is_atomic_across_a_crash<H: Harness>(h: &mut H) {
    let rule = "an unsynced batch is lost whole or kept whole";
    let mut s = h.fresh();
    write(rule, &mut s, &entries_batch(vec![sample_entry(1, 1, 1)]));
    ok(rule, s.sync());
    write(rule, &mut s, &samples(2..=20));
    let s = h.crash(s);
    check(
        rule,
        ok(rule, s.entry(Slot(1))),
        Some(sample_entry(1, 1, 1)),
    );
    let kept = ok(rule, s.entries(Slot(2), Slot(20), 100)).len();
    assert!(
        kept == 0 || kept == 19,
        "storage conformance: {rule}: {kept} of 19 entries survived"
    );
}

fn reopen_keeps_everything_synced<H: Harness>(h: &mut H) {
    let rule = "a clean reopen keeps everything synced";
    let mut s = h.fresh();
    write(rule, &mut s, &samples(1..=5));
    write(rule, &mut s, &compaction(2));
    ok(rule, s.sync());
    let s = h.reopen(s);
    check(rule, ok(rule, s.compacted_through()), Slot(2));
    check(rule, ok(rule, s.last_slot()), Slot(5));
    check(rule, ok(rule, s.entries(Slot(1), Slot(5), 10)).len(), 3);
}
