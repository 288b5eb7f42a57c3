//! sled must never write a blob file (decision 0202). sled 0.34.7 puts a log message above a
//! quarter of a segment (~128 KiB) in a file of its own under `blobs/`, and its recovery skips
//! a message whose blob is missing while applying the rest of the transaction: a power cut
//! that loses the blob but not the log tears the transaction (or loses a whole leaf page, and
//! sled panics "cannot find pid N in view_for_key").
//!
//! These tests write the largest values the database writes (256 KiB files under 256-byte
//! paths, log entries carrying them, a snapshot install of them), then make the "power cut
//! that loses every blob file" of that failure: copy the sled directory without `blobs/` (and
//! without sled's page-table snapshots, so recovery replays the log) and reopen the copy. Before
//! the fix the copy lost file contents (or sled panicked on a missing page); now there is no
//! blob to lose.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TempDir;
use libpaxos::{Ballot, Committed, Entry, LogStore, NodeId, Persist, Slot, Storage};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, EventMask, HandleId, KvStore, Limits,
    OpenMode, RequestSeq, SessionId, SledKv, WallTime, WriteBatch,
};

const MAX_FILE: usize = 256 * 1024;

fn config(dir: &Path) -> DbConfig {
    let mut config = DbConfig::new(dir);
    config.limits = Limits {
        max_file_size: MAX_FILE as u64,
        ..Limits::default()
    };
    config
}

/// A path of 256 bytes (the longest allowed) for file `k`.
fn path(k: u64) -> String {
    let name = format!("/f{k:04}-");
    format!("{name}{}", "x".repeat(256 - name.len()))
}

/// The script's command `i`: a session, then per file open, put 256 KiB, close.
fn command(i: u64) -> Command {
    let request = |op| {
        Command::Client(ClientRequest {
            session: SessionId(1),
            seq: RequestSeq(i),
            time: WallTime(i),
            op,
        })
    };
    if i == 1 {
        return request(ClientOp::NewSession {
            user: "blobs".into(),
            lease: Duration::from_secs(3600),
            keys: vec![7; 64],
        });
    }
    let k = (i - 2) / 3 + 1;
    request(match (i - 2) % 3 {
        0 => ClientOp::Open {
            path: path(k),
            mode: OpenMode::WRITE | OpenMode::CREATE,
            events: EventMask::NONE,
        },
        1 => ClientOp::Put {
            handle: HandleId(k),
            data: (0..MAX_FILE).map(|b| (b as u64 * 31 + k) as u8).collect(),
            cas: None,
        },
        _ => ClientOp::Close {
            handle: HandleId(k),
        },
    })
}

/// The files `blobs/` holds, if any.
fn blob_files(sled_dir: &Path) -> Vec<String> {
    match std::fs::read_dir(sled_dir.join("blobs")) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Copies a closed sled directory as a power cut that lost every blob file would leave it,
/// without sled's page-table snapshots (so its recovery replays the log, as after a cut).
fn copy_without_blobs(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy dir");
    for entry in std::fs::read_dir(from).expect("sled dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "blobs" || name.starts_with("snap.") {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name)).expect("copy file");
    }
}

fn entry(slot: u64, command: &Command) -> Entry {
    let committed = common::committed(slot, 0, command);
    Entry {
        slot: committed.slot,
        ballot: Ballot {
            round: 1,
            node: NodeId(1),
        },
        value: committed.value,
    }
}

#[test]
fn max_size_files_and_log_entries_survive_the_loss_of_every_blob_file() {
    let root = TempDir::new("no-blobs");
    let dir = root.path().join("db");
    let files = 12;
    let last = 1 + 3 * files;
    let (dump, entries) = {
        let (mut db, mut log) = Database::open(config(&dir)).expect("open");
        for i in 1..=last {
            let command = command(i);
            log.write(&Persist {
                compact_through: None,
                hard_state: None,
                entries: vec![entry(i, &command)],
            })
            .expect("log write");
            let applied = db
                .apply(&Committed {
                    slot: Slot(i),
                    value: entry(i, &command).value,
                })
                .expect("apply");
            assert!(applied.reply.is_ok(), "command {i}: {:?}", applied.reply);
        }
        log.sync().expect("log sync");
        db.flush().expect("flush");
        let counters = db.sync_counters();
        assert_eq!(counters.blob_files, 0, "the flushes found blob files");
        let dump = db.namespace().dump().expect("dump");
        let entries = log
            .entries(Slot(1), Slot(last), usize::MAX)
            .expect("entries");
        (dump, entries)
    };
    assert_eq!(dump.nodes.len() as u64, 1 + files, "the root and the files");
    assert!(dump.nodes.values().all(
        |(node, data)| node.kind == libpaxos_db::NodeKind::Directory || data.len() == MAX_FILE
    ));
    let sled_dir = dir.join("sled");
    let blobs = blob_files(&sled_dir);
    // The copy first: before the fix it is what failed (file contents lost, or sled's panic).
    let copy = root.path().join("copy");
    copy_without_blobs(&sled_dir, &copy.join("sled"));
    let (db, log) = Database::open(config(&copy)).expect("reopen the copy");
    assert_eq!(
        db.namespace().dump().expect("dump the copy"),
        dump,
        "the namespace lost what its blob files held"
    );
    assert_eq!(
        log.entries(Slot(1), Slot(last), usize::MAX)
            .expect("entries of the copy"),
        entries,
        "the log lost what its blob files held"
    );
    assert_eq!(blobs, Vec::<String>::new(), "sled wrote blob files");
}

#[test]
fn a_snapshot_install_of_max_size_files_writes_no_blob_file() {
    let root = TempDir::new("no-blobs-install");
    let files = 8;
    let last = 1 + 3 * files;
    let (source_digest, info) = {
        let (mut db, _log) = Database::open(config(&root.path().join("source"))).expect("open");
        for i in 1..=last {
            db.apply(&common::committed(i, 0, &command(i)))
                .expect("apply");
        }
        let info = db.take_snapshot().expect("snapshot");
        (db.namespace().digest().expect("digest"), info)
    };
    let target = root.path().join("target");
    let (mut db, _log) = Database::open(config(&target)).expect("open target");
    let slot = db.install(&info).expect("install");
    assert_eq!(slot, Slot(last));
    assert_eq!(db.namespace().digest().expect("digest"), source_digest);
    assert_eq!(
        db.sync_counters().blob_files,
        0,
        "the flushes found blob files"
    );
    assert_eq!(
        blob_files(&target.join("sled")),
        Vec::<String>::new(),
        "sled wrote blob files"
    );
}

#[test]
fn any_value_written_through_the_store_stays_out_of_blob_files() {
    // Values of every size around the chunk boundary and far above the blob threshold, in
    // one tree, overwritten by smaller and larger ones, read back whole.
    let root = TempDir::new("no-blobs-kv");
    let sled_dir = root.path().join("sled");
    let kv = SledKv::open(&sled_dir).expect("open");
    let sizes = [
        0usize,
        1,
        2047,
        2048,
        2049,
        4096,
        100_000,
        300 * 1024,
        1 << 20,
    ];
    let value = |size: usize, salt: u8| -> Vec<u8> {
        (0..size)
            .map(|b| (b as u8).wrapping_mul(7).wrapping_add(salt))
            .collect()
    };
    for (round, salt) in [(0, 1u8), (1, 2), (2, 3)] {
        let mut batch = WriteBatch::new();
        for i in 0..sizes.len() {
            // Each round gives key i another size: the sizes rotate.
            let size = sizes[(i + round) % sizes.len()];
            batch.insert("t", vec![i as u8; 200], value(size, salt));
        }
        kv.commit(&batch).expect("commit");
        kv.sync().expect("sync");
        for i in 0..sizes.len() {
            let size = sizes[(i + round) % sizes.len()];
            assert_eq!(
                kv.get("t", &[i as u8; 200]).expect("get"),
                Some(value(size, salt)),
                "key {i} round {round}"
            );
        }
    }
    assert_eq!(
        blob_files(&sled_dir),
        Vec::<String>::new(),
        "sled wrote blob files"
    );
}
