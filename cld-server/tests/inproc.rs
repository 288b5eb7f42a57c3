//! A 3-member cell in one process (each member on its own runtime, so killing one drops its
//! tasks and sockets): commands replicate through `ServerHandle::submit`, a killed master is
//! replaced, committed state survives, a restarted member catches up, and the peer port
//! refuses the wrong secret, another cell and random bytes, counting each.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cld_server::config::{CellConfig, TimingOverrides};
use cld_server::datadir::MemberState;
use cld_server::peer::{PeerError, PeerIdentity, probe};
use cld_server::{ServerHandle, SubmitError};
use common::{SECRET, TempDir, write_file};
use libpaxos::{NodeId, Role};
use libpaxos_db::{ClientOp, Command, EventMask, OpenMode, Response, SessionId};
use tokio::io::AsyncWriteExt;

use common::inproc_cell::{Member, free_port, request, start, start_with_inline_jobs, wait_master};

fn cell_toml(dir: &Path, name: &str, secret: &str, n: u64) -> PathBuf {
    cell_toml_with(dir, name, secret, n, "")
}

fn cell_toml_with(dir: &Path, name: &str, secret: &str, n: u64, timing: &str) -> PathBuf {
    let mut text = format!(
        "[cell]\nname = \"{name}\"\nsecret = \"{secret}\"\n[timing]\npaxos_lease_ms = 200\n{timing}\n"
    );
    for id in 1..=n {
        text.push_str(&format!(
            "[[member]]\nid = {id}\nclient = \"127.0.0.1:{}\"\npeer = \"127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ));
    }
    write_file(dir, "cell.toml", &text, 0o600)
}

#[test]
fn a_cell_replicates_survives_its_master_and_catches_up_a_restarted_member() {
    let tmp = TempDir::new("inproc-cell");
    let path = cell_toml(tmp.path(), "inproc", SECRET, 3);
    let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();
    let client = tokio::runtime::Runtime::new().unwrap();
    let mut members: Vec<Member> = (1..=3).map(|id| start(&config, id, tmp.path())).collect();
    let m = wait_master(&members, Duration::from_secs(10));

    // A follower refuses proposals and reads, naming the master.
    let f = (m + 1) % 3;
    let err = client
        .block_on(members[f].handle.submit(Command::Noop))
        .unwrap_err();
    assert!(matches!(err, SubmitError::NotMaster { .. }), "{err}");
    assert!(client.block_on(members[f].handle.sessions()).is_err());

    let h = members[m].handle.clone();
    let created = client
        .block_on(h.submit(request(
            7,
            1,
            ClientOp::NewSession {
                user: "app".into(),
                lease: Duration::from_secs(12),
                keys: vec![7; 64],
            },
        )))
        .unwrap();
    assert_eq!(created.reply, Ok(Response::SessionCreated));
    let opened = client
        .block_on(
            h.submit(request(
                7,
                2,
                ClientOp::Open {
                    path: "/f".into(),
                    mode: OpenMode::READ
                        .union(OpenMode::WRITE)
                        .union(OpenMode::CREATE),
                    events: EventMask::NONE,
                },
            )),
        )
        .unwrap();
    let Ok(Response::Opened { handle, .. }) = opened.reply else {
        panic!("open failed: {:?}", opened.reply)
    };
    for i in 0..20u64 {
        let put = client
            .block_on(h.submit(request(
                7,
                3 + i,
                ClientOp::Put {
                    handle,
                    data: format!("v{i}").into_bytes(),
                    cas: None,
                },
            )))
            .unwrap();
        assert!(matches!(put.reply, Ok(Response::Written { .. })), "{put:?}");
    }
    let sessions = client.block_on(h.sessions()).unwrap();
    assert_eq!(sessions.len(), 1);
    let before = client.block_on(h.status()).unwrap();

    // Kill the master: another takes over with a higher epoch, the data is there.
    let old_epoch = members[m].handle.roles().borrow().epoch.unwrap();
    members[m].kill();
    let m2 = wait_master(&members, Duration::from_secs(10));
    assert_ne!(m2, m);
    let h2 = members[m2].handle.clone();
    let new_epoch = h2.roles().borrow().epoch.unwrap();
    assert!(new_epoch > old_epoch);
    let data = client
        .block_on(h2.read(move |ns| ns.read(SessionId(7), handle).map(|(_, d)| d)))
        .unwrap()
        .unwrap();
    assert_eq!(data, b"v19");
    // A retried request is answered from the reply cache, not run twice.
    let retry = client
        .block_on(h2.submit(request(
            7,
            22,
            ClientOp::Put {
                handle,
                data: b"again".to_vec(),
                cas: None,
            },
        )))
        .unwrap();
    assert!(matches!(retry.reply, Ok(Response::Written { .. })));
    let data = client
        .block_on(h2.read(move |ns| ns.read(SessionId(7), handle).map(|(_, d)| d)))
        .unwrap()
        .unwrap();
    assert_eq!(data, b"v19", "the retry of seq 22 did not run again");

    // The killed member restarts from its disk and catches up.
    members[m] = start(&config, (m + 1) as u64, tmp.path());
    let target = client.block_on(h2.submit(Command::Noop)).unwrap().slot;
    assert!(target > before.applied);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = client.block_on(members[m].handle.status()).unwrap();
        if st.applied >= target {
            assert_eq!(st.role.state, MemberState::Voter);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted member stuck at {st:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for member in &mut members {
        member.kill();
    }
}

#[test]
fn the_peer_port_refuses_wrong_secrets_other_cells_and_random_bytes() {
    let tmp = TempDir::new("inproc-hostile");
    let path = cell_toml(tmp.path(), "guarded", SECRET, 2);
    let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();
    // Only member 2 runs: member 1 (lower id) is the one that dials it.
    let mut member = start(&config, 2, tmp.path());
    let client = tokio::runtime::Runtime::new().unwrap();
    let addr: SocketAddr = config.members[1].peer;
    let members: Vec<(NodeId, SocketAddr)> =
        config.members.iter().map(|m| (m.id, m.peer)).collect();
    let counters = member.metrics.counters.clone();

    let right = PeerIdentity::new("guarded", SECRET.as_bytes(), NodeId(1), members.clone());
    let hello = client
        .block_on(probe(&right, NodeId(2), addr, MemberState::Fresh))
        .unwrap();
    assert_eq!(hello.state, MemberState::Fresh);

    let wrong = PeerIdentity::new(
        "guarded",
        b"another secret of at least 32 characters",
        NodeId(1),
        members.clone(),
    );
    let err = client
        .block_on(probe(&wrong, NodeId(2), addr, MemberState::Voter))
        .unwrap_err();
    assert!(matches!(err, PeerError::Io(_) | PeerError::Auth), "{err}");

    let other = PeerIdentity::new("elsewhere", SECRET.as_bytes(), NodeId(1), members.clone());
    assert!(
        client
            .block_on(probe(&other, NodeId(2), addr, MemberState::Voter))
            .is_err()
    );

    client.block_on(async {
        for len in [1usize, 5, 64, 4096] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = s.write_all(&junk).await;
            let _ = s.shutdown().await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while (counters.peer_auth_failures.get() < 1
        || counters.peer_other_cell.get() < 1
        || counters.peer_bad_hello.get() < 4)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(counters.peer_auth_failures.get(), 1, "wrong secret counted");
    assert_eq!(counters.peer_other_cell.get(), 1, "other cell counted");
    assert_eq!(counters.peer_bad_hello.get(), 4, "random bytes counted");
    assert_eq!(counters.peer_frames_in.get(), 0, "no frame accepted");
    // The member is still alive and answering.
    assert!(client.block_on(member.handle.status()).is_ok());
    member.kill();
}

fn wait_applied(client: &tokio::runtime::Runtime, member: &Member, target: libpaxos::Slot) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = client.block_on(member.handle.status()).unwrap();
        if st.applied >= target {
            return;
        }
        assert!(Instant::now() < deadline, "member stuck at {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn concurrent_proposals_share_syncs_and_a_lagging_member_installs_a_snapshot() {
    let tmp = TempDir::new("inproc-group");
    let path = cell_toml_with(tmp.path(), "group", SECRET, 3, "snapshot_every = 200");
    let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();
    let client = tokio::runtime::Runtime::new().unwrap();
    let mut members: Vec<Member> = (1..=3).map(|id| start(&config, id, tmp.path())).collect();
    let m = wait_master(&members, Duration::from_secs(10));
    let f = (m + 1) % 3;
    members[f].kill();
    let h = members[m].handle.clone();

    let before = client.block_on(h.status()).unwrap();
    let waves = 3;
    let per_wave = 500;
    for _ in 0..waves {
        client.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..per_wave {
                let h = h.clone();
                set.spawn(async move { h.submit(Command::Noop).await });
            }
            while let Some(result) = set.join_next().await {
                let applied = result.unwrap().unwrap();
                assert_eq!(applied.reply, Ok(Response::Noop));
            }
        });
    }
    let after = client.block_on(h.status()).unwrap();
    let syncs = after.syncs - before.syncs;
    let proposals = (waves * per_wave) as u64;
    eprintln!("{proposals} concurrent proposals took {syncs} syncs on the master");
    assert!(
        syncs * 4 < proposals,
        "group commit: {syncs} syncs for {proposals} proposals"
    );
    assert!(after.applied.0 >= before.applied.0 + proposals);

    // The killed follower's next slot is compacted everywhere: it must install a snapshot.
    members[f] = start(&config, (f + 1) as u64, tmp.path());
    let target = client.block_on(h.submit(Command::Noop)).unwrap().slot;
    wait_applied(&client, &members[f], target);
    let st = client.block_on(members[f].handle.status()).unwrap();
    assert!(
        st.snapshots_installed >= 1,
        "caught up through a snapshot: {st:?}"
    );
    assert_eq!(
        client
            .block_on(members[f].handle.status())
            .unwrap()
            .role
            .state,
        MemberState::Voter
    );
    for member in &mut members {
        member.kill();
    }
}

/// With `inline_jobs` (the whole-cell simulation's setting: no blocking threads), the
/// master's snapshot job runs on its loop, the snapshot streams from an async task, and the
/// lagging member installs it on its loop: it catches up and votes again.
#[test]
fn with_inline_jobs_a_lagging_member_installs_a_snapshot_streamed_by_an_async_task() {
    let tmp = TempDir::new("inproc-inline");
    let path = cell_toml_with(tmp.path(), "inline", SECRET, 3, "snapshot_every = 100");
    let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();
    let client = tokio::runtime::Runtime::new().unwrap();
    let mut members: Vec<Member> = (1..=3)
        .map(|id| start_with_inline_jobs(&config, id, tmp.path(), true))
        .collect();
    let m = wait_master(&members, Duration::from_secs(10));
    let f = (m + 1) % 3;
    members[f].kill();
    let h = members[m].handle.clone();
    for _ in 0..3 {
        client.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let h = h.clone();
                set.spawn(async move { h.submit(Command::Noop).await });
            }
            while let Some(result) = set.join_next().await {
                assert_eq!(result.unwrap().unwrap().reply, Ok(Response::Noop));
            }
        });
    }
    members[f] = start_with_inline_jobs(&config, (f + 1) as u64, tmp.path(), true);
    let target = client.block_on(h.submit(Command::Noop)).unwrap().slot;
    wait_applied(&client, &members[f], target);
    let st = client.block_on(members[f].handle.status()).unwrap();
    assert!(
        st.snapshots_installed >= 1,
        "caught up through a snapshot: {st:?}"
    );
    assert_eq!(st.role.state, MemberState::Voter);
    let sent: u64 = members
        .iter()
        .filter(|x| x.rt.is_some())
        .map(|x| x.counter("snapshots_sent"))
        .sum();
    assert!(sent >= 1, "a snapshot was streamed");
    assert_eq!(members[m].counter("snapshot_failures"), 0);
    for member in &mut members {
        member.kill();
    }
}

/// The current master's handle among the running members, if one holds a lease.
fn master_of(handles: &std::sync::Mutex<Vec<Option<ServerHandle>>>) -> Option<ServerHandle> {
    let handles = handles.lock().unwrap();
    handles.iter().flatten().find_map(|h| {
        let view = *h.roles().borrow();
        (matches!(view.role, Role::Master { .. }) && view.lease).then(|| h.clone())
    })
}

#[test]
fn every_member_killed_in_turn_under_a_writer_loses_no_acknowledged_write() {
    let tmp = TempDir::new("inproc-rounds");
    let path = cell_toml(tmp.path(), "rounds", SECRET, 3);
    let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();
    let client = tokio::runtime::Runtime::new().unwrap();
    let mut members: Vec<Member> = (1..=3).map(|id| start(&config, id, tmp.path())).collect();
    wait_master(&members, Duration::from_secs(10));
    let handles = Arc::new(std::sync::Mutex::new(
        members
            .iter()
            .map(|m| Some(m.handle.clone()))
            .collect::<Vec<_>>(),
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // The writer: one session; each write creates /w{i}; a failed attempt is retried with the
    // same seq (exactly once through the reply cache) until acknowledged.
    let writer = {
        let handles = handles.clone();
        let stop = stop.clone();
        client.spawn(async move {
            let mut acked = Vec::new();
            let mut seq = 1;
            let mut i = 0u64;
            loop {
                let op = if seq == 1 {
                    ClientOp::NewSession {
                        user: "writer".into(),
                        lease: Duration::from_secs(12),
                        keys: vec![7; 64],
                    }
                } else {
                    ClientOp::Open {
                        path: format!("/w{i}"),
                        mode: OpenMode::READ.union(OpenMode::CREATE),
                        events: EventMask::NONE,
                    }
                };
                let Some(h) = master_of(&handles) else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let result =
                    tokio::time::timeout(Duration::from_secs(2), h.submit(request(1, seq, op)))
                        .await;
                match result {
                    Ok(Ok(applied)) => {
                        assert!(applied.reply.is_ok(), "write {i}: {:?}", applied.reply);
                        if seq > 1 {
                            acked.push(i);
                            i += 1;
                        }
                        seq += 1;
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return acked;
                        }
                    }
                    // Not master any more, lost to a new master, stopped, or timed out: retry.
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
    };

    for round in 0..6 {
        let victim = round % 3;
        std::thread::sleep(Duration::from_millis(300));
        members[victim].kill();
        handles.lock().unwrap()[victim] = None;
        std::thread::sleep(Duration::from_millis(300));
        members[victim] = start(&config, victim as u64 + 1, tmp.path());
        handles.lock().unwrap()[victim] = Some(members[victim].handle.clone());
        wait_master(&members, Duration::from_secs(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = client.block_on(writer).unwrap();
    eprintln!("{} acknowledged writes over 6 kills", acked.len());
    assert!(
        acked.len() > 20,
        "the writer made progress: {}",
        acked.len()
    );

    // Every acknowledged write is on the final master, and on every member once caught up.
    let m = wait_master(&members, Duration::from_secs(10));
    let target = client
        .block_on(members[m].handle.submit(Command::Noop))
        .unwrap()
        .slot;
    for member in &members {
        wait_applied(&client, member, target);
    }
    let missing = client
        .block_on(members[m].handle.read(move |ns| {
            acked
                .iter()
                .filter(|i| ns.stat(&format!("/w{i}")).is_err())
                .copied()
                .collect::<Vec<u64>>()
        }))
        .unwrap();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    for member in &mut members {
        member.kill();
    }
}
