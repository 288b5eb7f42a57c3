//! The async API against cldc's scripted fake cell on loopback, with tokio's paused clock.
//!
//! The bodies in `support/api_bodies.rs` (`session_api_bodies!`) run here against a fake
//! cell each, and in `cld-server/tests/cldc_session_api.rs` against a real in-process cell.
//! The tests written out below stay fake-only, because they script the fake cell or its
//! clock:
//!
//! - `lost_and_duplicated_datagrams_still_execute_each_request_once`,
//!   `delayed_replies_are_matched_to_their_calls`,
//!   `close_during_an_in_flight_call_lets_the_call_finish_first`: inject loss, duplication
//!   and delay on one path, and count executions inside the cell;
//! - `not_master_redirects_the_session_to_the_hinted_master`,
//!   `silent_first_member_makes_the_session_use_the_next`,
//!   `unreachable_cell_fails_open_with_timeout`: a member scripted to redirect or to be
//!   silent (a real member is either master or redirects after an election of its own);
//! - `unanswered_keepalives_lead_to_jeopardy_then_expiry`,
//!   `jeopardy_ends_safe_when_the_master_answers_again`,
//!   `events_stream_ends_after_expiry_even_while_handles_live`,
//!   `expiry_fails_a_waiting_lock`,
//!   `a_slow_application_loses_no_event_and_still_learns_of_jeopardy`: a cell that stops
//!   answering on cue, then minutes of lease and grace on the paused clock;
//! - `a_grant_lost_in_a_fail_over_is_recovered_by_asking_the_new_master`: drops exactly the
//!   grant event, then fails over at once;
//! - `a_session_the_cell_forgot_expires_at_the_next_keepalive_not_after_the_grace`: a cell
//!   that forgets its sessions on cue;
//! - `dropping_the_session_and_its_handles_stops_its_keepalives`: counts keepalives inside the
//!   cell over 80 s of paused clock;
//! - `a_resent_grant_of_an_abandoned_lock_does_not_complete_a_later_lock_call`,
//!   `a_resent_grant_of_a_completed_lock_is_not_an_application_event`: a new master that
//!   re-sends an old `LockAcquired` in its own epoch (the fake cell's `inject`).
#![cfg(feature = "tokio")]

mod support;

use cldc::core::SessionEvent;
use cldc::proto::{Event, EventMask, LockMode, Request};
use cldc::{Credentials, Error, Session, SessionOptions};
use std::net::SocketAddr;
use std::time::Duration;
use support::api_bodies::{self, RW, TestCell};
use support::fake_cell::FakeCell;
use support::{SECRET, USER};

const LEASE: Duration = Duration::from_secs(12);
const LOCKING: cldc::proto::OpenMode = api_bodies::LOCKING;

fn creds() -> Credentials {
    Credentials::new(USER, SECRET).expect("valid credentials")
}

impl TestCell for FakeCell {
    fn members(&self) -> Vec<SocketAddr> {
        vec![self.addr]
    }

    fn options(&self) -> SessionOptions {
        support::options()
    }

    fn credentials(&self) -> Credentials {
        creds()
    }

    fn requests_handled(&self) -> u64 {
        let seen = self.seen();
        seen.executed.len() as u64 + seen.deduplicated
    }
}

/// Each shared body against a fake cell of its own.
macro_rules! on_fake_cells {
    ($($body:ident),* $(,)?) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $body() {
                let cell = FakeCell::start(LEASE).await;
                api_bodies::$body(&cell).await;
            }
        )*
    };
}

session_api_bodies!(on_fake_cells);

#[test]
fn opening_a_session_is_a_future_a_multi_threaded_runtime_can_spawn() {
    fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
    spawnable(Session::open(
        vec![support::addr(1)],
        creds(),
        support::options(),
    ));
    // Checked for every socket type at compile time.
    #[allow(dead_code)]
    fn with_any_socket<S: cldc::ClientSocket>(socket: S) {
        spawnable(Session::open_with_socket(
            vec![support::addr(1)],
            creds(),
            support::options(),
            socket,
            [0; 32],
        ));
    }
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

/// A socket that records what passes through it, for `Session::open_with_socket`.
struct Recording {
    inner: tokio::net::UdpSocket,
    sent: Sent,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl cldc::ClientSocket for Recording {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let got = self.inner.recv_from(buf).await?;
        self.received
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(got)
    }

    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.sent.lock().unwrap().push((to, buf.to_vec()));
        self.inner.send_to(buf, to).await
    }
}

type Sent = std::sync::Arc<std::sync::Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

async fn recording() -> (
    Recording,
    Sent,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let sent: Sent = Default::default();
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let inner = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let socket = Recording {
        inner,
        sent: sent.clone(),
        received: received.clone(),
    };
    (socket, sent, received)
}

#[tokio::test(start_paused = true)]
async fn a_session_opened_on_a_given_socket_sends_and_receives_only_through_it() {
    let cell = FakeCell::start(LEASE).await;
    let (socket, sent, received) = recording().await;
    let s = Session::open_with_socket(
        vec![cell.addr],
        creds(),
        support::options(),
        socket,
        [7; 32],
    )
    .await
    .expect("session opens on the given socket");
    let h = s.open_node("/given", RW).await.expect("open");
    h.put(b"through the seam").await.expect("put");
    assert_eq!(h.get().await.expect("get").data, b"through the seam");
    // Every datagram the cell received was sent through the wrapper, in order, and every
    // answer came back through it.
    let sent = sent.lock().unwrap().clone();
    let raw_in: Vec<Vec<u8>> = cell.seen().raw_in.into_iter().map(|(_, d)| d).collect();
    let through: Vec<Vec<u8>> = sent.iter().map(|(_, d)| d.clone()).collect();
    assert!(sent.iter().all(|(to, _)| *to == cell.addr));
    assert!(
        through.len() >= 4,
        "handshake, open, put, get: {}",
        through.len()
    );
    assert_eq!(through, raw_in);
    assert!(received.load(std::sync::atomic::Ordering::Relaxed) >= 4);
    assert_eq!(s.stats().send_errors, 0);
}

#[tokio::test(start_paused = true)]
async fn the_seed_alone_decides_the_sessions_first_datagram() {
    let mut firsts = Vec::new();
    for seed in [[1u8; 32], [1u8; 32], [2u8; 32]] {
        let cell = FakeCell::start(LEASE).await;
        let (socket, sent, _) = recording().await;
        Session::open_with_socket(vec![cell.addr], creds(), support::options(), socket, seed)
            .await
            .expect("session opens");
        let first = sent.lock().unwrap().first().cloned().expect("a datagram");
        firsts.push(first.1);
    }
    assert_eq!(firsts[0], firsts[1], "same seed, same handshake");
    assert_ne!(firsts[0], firsts[2], "another seed, another ephemeral key");
}

#[tokio::test(start_paused = true)]
async fn open_with_socket_without_members_fails_cleanly() {
    let (socket, sent, _) = recording().await;
    let got = Session::open_with_socket(vec![], creds(), support::options(), socket, [0; 32]).await;
    assert!(matches!(got, Err(Error::Config(_))), "{:?}", got.err());
    assert!(sent.lock().unwrap().is_empty());
}

/// Sleeps (paused clock) until `done` holds; panics naming `what` after 30 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn executed(cell: &FakeCell, f: impl Fn(&Request) -> bool) -> usize {
    cell.seen().executed.iter().filter(|(_, _, r)| f(r)).count()
}

/// The next event on `events` (30 s at most on the paused clock).
async fn next_event(events: &mut cldc::Events) -> SessionEvent {
    tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("an event comes")
        .expect("the stream is open")
}

fn server_event(ev: &SessionEvent) -> Event {
    match ev {
        SessionEvent::Server(e) => e.clone(),
        other => panic!("not a server event: {other:?}"),
    }
}

/// Fails the cell over to `epoch` and waits for the session to see it.
async fn fail_over(cell: &FakeCell, s: &Session, events: &mut cldc::Events, epoch: u64) {
    cell.faults(|f| f.epoch = Some(epoch));
    s.stat("/").await.expect("a call after the fail-over");
    assert_eq!(
        next_event(events).await,
        SessionEvent::Server(Event::MasterFailover {
            epoch: cldc::proto::Epoch(epoch)
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_resent_grant_of_an_abandoned_lock_does_not_complete_a_later_lock_call() {
    // The whole-cell simulation's crash-restart seed 553: a new master re-sends, in its own
    // epoch, the LockAcquired of a grant the client already had (and released, its lock()
    // having been dropped); it must not complete the lock() call pending since.
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let mut events = b.events().expect("events");
    let ha = a.open_node("/stale", LOCKING).await.expect("open a");
    let hb = std::sync::Arc::new(b.open_node("/stale", LOCKING).await.expect("open b"));
    let first = ha.lock(LockMode::Exclusive).await.expect("a locks");
    // 1. b's lock() waits behind a, and b gives up on it (the future is dropped).
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), hb.lock(LockMode::Exclusive)).await;
    assert!(gave_up.is_err(), "b's lock() waits: {gave_up:?}");
    let hb_id = hb.id();
    assert_eq!(
        executed(
            &cell,
            |r| matches!(r, Request::Lock { handle, .. } if *handle == hb_id)
        ),
        1,
        "the cell queued b's lock"
    );
    // 2. a unlocks: the cell grants b generation G; nobody waits for it, so b releases it.
    ha.unlock().await.expect("a unlocks");
    let resent = next_event(&mut events).await;
    let SessionEvent::Server(Event::LockAcquired { handle, sequencer }) = &resent else {
        panic!("expected b's grant, got {resent:?}");
    };
    assert_eq!(*handle, hb_id);
    let g = sequencer.lock_generation;
    assert!(g > first.lock_generation, "{g:?} after {first:?}");
    until("b releases the abandoned grant", || {
        executed(
            &cell,
            |r| matches!(r, Request::Unlock { handle } if *handle == hb_id),
        ) == 1
    })
    .await;
    assert_eq!(b.stats().abandoned_grants, 1);
    assert_eq!(b.stats().stale_grants, 0);
    // 3. A new master.
    fail_over(&cell, &b, &mut events, 2).await;
    // 4. a holds the lock again; b asks again, and before answering, the new master re-sends
    // the old grant (generation G) in its own epoch, then queues b's request.
    let second = ha.lock(LockMode::Exclusive).await.expect("a locks again");
    assert!(second.lock_generation > g);
    cell.faults(|f| f.inject = vec![server_event(&resent)]);
    let waiter = {
        let hb = hb.clone();
        tokio::spawn(async move { hb.lock(LockMode::Exclusive).await })
    };
    until("b's second lock request is queued", || {
        executed(
            &cell,
            |r| matches!(r, Request::Lock { handle, .. } if *handle == hb_id),
        ) == 2
    })
    .await;
    assert!(cell.faults.lock().unwrap().inject.is_empty(), "re-sent");
    // Time for the grant and the reply to reach b (both were sent before the request was
    // seen executed), and for b to answer a lock() from them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 5. The re-sent grant completed nothing: a holds the lock.
    if waiter.is_finished() {
        let got = waiter.await.expect("task");
        panic!("b's lock() completed while a holds the lock (a has {second:?}): {got:?}");
    }
    assert_eq!(b.stats().stale_grants, 1);
    assert_eq!(b.stats().abandoned_grants, 1);
    // a unlocks: the cell grants b a new generation, and lock() returns it.
    ha.unlock().await.expect("a unlocks again");
    let got = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("b's lock() completes")
        .expect("task")
        .expect("b locks");
    assert_eq!(got.lock_generation.0, second.lock_generation.0 + 1);
    assert!(got.lock_generation > g);
    // The application saw the real grant, not the re-sent one.
    match next_event(&mut events).await {
        SessionEvent::Server(Event::LockAcquired { sequencer, .. }) => {
            assert_eq!(sequencer, got)
        }
        other => panic!("expected b's new grant, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_resent_grant_of_a_completed_lock_is_not_an_application_event() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let mut events = b.events().expect("events");
    let ha = a.open_node("/again", LOCKING).await.expect("open a");
    let hb = std::sync::Arc::new(
        b.open_node_with_events("/again", LOCKING, EventMask::CONTENTS_MODIFIED)
            .await
            .expect("open b"),
    );
    ha.lock(LockMode::Exclusive).await.expect("a locks");
    let waiter = {
        let hb = hb.clone();
        tokio::spawn(async move { hb.lock(LockMode::Exclusive).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    ha.unlock().await.expect("a unlocks");
    let granted = waiter.await.expect("task").expect("b locks");
    let grant = next_event(&mut events).await;
    assert!(
        matches!(&grant, SessionEvent::Server(Event::LockAcquired { sequencer, .. }) if *sequencer == granted),
        "{grant:?}"
    );
    fail_over(&cell, &b, &mut events, 2).await;
    // The new master re-sends the grant, then an event that marks the end of the re-send;
    // no lock call is pending.
    let marker = Event::ContentsModified {
        handle: hb.id(),
        generation: cldc::proto::ContentGeneration(7),
    };
    cell.faults(|f| f.inject = vec![server_event(&grant), marker.clone()]);
    b.stat("/").await.expect("a call carries the re-send");
    assert_eq!(next_event(&mut events).await, SessionEvent::Server(marker));
    assert_eq!(b.stats().stale_grants, 1);
    assert_eq!(b.stats().abandoned_grants, 0);
    // b still holds the lock it was granted.
    assert_eq!(hb.sequencer().await.expect("b holds the lock"), granted);
}

/// A shared grant that ends a wait need not carry a new generation: here the exclusive
/// request it waited behind is withdrawn, and the cell (like libpaxos-db's `promote`) grants
/// the shared waiter at the generation b was already granted. A first stale-grant filter
/// took that genuine grant for a re-sent one and dropped it (b held the lock at the cell while
/// its lock() never completed); the driver now asks the master (`GetSequencer`) when a grant
/// at an old generation meets a pending or waiting lock call.
#[tokio::test(start_paused = true)]
async fn a_shared_grant_at_an_unchanged_generation_completes_the_waiting_lock_call() {
    let cell = FakeCell::start(LEASE).await;
    let a = session(&cell).await;
    let b = session(&cell).await;
    let ha = a.open_node("/sh", LOCKING).await.expect("open a");
    let he = a.open_node("/sh", LOCKING).await.expect("open e");
    let hb = std::sync::Arc::new(b.open_node("/sh", LOCKING).await.expect("open b"));
    let sa = ha.lock(LockMode::Shared).await.expect("a shares");
    let sb = hb.lock(LockMode::Shared).await.expect("b shares");
    assert_eq!(sa.lock_generation, sb.lock_generation);
    hb.unlock().await.expect("b unlocks");
    // An exclusive request waits behind a's shared hold; b's shared request waits behind it.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(200), he.lock(LockMode::Exclusive)).await;
    assert!(gave_up.is_err());
    let waiter = {
        let hb = hb.clone();
        tokio::spawn(async move { hb.lock(LockMode::Shared).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "b waits behind the exclusive request"
    );
    // The exclusive request is withdrawn: the cell grants b's shared request at once, at
    // the same generation (no exclusive grant happened since b's last grant).
    he.unlock()
        .await
        .expect("the exclusive request is withdrawn");
    let got = tokio::time::timeout(Duration::from_secs(30), waiter).await;
    let Ok(got) = got else {
        panic!(
            "b's lock() still waits 30 s after the cell granted it (stale_grants = {})",
            b.stats().stale_grants
        );
    };
    let got = got.expect("task").expect("b shares again");
    assert_eq!(got.lock_generation, sb.lock_generation);
    // The grant looked like a repeat (counted); the master's answer completed the call.
    assert_eq!(b.stats().stale_grants, 1);
}
