//! Snapshot installs off the replica loop (`DbReplica::set_background_installs`): the loop
//! keeps driving while an `InstallJob` fills the new namespace generation on another thread;
//! an install and a background snapshot job never overlap, whichever comes first; a namespace
//! that moved past the snapshot meanwhile refuses the switch and drops the staged trees; and a
//! kill right after the generation switch leaves a consistent database.

mod common;

use std::time::Duration;

use common::TempDir;
use libpaxos::{Config, NodeId, Role, Slot, Storage, Time};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, DbError, DbReplica, GlueError,
    RequestSeq, SessionId, SnapshotChunk, WallTime,
};

fn new_session(id: u64) -> Command {
    Command::Client(ClientRequest {
        session: SessionId(id),
        seq: RequestSeq(1),
        time: WallTime(id),
        op: ClientOp::NewSession {
            user: "u".into(),
            lease: Duration::from_secs(3600),
            keys: vec![7; 64],
        },
    })
}

/// A database that applied `n` sessions (sessions 1000..) and took a snapshot; its chunks.
fn peer(dir: &TempDir, n: u64) -> (Database, Vec<SnapshotChunk>) {
    let mut config = DbConfig::new(dir.path());
    config.chunk_size = 4096;
    let (mut db, log) = Database::open(config).expect("open peer");
    drop(log);
    for i in 1..=n {
        db.apply(&common::committed(i, 0, &new_session(1000 + i)))
            .expect("apply");
    }
    db.take_snapshot().expect("snapshot");
    let mut reader = db.snapshot_reader().expect("reader");
    let mut chunks = Vec::new();
    while let Some(chunk) = reader.next_chunk().expect("chunk") {
        chunks.push(chunk);
    }
    (db, chunks)
}

fn one_member(dir: &TempDir, snapshot_every: u64) -> DbReplica {
    let mut config = DbConfig::new(dir.path());
    config.snapshot_every = snapshot_every;
    config.keep_tail = 1;
    let mut node =
        DbReplica::open(Config::new(NodeId(1), vec![NodeId(1)]), config, Time::ZERO).expect("open");
    node.set_background_installs(true);
    node
}

/// Ticks and drives until master; returns the time.
fn elect(node: &mut DbReplica) -> Time {
    let mut now = Time::ZERO;
    while !matches!(node.replica().role(), Role::Master { .. }) || !node.can_read(now) {
        now = now + Duration::from_millis(5);
        assert!(now < Time(Duration::from_secs(5)), "no master");
        node.on_tick(now).expect("tick");
        while node.drive(now).expect("drive").performed {}
    }
    now
}

fn send(
    node: &mut DbReplica,
    now: Time,
    chunks: &[SnapshotChunk],
) -> Result<Option<Slot>, GlueError> {
    let mut last = None;
    for chunk in chunks {
        last = node.receive_snapshot_chunk(now, chunk)?;
    }
    Ok(last)
}

fn refused_with(result: Result<Option<Slot>, GlueError>, want: fn(&DbError) -> bool) {
    match result {
        Err(GlueError::SnapshotRefused(err)) => assert!(want(&err), "refused with {err}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_install_runs_off_the_loop_while_the_replica_keeps_committing() {
    let peer_dir = TempDir::new("bg-install-peer");
    let (peer_db, chunks) = peer(&peer_dir, 400);
    let dir = TempDir::new("bg-install");
    let mut node = one_member(&dir, 10_000);
    let mut now = elect(&mut node);
    // The last chunk leaves a job instead of installing.
    assert_eq!(send(&mut node, now, &chunks).expect("chunks"), None);
    assert_eq!(node.install_in_progress(), Some(Slot(400)));
    let job = node.take_install_job().expect("a job");
    assert!(node.take_install_job().is_none(), "handed out once");
    let worker = std::thread::spawn(move || job.run());
    // Meanwhile the loop commits and applies commands, and refuses another transfer.
    let mut applied = 0;
    for i in 1..=20 {
        now = now + Duration::from_millis(1);
        node.on_tick(now).expect("tick");
        node.propose(now, &new_session(i)).expect("propose");
        loop {
            let out = node.drive(now).expect("drive");
            applied += out.applied.len();
            if !out.performed {
                break;
            }
        }
    }
    assert!(
        applied >= 20,
        "the loop applied {applied} commands during the install"
    );
    refused_with(send(&mut node, now, &chunks), |e| {
        matches!(e, DbError::InstallInProgress)
    });
    let staged = worker.join().expect("job thread");
    let installed = node.install_finished(now, staged).expect("switch");
    assert_eq!(installed, Some(Slot(400)));
    assert_eq!(node.install_in_progress(), None);
    assert_eq!(
        node.database().namespace().digest().expect("digest"),
        peer_db.namespace().digest().expect("digest"),
        "the installed namespace is the peer's"
    );
    assert_eq!(
        node.replica().storage().compacted_through().expect("log"),
        Slot(400)
    );
    assert_eq!(node.counters().snapshots_installed, 1);
}

#[test]
fn a_snapshot_job_in_progress_refuses_an_install_until_it_finishes() {
    let peer_dir = TempDir::new("bg-order-a-peer");
    let (_peer, chunks) = peer(&peer_dir, 200);
    let dir = TempDir::new("bg-order-a");
    let mut node = one_member(&dir, 5);
    node.set_background_snapshots(true);
    let mut now = elect(&mut node);
    let mut job = None;
    for i in 1..=10 {
        now = now + Duration::from_millis(1);
        node.propose(now, &new_session(i)).expect("propose");
        loop {
            let out = node.drive(now).expect("drive");
            if out.snapshot_job.is_some() {
                job = out.snapshot_job;
            }
            if !out.performed || job.is_some() {
                break;
            }
        }
        if job.is_some() {
            break;
        }
    }
    let job = job.expect("a snapshot job was handed out");
    refused_with(send(&mut node, now, &chunks), |e| {
        matches!(e, DbError::SnapshotInProgress)
    });
    assert_eq!(node.install_in_progress(), None, "no install was started");
    node.snapshot_finished(job.run())
        .expect("snapshot finished");
    // Now the same transfer goes through.
    assert_eq!(send(&mut node, now, &chunks).expect("chunks"), None);
    let staged = node.take_install_job().expect("job").run();
    assert_eq!(
        node.install_finished(now, staged).expect("switch"),
        Some(Slot(200))
    );
}

#[test]
fn an_install_in_progress_holds_back_snapshot_jobs_until_it_finishes() {
    let peer_dir = TempDir::new("bg-order-b-peer");
    let (_peer, chunks) = peer(&peer_dir, 200);
    let dir = TempDir::new("bg-order-b");
    let mut node = one_member(&dir, 5);
    node.set_background_snapshots(true);
    let mut now = elect(&mut node);
    assert_eq!(send(&mut node, now, &chunks).expect("chunks"), None);
    let job = node.take_install_job().expect("install job");
    // Enough applies that a snapshot is due; none is handed out while the install is staged.
    for i in 1..=12 {
        now = now + Duration::from_millis(1);
        node.propose(now, &new_session(i)).expect("propose");
        loop {
            let out = node.drive(now).expect("drive");
            assert!(
                out.snapshot_job.is_none(),
                "a snapshot job during an install"
            );
            assert!(out.snapshot.is_none(), "a snapshot during an install");
            if !out.performed {
                break;
            }
        }
    }
    assert!(
        node.database().snapshot_due(),
        "precondition: a snapshot is due"
    );
    assert_eq!(
        node.install_finished(now, job.run()).expect("switch"),
        Some(Slot(200))
    );
}

#[test]
fn a_namespace_that_moved_past_the_snapshot_refuses_the_switch_and_drops_the_staged_trees() {
    let peer_dir = TempDir::new("bg-behind-peer");
    let (_peer, chunks) = peer(&peer_dir, 5);
    let dir = TempDir::new("bg-behind");
    let mut node = one_member(&dir, 10_000);
    let mut now = elect(&mut node);
    assert_eq!(send(&mut node, now, &chunks).expect("chunks"), None);
    let staged = node.take_install_job().expect("job").run();
    for i in 1..=10 {
        now = now + Duration::from_millis(1);
        node.propose(now, &new_session(i)).expect("propose");
        while node.drive(now).expect("drive").performed {}
    }
    assert!(node.database().namespace().applied() >= Slot(5));
    let before = node.database().namespace().digest().expect("digest");
    refused_with(node.install_finished(now, staged), |e| {
        matches!(e, DbError::SnapshotBehind { .. })
    });
    assert_eq!(
        node.database().namespace().digest().expect("digest"),
        before
    );
    assert_eq!(node.install_in_progress(), None);
}

const CHILD_ENV: &str = "LIBPAXOS_DB_BG_INSTALL_CHILD_DIR";
const KILL_TEST: &str = "a_kill_right_after_the_generation_switch_leaves_a_consistent_database";

#[test]
fn a_kill_right_after_the_generation_switch_leaves_a_consistent_database() {
    let peer_dir = TempDir::new("bg-kill-peer");
    let (peer_db, _) = peer(&peer_dir, 300);
    let snapshot = peer_db.latest_snapshot().expect("snapshot").clone();
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // The child: a database with history of its own, then an install that aborts the
        // process right after the switch is durable.
        let (mut db, log) = Database::open(DbConfig::new(&dir)).expect("open");
        drop(log);
        for i in 1..=7 {
            db.apply(&common::committed(i, 0, &new_session(i)))
                .expect("apply");
        }
        db.flush().expect("flush");
        db.crash_after_switch_for_tests();
        let _ = db.install(&snapshot);
        unreachable!("the install returned instead of aborting");
    }
    let dir = TempDir::new("bg-kill");
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", KILL_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("child");
    assert!(!status.success(), "the child must have aborted: {status}");
    let (db, log) = Database::open(DbConfig::new(dir.path())).expect("reopen after the kill");
    assert_eq!(db.namespace().applied(), Slot(300));
    assert_eq!(
        db.namespace().digest().expect("digest"),
        peer_db.namespace().digest().expect("digest"),
        "the reopened namespace is the snapshot"
    );
    assert_eq!(log.compacted_through().expect("log"), Slot(300));
    assert_eq!(
        log.entry(Slot(3)).expect("read"),
        None,
        "no entries at or below it"
    );
    assert_eq!(log.last_slot().expect("last"), Slot(300));
    drop((db, log));
    let generations: Vec<String> = sled_tree_names(&dir);
    assert!(
        generations.iter().all(|name| !name.starts_with("ns0.")),
        "the old generation was dropped at open: {generations:?}"
    );
    // And a replica starts on it.
    let mut node = DbReplica::open(
        Config::new(NodeId(1), vec![NodeId(1)]),
        DbConfig::new(dir.path()),
        Time::ZERO,
    )
    .expect("restart");
    elect(&mut node);
    assert!(node.database().namespace().applied() >= Slot(300));
}

fn sled_tree_names(dir: &TempDir) -> Vec<String> {
    let db =
        libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).expect("sled");
    db.tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}
