//! Determinism: the same commands give byte-identical namespaces; a snapshot installed
//! elsewhere gives the same digest, and both then evolve identically.

mod common;
mod history;

use common::TempDir;
use history::{SeqChoice, Step};
use libpaxos::{Committed, Epoch, Payload, Slot, Value};
use libpaxos_db::{ClientRequest, Command, Database, DbConfig, RequestSeq, SessionId, WallTime};
use proptest::prelude::*;

fn to_committed(steps: &[Step], first_slot: u64) -> Vec<Committed> {
    let mut seqs = std::collections::BTreeMap::new();
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let time = WallTime(10 + i as u64);
            let (payload, epoch) = match step {
                Step::Client {
                    session,
                    seq,
                    epoch,
                    op,
                } => {
                    let last: &mut u64 = seqs.entry(*session).or_insert(0);
                    if let SeqChoice::Next = seq {
                        *last += 1;
                    }
                    let command = Command::Client(ClientRequest {
                        session: SessionId(*session),
                        seq: RequestSeq(*last),
                        time,
                        op: op.clone(),
                    });
                    (Payload::Command(command.encode().into()), *epoch)
                }
                Step::Expire { session, epoch } => (
                    Payload::Command(
                        Command::ExpireSession {
                            session: SessionId(*session),
                            time,
                        }
                        .encode()
                        .into(),
                    ),
                    *epoch,
                ),
                Step::Noop { epoch } => (Payload::Noop, *epoch),
                Step::Purge { age, epoch } => (
                    Payload::Command(
                        Command::PurgeTombstones {
                            before: WallTime(time.0.saturating_sub(*age)),
                        }
                        .encode()
                        .into(),
                    ),
                    *epoch,
                ),
                Step::EndDelays { epoch } => (
                    Payload::Command(Command::EndLockDelays { time }.encode().into()),
                    *epoch,
                ),
                Step::RestartDelays { epoch } => (
                    Payload::Command(Command::RestartLockDelays { time }.encode().into()),
                    *epoch,
                ),
            };
            Committed {
                slot: Slot(first_slot + i as u64),
                value: Value {
                    epoch: Epoch(epoch),
                    payload,
                },
            }
        })
        .collect()
}

fn database(dir: &TempDir) -> Database {
    let mut config = DbConfig::new(dir.path());
    config.limits = history::limits();
    Database::open(config).expect("open database").0
}

fn apply_all(db: &mut Database, committed: &[Committed]) {
    for c in committed {
        db.apply(c).expect("apply");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn two_databases_fed_the_same_commands_have_the_same_digest(steps in history::history(150)) {
        let (a_dir, b_dir) = (TempDir::new("det-a"), TempDir::new("det-b"));
        let (mut a, mut b) = (database(&a_dir), database(&b_dir));
        let committed = to_committed(&steps, 1);
        apply_all(&mut a, &committed);
        apply_all(&mut b, &committed);
        prop_assert_eq!(a.namespace().digest().unwrap(), b.namespace().digest().unwrap());
    }

    #[test]
    fn a_snapshot_installed_elsewhere_has_the_same_digest_and_evolves_identically(
        before in history::history(100),
        after in history::history(60),
    ) {
        let (a_dir, b_dir) = (TempDir::new("snap-a"), TempDir::new("snap-b"));
        let (mut a, mut b) = (database(&a_dir), database(&b_dir));
        let first = to_committed(&before, 1);
        apply_all(&mut a, &first);
        let info = a.take_snapshot().unwrap();
        let mut reader = a.snapshot_reader().unwrap();
        let mut installer = b.receive_snapshot(info.applied, info.len).unwrap();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            installer.accept(&chunk).unwrap();
        }
        let received = installer.finish().unwrap();
        prop_assert_eq!(b.install(&received).unwrap(), info.applied);
        prop_assert_eq!(a.namespace().digest().unwrap(), b.namespace().digest().unwrap());
        prop_assert_eq!(a.namespace().dump().unwrap(), b.namespace().dump().unwrap());
        let second = to_committed(&after, info.applied.0 + 1);
        apply_all(&mut a, &second);
        apply_all(&mut b, &second);
        prop_assert_eq!(a.namespace().digest().unwrap(), b.namespace().digest().unwrap());
    }
}

#[test]
fn different_histories_give_different_digests() {
    let (a_dir, b_dir) = (TempDir::new("diff-a"), TempDir::new("diff-b"));
    let (mut a, mut b) = (database(&a_dir), database(&b_dir));
    let noop = |epoch| Committed {
        slot: Slot(1),
        value: Value {
            epoch: Epoch(epoch),
            payload: Payload::Noop,
        },
    };
    a.apply(&noop(1)).unwrap();
    b.apply(&noop(2)).unwrap();
    assert_ne!(
        a.namespace().digest().unwrap(),
        b.namespace().digest().unwrap()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn applying_in_batches_gives_the_same_replies_events_and_bytes_as_one_by_one(
        steps in history::history(150),
        cuts in prop::collection::vec(1usize..40, 1..20),
    ) {
        let (a_dir, b_dir) = (TempDir::new("batch-a"), TempDir::new("batch-b"));
        let (mut a, mut b) = (database(&a_dir), database(&b_dir));
        let committed = to_committed(&steps, 1);
        let one_by_one: Vec<_> = committed.iter().map(|c| a.apply(c).unwrap()).collect();
        let mut batched = Vec::new();
        let mut rest = committed.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (group, tail) = rest.split_at((*cut).min(rest.len()));
            batched.extend(b.apply_batch(group).unwrap());
            rest = tail;
        }
        prop_assert_eq!(one_by_one, batched);
        prop_assert_eq!(a.namespace().digest().unwrap(), b.namespace().digest().unwrap());
    }
}

#[test]
fn a_batch_with_a_gap_is_refused_before_anything_runs() {
    let dir = TempDir::new("batch-gap");
    let mut db = database(&dir);
    let noop = |slot| Committed {
        slot: Slot(slot),
        value: Value {
            epoch: Epoch(7),
            payload: Payload::Noop,
        },
    };
    let err = db.apply_batch(&[noop(1), noop(3)]).expect_err("gap");
    assert!(matches!(
        err,
        libpaxos_db::DbError::ApplyOutOfOrder {
            expected: Slot(2),
            got: Slot(3)
        }
    ));
    assert_eq!(db.namespace().applied(), Slot(0));
    assert_eq!(
        db.namespace().epoch(),
        Epoch(0),
        "the first entry did not run either"
    );
}
