//! Lock semantics: conflicts, the FIFO queue, promotion on every release path, generations
//! and sequencers.

mod common;

use common::*;
use libpaxos_db::{
    ClientOp, CmdError, Command, EventKind, EventMask, HandleId, Limits, LockGeneration, LockMode,
    OpenMode, Permission, Response, Sequencer, SessionId, WallTime,
};

use LockMode::{Exclusive, Shared};

/// Sessions 1..=n, each with a lock handle on `/l` (handle ids returned in session order).
fn lockers(f: &mut Fixture, n: u64) -> Vec<HandleId> {
    (1..=n)
        .map(|s| {
            f.session(s);
            f.open(s, "/l", LOCKER, EventMask::NONE)
        })
        .collect()
}

fn sequencer_of(reply: &Result<Response, CmdError>) -> Sequencer {
    match reply {
        Ok(Response::Locked { sequencer }) => sequencer.clone(),
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn acquired(events: &[libpaxos_db::Notice]) -> Vec<u64> {
    events
        .iter()
        .filter(|n| matches!(n.event, EventKind::LockAcquired { .. }))
        .map(|n| n.to.session.0)
        .collect()
}

#[test]
fn an_exclusive_lock_is_granted_when_free_and_bumps_the_lock_generation() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 1);
    let seq = sequencer_of(&f.lock(1, h[0], Exclusive, false).reply);
    assert_eq!(seq.generation, LockGeneration(1));
    assert_eq!(seq.path, "/l");
    assert_eq!(f.ns.stat("/l").unwrap().lock_generation, LockGeneration(1));
}

#[test]
fn shared_locks_coexist_and_do_not_bump_the_generation() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    assert!(f.lock(1, h[0], Shared, false).reply.is_ok());
    assert!(f.lock(2, h[1], Shared, false).reply.is_ok());
    assert_eq!(f.ns.stat("/l").unwrap().lock_generation, LockGeneration(0));
}

#[test]
fn try_lock_conflicting_with_an_exclusive_holder_fails_and_stores_nothing() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    assert_eq!(
        f.lock(2, h[1], Shared, false).reply,
        Err(CmdError::LockConflict)
    );
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert!(lock.waiters.is_empty());
}

#[test]
fn an_exclusive_request_conflicts_with_shared_holders() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    f.lock(1, h[0], Shared, false).reply.unwrap();
    assert_eq!(
        f.lock(2, h[1], Exclusive, false).reply,
        Err(CmdError::LockConflict)
    );
}

#[test]
fn locks_are_not_reentrant() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 1);
    f.lock(1, h[0], Shared, false).reply.unwrap();
    assert_eq!(
        f.lock(1, h[0], Shared, true).reply,
        Err(CmdError::AlreadyHeld)
    );
}

#[test]
fn a_waiter_cannot_queue_twice() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    assert_eq!(
        f.lock(2, h[1], Exclusive, true).reply,
        Ok(Response::LockQueued)
    );
    assert_eq!(
        f.lock(2, h[1], Exclusive, true).reply,
        Err(CmdError::AlreadyWaiting)
    );
}

#[test]
fn the_wait_queue_is_bounded() {
    let mut f = Fixture::with_limits(Limits {
        max_waiters_per_lock: 1,
        ..Limits::default()
    });
    let h = lockers(&mut f, 3);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    assert_eq!(
        f.lock(3, h[2], Exclusive, true).reply,
        Err(CmdError::TooManyWaiters(1))
    );
}

#[test]
fn locking_needs_lock_mode() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/l", CREATE_RW, EventMask::NONE);
    assert_eq!(
        f.lock(1, h, Exclusive, false).reply,
        Err(CmdError::ModeForbids(Permission::Lock))
    );
    assert_eq!(
        f.unlock(1, h).reply,
        Err(CmdError::ModeForbids(Permission::Lock))
    );
}

#[test]
fn unlock_without_a_lock_fails() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 1);
    assert_eq!(f.unlock(1, h[0]).reply, Err(CmdError::NotLocked));
}

#[test]
fn unlock_promotes_the_first_waiter() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 3);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    f.lock(3, h[2], Exclusive, true).reply.unwrap();
    let applied = f.unlock(1, h[0]);
    assert_eq!(applied.reply, Ok(Response::Unlocked));
    assert_eq!(acquired(&applied.events), [2]);
    let EventKind::LockAcquired { sequencer } = &applied.events[0].event else {
        unreachable!()
    };
    assert_eq!(sequencer.generation, LockGeneration(2));
    assert_eq!(f.ns.check_sequencer(sequencer), Ok(()));
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.exclusive.map(|w| w.session), Some(SessionId(2)));
    assert_eq!(
        lock.waiters.len(),
        1,
        "the granted waiter left the queue (persisted)"
    );
}

#[test]
fn release_grants_consecutive_shared_waiters_but_not_past_an_exclusive() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 5);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Shared, true).reply.unwrap();
    f.lock(3, h[2], Shared, true).reply.unwrap();
    f.lock(4, h[3], Exclusive, true).reply.unwrap();
    f.lock(5, h[4], Shared, true).reply.unwrap();
    let applied = f.unlock(1, h[0]);
    assert_eq!(acquired(&applied.events), [2, 3]);
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert!(lock.exclusive.is_none());
    assert_eq!(lock.shared.len(), 2);
    assert_eq!(lock.waiters.len(), 2);
}

#[test]
fn a_new_shared_request_queues_behind_a_waiting_exclusive() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 3);
    f.lock(1, h[0], Shared, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    assert_eq!(
        f.lock(3, h[2], Shared, false).reply,
        Err(CmdError::LockConflict)
    );
}

#[test]
fn withdrawing_a_queued_exclusive_lets_shared_waiters_behind_it_in() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 3);
    f.lock(1, h[0], Shared, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    f.lock(3, h[2], Shared, true).reply.unwrap();
    let applied = f.unlock(2, h[1]);
    assert_eq!(applied.reply, Ok(Response::Unlocked));
    assert_eq!(acquired(&applied.events), [3]);
}

#[test]
fn close_releases_the_lock_and_promotes() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    let applied = f.request(1, ClientOp::Close { handle: h[0] });
    assert_eq!(acquired(&applied.events), [2]);
}

#[test]
fn end_session_releases_its_locks_and_promotes() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Shared, true).reply.unwrap();
    let applied = f.request(1, ClientOp::EndSession);
    assert_eq!(acquired(&applied.events), [2]);
}

#[test]
fn expiry_releases_locks_and_promotes() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    let applied = f.command(&Command::ExpireSession {
        session: SessionId(1),
        time: WallTime(9),
    });
    assert_eq!(acquired(&applied.events), [2]);
}

#[test]
fn a_session_ending_with_a_hold_and_a_queued_request_does_not_grant_itself() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    let second = f.open(1, "/l", LOCKER, EventMask::NONE);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(1, second, Exclusive, true).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    let applied = f.request(1, ClientOp::EndSession);
    assert_eq!(acquired(&applied.events), [2]);
}

#[test]
fn delete_removes_the_lock_with_its_holders_and_waiters() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    let applied = f.request(1, ClientOp::Delete { path: "/l".into() });
    assert_eq!(applied.reply, Ok(Response::Deleted));
    assert!(
        f.ns.dump().unwrap().locks.is_empty(),
        "no orphaned lock records"
    );
    assert!(
        applied
            .events
            .iter()
            .any(|n| n.to.session == SessionId(2) && n.event == EventKind::NodeDeleted)
    );
}

#[test]
fn holders_that_asked_hear_about_conflicting_requests() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    let holder = f.open(1, "/l", LOCKER, EventMask::LOCK_CONFLICT);
    let other = f.open(2, "/l", LOCKER, EventMask::NONE);
    f.lock(1, holder, Exclusive, false).reply.unwrap();
    let applied = f.lock(2, other, Shared, false);
    assert_eq!(targets(&applied.events), [(1, holder.0)]);
    assert_eq!(applied.events[0].event, EventKind::LockConflict);
}

#[test]
fn check_sequencer_accepts_the_current_holder() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 1);
    let seq = sequencer_of(&f.lock(1, h[0], Exclusive, false).reply);
    assert_eq!(
        f.reply(
            1,
            ClientOp::CheckSequencer {
                sequencer: seq.clone()
            }
        ),
        Ok(Response::SequencerValid)
    );
    assert_eq!(f.ns.sequencer(SessionId(1), h[0]), Ok(seq));
}

#[test]
fn a_sequencer_goes_stale_when_the_lock_passes_on() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 2);
    let old = sequencer_of(&f.lock(1, h[0], Exclusive, false).reply);
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    f.unlock(1, h[0]).reply.unwrap();
    assert_eq!(
        f.reply(1, ClientOp::CheckSequencer { sequencer: old }),
        Err(CmdError::StaleSequencer)
    );
}

#[test]
fn a_sequencer_goes_stale_when_released() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 1);
    let old = sequencer_of(&f.lock(1, h[0], Exclusive, false).reply);
    f.unlock(1, h[0]).reply.unwrap();
    assert_eq!(f.ns.check_sequencer(&old), Err(CmdError::StaleSequencer));
}

#[test]
fn a_sequencer_goes_stale_after_the_node_is_recreated() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 1);
    let old = sequencer_of(&f.lock(1, h[0], Exclusive, false).reply);
    f.reply(1, ClientOp::Delete { path: "/l".into() }).unwrap();
    let again = f.open(1, "/l", LOCKER, EventMask::NONE);
    let new = sequencer_of(&f.lock(1, again, Exclusive, false).reply);
    assert_eq!(
        new.generation, old.generation,
        "a new node starts counting again"
    );
    assert_ne!(new.instance, old.instance);
    assert_eq!(f.ns.check_sequencer(&old), Err(CmdError::StaleSequencer));
    assert_eq!(f.ns.check_sequencer(&new), Ok(()));
}

#[test]
fn get_sequencer_without_a_lock_fails() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 1);
    assert_eq!(f.ns.sequencer(SessionId(1), h[0]), Err(CmdError::NotLocked));
}

#[test]
fn directories_can_be_locked() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(
        1,
        "/d",
        OpenMode::CREATE | OpenMode::DIRECTORY | OpenMode::LOCK,
        EventMask::NONE,
    );
    assert!(f.lock(1, h, Exclusive, false).reply.is_ok());
}

#[test]
fn withdrawing_a_queued_request_grants_nothing_while_an_exclusive_holder_remains() {
    let mut f = Fixture::new();
    let h = lockers(&mut f, 3);
    f.lock(1, h[0], Exclusive, false).reply.unwrap();
    f.lock(2, h[1], Exclusive, true).reply.unwrap();
    f.lock(3, h[2], Shared, true).reply.unwrap();
    let applied = f.unlock(2, h[1]);
    assert_eq!(applied.reply, Ok(Response::Unlocked));
    assert_eq!(acquired(&applied.events), Vec::<u64>::new());
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert!(lock.shared.is_empty());
    assert_eq!(lock.waiters.len(), 1);
}

#[test]
fn shared_holders_per_lock_are_bounded() {
    let mut f = Fixture::with_limits(Limits {
        max_holders_per_lock: 2,
        ..Limits::default()
    });
    let h = lockers(&mut f, 3);
    assert!(f.lock(1, h[0], Shared, false).reply.is_ok());
    assert!(f.lock(2, h[1], Shared, true).reply.is_ok());
    assert_eq!(
        f.lock(3, h[2], Shared, true).reply,
        Err(CmdError::TooManyHolders(2))
    );
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.shared.len(), 2);
    assert!(lock.waiters.is_empty(), "the refused request is not queued");
}

#[test]
fn promotion_stops_at_the_shared_holder_limit_and_resumes_when_a_holder_leaves() {
    let mut f = Fixture::with_limits(Limits {
        max_holders_per_lock: 2,
        ..Limits::default()
    });
    let h = lockers(&mut f, 4);
    assert!(f.lock(1, h[0], Exclusive, false).reply.is_ok());
    for s in 2..=4 {
        assert_eq!(
            f.lock(s, h[s as usize - 1], Shared, true).reply,
            Ok(Response::LockQueued)
        );
    }
    let released = f.unlock(1, h[0]);
    assert_eq!(acquired(&released.events), vec![2, 3]);
    let lock = f.ns.dump().unwrap().locks["/l"].clone();
    assert_eq!(lock.shared.len(), 2, "never more holders than the limit");
    assert_eq!(lock.waiters.len(), 1);
    let released = f.unlock(2, h[1]);
    assert_eq!(acquired(&released.events), vec![4]);
}

#[test]
fn a_shared_request_queued_behind_a_waiter_tells_no_shared_holder_of_a_conflict() {
    let mut f = Fixture::new();
    let mut h = Vec::new();
    for s in 1..=3 {
        f.session(s);
        h.push(f.open(s, "/l", LOCKER, EventMask::LOCK_CONFLICT));
    }
    f.lock(1, h[0], Shared, false).reply.unwrap();
    // An exclusive request conflicts with the shared holder, who hears of it.
    let queued = f.lock(2, h[1], Exclusive, true);
    assert_eq!(queued.reply, Ok(Response::LockQueued));
    assert_eq!(targets(&queued.events), [(1, h[0].0)]);
    // A shared request waits only because of the queue: it conflicts with no holder.
    let queued = f.lock(3, h[2], Shared, true);
    assert_eq!(queued.reply, Ok(Response::LockQueued));
    assert!(queued.events.is_empty(), "{:?}", queued.events);
}
