//! Model-based test: random command histories give the same replies, the same events and the
//! same final state on the sled namespace as on a simple in-memory reference model.

mod common;
mod history;
mod reference;

use std::collections::BTreeMap;

use common::temp_db;
use history::{SeqChoice, Step};
use libpaxos::{Committed, Epoch, Payload, Slot, Value};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, KvStore, MemKv, Namespace, RequestSeq, SessionId, WallTime,
};
use proptest::prelude::*;

/// Turns steps into (command-or-noop, epoch), assigning seqs and times.
pub fn commands(steps: &[Step]) -> Vec<(Option<Command>, u64)> {
    let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let time = WallTime(1_000 + i as u64);
        match step {
            Step::Client {
                session,
                seq,
                epoch,
                op,
            } => {
                let last = seqs.entry(*session).or_insert(0);
                let seq = match seq {
                    // A barrier bars the session's next request: that one, arriving later,
                    // must get `Barred`.
                    SeqChoice::Next if *op == ClientOp::Barrier => *last + 1,
                    SeqChoice::Next => {
                        *last += 1;
                        *last
                    }
                    SeqChoice::Same => *last,
                    SeqChoice::Older => last.saturating_sub(1),
                };
                let command = Command::Client(ClientRequest {
                    session: SessionId(*session),
                    seq: RequestSeq(seq),
                    time,
                    op: op.clone(),
                });
                out.push((Some(command), *epoch));
            }
            Step::Expire { session, epoch } => out.push((
                Some(Command::ExpireSession {
                    session: SessionId(*session),
                    time,
                }),
                *epoch,
            )),
            Step::Noop { epoch } => out.push((None, *epoch)),
            Step::Purge { age, epoch } => out.push((
                Some(Command::PurgeTombstones {
                    before: WallTime(time.0 - age),
                }),
                *epoch,
            )),
            Step::EndDelays { epoch } => out.push((Some(Command::EndLockDelays { time }), *epoch)),
            Step::RestartDelays { epoch } => {
                out.push((Some(Command::RestartLockDelays { time }), *epoch))
            }
        }
    }
    out
}

fn committed(slot: u64, command: &Option<Command>, epoch: u64) -> Committed {
    Committed {
        slot: Slot(slot),
        value: Value {
            epoch: Epoch(epoch),
            payload: match command {
                Some(c) => Payload::Command(c.encode().into()),
                None => Payload::Noop,
            },
        },
    }
}

/// The queries the front end relies on (tombstones, per-user session counts, lock-delay
/// deadline) agree with the reference model.
fn queries_match<K: KvStore>(
    ns: &Namespace<K>,
    reference: &reference::Model,
    when: &str,
) -> Result<(), TestCaseError> {
    for user in ["u", "v", "w"] {
        prop_assert_eq!(
            ns.sessions_of(user),
            reference.sessions_of(user),
            "sessions of {} {}",
            user,
            when
        );
    }
    prop_assert_eq!(
        ns.next_lock_delay_end(),
        reference.next_lock_delay_end(),
        "next lock-delay end {}",
        when
    );
    prop_assert_eq!(
        ns.oldest_tombstone(),
        reference.oldest_tombstone(),
        "oldest tombstone {}",
        when
    );
    let tombstones: Vec<_> = ns.tombstones().map(|(id, t)| (id, t.clone())).collect();
    prop_assert_eq!(&tombstones, &reference.tombstones(), "tombstones {}", when);
    for (id, tombstone) in &tombstones {
        prop_assert_eq!(
            ns.tombstone(*id),
            Some(tombstone),
            "tombstone {} {}",
            id,
            when
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sled_namespace_matches_the_reference_model(steps in history::history(200)) {
        let db = temp_db();
        matches_the_reference_model(Namespace::open(&db, history::limits()).unwrap(), &steps)?;
    }

    #[test]
    fn mem_kv_namespace_matches_the_reference_model(steps in history::history(200)) {
        let ns = Namespace::open_on(&MemKv::new(), history::limits()).unwrap();
        matches_the_reference_model(ns, &steps)?;
    }
}

/// Applies `steps` to `ns` and to the reference model: every reply, event and query agrees,
/// and so does the whole state at the end.
fn matches_the_reference_model<K: KvStore>(
    mut ns: Namespace<K>,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let mut reference = reference::Model::new(history::limits());
    for (i, (command, epoch)) in commands(steps).iter().enumerate() {
        let applied = ns.apply(&committed(i as u64 + 1, command, *epoch)).unwrap();
        let (reply, events) = match command {
            Some(c) => reference.apply(c, *epoch),
            None => reference.apply_noop(*epoch),
        };
        prop_assert_eq!(&applied.reply, &reply, "reply of step {}: {:?}", i, command);
        prop_assert_eq!(
            &applied.events,
            &events,
            "events of step {}: {:?}",
            i,
            command
        );
        queries_match(&ns, &reference, &format!("after step {i}: {command:?}"))?;
    }
    prop_assert_eq!(ns.dump().unwrap(), reference.dump());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A namespace on the in-memory store, crashed at random points (each crash keeping the
    /// synced slots and any prefix of the unsynced ones) and reopened, comes back at a whole
    /// applied index, equal to the reference model replayed to that index, never behind what
    /// was synced; applying then carries on.
    #[test]
    fn a_crashed_mem_kv_namespace_comes_back_at_a_whole_prefix(
        steps in history::history(80),
        plan in prop::collection::vec((0u8..10, 0usize..4), 80),
    ) {
        let commands = commands(&steps);
        let mut store = MemKv::new();
        let mut ns = Namespace::open_on(&store, history::limits()).unwrap();
        store.sync().unwrap();
        let mut synced = 0u64;
        let mut slot = 0u64;
        for i in 0..commands.len() {
            let (what, kept) = plan[i % plan.len()];
            match what {
                0 => {
                    store.sync().unwrap();
                    synced = slot;
                }
                1 => {
                    store = store.crash(kept);
                    ns = Namespace::open_on(&store, history::limits()).unwrap();
                    let back = ns.applied().0;
                    prop_assert!(back >= synced && back <= slot, "came back at {} (synced {}, applied {})", back, synced, slot);
                    let mut reference = reference::Model::new(history::limits());
                    for (command, epoch) in &commands[..back as usize] {
                        match command {
                            Some(c) => drop(reference.apply(c, *epoch)),
                            None => drop(reference.apply_noop(*epoch)),
                        }
                    }
                    prop_assert_eq!(ns.dump().unwrap(), reference.dump(), "after a crash back to {}", back);
                    slot = back;
                }
                _ => {}
            }
            // Carry on from wherever the namespace is (after a crash, re-apply the lost slots).
            while slot <= i as u64 {
                let (command, epoch) = &commands[slot as usize];
                ns.apply(&committed(slot + 1, command, *epoch)).unwrap();
                slot += 1;
            }
        }
    }
}

/// What the restart-complete history does between applies.
#[derive(Clone, Debug)]
enum Action {
    /// Apply the next n commands with one `apply_batch` (one sled transaction).
    Apply(usize),
    /// Drop the database and open it again from disk (the working copy is rebuilt).
    Reopen,
    /// Take a snapshot, install it on a fresh database in another directory, and carry on
    /// there.
    Install,
}

fn actions() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(
        prop_oneof![
            6 => (1usize..=8).prop_map(Action::Apply),
            1 => Just(Action::Reopen),
            1 => Just(Action::Install),
        ],
        1..50,
    )
}

fn db_config(dir: &std::path::Path) -> libpaxos_db::DbConfig {
    let mut config = libpaxos_db::DbConfig::new(dir);
    config.limits = history::limits();
    config
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same histories, applied in random batches, with the database reopened from disk and
    /// moved by snapshot install to a fresh replica's database at random points: the
    /// reference model agrees on every reply and event, and on the whole state after each
    /// reopen and install and at the end.
    #[test]
    fn reopen_install_and_batches_match_the_reference_model(
        steps in history::history(100),
        actions in actions(),
    ) {
        let mut open = |dir: &std::path::Path, _fresh: bool| {
            libpaxos_db::Database::open(db_config(dir)).unwrap().0
        };
        reopen_install_and_batches(&steps, actions, &mut open)?;
    }

    /// The same on `MemKv` (`Database::open_on`), where a reopen is a power cut after the
    /// flush (`MemKv::crash(0)`: only what was synced survives) and an install goes to a
    /// fresh store.
    #[test]
    fn on_memkv_reopen_install_and_batches_match_the_reference_model(
        steps in history::history(100),
        actions in actions(),
    ) {
        let mut kv = MemKv::new();
        let mut open = |dir: &std::path::Path, fresh: bool| {
            kv = if fresh { MemKv::new() } else { kv.crash(0) };
            libpaxos_db::Database::open_on(db_config(dir), kv.clone()).unwrap().0
        };
        reopen_install_and_batches(&steps, actions, &mut open)?;
    }
}

/// The body of the two tests above; `open(dir, fresh)` opens the database of `dir`, on a new
/// store when `fresh`.
fn reopen_install_and_batches<K: KvStore>(
    steps: &[Step],
    actions: Vec<Action>,
    open: &mut dyn FnMut(&std::path::Path, bool) -> libpaxos_db::Database<K>,
) -> Result<(), TestCaseError> {
    let commands = commands(steps);
    let mut reference = reference::Model::new(history::limits());
    let mut dirs = vec![common::TempDir::new("model-restart")];
    let mut db = open(dirs[0].path(), true);
    let mut next = 0usize;
    let tail = std::iter::repeat_n(Action::Apply(1), commands.len());
    for action in actions.into_iter().chain(tail) {
        if next == commands.len() {
            break;
        }
        match action {
            Action::Apply(n) => {
                let end = (next + n).min(commands.len());
                let batch: Vec<Committed> = (next..end)
                    .map(|i| committed(i as u64 + 1, &commands[i].0, commands[i].1))
                    .collect();
                let applied = db.apply_batch(&batch).unwrap();
                prop_assert_eq!(applied.len(), end - next);
                for (i, applied) in (next..end).zip(&applied) {
                    let (command, epoch) = &commands[i];
                    let (reply, events) = match command {
                        Some(c) => reference.apply(c, *epoch),
                        None => reference.apply_noop(*epoch),
                    };
                    prop_assert_eq!(&applied.reply, &reply, "reply of step {}: {:?}", i, command);
                    prop_assert_eq!(
                        &applied.events,
                        &events,
                        "events of step {}: {:?}",
                        i,
                        command
                    );
                }
                next = end;
                queries_match(
                    db.namespace(),
                    &reference,
                    &format!("after the batch ending at step {next}"),
                )?;
            }
            Action::Reopen => {
                db.flush().unwrap();
                drop(db);
                let dir = dirs.last().unwrap().path().to_path_buf();
                db = open(&dir, false);
                prop_assert_eq!(
                    db.namespace().dump().unwrap(),
                    reference.dump(),
                    "after reopening at step {}",
                    next
                );
                queries_match(
                    db.namespace(),
                    &reference,
                    &format!("after reopening at step {next}"),
                )?;
            }
            Action::Install => {
                if next == 0 {
                    continue;
                }
                let info = db.take_snapshot().unwrap();
                dirs.push(common::TempDir::new("model-install"));
                let mut fresh = open(dirs.last().unwrap().path(), true);
                prop_assert_eq!(fresh.install(&info).unwrap(), Slot(next as u64));
                drop(db);
                db = fresh;
                prop_assert_eq!(
                    db.namespace().dump().unwrap(),
                    reference.dump(),
                    "after installing at step {}",
                    next
                );
                queries_match(
                    db.namespace(),
                    &reference,
                    &format!("after installing at step {next}"),
                )?;
            }
        }
    }
    prop_assert_eq!(db.namespace().dump().unwrap(), reference.dump());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Independent of the reference model: after a random history, a replica that restarted
    /// (reopened its database from disk), one that installed a snapshot of it on a fresh
    /// database, and one that never stopped answer every later command identically (reply
    /// and events: ephemeral nodes, handles, locks and their waiters, sessions and their reply
    /// caches all come back the same) and end byte-identical.
    #[test]
    fn restarted_installed_and_uninterrupted_replicas_behave_identically(
        before in history::history(80),
        after in history::history(80),
    ) {
        use libpaxos_db::Database;
        let all: Vec<Step> = before.iter().chain(&after).cloned().collect();
        let commands = commands(&all);
        let split = before.len();
        let committed_at = |i: usize| committed(i as u64 + 1, &commands[i].0, commands[i].1);
        let open = |dir: &common::TempDir| {
            let (db, log) = Database::open(db_config(dir.path())).unwrap();
            drop(log);
            db
        };
        let dirs: Vec<_> = ["restarted", "installed", "uninterrupted"]
            .iter()
            .map(|tag| common::TempDir::new(&format!("model-same-{tag}")))
            .collect();
        let mut restarted = open(&dirs[0]);
        let mut steady = open(&dirs[2]);
        for i in 0..split {
            restarted.apply(&committed_at(i)).unwrap();
            steady.apply(&committed_at(i)).unwrap();
        }
        let info = restarted.take_snapshot().unwrap();
        drop(restarted);
        let mut restarted = open(&dirs[0]);
        let mut installed = open(&dirs[1]);
        prop_assert_eq!(installed.install(&info).unwrap(), Slot(split as u64));
        for (i, (command, _)) in commands.iter().enumerate().skip(split) {
            let want = steady.apply(&committed_at(i)).unwrap();
            let got_restarted = restarted.apply(&committed_at(i)).unwrap();
            let got_installed = installed.apply(&committed_at(i)).unwrap();
            prop_assert_eq!(&got_restarted, &want, "restarted replica, step {}: {:?}", i, command);
            prop_assert_eq!(&got_installed, &want, "installed replica, step {}: {:?}", i, command);
        }
        let digest = steady.namespace().digest().unwrap();
        prop_assert_eq!(restarted.namespace().digest().unwrap(), digest);
        prop_assert_eq!(installed.namespace().digest().unwrap(), digest);
    }
}
