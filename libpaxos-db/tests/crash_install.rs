//! Crash during snapshot install: a child process installs a series of ever newer snapshots
//! and is killed with SIGKILL at varying moments. After reopening, the namespace must be
//! exactly one of the snapshots (or the empty namespace), never a mixture, and the log's
//! compaction point must agree with it: the switch of namespace and log is atomic.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use common::{CREATE_RW, TempDir, committed};
use libpaxos::Storage;
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, EventMask, RequestSeq, Response,
    SessionId, WallTime,
};

const CHILD_ENV: &str = "LIBPAXOS_DB_INSTALL_CHILD";
const TEST_NAME: &str = "a_process_killed_during_install_recovers_one_whole_namespace";

fn config(dir: &Path) -> DbConfig {
    let mut config = DbConfig::new(dir);
    config.keep_snapshots = 10;
    config
}

/// Snapshot files of one growing namespace, with the digest of the namespace at each.
fn snapshots(dir: &Path) -> Vec<(PathBuf, [u8; 32])> {
    let (mut db, _log) = Database::open(config(dir)).expect("open source");
    let mut slot = 0;
    let mut apply = |db: &mut Database, op| {
        slot += 1;
        let command = Command::Client(ClientRequest {
            session: SessionId(1),
            seq: RequestSeq(slot),
            time: WallTime(slot),
            op,
        });
        db.apply(&committed(slot, 0, &command))
            .expect("apply")
            .reply
    };
    let created = apply(
        &mut db,
        ClientOp::NewSession {
            user: "u".into(),
            lease: Duration::from_secs(5),
            keys: vec![7; 64],
        },
    );
    assert_eq!(created, Ok(Response::SessionCreated));
    let mut out = Vec::new();
    for round in 0..4 {
        for i in 0..400 {
            let reply = apply(
                &mut db,
                ClientOp::Open {
                    path: format!("/r{round}-{i}"),
                    mode: CREATE_RW,
                    events: EventMask::NONE,
                },
            );
            let Ok(Response::Opened { handle, .. }) = reply else {
                panic!("open failed: {reply:?}")
            };
            let put = apply(
                &mut db,
                ClientOp::Put {
                    handle,
                    data: vec![round as u8; 1024],
                    cas: None,
                },
            );
            assert!(put.is_ok(), "{put:?}");
            assert_eq!(
                apply(&mut db, ClientOp::Close { handle }),
                Ok(Response::Closed)
            );
        }
        let info = db.take_snapshot().expect("snapshot");
        out.push((info.path, db.namespace().digest().expect("digest")));
    }
    out
}

fn child(dir: &str, files: &str) -> ! {
    let (mut db, _log) = Database::open(config(Path::new(dir))).expect("open");
    for (i, path) in files.split('\n').enumerate() {
        let info = libpaxos_db::snapshot::verify(Path::new(path)).expect("verify");
        if info.applied <= db.namespace().applied() {
            continue;
        }
        println!("installing {i}");
        db.install(&info).expect("install");
        println!("installed {i}");
    }
    println!("done");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_process_killed_during_install_recovers_one_whole_namespace() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (dir, files) = spec.split_once('\n').expect("dir and files");
        child(dir, files);
    }
    let source = TempDir::new("install-src");
    let snaps = snapshots(source.path());
    let files: Vec<String> = snaps.iter().map(|(p, _)| p.display().to_string()).collect();
    let empty = {
        let dir = TempDir::new("install-empty");
        let (db, _) = Database::open(config(dir.path())).expect("open");
        db.namespace().digest().expect("digest")
    };
    let mut outcomes = std::collections::BTreeSet::new();
    for (round, delay_ms) in [0u64, 2, 5, 9, 14, 20, 30, 45].into_iter().enumerate() {
        let dir = TempDir::new("install-dst");
        let spec = format!("{}\n{}", dir.path().display(), files.join("\n"));
        let mut process = Process::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let target = format!("installing {}", round % snaps.len());
        let stdout = process.stdout.take().expect("piped stdout");
        let mut reached = false;
        for line in BufReader::new(stdout).lines() {
            // The harness prints "test NAME ... " before the first line without a newline.
            let line = line.expect("child output");
            assert!(
                !line.ends_with("done"),
                "round {round}: {target} never came"
            );
            if line.ends_with(&target) {
                reached = true;
                break;
            }
        }
        // A child that died early (its output ended) would leave a state that trivially
        // passes the checks below.
        assert!(reached, "round {round}: the child stopped before {target}");
        std::thread::sleep(Duration::from_millis(delay_ms));
        process.kill().expect("kill child");
        process.wait().expect("reap child");

        let (db, log) = Database::open(config(dir.path())).expect("reopen after kill");
        let digest = db.namespace().digest().expect("digest");
        let which = snaps.iter().position(|(_, d)| *d == digest);
        assert!(
            which.is_some() || digest == empty,
            "round {round}: the namespace is neither empty nor any snapshot"
        );
        assert_eq!(
            log.compacted_through().expect("compaction point"),
            db.namespace().applied(),
            "round {round}: log and namespace disagree on the snapshot in force"
        );
        outcomes.insert(which);
    }
    assert!(
        outcomes.len() >= 2,
        "kills landed at one point only: {outcomes:?}"
    );
}
