//! Crash recovery for real: a child process applies a deterministic command stream (log
//! write, apply, periodic sync, snapshot and log compaction) until it is killed with SIGKILL
//! at a varying point. The parent reopens the database and checks that every synced entry
//! survived, that the log was never compacted past the namespace's applied index, and that
//! replaying the durable log gives exactly the namespace a fresh database computes from the
//! same commands.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use common::{CREATE_RW, TempDir};
use libpaxos::{
    Ballot, Committed, Entry, Epoch, LogStore, NodeId, Payload, Persist, Slot, Storage, Value,
};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, EventMask, HandleId, LockMode, OpenMode,
    RequestSeq, SessionId, WallTime,
};

const CHILD_ENV: &str = "LIBPAXOS_DB_CRASH_CHILD_DIR";
const TEST_NAME: &str = "a_killed_process_recovers_to_what_the_durable_log_says";

/// The i-th command of the stream (i from 1), the same in every process.
fn command(i: u64) -> Command {
    let session = SessionId(i % 3 + 1);
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    let pick = |n: u64| x % n;
    let path = format!("/p{}", (x >> 8) % 6);
    let handle = HandleId((x >> 16) % 4 + 1);
    let op = if i <= 3 || pick(61) == 0 {
        ClientOp::NewSession {
            user: "u".into(),
            lease: Duration::from_secs(5),
            keys: vec![7; 64],
        }
    } else {
        match pick(10) {
            0 | 1 => ClientOp::Open {
                path,
                mode: if pick(7) == 0 {
                    CREATE_RW | OpenMode::LOCK | OpenMode::EPHEMERAL
                } else {
                    CREATE_RW | OpenMode::LOCK
                },
                events: EventMask::MODIFIED,
            },
            2 | 3 => ClientOp::Put {
                handle,
                data: vec![(i % 251) as u8; 200 + (i % 300) as usize],
                cas: None,
            },
            4 | 5 => ClientOp::Lock {
                handle,
                mode: if pick(3) == 0 {
                    LockMode::Exclusive
                } else {
                    LockMode::Shared
                },
                wait: pick(2) == 0,
            },
            6 => ClientOp::Unlock { handle },
            7 => ClientOp::Close { handle },
            8 => ClientOp::Delete { path },
            _ if pick(97) == 0 => {
                return Command::ExpireSession {
                    session,
                    time: WallTime(i),
                };
            }
            _ => ClientOp::EndSession,
        }
    };
    Command::Client(ClientRequest {
        session,
        seq: RequestSeq(i),
        time: WallTime(i),
        op,
    })
}

fn entry(i: u64) -> Entry {
    Entry {
        slot: Slot(i),
        ballot: Ballot {
            round: 1,
            node: NodeId(1),
        },
        value: Value {
            epoch: Epoch(0),
            payload: Payload::Command(command(i).encode().into()),
        },
    }
}

fn config(dir: &std::path::Path) -> DbConfig {
    let mut config = DbConfig::new(dir);
    config.snapshot_every = 64;
    config.keep_tail = 16;
    config
}

/// The child: runs until killed.
fn child(dir: &str) -> ! {
    let (mut db, mut log) = Database::open(config(std::path::Path::new(dir))).expect("open");
    let mut i = db.namespace().applied().0;
    loop {
        i += 1;
        log.write(&Persist {
            entries: vec![entry(i)],
            ..Persist::default()
        })
        .expect("write");
        db.apply(&Committed {
            slot: Slot(i),
            value: entry(i).value,
        })
        .expect("apply");
        if i % 5 == 0 {
            let applied = db.namespace().applied();
            log.sync().expect("sync");
            db.note_flushed(applied);
            println!("synced {i}");
        }
        if db.snapshot_due() {
            db.take_snapshot().expect("snapshot");
            if let Some(upto) = db.trim_point() {
                log.write(&Persist {
                    compact_through: Some(upto),
                    ..Persist::default()
                })
                .expect("compact");
            }
        }
    }
}

fn run_until_killed(dir: &TempDir, kill_after: u64) -> u64 {
    let mut process = Process::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = process.stdout.take().expect("piped stdout");
    let mut synced = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child output");
        // The harness prints "test NAME ... " before the first line without a newline.
        if let Some((_, n)) = line.rsplit_once("synced ") {
            synced = n.parse().expect("slot number");
            if synced >= kill_after {
                break;
            }
        }
    }
    process.kill().expect("kill child");
    process.wait().expect("reap child");
    synced
}

#[test]
fn a_killed_process_recovers_to_what_the_durable_log_says() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    for kill_after in [7, 64, 130, 333] {
        let dir = TempDir::new("crash");
        let synced = run_until_killed(&dir, kill_after);
        assert!(synced >= kill_after, "child stopped early at {synced}");
        let (mut db, log) = Database::open(config(dir.path())).expect("reopen after kill");
        let last = log.last_slot().expect("last slot");
        let applied = db.namespace().applied();
        let compacted = log.compacted_through().expect("compaction point");
        assert!(
            last.0 >= synced,
            "synced entry {synced} lost (log ends at {last})"
        );
        assert!(
            applied <= last,
            "namespace {applied} ahead of the log {last}"
        );
        assert!(
            compacted <= applied,
            "log compacted to {compacted} past applied {applied}"
        );
        db.replay(&log, last)
            .expect("replay the durable log without holes");

        let reference_dir = TempDir::new("crash-ref");
        let (mut reference, _) = Database::open(config(reference_dir.path())).expect("open");
        for i in 1..=last.0 {
            reference
                .apply(&Committed {
                    slot: Slot(i),
                    value: entry(i).value,
                })
                .expect("apply");
        }
        assert_eq!(
            db.namespace().digest().expect("digest"),
            reference.namespace().digest().expect("digest"),
            "killed after {kill_after}: recovered state differs from the log's"
        );
    }
}
