//! Lock-delay (Chubby §2.4): a node created with a lock-delay keeps its lock from everyone
//! else for that long after a holder's session EXPIRES; a clean unlock, close or session end
//! releases at once. The times are the commands' times, so every replica decides the same.

mod common;

use std::time::Duration;

use common::*;
use libpaxos_db::{
    ClientOp, CmdError, Command, EventKind, EventMask, HandleId, LockMode, OpenMode, Response,
    SessionId, WallTime,
};

use LockMode::{Exclusive, Shared};

fn open_with_delay(f: &mut Fixture, s: u64, path: &str, delay: Duration) -> HandleId {
    match f.reply(
        s,
        ClientOp::OpenWith {
            path: path.into(),
            mode: LOCKER,
            events: EventMask::NONE,
            lock_delay: delay,
        },
    ) {
        Ok(Response::Opened { handle, .. }) => handle,
        other => panic!("open {path} failed: {other:?}"),
    }
}

fn expire(f: &mut Fixture, s: u64, at: u64) {
    let applied = f.command(&Command::ExpireSession {
        session: SessionId(s),
        time: WallTime(at),
    });
    assert_eq!(applied.reply, Ok(Response::SessionEnded));
}

fn acquired(events: &[libpaxos_db::Notice]) -> Vec<u64> {
    events
        .iter()
        .filter(|n| matches!(n.event, EventKind::LockAcquired { .. }))
        .map(|n| n.to.session.0)
        .collect()
}

/// Session 1 holds `/l` (created with `delay`), session 2 waits for it.
fn held_and_waited(delay: Duration) -> (Fixture, HandleId, HandleId) {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    let h1 = open_with_delay(&mut f, 1, "/l", delay);
    let h2 = f.open(2, "/l", LOCKER, EventMask::NONE);
    assert!(f.lock(1, h1, Exclusive, false).reply.is_ok());
    assert_eq!(
        f.lock(2, h2, Exclusive, true).reply,
        Ok(Response::LockQueued)
    );
    (f, h1, h2)
}

#[test]
fn an_expired_holder_keeps_the_lock_from_waiters_until_the_delay_has_passed() {
    let (mut f, _h1, _h2) = held_and_waited(Duration::from_secs(10));
    let t = f.time + 1;
    let applied = f.command(&Command::ExpireSession {
        session: SessionId(1),
        time: WallTime(t),
    });
    assert_eq!(applied.reply, Ok(Response::SessionEnded));
    assert!(
        acquired(&applied.events).is_empty(),
        "not granted during the delay"
    );
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.exclusive, None);
    assert_eq!(lock.blocked_until, Some(WallTime(t + 10_000)));

    // Too early: nothing.
    let early = f.command(&Command::EndLockDelays {
        time: WallTime(t + 9_999),
    });
    assert!(acquired(&early.events).is_empty());
    // At the end of the delay the waiter is promoted and told.
    let done = f.command(&Command::EndLockDelays {
        time: WallTime(t + 10_000),
    });
    assert_eq!(acquired(&done.events), vec![2]);
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.exclusive.map(|h| h.session.0), Some(2));
    assert_eq!(lock.blocked_until, None);
}

#[test]
fn a_new_request_during_the_delay_is_refused_or_queued_and_after_it_waiters_go_first() {
    let (mut f, _h1, _h2) = held_and_waited(Duration::from_secs(5));
    f.session(3);
    let h3 = f.open(3, "/l", LOCKER, EventMask::NONE);
    let t = f.time + 1;
    expire(&mut f, 1, t);
    f.time = t;
    // A try-lock during the delay conflicts even though nobody holds the lock.
    assert_eq!(
        f.lock(3, h3, Shared, false).reply,
        Err(CmdError::LockConflict)
    );
    // After the delay, a request first promotes the queued waiter (FIFO), then queues.
    f.time = t + 5_000;
    let late = f.lock(3, h3, Exclusive, true);
    assert_eq!(late.reply, Ok(Response::LockQueued));
    assert_eq!(acquired(&late.events), vec![2]);
}

#[test]
fn a_lock_free_of_waiters_is_granted_after_the_delay_to_a_new_request() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    let h1 = open_with_delay(&mut f, 1, "/l", Duration::from_secs(1));
    let h2 = f.open(2, "/l", LOCKER, EventMask::NONE);
    f.lock(1, h1, Exclusive, false).reply.unwrap();
    let t = f.time + 1;
    expire(&mut f, 1, t);
    f.time = t + 500;
    assert_eq!(
        f.lock(2, h2, Exclusive, false).reply,
        Err(CmdError::LockConflict)
    );
    f.time = t + 1_000;
    assert!(matches!(
        f.lock(2, h2, Exclusive, false).reply,
        Ok(Response::Locked { .. })
    ));
}

#[test]
fn clean_release_paths_do_not_delay() {
    for how in ["unlock", "close", "end"] {
        let (mut f, h1, _h2) = held_and_waited(Duration::from_secs(30));
        let applied = match how {
            "unlock" => f.unlock(1, h1),
            "close" => f.request(1, ClientOp::Close { handle: h1 }),
            _ => f.request(1, ClientOp::EndSession),
        };
        assert!(applied.reply.is_ok(), "{how}: {:?}", applied.reply);
        assert_eq!(acquired(&applied.events), vec![2], "{how} grants at once");
        let lock = f.ns.dump().unwrap().locks["/l"].clone();
        assert_eq!(lock.blocked_until, None, "{how}");
    }
}

#[test]
fn without_a_delay_expiry_grants_at_once() {
    let (mut f, _h1, _h2) = held_and_waited(Duration::ZERO);
    let t = f.time + 1;
    let applied = f.command(&Command::ExpireSession {
        session: SessionId(1),
        time: WallTime(t),
    });
    assert_eq!(acquired(&applied.events), vec![2]);
}

#[test]
fn an_expired_waiter_delays_nothing() {
    let (mut f, h1, _h2) = held_and_waited(Duration::from_secs(10));
    let t = f.time + 1;
    expire(&mut f, 2, t);
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.blocked_until, None);
    assert!(lock.waiters.is_empty());
    f.unlock(1, h1).reply.unwrap();
    assert!(
        !f.ns.dump().unwrap().locks.contains_key("/l") || {
            let l = f.ns.dump().unwrap().locks["/l"].clone();
            l.exclusive.is_none() && l.shared.is_empty() && l.waiters.is_empty()
        }
    );
}

#[test]
fn an_expired_shared_holder_delays_new_holders() {
    let mut f = Fixture::new();
    for s in 1..=3 {
        f.session(s);
    }
    let h1 = open_with_delay(&mut f, 1, "/l", Duration::from_secs(2));
    let h2 = f.open(2, "/l", LOCKER, EventMask::NONE);
    let h3 = f.open(3, "/l", LOCKER, EventMask::NONE);
    f.lock(1, h1, Shared, false).reply.unwrap();
    f.lock(2, h2, Shared, false).reply.unwrap();
    let t = f.time + 1;
    expire(&mut f, 1, t);
    f.time = t;
    assert_eq!(
        f.lock(3, h3, Shared, false).reply,
        Err(CmdError::LockConflict),
        "no new holder during the delay, even a compatible one"
    );
    // The remaining shared holder keeps its lock.
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.shared.len(), 1);
}

#[test]
fn the_delay_is_set_at_creation_only_and_bounded() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    let too_long = f.reply(
        1,
        ClientOp::OpenWith {
            path: "/l".into(),
            mode: LOCKER,
            events: EventMask::NONE,
            lock_delay: Duration::from_millis(60_001),
        },
    );
    assert_eq!(
        too_long,
        Err(CmdError::LockDelayTooLong {
            max_ms: 60_000,
            got_ms: 60_001
        })
    );
    assert!(f.ns.stat("/l").is_err(), "nothing created");
    let h1 = open_with_delay(&mut f, 1, "/l", Duration::from_secs(60));
    // A later open with another delay leaves the node's delay unchanged.
    let h2 = open_with_delay(&mut f, 2, "/l", Duration::ZERO);
    f.lock(1, h1, Exclusive, false).reply.unwrap();
    f.lock(2, h2, Exclusive, true).reply.unwrap();
    let t = f.time + 1;
    expire(&mut f, 1, t);
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.delay, Duration::from_secs(60));
    assert_eq!(lock.blocked_until, Some(WallTime(t + 60_000)));
}

#[test]
fn deleting_the_node_drops_its_delay_and_a_new_incarnation_has_its_own() {
    let mut f = Fixture::new();
    f.session(1);
    let h = open_with_delay(&mut f, 1, "/l", Duration::from_secs(9));
    f.request(1, ClientOp::Close { handle: h }).reply.unwrap();
    assert_eq!(
        f.ns.dump().unwrap().locks["/l"].delay,
        Duration::from_secs(9),
        "the delay outlives the handles"
    );
    f.reply(1, ClientOp::Delete { path: "/l".into() }).unwrap();
    assert!(!f.ns.dump().unwrap().locks.contains_key("/l"));
    f.open(1, "/l", LOCKER, EventMask::NONE);
    assert!(!f.ns.dump().unwrap().locks.contains_key("/l"));
}

#[test]
fn open_is_open_with_no_delay() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(
        1,
        "/l",
        OpenMode::READ | OpenMode::CREATE | OpenMode::LOCK,
        EventMask::NONE,
    );
    f.lock(1, h, Exclusive, false).reply.unwrap();
    let t = f.time + 1;
    expire(&mut f, 1, t);
    assert!(!f.ns.dump().unwrap().locks.contains_key("/l"));
}

mod reference;

mod model {
    //! Random lock histories with lock-delays and expiries: the sled namespace gives the same
    //! replies, events and final state as the reference model.
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::common::{LOCKER, committed, temp_db};
    use super::reference::Model;
    use libpaxos_db::{
        ClientOp, ClientRequest, Command, EventMask, HandleId, Limits, LockMode, Namespace,
        RequestSeq, SessionId, WallTime,
    };
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        New(u64),
        Open(u64, usize, usize),
        Lock(u64, u64, bool, bool),
        Unlock(u64, u64),
        Close(u64, u64),
        End(u64),
        Expire(u64),
        EndDelays,
        Advance(u64),
        /// Purge every tombstone, so ended sessions' ids can be created again.
        Purge,
    }

    const PATHS: [&str; 2] = ["/a", "/b"];
    const DELAYS: [u64; 4] = [0, 1_000, 2_500, 60_001];

    fn step() -> impl Strategy<Value = Step> {
        let s = 1..=3u64;
        let h = 1..=4u64;
        prop_oneof![
            2 => s.clone().prop_map(Step::New),
            3 => (s.clone(), 0..PATHS.len(), 0..DELAYS.len()).prop_map(|(a, b, c)| Step::Open(a, b, c)),
            5 => (s.clone(), h.clone(), any::<bool>(), any::<bool>())
                .prop_map(|(a, b, c, d)| Step::Lock(a, b, c, d)),
            2 => (s.clone(), h.clone()).prop_map(|(a, b)| Step::Unlock(a, b)),
            1 => (s.clone(), h).prop_map(|(a, b)| Step::Close(a, b)),
            1 => s.clone().prop_map(Step::End),
            2 => s.prop_map(Step::Expire),
            2 => Just(Step::EndDelays),
            3 => (0..3_000u64).prop_map(Step::Advance),
            1 => Just(Step::Purge),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn lock_delay_histories_match_the_reference_model(
            steps in proptest::collection::vec(step(), 1..120)
        ) {
            let db = temp_db();
            let mut ns = Namespace::open(&db, Limits::default()).unwrap();
            let mut model = Model::new(Limits::default());
            let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
            let mut time = 1_000u64;
            let mut slot = 0u64;
            for step in &steps {
                let client = |s: u64, op: ClientOp, seqs: &mut BTreeMap<u64, u64>, time: u64| {
                    let seq = seqs.entry(s).or_insert(0);
                    *seq += 1;
                    Command::Client(ClientRequest {
                        session: SessionId(s),
                        seq: RequestSeq(*seq),
                        time: WallTime(time),
                        op,
                    })
                };
                let command = match *step {
                    Step::Advance(ms) => {
                        time += ms;
                        continue;
                    }
                    Step::New(s) => client(
                        s,
                        ClientOp::NewSession { user: format!("u{s}"), lease: Duration::from_secs(12), keys: vec![7; 64] },
                        &mut seqs,
                        time,
                    ),
                    Step::Open(s, p, d) => client(
                        s,
                        ClientOp::OpenWith {
                            path: PATHS[p].into(),
                            mode: LOCKER,
                            events: EventMask::LOCK_CONFLICT,
                            lock_delay: Duration::from_millis(DELAYS[d]),
                        },
                        &mut seqs,
                        time,
                    ),
                    Step::Lock(s, h, exclusive, wait) => client(
                        s,
                        ClientOp::Lock {
                            handle: HandleId(h),
                            mode: if exclusive { LockMode::Exclusive } else { LockMode::Shared },
                            wait,
                        },
                        &mut seqs,
                        time,
                    ),
                    Step::Unlock(s, h) => client(s, ClientOp::Unlock { handle: HandleId(h) }, &mut seqs, time),
                    Step::Close(s, h) => client(s, ClientOp::Close { handle: HandleId(h) }, &mut seqs, time),
                    Step::End(s) => client(s, ClientOp::EndSession, &mut seqs, time),
                    Step::Expire(s) => Command::ExpireSession { session: SessionId(s), time: WallTime(time) },
                    Step::EndDelays => Command::EndLockDelays { time: WallTime(time) },
                    Step::Purge => Command::PurgeTombstones { before: WallTime(time + 1) },
                };
                slot += 1;
                let applied = ns.apply(&committed(slot, 0, &command)).unwrap();
                let (reply, events) = model.apply(&command, 0);
                prop_assert_eq!(&applied.reply, &reply, "reply to {:?}", command);
                prop_assert_eq!(&applied.events, &events, "events of {:?}", command);
                prop_assert_eq!(
                    ns.next_lock_delay_end(),
                    model.next_lock_delay_end(),
                    "next lock-delay end after {:?}",
                    command
                );
            }
            prop_assert_eq!(ns.dump().unwrap(), model.dump());
        }
    }
}

#[test]
fn a_new_master_restarts_every_running_delay_from_its_takeover_on_its_own_clock() {
    let (mut f, _h1, _h2) = held_and_waited(Duration::from_secs(10));
    let t = f.time + 1;
    expire(&mut f, 1, t);
    // The new master's clock reads far ahead of the old one's (t + 40 s): the delay restarts
    // from there, so its EndLockDelays at t + 40 s grants nothing.
    let restart = f.command(&Command::RestartLockDelays {
        time: WallTime(t + 40_000),
    });
    assert_eq!(restart.reply, Ok(Response::Noop));
    assert!(acquired(&restart.events).is_empty());
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.blocked_until, Some(WallTime(t + 50_000)));
    let early = f.command(&Command::EndLockDelays {
        time: WallTime(t + 49_999),
    });
    assert!(acquired(&early.events).is_empty());
    let done = f.command(&Command::EndLockDelays {
        time: WallTime(t + 50_000),
    });
    assert_eq!(acquired(&done.events), vec![2]);
    // A restart never shortens a delay (a clock behind), and touches no unblocked lock.
    let (mut g, _, _) = held_and_waited(Duration::from_secs(10));
    let t = g.time + 1;
    expire(&mut g, 1, t);
    g.command(&Command::RestartLockDelays {
        time: WallTime(t.saturating_sub(5_000)),
    });
    let lock = g.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.blocked_until, Some(WallTime(t + 10_000)));
    let (mut k, _, _) = held_and_waited(Duration::from_secs(10));
    let before = k.ns.dump().unwrap().locks["/l"].clone();
    k.command(&Command::RestartLockDelays {
        time: WallTime(t + 1),
    });
    assert_eq!(k.ns.dump().unwrap().locks["/l"], before);
}
