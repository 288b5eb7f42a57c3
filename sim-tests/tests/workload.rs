//! The workload, driven against a sequential in-memory cell: its histories pass every check,
//! the same seed gives the same history, values are unique, and it only does what its
//! clients may do.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sim_tests::Recorder;
use sim_tests::check::{Check, CheckConfig, Verdict, check_all};
use sim_tests::history::{
    ClientId, Event, History, LockMode, Meta, Op, OpError, OpResult, Reply, Sequencer, SimTime,
};
use sim_tests::workload::{Workload, WorkloadConfig};

#[derive(Default)]
struct Lock {
    exclusive: Option<ClientId>,
    shared: BTreeSet<ClientId>,
    queue: VecDeque<(ClientId, LockMode)>,
    generation: u64,
}

impl Lock {
    fn free_for(&self, mode: LockMode) -> bool {
        self.exclusive.is_none() && (mode == LockMode::Shared || self.shared.is_empty())
    }

    fn grant(&mut self, client: ClientId, mode: LockMode) -> Sequencer {
        if mode == LockMode::Exclusive {
            self.generation += 1;
            self.exclusive = Some(client);
        } else {
            self.shared.insert(client);
        }
        Sequencer {
            mode,
            generation: self.generation,
            instance: 1,
        }
    }
}

/// Deliberate bugs, each the history-level shape of one the real harness must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    /// A read served from an old copy (a master reading without a valid lease).
    StaleRead,
    /// An exclusive lock granted while another client holds it (granted before the holder's
    /// session expired).
    GrantWhileHeld,
    /// A write acknowledged and then lost (acknowledged before the fsync, then a crash).
    LostWrite,
    /// Any sequencer passes the check (a deposed master or lagging member answering).
    AnySequencerValid,
}

/// A correct cell, one operation at a time, unless given a bug.
#[derive(Default)]
struct SequentialCell {
    files: BTreeMap<String, (String, u64)>,
    /// The state before the last write of each file (what a stale read or a lost write shows).
    previous: BTreeMap<String, Option<(String, u64)>>,
    locks: BTreeMap<String, Lock>,
    bug: Option<Bug>,
    ops: u64,
}

impl SequentialCell {
    fn execute(
        &mut self,
        client: ClientId,
        path: &str,
        op: &Op,
    ) -> (OpResult, Vec<(ClientId, Event)>) {
        let ok = |data: Option<String>, generation: Option<u64>| {
            OpResult::Ok(Reply {
                data,
                generation,
                ..Reply::default()
            })
        };
        let mut events = Vec::new();
        self.ops += 1;
        let buggy = |bug| self.bug == Some(bug) && self.ops.is_multiple_of(7);
        if matches!(op, Op::Get {})
            && buggy(Bug::StaleRead)
            && let Some(Some((d, g))) = self.previous.get(path)
        {
            return (ok(Some(d.clone()), Some(*g)), events);
        }
        if matches!(op, Op::Put { .. }) && buggy(Bug::LostWrite) {
            // Acknowledged as written, then forgotten.
            if let Some((_, g)) = self.files.get(path) {
                return (ok(None, Some(g + 1)), events);
            }
        }
        let steal = buggy(Bug::GrantWhileHeld);
        let any_valid = self.bug == Some(Bug::AnySequencerValid);
        if matches!(op, Op::Put { .. } | Op::Delete {} | Op::Create { .. }) {
            self.previous
                .insert(path.to_owned(), self.files.get(path).cloned());
        }
        let result = match op {
            Op::Get {} => match self.files.get(path) {
                Some((d, g)) => ok(Some(d.clone()), Some(*g)),
                None => OpResult::Err(OpError::NoSuchNode),
            },
            Op::Put { data, cas } => match self.files.get_mut(path) {
                None => OpResult::Err(OpError::NoSuchNode),
                Some((_, g)) if cas.is_some_and(|c| c != *g) => OpResult::Err(OpError::StaleCas),
                Some(file) => {
                    *file = (data.clone(), file.1 + 1);
                    ok(None, Some(file.1))
                }
            },
            Op::Create { exclusive } => match self.files.get(path) {
                Some(_) if *exclusive => OpResult::Err(OpError::Exists),
                Some((_, g)) => ok(None, Some(*g)),
                None => {
                    self.files.insert(path.to_owned(), (String::new(), 0));
                    ok(None, Some(0))
                }
            },
            Op::Delete {} => match self.files.remove(path) {
                Some(_) => ok(None, None),
                None => OpResult::Err(OpError::NoSuchNode),
            },
            Op::Lock { mode, wait } => {
                let lock = self.locks.entry(path.to_owned()).or_default();
                if steal && *mode == LockMode::Exclusive && !*wait {
                    lock.exclusive = None;
                    lock.shared.clear();
                }
                if lock.queue.is_empty() && lock.free_for(*mode) {
                    OpResult::Ok(Reply {
                        sequencer: Some(lock.grant(client, *mode)),
                        ..Reply::default()
                    })
                } else if *wait {
                    lock.queue.push_back((client, *mode));
                    OpResult::Ok(Reply {
                        queued: true,
                        ..Reply::default()
                    })
                } else {
                    OpResult::Err(OpError::LockConflict)
                }
            }
            Op::Unlock {} | Op::Close {} => {
                let lock = self.locks.entry(path.to_owned()).or_default();
                let before = lock.queue.len();
                lock.queue.retain(|(c, _)| *c != client);
                let released = if lock.exclusive == Some(client) {
                    lock.exclusive = None;
                    true
                } else {
                    lock.shared.remove(&client)
                };
                while let Some(&(next, mode)) = lock.queue.front() {
                    if !lock.free_for(mode) {
                        break;
                    }
                    lock.queue.pop_front();
                    let sequencer = lock.grant(next, mode);
                    events.push((
                        next,
                        Event::LockAcquired {
                            path: path.to_owned(),
                            sequencer,
                        },
                    ));
                }
                if released || lock.queue.len() < before {
                    ok(None, None)
                } else {
                    OpResult::Err(OpError::NotLocked)
                }
            }
            Op::CheckSequencer { sequencer } => {
                let lock = self.locks.entry(path.to_owned()).or_default();
                let held = match sequencer.mode {
                    LockMode::Exclusive => lock.exclusive.is_some(),
                    LockMode::Shared => !lock.shared.is_empty(),
                };
                if any_valid || held && sequencer.generation == lock.generation {
                    ok(None, None)
                } else {
                    OpResult::Err(OpError::StaleSequencer)
                }
            }
        };
        (result, events)
    }
}

fn run(seed: u64, clients: u32, steps: usize) -> History {
    run_with(seed, clients, steps, None)
}

fn run_with(seed: u64, clients: u32, steps: usize, bug: Option<Bug>) -> History {
    let mut workload = Workload::new(seed, WorkloadConfig::default());
    let mut cell = SequentialCell {
        bug,
        ..SequentialCell::default()
    };
    let mut recorder = Recorder::new(Meta {
        seed,
        scenario: "sequential".to_owned(),
        ..Meta::default()
    });
    let mut t = 0;
    let mut pick = sim_tests::faults::SplitMix64::new(seed);
    for _ in 0..steps {
        let client = ClientId(pick.range(1, u64::from(clients) + 1) as u32);
        let planned = workload.next(client);
        let id = recorder.invoke(client, &planned.path, planned.op.clone(), SimTime(t));
        let (result, events) = cell.execute(client, &planned.path, &planned.op);
        recorder
            .complete(id, result.clone(), SimTime(t + 1))
            .unwrap();
        workload.observe(client, &planned.path, &planned.op, &result);
        for (whom, event) in events {
            recorder.event(whom, SimTime(t + 1), event.clone());
            workload.observe_event(whom, &event);
        }
        t += 2;
    }
    // The final reads durability needs.
    for path in workload
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("/f/"))
    {
        let id = recorder.invoke(ClientId(0), &path, Op::Get {}, SimTime(t));
        let (result, _) = cell.execute(ClientId(0), &path, &Op::Get {});
        recorder.complete(id, result, SimTime(t + 1)).unwrap();
        t += 2;
    }
    recorder.finish()
}

#[test]
fn a_correct_cells_histories_pass_every_check() {
    for seed in 0..40 {
        let history = run(seed, 4, 300);
        let report = check_all(&history, &CheckConfig::for_history(&history));
        assert!(report.passed(), "seed {seed}:\n{report}");
        for check in [
            Check::Linearizability,
            Check::LockSafety,
            Check::Sequencers,
            Check::Durability,
        ] {
            assert_eq!(
                report.verdict(check),
                Some(&Verdict::Pass),
                "seed {seed} {check}:\n{report}"
            );
        }
    }
}

#[test]
fn the_workload_exercises_every_kind_of_outcome() {
    let mut seen = BTreeSet::new();
    for seed in 0..10 {
        for op in run(seed, 4, 300).ops() {
            let outcome = match &op.result {
                OpResult::Ok(r) if r.queued => "queued".to_owned(),
                OpResult::Ok(r) if r.sequencer.is_some() => "granted".to_owned(),
                OpResult::Ok(_) => format!("{} ok", op.op.name()),
                OpResult::Err(e) => format!("{e:?}"),
                OpResult::Unknown => "unknown".to_owned(),
            };
            seen.insert(outcome);
        }
    }
    for wanted in [
        "get ok",
        "put ok",
        "create ok",
        "delete ok",
        "unlock ok",
        "check_sequencer ok",
        "granted",
        "queued",
        "NoSuchNode",
        "Exists",
        "StaleCas",
        "LockConflict",
        "StaleSequencer",
    ] {
        assert!(seen.contains(wanted), "never saw {wanted}: {seen:?}");
    }
}

#[test]
fn one_seed_gives_one_history() {
    assert_eq!(run(5, 4, 200).fingerprint(), run(5, 4, 200).fingerprint());
    assert_ne!(run(5, 4, 200).fingerprint(), run(6, 4, 200).fingerprint());
}

#[test]
fn written_values_are_unique() {
    let history = run(3, 5, 1000);
    let mut values = BTreeSet::new();
    for op in history.ops() {
        if let Op::Put { data, .. } = &op.op {
            assert!(values.insert(data.clone()), "{data} written twice");
        }
    }
    assert!(values.len() > 100);
}

#[test]
fn clients_unlock_only_what_they_hold_or_wait_for() {
    for seed in 0..20 {
        for op in run(seed, 4, 300).ops() {
            if matches!(op.op, Op::Unlock {}) {
                assert!(
                    !matches!(op.result, OpResult::Err(OpError::NotLocked)),
                    "seed {seed}: {}",
                    op.describe()
                );
            }
        }
    }
}

/// Each bug is caught by the check that names its kind, on the first few seeds.
#[test]
fn each_bug_of_the_sequential_cell_is_caught_by_its_check() {
    for (bug, check) in [
        (Bug::StaleRead, Check::Linearizability),
        (Bug::GrantWhileHeld, Check::LockSafety),
        (Bug::LostWrite, Check::Durability),
        (Bug::AnySequencerValid, Check::Sequencers),
    ] {
        let caught = (0..20).find(|&seed| {
            let history = run_with(seed, 4, 300, Some(bug));
            let report = check_all(&history, &CheckConfig::for_history(&history));
            report.verdict(check).is_some_and(Verdict::is_fail)
        });
        assert!(
            caught.is_some(),
            "{bug:?} not caught by {check} in 20 seeds"
        );
        println!(
            "{bug:?}: caught by {check} at seed {}",
            caught.unwrap_or_default()
        );
    }
}
