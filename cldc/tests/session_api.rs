//! The async API against a scripted fake cell on loopback, with tokio's paused clock.
#![cfg(feature = "tokio")]

mod support;

use cldc::core::SessionEvent;
use cldc::proto::{Event, EventMask, LockMode, OpenMode, PathError, Request};
use cldc::{Credentials, Error, Session, SessionOptions};
use std::time::Duration;
use support::fake_cell::FakeCell;
use support::{SECRET, USER};

const LEASE: Duration = Duration::from_secs(12);
const RW: OpenMode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);
const LOCKING: OpenMode = OpenMode(OpenMode::LOCK.0 | OpenMode::CREATE.0);

fn creds() -> Credentials {
    Credentials::new(USER, SECRET).expect("valid credentials")
}

async fn session(cell: &FakeCell) -> Session {
    Session::open(cell.addr, creds(), support::options())
        .await
        .expect("session opens")
}

fn puts(cell: &FakeCell) -> usize {
    cell.seen()
        .executed
        .iter()
        .filter(|(_, _, r)| matches!(r, Request::Put { .. }))
        .count()
}

#[tokio::test(start_paused = true)]
async fn put_then_get_returns_the_contents_and_new_generation() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/f", RW).await.expect("open");
    let written = h.put(b"hello").await.expect("put");
    let got = h.get().await.expect("get");
    assert_eq!(got.data, b"hello");
    assert_eq!(got.meta, written);
    assert_eq!(
        got.meta.content_generation.0,
        h.meta_at_open().content_generation.0 + 1
    );
    assert_eq!(s.stat("/f").await.expect("stat").size, 5);
    let names: Vec<String> = s
        .list("/")
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["f".to_string()]);
    h.close().await.expect("close");
    s.delete("/f").await.expect("delete");
    assert!(matches!(s.stat("/f").await, Err(Error::NoSuchNode)));
}

#[tokio::test(start_paused = true)]
async fn large_contents_travel_in_fragments_both_ways() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/big", RW).await.expect("open");
    let data: Vec<u8> = (0..128 * 1024u32).map(|i| (i * 7) as u8).collect();
    h.put(&data).await.expect("put");
    assert_eq!(h.get().await.expect("get").data, data);
}

#[tokio::test(start_paused = true)]
async fn put_if_with_an_old_generation_fails_with_stale_cas() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/cas", RW).await.expect("open");
    let g0 = h.meta_at_open().content_generation;
    h.put_if(g0, b"a").await.expect("first CAS wins");
    assert!(matches!(h.put_if(g0, b"b").await, Err(Error::StaleCas)));
    assert_eq!(h.get().await.expect("get").data, b"a");
}

#[tokio::test(start_paused = true)]
async fn lost_and_duplicated_datagrams_still_execute_each_request_once() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/once", RW).await.expect("open");
    cell.faults(|f| {
        f.drop_out = 1; // the reply to the put is lost: the client retransmits
        f.duplicate_out = true;
    });
    h.put(b"x").await.expect("put survives a lost reply");
    cell.faults(|f| f.drop_in = 1); // the next request is lost on the way in
    assert_eq!(h.get().await.expect("get").data, b"x");
    assert_eq!(puts(&cell), 1);
    assert!(cell.seen().deduplicated >= 1);
    assert!(
        s.stats().core.replayed >= 1,
        "duplicated datagrams are dropped and counted"
    );
}

#[tokio::test(start_paused = true)]
async fn delayed_replies_are_matched_to_their_calls() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/slow", RW).await.expect("open");
    cell.faults(|f| f.delay_out = Some(Duration::from_millis(600)));
    h.put(b"late").await.expect("put");
    assert_eq!(h.get().await.expect("get").data, b"late");
    assert_eq!(puts(&cell), 1);
}

#[tokio::test(start_paused = true)]
async fn not_master_redirects_the_session_to_the_hinted_master() {
    let master = FakeCell::start(LEASE).await;
    let other = FakeCell::start(LEASE).await;
    other.faults(|f| f.not_master = Some(Some(master.addr)));
    let s = Session::open(vec![other.addr], creds(), support::options())
        .await
        .expect("redirected open");
    s.open_node("/r", RW).await.expect("open at master");
    assert_eq!(master.seen().executed.len(), 2);
    assert!(other.seen().executed.is_empty());
    assert_eq!(s.stats().core.redirects, 1);
}

#[tokio::test(start_paused = true)]
async fn silent_first_member_makes_the_session_use_the_next() {
    let silent = FakeCell::start(LEASE).await;
    silent.faults(|f| f.silent = true);
    let live = FakeCell::start(LEASE).await;
    let s = Session::open(vec![silent.addr, live.addr], creds(), support::options())
        .await
        .expect("opens on the second member");
    assert_eq!(s.stats().core.rotations, 1);
}

#[tokio::test(start_paused = true)]
async fn try_lock_conflicts_and_a_waiting_lock_is_granted_on_unlock() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let ha = a.open_node("/lock", LOCKING).await.expect("open a");
    let hb = b.open_node("/lock", LOCKING).await.expect("open b");
    let seq_a = ha.lock(LockMode::Exclusive).await.expect("a locks");
    assert!(matches!(
        hb.try_lock(LockMode::Shared).await,
        Err(Error::LockConflict)
    ));
    let waiter = tokio::spawn(async move { (hb.lock(LockMode::Exclusive).await, hb) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    a.check_sequencer(&seq_a)
        .await
        .expect("a's sequencer is current");
    ha.unlock().await.expect("unlock");
    let (got, hb) = waiter.await.expect("task");
    let seq_b = got.expect("b is granted the lock");
    assert!(seq_b.lock_generation > seq_a.lock_generation);
    assert!(matches!(
        a.check_sequencer(&seq_a).await,
        Err(Error::StaleSequencer)
    ));
    assert_eq!(hb.sequencer().await.expect("sequencer"), seq_b);
}

#[tokio::test(start_paused = true)]
async fn watchers_get_contents_modified_events() {
    let cell = FakeCell::start(LEASE).await;
    let watcher = session(&cell).await;
    let writer = session(&cell).await;
    let mut events = watcher.events().expect("first take");
    assert!(watcher.events().is_none());
    let w = watcher
        .open_node_with_events("/watched", RW, EventMask::CONTENTS_MODIFIED)
        .await
        .expect("open");
    let h = writer.open_node("/watched", RW).await.expect("open");
    let meta = h.put(b"new").await.expect("put");
    let ev = events.next().await.expect("event");
    assert_eq!(
        ev,
        SessionEvent::Server(Event::ContentsModified {
            handle: w.id(),
            generation: meta.content_generation
        })
    );
}

#[tokio::test(start_paused = true)]
async fn unanswered_keepalives_lead_to_jeopardy_then_expiry() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let mut events = s.events().expect("events");
    cell.faults(|f| f.silent = true);
    assert_eq!(events.next().await, Some(SessionEvent::Jeopardy));
    assert_eq!(events.next().await, Some(SessionEvent::Expired));
    assert!(matches!(s.stat("/").await, Err(Error::SessionExpired)));
    assert!(cell.seen().keepalives >= 2);
}

#[tokio::test(start_paused = true)]
async fn jeopardy_ends_safe_when_the_master_answers_again() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let mut events = s.events().expect("events");
    cell.faults(|f| f.silent = true);
    assert_eq!(events.next().await, Some(SessionEvent::Jeopardy));
    cell.faults(|f| f.silent = false);
    assert_eq!(events.next().await, Some(SessionEvent::Safe));
    s.stat("/").await.expect("calls work again");
}

#[tokio::test(start_paused = true)]
async fn closed_session_refuses_further_calls() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/c", RW).await.expect("open");
    s.close().await.expect("close");
    assert!(matches!(h.get().await, Err(Error::SessionClosed)));
}

#[tokio::test(start_paused = true)]
async fn invalid_paths_are_refused_before_sending() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let before = cell.seen().executed.len();
    assert!(matches!(
        s.open_node("relative", RW).await,
        Err(Error::InvalidPath(PathError::NotAbsolute))
    ));
    assert!(matches!(
        s.delete("/a//b").await,
        Err(Error::InvalidPath(PathError::BadComponent))
    ));
    assert_eq!(cell.seen().executed.len(), before);
}

#[tokio::test(start_paused = true)]
async fn unreachable_cell_fails_open_with_timeout() {
    let silent = FakeCell::start(LEASE).await;
    silent.faults(|f| f.silent = true);
    let opts = SessionOptions {
        call_timeout: Duration::from_secs(5),
        ..support::options()
    };
    let got = Session::open(silent.addr, creds(), opts).await;
    assert!(matches!(got, Err(Error::Timeout)));
}

#[tokio::test(start_paused = true)]
async fn unlock_cancels_a_waiting_lock_on_the_same_handle() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let ha = a.open_node("/q", LOCKING).await.expect("open a");
    let hb = std::sync::Arc::new(b.open_node("/q", LOCKING).await.expect("open b"));
    ha.lock(LockMode::Exclusive).await.expect("a locks");
    let waiting = hb.clone();
    let waiter = tokio::spawn(async move { waiting.lock(LockMode::Exclusive).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    hb.unlock().await.expect("cancel the queued request");
    assert!(matches!(
        waiter.await.expect("task"),
        Err(Error::LockCancelled)
    ));
    ha.unlock().await.expect("unlock");
    assert!(matches!(hb.sequencer().await, Err(Error::NotLocked)));
}

#[tokio::test(start_paused = true)]
async fn a_grant_lost_in_a_fail_over_is_recovered_by_asking_the_new_master() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let mut events = b.events().expect("events");
    let ha = a.open_node("/fo", LOCKING).await.expect("open a");
    let hb = b.open_node("/fo", LOCKING).await.expect("open b");
    ha.lock(LockMode::Exclusive).await.expect("a locks");
    let waiter = tokio::spawn(async move { hb.lock(LockMode::Exclusive).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cell.faults(|f| f.drop_events = true);
    ha.unlock()
        .await
        .expect("unlock grants b, but the event is lost");
    cell.faults(|f| {
        f.drop_events = false;
        f.epoch = Some(2);
    });
    let seq = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("b does not wait forever")
        .expect("task")
        .expect("b learns of its grant");
    assert_eq!(seq.path, "/fo");
    assert_eq!(
        events.next().await,
        Some(SessionEvent::Server(Event::MasterFailover {
            epoch: cldc::proto::Epoch(2)
        }))
    );
}

#[tokio::test(start_paused = true)]
async fn events_stream_ends_after_expiry_even_while_handles_live() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let _h = s.open_node("/e", RW).await.expect("open");
    let mut events = s.events().expect("events");
    cell.faults(|f| f.silent = true);
    assert_eq!(events.next().await, Some(SessionEvent::Jeopardy));
    assert_eq!(events.next().await, Some(SessionEvent::Expired));
    let end = tokio::time::timeout(Duration::from_secs(600), events.next()).await;
    assert_eq!(end, Ok(None), "the stream ends instead of waiting forever");
}

#[tokio::test(start_paused = true)]
async fn events_stream_ends_after_close() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/e", RW).await.expect("open");
    let mut events = s.events().expect("events");
    s.close().await.expect("close");
    let end = tokio::time::timeout(Duration::from_secs(600), events.next()).await;
    assert_eq!(end, Ok(None), "the stream ends instead of waiting forever");
    assert!(matches!(h.get().await, Err(Error::SessionClosed)));
}

#[tokio::test(start_paused = true)]
async fn a_lock_call_dropped_while_queued_releases_the_later_grant() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let ha = a.open_node("/d", LOCKING).await.expect("open a");
    let hb = std::sync::Arc::new(b.open_node("/d", LOCKING).await.expect("open b"));
    ha.lock(LockMode::Exclusive).await.expect("a locks");
    let waiting = hb.clone();
    let waiter = tokio::spawn(async move { waiting.lock(LockMode::Exclusive).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The application gives up on the lock (a timeout around lock(), a cancelled task).
    waiter.abort();
    let _ = waiter.await;
    ha.unlock().await.expect("unlock grants b's queued request");
    // Nobody in b wants the lock any more: it must not stay held by b.
    let relocked = tokio::time::timeout(Duration::from_secs(30), ha.lock(LockMode::Exclusive))
        .await
        .expect("a gets the lock back")
        .expect("lock");
    assert_eq!(relocked.path, "/d");
    assert_eq!(b.stats().abandoned_grants, 1);
}

#[tokio::test(start_paused = true)]
async fn closing_the_session_fails_a_waiting_lock() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let ha = a.open_node("/w", LOCKING).await.expect("open a");
    let hb = b.open_node("/w", LOCKING).await.expect("open b");
    ha.lock(LockMode::Exclusive).await.expect("a locks");
    let waiter = tokio::spawn(async move { hb.lock(LockMode::Exclusive).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.close().await.expect("close b");
    let got = tokio::time::timeout(Duration::from_secs(600), waiter)
        .await
        .expect("the waiting lock does not hang after close")
        .expect("task");
    assert!(matches!(got, Err(Error::SessionClosed)), "{got:?}");
}

#[tokio::test(start_paused = true)]
async fn expiry_fails_a_waiting_lock() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let ha = a.open_node("/x", LOCKING).await.expect("open a");
    let hb = b.open_node("/x", LOCKING).await.expect("open b");
    ha.lock(LockMode::Exclusive).await.expect("a locks");
    let waiter = tokio::spawn(async move { hb.lock(LockMode::Exclusive).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cell.faults(|f| f.silent = true);
    let got = tokio::time::timeout(Duration::from_secs(600), waiter)
        .await
        .expect("the waiting lock does not hang after expiry")
        .expect("task");
    assert!(matches!(got, Err(Error::SessionExpired)), "{got:?}");
}

#[tokio::test(start_paused = true)]
async fn a_session_the_cell_forgot_expires_at_the_next_keepalive_not_after_the_grace() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let mut events = s.events().expect("events");
    let start = tokio::time::Instant::now();
    cell.faults(|f| f.forget_sessions = true);
    assert_eq!(events.next().await, Some(SessionEvent::Expired));
    // The next keepalive (lease/3 = 4 s) brings the news; no jeopardy, no 45 s grace.
    assert!(
        start.elapsed() < LEASE,
        "expired after {:?}",
        start.elapsed()
    );
    assert!(matches!(s.stat("/").await, Err(Error::SessionExpired)));
}

#[tokio::test(start_paused = true)]
async fn an_absurd_event_buffer_option_does_not_panic_the_open() {
    let cell = FakeCell::start(LEASE).await;
    let opts = SessionOptions {
        event_buffer: usize::MAX,
        ..support::options()
    };
    let s = Session::open(cell.addr, creds(), opts)
        .await
        .expect("session opens");
    s.stat("/").await.expect("stat");
}

#[tokio::test(start_paused = true)]
async fn unbounded_timeouts_in_the_options_do_not_crash_the_session_task() {
    let cell = FakeCell::start(LEASE).await;
    let opts = SessionOptions {
        call_timeout: Duration::MAX,
        grace: Duration::MAX,
        ..support::options()
    };
    let s = Session::open(cell.addr, creds(), opts)
        .await
        .expect("session opens");
    s.stat("/").await.expect("stat");
}

#[tokio::test(start_paused = true)]
async fn close_during_an_in_flight_call_lets_the_call_finish_first() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/c", RW).await.expect("open");
    cell.faults(|f| f.delay_out = Some(Duration::from_millis(500)));
    let get = tokio::spawn(async move { h.put(b"x").await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.close().await.expect("close after the put");
    let put = get.await.expect("task");
    assert!(put.is_ok(), "{put:?}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_application_loses_no_event_and_still_learns_of_jeopardy() {
    // v1 dropped the second event here (the buffer of 1 was full) although the core had
    // already acknowledged it, so the cell never re-sent it. v2 applies back-pressure: an
    // event is acknowledged only once the application's buffer took it (or the driver's
    // backlog holds it); the cell re-sends the rest.
    let cell = FakeCell::start(LEASE).await;
    let opts = SessionOptions {
        event_buffer: 1,
        ..support::options()
    };
    let watcher = Session::open(cell.addr, creds(), opts)
        .await
        .expect("session opens");
    let writer = session(&cell).await;
    let mut events = watcher.events().expect("events");
    let _w = watcher
        .open_node_with_events("/late", RW, EventMask::CONTENTS_MODIFIED)
        .await
        .expect("open");
    let h = writer.open_node("/late", RW).await.expect("open");
    for data in [b"1", b"2", b"3", b"4"] {
        h.put(data).await.expect("put");
    }
    // The application is busy for a while, then reads: every event, in order (those it
    // had no room for come again from the master once it has room).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut generations = vec![];
    for _ in 0..4 {
        match events.next().await {
            Some(SessionEvent::Server(Event::ContentsModified { generation, .. })) => {
                generations.push(generation.0)
            }
            other => panic!("expected a contents event, got {other:?}"),
        }
    }
    assert!(
        generations.windows(2).all(|w| w[0] < w[1]),
        "{generations:?}"
    );
    // Then the master goes silent while the application is busy again: it still learns
    // that its lease ran out.
    cell.faults(|f| f.silent = true);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(events.next().await, Some(SessionEvent::Jeopardy));
    assert_eq!(watcher.stats().events_dropped, 0);
    assert!(
        watcher.stats().core.events_deferred >= 1,
        "back-pressure was applied"
    );
    // Expiry follows, and then the stream ends.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(events.next().await, Some(SessionEvent::Expired));
    assert_eq!(events.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_session_and_its_handles_stops_its_keepalives() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/gone", RW).await.expect("open");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let alive = cell.seen().keepalives;
    assert!(alive >= 2, "keepalives flow while the session lives");
    drop(s);
    // A handle alone keeps the task (and the session) alive...
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(cell.seen().keepalives > alive);
    drop(h);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let at_drop = cell.seen().keepalives;
    // ...and without it the task stops: no more keepalives.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(cell.seen().keepalives, at_drop);
}
