//! Real `cld` processes on loopback driven by cldc async clients: kill -9 of the master while
//! a client holds a lock and another waits, SIGTERM of the master (it hands over), a minority and a majority down, a wiped member
//! rejoining with the data clients wrote, two wiped members waiting for the third, discovery
//! through DNS SRV (3 and 5 members), and random datagrams on the client port.
//!
//! Each test is bounded (a few rounds, well under a minute); `scripts/kill-rounds.sh` runs
//! the kill -9 test with 20 rounds per member (`CLD_KILL_ROUNDS`).

mod common;
#[path = "common/proc_cell.rs"]
mod proc_cell;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cldc::proto::{LockMode, OpenMode};
use cldc::{Error, Session};
use proc_cell::ProcCell;

const RW: OpenMode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);
const LOCKING: OpenMode = OpenMode(OpenMode::LOCK.0 | OpenMode::CREATE.0);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `/w{i}` for i = 0, 1, ... until `stop`, retrying a failed write of the same `i`
/// (open-create and put are idempotent) until acknowledged; returns the acknowledged `i`s.
async fn writer(session: Arc<Session>, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let path = format!("/w{i}");
        let result = async {
            let h = session.open_node(&path, RW).await?;
            h.put(format!("value {i}").as_bytes()).await?;
            h.close().await
        }
        .await;
        match result {
            Ok(()) => {
                acked.push(i);
                i += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    acked
}

/// Every acknowledged `/w{i}` holds its value.
async fn check_acked(session: &Session, acked: &[u64]) {
    let mut lost = Vec::new();
    for &i in acked {
        let ok = match session.open_node(&format!("/w{i}"), OpenMode::READ).await {
            Ok(h) => h
                .get()
                .await
                .is_ok_and(|c| c.data == format!("value {i}").as_bytes()),
            Err(_) => false,
        };
        if !ok {
            lost.push(i);
        }
    }
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

/// Kills the master `rounds` times (each member in turn is master some of the time) while a
/// holder keeps an exclusive lock, a waiter waits for it and a writer writes.
fn kill9_rounds(rounds: usize) {
    let mut cell = ProcCell::new("clkill", 3, "");
    cell.start_all();
    cell.wait_master(Duration::from_secs(15));
    let rt = runtime();
    let call = Duration::from_secs(20);
    let holder = rt.block_on(cell.session(call));
    let waiter = rt.block_on(cell.session(call));
    let writing = Arc::new(rt.block_on(cell.session(call)));
    let held = rt.block_on(holder.open_node("/lock", LOCKING)).unwrap();
    let sequencer = rt.block_on(held.lock(LockMode::Exclusive)).unwrap();
    let waiting = rt.block_on(waiter.open_node("/lock", LOCKING)).unwrap();
    let waiter_task = rt.spawn(async move {
        let granted = waiting.lock(LockMode::Exclusive).await;
        (granted, waiting)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writer_task = rt.spawn(writer(writing.clone(), stop.clone()));

    let mut failovers = Vec::new();
    let mut killed_as_master = [0usize; 3];
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(300));
        let m = cell.wait_master(Duration::from_secs(15));
        let killed = Instant::now();
        cell.kill9(m);
        killed_as_master[m] += 1;
        // The holder's next request succeeds: its session and lock survived.
        rt.block_on(holder.check_sequencer(&sequencer))
            .unwrap_or_else(|e| {
                panic!("round {round}: holder lost its lock: {e}\n{}", cell.logs())
            });
        let took = killed.elapsed();
        failovers.push(took);
        let m2 = cell.wait_master(Duration::from_secs(15));
        assert_ne!(m2, m);
        assert!(
            took < Duration::from_secs(10),
            "round {round}: the holder waited {took:?} for a new master"
        );
        assert!(
            !waiter_task.is_finished(),
            "round {round}: the waiter was granted a held lock"
        );
        cell.start(m);
        cell.wait_caught_up(m, Duration::from_secs(20));
    }
    eprintln!("kill -9 → holder's next request answered: {failovers:?}");
    eprintln!("masters killed, by member: {killed_as_master:?}");

    stop.store(true, Ordering::Relaxed);
    let acked = rt.block_on(writer_task).unwrap();
    assert!(!acked.is_empty(), "the writer made progress");
    eprintln!("{} writes acknowledged over {rounds} kills", acked.len());
    // The lock passes to the waiter once the holder lets it go.
    rt.block_on(held.unlock()).unwrap();
    let (granted, _waiting) = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), waiter_task).await })
        .expect("the waiter is granted the lock after the unlock")
        .unwrap();
    granted.unwrap();
    rt.block_on(check_acked(&writing, &acked));
}

#[test]
fn kill9_of_the_master_keeps_the_holders_lock_and_every_acknowledged_write() {
    let rounds = std::env::var("CLD_KILL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    kill9_rounds(rounds);
}

/// SIGTERM of the master while a client writes: the master hands mastership over, so another
/// member is master without any election timer firing (no member started a pre-vote; the new
/// master stood on the old one's `TimeoutNow`), the old member exits 0 after logging that
/// another member is master, and no acknowledged write is lost.
#[test]
fn sigterm_of_the_master_hands_over_without_an_election_timeout() {
    let mut cell = ProcCell::new("clterm", 3, "");
    cell.start_all();
    let m = cell.wait_master(Duration::from_secs(15));
    let rt = runtime();
    let session = Arc::new(rt.block_on(cell.session(Duration::from_secs(20))));
    let stop = Arc::new(AtomicBool::new(false));
    let writes = rt.spawn(writer(session.clone(), stop.clone()));
    std::thread::sleep(Duration::from_millis(500));
    let others: Vec<usize> = (0..3).filter(|&i| i != m).collect();
    let prevotes = |cell: &ProcCell| -> Vec<i64> {
        others
            .iter()
            .map(|&i| cell.metric(i, "cld_prevotes_started_total").unwrap())
            .collect()
    };
    let prevotes_before = prevotes(&cell);

    let signalled = Instant::now();
    cell.sigterm(m);
    let status = cell.wait_exit(m, Duration::from_secs(10));
    let exited = signalled.elapsed();
    assert!(status.success(), "exit status {status}\n{}", cell.logs());
    let log = cell.log(m);
    assert!(log.contains("shutdown: master takes no new work"), "{log}");
    assert!(log.contains("handed over"), "{log}");
    assert!(log.contains("shutdown: another member is master"), "{log}");
    assert!(!log.contains("stopping anyway"), "{log}");

    let m2 = cell.wait_master(Duration::from_secs(15));
    assert_ne!(m2, m);
    assert_eq!(
        cell.metric(m2, "cld_elections_on_handover_total"),
        Some(1),
        "the new master stood because the old one handed over"
    );
    assert_eq!(
        prevotes(&cell),
        prevotes_before,
        "no election timer fired anywhere"
    );
    let third = others.iter().copied().find(|&i| i != m2).unwrap();
    assert!(cell.metric(third, "cld_leases_released_total").unwrap() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let acked = rt.block_on(writes).unwrap();
    eprintln!(
        "SIGTERM of the master: it exited 0 after {exited:?}; {} writes acknowledged",
        acked.len()
    );
    rt.block_on(check_acked(&session, &acked));
}

#[test]
fn a_minority_down_serves_a_majority_down_times_out_then_recovers() {
    let mut cell = ProcCell::new("clmajority", 3, "");
    cell.start_all();
    let m = cell.wait_master(Duration::from_secs(15));
    let rt = runtime();
    let session = rt.block_on(cell.session(Duration::from_secs(3)));
    let put = |path: &str| {
        rt.block_on(async {
            let h = session.open_node(path, RW).await?;
            h.put(path.as_bytes()).await?;
            h.close().await
        })
    };
    put("/a").unwrap();
    let followers: Vec<usize> = (0..3).filter(|&i| i != m).collect();

    cell.kill9(followers[0]);
    put("/b").expect("a minority down: the cell serves");

    cell.kill9(followers[1]);
    let started = Instant::now();
    let err = put("/c").expect_err("a majority down: no write is acknowledged");
    assert!(matches!(err, Error::Timeout), "a clear timeout: {err}");
    assert!(started.elapsed() >= Duration::from_secs(2));

    cell.start(followers[0]);
    cell.start(followers[1]);
    cell.wait_master(Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(err) = put("/c") {
        assert!(
            Instant::now() < deadline,
            "no recovery: {err}\n{}",
            cell.logs()
        );
    }
    for path in ["/a", "/b", "/c"] {
        let data = rt
            .block_on(async { session.open_node(path, OpenMode::READ).await?.get().await })
            .unwrap();
        assert_eq!(data.data, path.as_bytes());
    }
}

#[test]
fn a_wiped_member_rejoins_with_the_data_and_two_wiped_members_wait_for_the_third() {
    let mut cell = ProcCell::new("clwipe", 3, "snapshot_every = 50");
    cell.start_all();
    let m = cell.wait_master(Duration::from_secs(15));
    let rt = runtime();
    let session = Arc::new(rt.block_on(cell.session(Duration::from_secs(20))));
    let stop = Arc::new(AtomicBool::new(false));
    let f = (m + 1) % 3;
    cell.kill9(f);
    std::fs::remove_dir_all(cell.data_dir(f)).unwrap();
    // Enough writes that the log is compacted past the wiped member: it needs a snapshot.
    let writes = rt.spawn(writer(session.clone(), stop.clone()));
    std::thread::sleep(Duration::from_secs(2));
    cell.start(f);
    cell.wait_caught_up(f, Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    let acked = rt.block_on(writes).unwrap();
    assert!(acked.len() > 50, "{} writes", acked.len());
    let log = std::fs::read_to_string(cell.dir.path().join(format!("log{}", f + 1))).unwrap();
    assert!(log.contains("rejoining without a vote"), "{log}");
    assert!(log.contains("voting again"), "{log}");
    // The old master goes down: the rejoined member is now half of the cell's majority.
    cell.kill9(m);
    cell.wait_master(Duration::from_secs(15));
    rt.block_on(check_acked(&session, &acked));

    // Everyone down; two data dirs wiped; they come back without the third and wait.
    let keep = f;
    let kept_applied = cell.metric(keep, "cld_applied_index").unwrap();
    for i in 0..3 {
        cell.kill9(i);
    }
    let wiped: Vec<usize> = (0..3).filter(|&i| i != keep).collect();
    for &i in &wiped {
        std::fs::remove_dir_all(cell.data_dir(i)).unwrap();
        cell.start(i);
    }
    std::thread::sleep(Duration::from_secs(3));
    for &i in &wiped {
        assert_eq!(cell.metric(i, "cld_is_master"), Some(0), "{}", cell.logs());
        assert_eq!(cell.metric(i, "cld_rejoining"), Some(1), "{}", cell.logs());
        assert_eq!(cell.metric(i, "cld_applied_index"), Some(0));
    }
    // The third returns: it is the only voter, so there is no quorum and nobody starts an
    // empty cell (docs/operations.md: an operator restores a backup). Its data is intact.
    cell.start(keep);
    std::thread::sleep(Duration::from_secs(3));
    assert!(cell.masters().is_empty(), "{}", cell.logs());
    let applied = cell.wait_metric(keep, "cld_applied_index", |_| true, Duration::from_secs(5));
    assert!(applied >= kept_applied, "{applied} < {kept_applied}");
    for &i in &wiped {
        assert_eq!(cell.metric(i, "cld_rejoining"), Some(1), "{}", cell.logs());
    }
}

/// Serves zone `cell.test.` with SRV records for `members` on an ephemeral loopback port.
async fn dns_server(members: &[SocketAddr]) -> SocketAddr {
    use hickory_server::Server;
    use hickory_server::net::runtime::TokioRuntimeProvider;
    use hickory_server::proto::rr::rdata::{A, SOA, SRV};
    use hickory_server::proto::rr::{LowerName, Name, RData, Record};
    use hickory_server::store::in_memory::InMemoryZoneHandler;
    use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
    let name = |s: &str| Name::from_ascii(s).unwrap();
    let origin = name("cell.test.");
    let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let soa = SOA::new(
        name("ns.cell.test."),
        name("admin.cell.test."),
        1,
        3600,
        600,
        86400,
        60,
    );
    zone.upsert_mut(Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)), 1);
    for (i, m) in members.iter().enumerate() {
        let host = format!("m{}.cell.test.", i + 1);
        zone.upsert_mut(
            Record::from_rdata(
                name("_cld._udp.cell.test."),
                60,
                RData::SRV(SRV::new(10, 1, m.port(), name(&host))),
            ),
            1,
        );
        zone.upsert_mut(
            Record::from_rdata(name(&host), 60, RData::A(A(Ipv4Addr::LOCALHOST))),
            1,
        );
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut server = Server::new(catalog);
    server.register_socket(socket);
    tokio::spawn(async move {
        let _ = server.block_until_done().await;
    });
    addr
}

/// put/get, CAS, locks and ephemeral nodes through a session found by DNS SRV.
async fn exercise(cell: &ProcCell, session: &Session) {
    let h = session.open_node("/srv", RW).await.unwrap();
    let meta = h.put(b"one").await.unwrap();
    assert_eq!(h.get().await.unwrap().data, b"one");
    h.put_if(meta.content_generation, b"two").await.unwrap();
    assert!(matches!(
        h.put_if(meta.content_generation, b"three").await,
        Err(Error::StaleCas)
    ));
    assert_eq!(h.get().await.unwrap().data, b"two");
    let l = session.open_node("/srv-lock", LOCKING).await.unwrap();
    let seq = l.lock(LockMode::Exclusive).await.unwrap();
    session.check_sequencer(&seq).await.unwrap();
    let other = cell.session(Duration::from_secs(10)).await;
    let l2 = other.open_node("/srv-lock", LOCKING).await.unwrap();
    assert!(matches!(
        l2.try_lock(LockMode::Exclusive).await,
        Err(Error::LockConflict)
    ));
    l.unlock().await.unwrap();
    l2.try_lock(LockMode::Exclusive).await.unwrap();
    let eph = OpenMode(OpenMode::READ.0 | OpenMode::CREATE.0 | OpenMode::EPHEMERAL.0);
    other.open_node("/srv-eph", eph).await.unwrap();
    session.stat("/srv-eph").await.unwrap();
    other.close().await.unwrap();
    assert!(matches!(
        session.stat("/srv-eph").await,
        Err(Error::NoSuchNode)
    ));
}

#[test]
fn three_and_five_member_cells_found_through_dns_srv_serve_files_locks_and_ephemerals() {
    for n in [3, 5] {
        // The default lease (400 ms): five members electing on a loaded 2-core machine.
        let mut cell = ProcCell::new(&format!("clsrv{n}"), n, "paxos_lease_ms = 400");
        cell.start_all();
        cell.wait_master(Duration::from_secs(30));
        let rt = runtime();
        rt.block_on(async {
            let dns = dns_server(&cell.clients).await;
            let query = cldc::dns::SrvQuery::new("cell.test").with_name_server(dns);
            let members = cldc::dns::discover(&query).await.unwrap();
            let found: BTreeSet<SocketAddr> = members.into_iter().collect();
            let configured: BTreeSet<SocketAddr> = cell.clients.iter().copied().collect();
            assert_eq!(found, configured);
            let session = Session::open(
                cldc::Cell::Srv(query),
                cell.credentials(),
                cell.options(Duration::from_secs(10)),
            )
            .await
            .unwrap();
            exercise(&cell, &session).await;
        });
    }
}

/// The drop counters of the client port's checks before a datagram is acted on.
const CLIENT_DROPS: &[&str] = &[
    "too_long",
    "too_short",
    "bad_magic",
    "bad_version",
    "bad_header",
    "wrong_direction",
    "handshake_malformed",
    "handshake_bad",
    "handshake_unknown_user",
    "handshake_unknown_cell_key",
    "unknown_session",
    "bad_tag",
    "ended_session",
    "stale_epoch",
    "replayed",
    "bad_fragment",
    "bad_body",
];

fn client_drops(cell: &ProcCell, i: usize) -> i64 {
    CLIENT_DROPS
        .iter()
        .map(|c| cell.metric(i, &format!("cld_{c}_total")).unwrap_or(0))
        .sum()
}

#[test]
fn random_datagrams_on_the_client_port_are_counted_unanswered_and_harmless() {
    let mut cell = ProcCell::new("clhostile", 3, "");
    cell.start_all();
    let m = cell.wait_master(Duration::from_secs(15));
    let rt = runtime();
    let session = rt.block_on(cell.session(Duration::from_secs(10)));
    let h = rt.block_on(session.open_node("/keep", RW)).unwrap();
    rt.block_on(h.put(b"before")).unwrap();
    let epoch = cell.metric(m, "cld_epoch");

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let per_member = 40;
    for i in 0..3 {
        let before = client_drops(&cell, i);
        for k in 0..per_member {
            let len = 1 + (next() % 1400) as usize;
            let mut dg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if k % 2 == 0 {
                // Junk: never the magic.
                dg[0] = b'X';
            } else {
                // The right magic and version, then junk: header, kind, seal checks.
                dg.resize(len.max(cldc::proto::HEADER_LEN + 32), 0);
                dg[..4].copy_from_slice(&cldc::proto::MAGIC);
                dg[4] = cldc::proto::VERSION;
            }
            socket.send_to(&dg, cell.clients[i]).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while client_drops(&cell, i) < before + per_member {
            assert!(
                Instant::now() < deadline,
                "member {}: {} of {per_member} counted\n{}",
                i + 1,
                client_drops(&cell, i) - before,
                cell.metrics_text(i).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            client_drops(&cell, i),
            before + per_member,
            "member {}: each datagram counted once",
            i + 1
        );
    }
    let mut buf = [0u8; 2048];
    assert!(
        socket.recv_from(&mut buf).is_err(),
        "no answer to junk: {:?}",
        socket.recv_from(&mut buf)
    );
    // Nothing changed: same master, same epoch, the session works.
    assert_eq!(cell.wait_master(Duration::from_secs(5)), m);
    assert_eq!(cell.metric(m, "cld_epoch"), epoch);
    assert_eq!(rt.block_on(h.get()).unwrap().data, b"before");
    rt.block_on(h.put(b"after")).unwrap();
}
