//! Crash recovery through the glue: a child process runs a one-member cell with
//! `DbReplica::open` (log and namespace in one sled database, one flush per Ready, snapshots
//! and log compaction on), creating one session per command, until it is killed with SIGKILL
//! at a varying point. The parent reopens the replica and checks that the log was never
//! compacted past the namespace (the replica would refuse to start), that the namespace is
//! never ahead of the log, and that every session the child saw applied is there once the
//! reopened replica has caught up.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use common::TempDir;
use libpaxos::{Config, NodeId, Role, Storage, Time};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, DbReplica, RequestSeq, Response,
    SessionId, WallTime,
};

const CHILD_ENV: &str = "LIBPAXOS_DB_CRASH_GLUE_CHILD_DIR";
const TEST_NAME: &str = "a_killed_replica_restarts_with_every_applied_command";

fn config() -> Config {
    Config::new(NodeId(1), vec![NodeId(1)])
}

fn db_config(dir: &std::path::Path) -> DbConfig {
    let mut config = DbConfig::new(dir);
    config.snapshot_every = 16;
    config.keep_tail = 4;
    config
}

fn new_session(id: u64) -> Command {
    Command::Client(ClientRequest {
        session: SessionId(id),
        seq: RequestSeq(1),
        time: WallTime(id),
        op: ClientOp::NewSession {
            user: "u".into(),
            lease: Duration::from_secs(10),
            keys: vec![7; 64],
        },
    })
}

/// Ticks `node` by a millisecond and drives it until idle; returns the sessions created.
fn step(node: &mut DbReplica, now: &mut Time) -> Vec<u64> {
    *now = *now + Duration::from_millis(1);
    node.on_tick(*now).expect("tick");
    let mut created = Vec::new();
    loop {
        let out = node.drive(*now).expect("drive");
        for applied in &out.applied {
            if let (Some((session, _)), Ok(Response::SessionCreated)) =
                (applied.request, &applied.reply)
            {
                created.push(session.0);
            }
        }
        if !out.performed {
            return created;
        }
    }
}

/// The child: runs until killed.
fn child(dir: &str) -> ! {
    let mut node =
        DbReplica::open(config(), db_config(std::path::Path::new(dir)), Time::ZERO).expect("open");
    let mut now = Time::ZERO;
    let mut next = 1;
    loop {
        if matches!(node.replica().role(), Role::Master { .. })
            && node.propose(now, &new_session(next)).is_ok()
        {
            next += 1;
        }
        for session in step(&mut node, &mut now) {
            println!("applied {session}");
        }
    }
}

fn run_until_killed(dir: &TempDir, kill_after: u64) -> Vec<u64> {
    let mut process = Process::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = process.stdout.take().expect("piped stdout");
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        // The harness prints "test NAME ... " before the first line without a newline.
        if let Some((_, n)) = line.rsplit_once("applied ") {
            seen.push(n.parse::<u64>().expect("session id"));
            if seen.len() as u64 >= kill_after {
                break;
            }
        }
    }
    process.kill().expect("kill child");
    process.wait().expect("reap child");
    seen
}

#[test]
fn a_killed_replica_restarts_with_every_applied_command() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    for kill_after in [3, 40, 150] {
        let dir = TempDir::new("crash-glue");
        let seen = run_until_killed(&dir, kill_after);
        assert!(
            seen.len() as u64 >= kill_after,
            "the child stopped after {} sessions",
            seen.len()
        );
        {
            let (db, log) = Database::open(db_config(dir.path())).expect("reopen the database");
            let applied = db.namespace().applied();
            let last = log.last_slot().expect("last slot");
            let compacted = log.compacted_through().expect("compaction point");
            assert!(
                applied <= last,
                "namespace at {applied} ahead of the log's {last}"
            );
            assert!(
                compacted <= applied,
                "log compacted to {compacted} past {applied}"
            );
            if kill_after >= 150 {
                assert!(
                    compacted.0 > 0,
                    "precondition: snapshots and compaction ran"
                );
            }
        }
        // Replica::new refuses a log compacted past the namespace, so starting is a check.
        let mut node =
            DbReplica::open(config(), db_config(dir.path()), Time::ZERO).expect("restart");
        let mut now = Time::ZERO;
        while !matches!(node.replica().role(), Role::Master { .. }) || !node.can_read(now) {
            step(&mut node, &mut now);
            assert!(
                now < Time(Duration::from_secs(5)),
                "no master after restart"
            );
        }
        let namespace = node.database().namespace();
        for session in &seen {
            assert!(
                namespace.session(SessionId(*session)).is_some(),
                "killed after {kill_after}: session {session} was applied but is gone"
            );
        }
    }
}
