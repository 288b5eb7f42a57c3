//! The client front end end to end: a real in-process cell (1 and 3 members, real UDP on
//! loopback) and cldc's async client: sessions, files, directories, CAS, locks with waiters,
//! ephemeral nodes, events and Status.

mod fe_support;

use std::time::Duration;

use cldc::Error;
use cldc::core::SessionEvent;
use cldc::proto::{Event, EventMask, LockMode, OpenMode};
use fe_support::Cell;

const RW: OpenMode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);
const LOCKABLE: OpenMode =
    OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::LOCK.0 | OpenMode::CREATE.0);

async fn next_server_event(events: &mut cldc::Events) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("events stream open");
        if let SessionEvent::Server(e) = e {
            if matches!(e, Event::MasterFailover { .. }) {
                continue;
            }
            return e;
        }
    }
}

fn files_and_locks(cell: &Cell) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = cell.session().await;
        let b = cell.session().await;
        assert_ne!(a.id(), b.id());

        // Put/get.
        let f = a.open_node("/f", RW).await.unwrap();
        let written = f.put(b"hello").await.unwrap();
        assert_eq!(written.size, 5);
        let got = f.get().await.unwrap();
        assert_eq!(got.data, b"hello");
        assert_eq!(got.meta.content_generation, written.content_generation);
        assert_eq!(a.stat("/f").await.unwrap().size, 5);

        // The largest file (128 KiB): fragmented both ways.
        let big: Vec<u8> = (0..128 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        let g = a.open_node("/big", RW).await.unwrap();
        g.put(&big).await.unwrap();
        assert_eq!(g.get().await.unwrap().data, big);
        assert!(matches!(
            g.put(&vec![0u8; 128 * 1024 + 1]).await,
            Err(Error::TooLarge)
        ));

        // CAS conflict.
        let stale = written.content_generation;
        f.put(b"again").await.unwrap();
        assert!(matches!(
            f.put_if(stale, b"lost").await,
            Err(Error::StaleCas)
        ));
        assert_eq!(f.get().await.unwrap().data, b"again");

        // Mkdir, list, delete.
        a.open_node("/d", OpenMode(OpenMode::CREATE.0 | OpenMode::DIRECTORY.0))
            .await
            .unwrap();
        a.open_node("/d/x", RW).await.unwrap();
        a.open_node("/d/y", RW).await.unwrap();
        let names: Vec<String> = a
            .list("/d")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["x", "y"]);
        assert!(matches!(
            a.delete("/d").await,
            Err(Error::DirectoryNotEmpty)
        ));
        a.delete("/d/y").await.unwrap();
        assert!(matches!(a.stat("/d/y").await, Err(Error::NoSuchNode)));
        assert!(matches!(a.stat("/nope").await, Err(Error::NoSuchNode)));

        // Events: b watches /f, a writes it.
        let mut b_events = b.events().unwrap();
        let watch = b
            .open_node_with_events("/f", OpenMode::READ, EventMask::CONTENTS_MODIFIED)
            .await
            .unwrap();
        let meta = f.put(b"third").await.unwrap();
        match next_server_event(&mut b_events).await {
            Event::ContentsModified { handle, generation } => {
                assert_eq!(handle, watch.id());
                assert_eq!(generation, meta.content_generation);
            }
            other => panic!("expected ContentsModified, got {other:?}"),
        }

        // Child events follow each handle's own mask: only removals asked for here.
        let dir_watch = b
            .open_node_with_events(
                "/d",
                OpenMode(OpenMode::DIRECTORY.0),
                EventMask::CHILD_REMOVED,
            )
            .await
            .unwrap();
        a.open_node("/d/z", RW).await.unwrap();
        a.delete("/d/z").await.unwrap();
        match next_server_event(&mut b_events).await {
            Event::ChildRemoved { handle, name } => {
                assert_eq!(handle, dir_watch.id());
                assert_eq!(name, "z");
            }
            other => panic!("expected ChildRemoved only, got {other:?}"),
        }
        drop(dir_watch);

        // Exclusive lock: a holds it, b's try_lock conflicts, b's lock waits and gets it
        // after a unlocks.
        let la = a.open_node("/lock", LOCKABLE).await.unwrap();
        let lb = b.open_node("/lock", LOCKABLE).await.unwrap();
        let seq_a = la.lock(LockMode::Exclusive).await.unwrap();
        assert!(matches!(
            lb.try_lock(LockMode::Exclusive).await,
            Err(Error::LockConflict)
        ));
        a.check_sequencer(&seq_a).await.unwrap();
        let waiter = tokio::spawn(async move {
            let s = lb.lock(LockMode::Exclusive).await;
            (lb, s)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiter.is_finished(),
            "the waiter must not be granted while a holds the lock"
        );
        la.unlock().await.unwrap();
        let (lb, seq_b) = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter is granted after the unlock")
            .unwrap();
        let seq_b = seq_b.unwrap();
        assert!(seq_b.lock_generation > seq_a.lock_generation);
        assert_eq!(lb.sequencer().await.unwrap(), seq_b);
        assert!(matches!(
            a.check_sequencer(&seq_a).await,
            Err(Error::StaleSequencer)
        ));

        // Ephemeral: gone when its session ends.
        b.open_node("/eph", OpenMode(RW.0 | OpenMode::EPHEMERAL.0))
            .await
            .unwrap();
        a.stat("/eph").await.unwrap();
        drop(lb);
        drop(watch);
        b.close().await.unwrap();
        assert!(matches!(a.stat("/eph").await, Err(Error::NoSuchNode)));

        // Status.
        let status = a.status().await.unwrap();
        assert_eq!(status.members.len(), cell.members.len());
        assert_eq!(status.members.iter().filter(|m| m.is_master).count(), 1);
        for m in &status.members {
            assert!(m.reachable, "member {} unreachable: {status:?}", m.id);
            assert!(
                m.commit_index > 0,
                "member {} commit unknown: {status:?}",
                m.id
            );
        }
        assert!(status.epoch.0 >= 1);
        assert_eq!(status.sessions, 1);
        for name in [
            "bad_tag",
            "replayed",
            "unknown_session",
            "pending_handshakes",
            "retries_sent",
            "barriers_logged",
            "sessions_per_user_refused",
            "handshake_cookies_sent",
        ] {
            assert!(
                status.counters.iter().any(|c| c.name == name),
                "counter {name} missing"
            );
        }
        assert!(status.counters.windows(2).all(|w| w[0].name < w[1].name));
        a.close().await.unwrap();
    });
}

#[test]
fn one_member_serves_sessions_files_locks_events_and_status() {
    let cell = Cell::start("fe1", 1, "");
    cell.wait_master(Duration::from_secs(10));
    files_and_locks(&cell);
    assert!(cell.counter("sessions_created") >= 2);
    assert_eq!(cell.counter("bad_tag"), 0);
}

#[test]
fn three_members_serve_the_same_through_redirects() {
    let cell = Cell::start("fe3", 3, "");
    cell.wait_master(Duration::from_secs(10));
    files_and_locks(&cell);
}

#[test]
fn hostile_bytes_on_the_client_port_are_counted_and_a_session_still_works() {
    let cell = Cell::start("fehostile", 1, "");
    cell.wait_master(Duration::from_secs(10));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut x: u64 = 0x2545f4914f6cdd1d;
    for len in [1usize, 4, 8, 60, 100, 164, 1400, 1500] {
        let mut d = vec![0u8; len];
        for b in &mut d {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        if len >= 60 {
            d[..6].copy_from_slice(b"CLDr\x02\x01");
            d[6] = 0;
            d[7] = 0;
        }
        sock.send_to(&d, cell.clients[0]).unwrap();
    }
    // Nothing answers any of it.
    let mut buf = [0u8; 2048];
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "hostile bytes were answered"
    );
    let dropped: u64 = [
        "too_short",
        "too_long",
        "bad_magic",
        "bad_header",
        "unknown_session",
        "bad_tag",
    ]
    .iter()
    .map(|n| cell.counter(n))
    .sum();
    assert!(dropped >= 7, "dropped {dropped}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = cell.session().await;
        s.stat("/").await.unwrap();
        s.close().await.unwrap();
    });
}

#[test]
fn a_client_port_in_use_is_a_start_error_naming_it() {
    let cell = Cell::start("feport", 1, "");
    let mut config = cell.config.clone();
    // A second member process for member 1 on a fresh data dir: its client port is taken.
    config.members[0].peer = "127.0.0.1:0".parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = cell.dir.path().join("other");
    let err = rt
        .block_on(cld_server::start(
            cld_server::ServerOptions {
                config,
                id: libpaxos::NodeId(1),
                data_dir: dir.clone(),
                inline_jobs: false,
                bugs: Default::default(),
            },
            std::sync::Arc::new(cld_server::peer::TokioNet),
            std::sync::Arc::new(cld_server::env::SystemClock::new()),
            std::sync::Arc::new(cld_server::env::OsEntropy),
            cld_server::metrics::Metrics::new(),
        ))
        .unwrap_err();
    assert!(
        matches!(err, cld_server::StartError::ClientBind { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(&cell.clients[0].to_string()),
        "{err}"
    );
    assert!(!dir.exists(), "nothing written when the port is taken");
}

/// Every member's commit and applied index as the master answers `Status`: what each member
/// last reported (docs/protocol.md 5.6), until `deadline` says `done`.
async fn status_until(
    s: &cldc::Session,
    what: &str,
    done: impl Fn(&cldc::proto::CellStatus) -> bool,
) -> cldc::proto::CellStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = s.status().await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within 10 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn status_shows_each_members_indexes_and_a_killed_member_unreachable_with_its_last_ones() {
    let mut cell = Cell::start("festatus", 3, "");
    let master = cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(cell.session());
    let write = |n: usize| {
        rt.block_on(async {
            let h = s.open_node("/status", RW).await.unwrap();
            for i in 0..n {
                h.put(format!("{i}").as_bytes()).await.unwrap();
            }
            h.close().await.unwrap();
        })
    };
    write(5);
    let master_id = master as u64 + 1;
    let caught_up = |st: &cldc::proto::CellStatus| {
        let Some(m) = st.members.iter().find(|m| m.id == master_id) else {
            return false;
        };
        m.is_master
            && m.applied_index >= 7
            && st.members.iter().all(|o| {
                o.reachable
                    && o.commit_index == m.commit_index
                    && o.applied_index == m.applied_index
            })
    };
    let before = rt.block_on(status_until(&s, "every member caught up", caught_up));
    let victim = (master + 1) % 3;
    let last = before.members[victim].clone();
    assert_eq!(last.id, victim as u64 + 1);
    cell.members[victim].kill();
    write(3);
    let after = rt.block_on(status_until(&s, "the killed member unreachable", |st| {
        !st.members[victim].reachable
    }));
    let gone = &after.members[victim];
    assert_eq!(
        (gone.commit_index, gone.applied_index),
        (last.commit_index, last.applied_index),
        "the killed member's last known indexes: {after:?}"
    );
    let now = after.members.iter().find(|m| m.id == master_id).unwrap();
    assert!(now.applied_index > last.applied_index, "{after:?}");
    rt.block_on(async { s.close().await.unwrap() });
}
