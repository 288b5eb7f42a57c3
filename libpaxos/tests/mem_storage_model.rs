//! `MemStorage` (a slot-ordered `VecDeque` with undo records) against a plain model: a
//! `BTreeMap` of what was written and a copy of it at every sync. Random batches with holes,
//! overwrites, writes below the first entry, compactions, syncs and crashes; after every step
//! every read must agree with the model, and after a crash the store must hold exactly what the
//! model had at the last sync.

use std::collections::BTreeMap;

use libpaxos::conformance::sample_entry;
use libpaxos::{Entry, HardState, LogStore, MemStorage, Persist, Slot, Storage};

/// xorshift64*, enough to vary the operations reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Default)]
struct Model {
    compacted: u64,
    entries: BTreeMap<u64, Entry>,
}

impl Model {
    fn write(&mut self, batch: &Persist) {
        if let Some(through) = batch.compact_through
            && through.0 > self.compacted
        {
            self.compacted = through.0;
            self.entries.retain(|slot, _| *slot > through.0);
        }
        for entry in &batch.entries {
            if entry.slot.0 > self.compacted {
                self.entries.insert(entry.slot.0, entry.clone());
            }
        }
    }
}

const TOP: u64 = 48;

fn agree(step: usize, store: &MemStorage, model: &Model) {
    assert_eq!(
        store.compacted_through().unwrap(),
        Slot(model.compacted),
        "step {step}: compacted_through"
    );
    let last = model.entries.keys().next_back().copied().unwrap_or(0);
    assert_eq!(
        store.last_slot().unwrap(),
        Slot(last.max(model.compacted)),
        "step {step}: last_slot"
    );
    for slot in 0..=TOP + 2 {
        let expected = model.entries.get(&slot).cloned();
        assert_eq!(
            store.entry(Slot(slot)).unwrap(),
            expected,
            "step {step}: entry {slot}"
        );
        assert_eq!(
            store.ballot_at(Slot(slot)).unwrap(),
            expected.map(|e| e.ballot),
            "step {step}: ballot_at {slot}"
        );
    }
    for (from, to, max) in [(0, TOP + 2, 1000), (3, 17, 5), (10, 9, 10), (20, TOP, 3)] {
        let expected: Vec<Entry> = model
            .entries
            .range(from..=to.max(from))
            .filter(|(slot, _)| **slot <= to)
            .take(max)
            .map(|(_, e)| e.clone())
            .collect();
        assert_eq!(
            store.entries(Slot(from), Slot(to), max).unwrap(),
            expected,
            "step {step}: entries {from}..={to} max {max}"
        );
    }
}

#[test]
fn mem_storage_matches_a_plain_model_through_writes_syncs_and_crashes() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut store = MemStorage::new();
        let mut model = Model::default();
        let mut durable = Model::default();
        let mut round = 1;
        for step in 0..300 {
            match rng.below(10) {
                0..=5 => {
                    // A batch: mostly appends after the end, sometimes holes, overwrites and
                    // slots below the first entry.
                    let mut slots: Vec<u64> = (0..1 + rng.below(6))
                        .map(|_| match rng.below(4) {
                            0 => 1 + rng.below(TOP),
                            _ => {
                                let last = model.entries.keys().next_back().copied();
                                let base = last.unwrap_or(model.compacted);
                                base + 1 + rng.below(3)
                            }
                        })
                        .filter(|s| *s <= TOP)
                        .collect();
                    slots.sort_unstable();
                    slots.dedup();
                    if rng.below(5) == 0 {
                        round += 1;
                    }
                    let entries = slots
                        .iter()
                        .map(|&s| sample_entry(s, round, (s % 251) as u8))
                        .collect();
                    let compact_through = (rng.below(8) == 0)
                        .then(|| Slot(model.compacted + rng.below(4)))
                        .filter(|s| s.0 <= TOP);
                    let batch = Persist {
                        compact_through,
                        hard_state: Some(HardState::default()),
                        entries,
                    };
                    store.write(&batch).unwrap();
                    model.write(&batch);
                }
                6..=7 => {
                    store.sync().unwrap();
                    durable = model.clone();
                }
                _ => {
                    store.crash();
                    model = durable.clone();
                    let held: Vec<Entry> = model.entries.values().cloned().collect();
                    assert_eq!(
                        store.durable_entries(),
                        held,
                        "seed {seed} step {step}: durable entries after a crash"
                    );
                }
            }
            agree(step, &store, &model);
            let durable_held: Vec<Entry> = durable.entries.values().cloned().collect();
            assert_eq!(
                store.durable_entries(),
                durable_held,
                "seed {seed} step {step}: durable_entries"
            );
            for slot in 0..=TOP {
                assert_eq!(
                    store.durable_entry(Slot(slot)),
                    durable.entries.get(&slot),
                    "seed {seed} step {step}: durable_entry {slot}"
                );
            }
        }
    }
}
