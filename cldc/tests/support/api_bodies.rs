//! Bodies of the async-API tests that hold for any cell: cldc's scripted fake cell
//! (`cldc/tests/session_api.rs`, one cell per test on tokio's paused clock) and a real
//! in-process `cld-server` cell (`cld-server/tests/cldc_session_api.rs`, one shared 3-member
//! cell on the real clock). The list of bodies is [`session_api_bodies!`]: both files
//! instantiate every body in it, so a body added here runs against both cells.
//!
//! Each body works in a directory of its own, so bodies may share one cell. The tests that
//! script the fake cell's faults stay in `cldc/tests/session_api.rs` only (its header says
//! which and why). Only cldc's public API is used here.
#![allow(dead_code)]

use cldc::core::SessionEvent;
use cldc::proto::{Event, EventMask, LockMode, OpenMode, PathError};
use cldc::{Credentials, Error, Session, SessionOptions};
use std::net::SocketAddr;
use std::time::Duration;

/// Read, write, create.
pub const RW: OpenMode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);
/// Lock, create.
pub const LOCKING: OpenMode = OpenMode(OpenMode::LOCK.0 | OpenMode::CREATE.0);
const DIRECTORY: OpenMode = OpenMode(OpenMode::CREATE.0 | OpenMode::DIRECTORY.0);

/// A cell the bodies run against.
pub trait TestCell: Send + Sync {
    /// The members' client addresses.
    fn members(&self) -> Vec<SocketAddr>;
    /// Session options for this cell (its key; everything else default).
    fn options(&self) -> SessionOptions;
    /// The test user's credentials.
    fn credentials(&self) -> Credentials;
    /// How many requests the cell has executed or answered so far (keepalives not counted).
    fn requests_handled(&self) -> u64;
}

/// The list of bodies: `session_api_bodies!(m)` expands to `m!(body, body, ...)`.
#[macro_export]
macro_rules! session_api_bodies {
    ($m:ident) => {
        $m!(
            put_then_get_returns_the_contents_and_new_generation,
            large_contents_travel_in_fragments_both_ways,
            put_if_with_an_old_generation_fails_with_stale_cas,
            try_lock_conflicts_and_a_waiting_lock_is_granted_on_unlock,
            watchers_get_contents_modified_events,
            closed_session_refuses_further_calls,
            invalid_paths_are_refused_before_sending,
            unlock_cancels_a_waiting_lock_on_the_same_handle,
            events_stream_ends_after_close,
            a_lock_call_dropped_while_queued_releases_the_later_grant,
            closing_the_session_fails_a_waiting_lock,
            an_absurd_event_buffer_option_does_not_panic_the_open,
            unbounded_timeouts_in_the_options_do_not_crash_the_session_task,
        );
    };
}

/// A session with `opts`.
pub async fn session_with(cell: &impl TestCell, opts: SessionOptions) -> Session {
    Session::open(cell.members(), cell.credentials(), opts)
        .await
        .expect("session opens")
}

/// A session with the cell's options.
pub async fn session(cell: &impl TestCell) -> Session {
    session_with(cell, cell.options()).await
}

/// Creates `/name` as a directory for one body and returns its path.
pub async fn dir(s: &Session, name: &str) -> String {
    let path = format!("/{name}");
    s.open_node(&path, DIRECTORY)
        .await
        .expect("the body's directory")
        .close()
        .await
        .expect("close the directory");
    path
}

pub async fn put_then_get_returns_the_contents_and_new_generation(cell: &impl TestCell) {
    let s = session(cell).await;
    let d = dir(&s, "put_then_get").await;
    let f = format!("{d}/f");
    let h = s.open_node(&f, RW).await.expect("open");
    let written = h.put(b"hello").await.expect("put");
    let got = h.get().await.expect("get");
    assert_eq!(got.data, b"hello");
    assert_eq!(got.meta, written);
    assert_eq!(
        got.meta.content_generation.0,
        h.meta_at_open().content_generation.0 + 1
    );
    assert_eq!(s.stat(&f).await.expect("stat").size, 5);
    let names: Vec<String> = s
        .list(&d)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["f".to_string()]);
    h.close().await.expect("close");
    s.delete(&f).await.expect("delete");
    assert!(matches!(s.stat(&f).await, Err(Error::NoSuchNode)));
}

pub async fn large_contents_travel_in_fragments_both_ways(cell: &impl TestCell) {
    let s = session(cell).await;
    let d = dir(&s, "large_contents").await;
    let h = s.open_node(&format!("{d}/big"), RW).await.expect("open");
    let data: Vec<u8> = (0..128 * 1024u32).map(|i| (i * 7) as u8).collect();
    h.put(&data).await.expect("put");
    assert_eq!(h.get().await.expect("get").data, data);
}

pub async fn put_if_with_an_old_generation_fails_with_stale_cas(cell: &impl TestCell) {
    let s = session(cell).await;
    let d = dir(&s, "put_if").await;
    let h = s.open_node(&format!("{d}/cas"), RW).await.expect("open");
    let g0 = h.meta_at_open().content_generation;
    h.put_if(g0, b"a").await.expect("first CAS wins");
    assert!(matches!(h.put_if(g0, b"b").await, Err(Error::StaleCas)));
    assert_eq!(h.get().await.expect("get").data, b"a");
}

pub async fn try_lock_conflicts_and_a_waiting_lock_is_granted_on_unlock(cell: &impl TestCell) {
    let a = session(cell).await;
    let b = session(cell).await;
    let d = dir(&a, "try_lock").await;
    let path = format!("{d}/lock");
    let ha = a.open_node(&path, LOCKING).await.expect("open a");
    let hb = b.open_node(&path, LOCKING).await.expect("open b");
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

pub async fn watchers_get_contents_modified_events(cell: &impl TestCell) {
    let watcher = session(cell).await;
    let writer = session(cell).await;
    let d = dir(&writer, "watchers").await;
    let path = format!("{d}/watched");
    let mut events = watcher.events().expect("first take");
    assert!(watcher.events().is_none());
    let w = watcher
        .open_node_with_events(&path, RW, EventMask::CONTENTS_MODIFIED)
        .await
        .expect("open");
    let h = writer.open_node(&path, RW).await.expect("open");
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

pub async fn closed_session_refuses_further_calls(cell: &impl TestCell) {
    let s = session(cell).await;
    let d = dir(&s, "closed_session").await;
    let h = s.open_node(&format!("{d}/c"), RW).await.expect("open");
    s.close().await.expect("close");
    assert!(matches!(h.get().await, Err(Error::SessionClosed)));
}

pub async fn invalid_paths_are_refused_before_sending(cell: &impl TestCell) {
    let s = session(cell).await;
    let before = cell.requests_handled();
    assert!(matches!(
        s.open_node("relative", RW).await,
        Err(Error::InvalidPath(PathError::NotAbsolute))
    ));
    assert!(matches!(
        s.delete("/a//b").await,
        Err(Error::InvalidPath(PathError::BadComponent))
    ));
    assert_eq!(cell.requests_handled(), before);
}

pub async fn unlock_cancels_a_waiting_lock_on_the_same_handle(cell: &impl TestCell) {
    let a = session(cell).await;
    let b = session(cell).await;
    let d = dir(&a, "unlock_cancels").await;
    let path = format!("{d}/q");
    let ha = a.open_node(&path, LOCKING).await.expect("open a");
    let hb = std::sync::Arc::new(b.open_node(&path, LOCKING).await.expect("open b"));
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

pub async fn events_stream_ends_after_close(cell: &impl TestCell) {
    let s = session(cell).await;
    let d = dir(&s, "events_end").await;
    let h = s.open_node(&format!("{d}/e"), RW).await.expect("open");
    let mut events = s.events().expect("events");
    s.close().await.expect("close");
    let end = tokio::time::timeout(Duration::from_secs(600), events.next()).await;
    assert_eq!(end, Ok(None), "the stream ends instead of waiting forever");
    assert!(matches!(h.get().await, Err(Error::SessionClosed)));
}

pub async fn a_lock_call_dropped_while_queued_releases_the_later_grant(cell: &impl TestCell) {
    let a = session(cell).await;
    let b = session(cell).await;
    let d = dir(&a, "lock_dropped").await;
    let path = format!("{d}/d");
    let ha = a.open_node(&path, LOCKING).await.expect("open a");
    let hb = std::sync::Arc::new(b.open_node(&path, LOCKING).await.expect("open b"));
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
    assert_eq!(relocked.path, path);
    assert_eq!(b.stats().abandoned_grants, 1);
}

pub async fn closing_the_session_fails_a_waiting_lock(cell: &impl TestCell) {
    let a = session(cell).await;
    let b = session(cell).await;
    let d = dir(&a, "closing_fails_lock").await;
    let path = format!("{d}/w");
    let ha = a.open_node(&path, LOCKING).await.expect("open a");
    let hb = b.open_node(&path, LOCKING).await.expect("open b");
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

pub async fn an_absurd_event_buffer_option_does_not_panic_the_open(cell: &impl TestCell) {
    let opts = SessionOptions {
        event_buffer: usize::MAX,
        ..cell.options()
    };
    let s = session_with(cell, opts).await;
    s.stat("/").await.expect("stat");
}

pub async fn unbounded_timeouts_in_the_options_do_not_crash_the_session_task(cell: &impl TestCell) {
    let opts = SessionOptions {
        call_timeout: Duration::MAX,
        grace: Duration::MAX,
        ..cell.options()
    };
    let s = session_with(cell, opts).await;
    s.stat("/").await.expect("stat");
}
