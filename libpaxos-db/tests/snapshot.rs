//! Snapshot files, chunked transfer, install, log compaction at install, trimming bounds,
//! and clear errors for damaged files.

mod common;

use std::path::Path;

use common::{CREATE_RW, TempDir, committed};
use libpaxos::conformance::sample_entry;
use libpaxos::{LogStore, Persist, Slot, Storage};
use libpaxos_db::KvStore as _;
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, DbError, EventMask, RequestSeq,
    SessionId, SnapshotChunk, SnapshotInfo, WallTime,
};
use sha2::{Digest, Sha256};

fn config(dir: &TempDir) -> DbConfig {
    let mut config = DbConfig::new(dir.path());
    config.snapshot_every = 10;
    config.keep_tail = 3;
    config.chunk_size = 100;
    config
}

/// A database with a session and `files` files of a few bytes each; applied = 1 + 2 * files.
fn populated(dir: &TempDir, files: u64) -> Database {
    let (mut db, _log) = Database::open(config(dir)).unwrap();
    let request = |seq: u64, op| {
        Command::Client(ClientRequest {
            session: SessionId(1),
            seq: RequestSeq(seq),
            time: WallTime(seq),
            op,
        })
    };
    let mut slot = 0;
    let mut seq = 0;
    let mut run = |db: &mut Database, op| {
        slot += 1;
        seq += 1;
        db.apply(&committed(slot, 0, &request(seq, op))).unwrap()
    };
    run(
        &mut db,
        ClientOp::NewSession {
            user: "u".into(),
            lease: std::time::Duration::from_secs(5),
            keys: vec![7; 64],
        },
    );
    for i in 0..files {
        let opened = run(
            &mut db,
            ClientOp::Open {
                path: format!("/f{i}"),
                mode: CREATE_RW,
                events: EventMask::NONE,
            },
        );
        let Ok(libpaxos_db::Response::Opened { handle, .. }) = opened.reply else {
            panic!("open failed")
        };
        run(
            &mut db,
            ClientOp::Put {
                handle,
                data: format!("contents of file {i}").into_bytes(),
                cas: None,
            },
        );
    }
    db
}

fn transfer(from: &Database, to: &Database) -> Result<SnapshotInfo, DbError> {
    let info = from.latest_snapshot().expect("a snapshot").clone();
    let mut reader = from.snapshot_reader()?;
    let mut installer = to.receive_snapshot(info.applied, info.len)?;
    while let Some(chunk) = reader.next_chunk()? {
        installer.accept(&chunk)?;
    }
    installer.finish()
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_snapshot_round_trips_through_chunks_and_install() {
    let (a_dir, b_dir) = (TempDir::new("rt-a"), TempDir::new("rt-b"));
    let mut a = populated(&a_dir, 20);
    let info = a.take_snapshot().unwrap();
    assert_eq!(info.applied, Slot(41));
    let (mut b, _) = Database::open(config(&b_dir)).unwrap();
    let received = transfer(&a, &b).unwrap();
    assert_eq!(b.install(&received).unwrap(), Slot(41));
    assert_eq!(b.namespace().applied(), Slot(41));
    assert_eq!(
        a.namespace().digest().unwrap(),
        b.namespace().digest().unwrap()
    );
}

#[test]
fn install_compacts_the_log_through_the_snapshot_and_keeps_later_entries() {
    let (a_dir, b_dir) = (TempDir::new("cmp-a"), TempDir::new("cmp-b"));
    let mut a = populated(&a_dir, 5);
    a.take_snapshot().unwrap();
    let (mut b, mut log) = Database::open(config(&b_dir)).unwrap();
    let stale: Vec<_> = (1..=4).map(|i| sample_entry(i, 1, i as u8)).collect();
    log.write(&Persist {
        entries: [stale, vec![sample_entry(30, 2, 30)]].concat(),
        ..Persist::default()
    })
    .unwrap();
    let received = transfer(&a, &b).unwrap();
    b.install(&received).unwrap();
    assert_eq!(log.compacted_through().unwrap(), Slot(11));
    assert_eq!(log.entry(Slot(2)).unwrap(), None);
    assert_eq!(log.entries(Slot(1), Slot(11), 100).unwrap(), vec![]);
    assert_eq!(log.entry(Slot(30)).unwrap(), Some(sample_entry(30, 2, 30)));
}

#[test]
fn an_installed_namespace_survives_a_restart() {
    let (a_dir, b_dir) = (TempDir::new("rs-a"), TempDir::new("rs-b"));
    let mut a = populated(&a_dir, 5);
    a.take_snapshot().unwrap();
    let digest;
    {
        let (mut b, _) = Database::open(config(&b_dir)).unwrap();
        let received = transfer(&a, &b).unwrap();
        b.install(&received).unwrap();
        digest = b.namespace().digest().unwrap();
    }
    let (b, log) = Database::open(config(&b_dir)).unwrap();
    assert_eq!(b.namespace().digest().unwrap(), digest);
    assert_eq!(log.compacted_through().unwrap(), Slot(11));
    assert_eq!(b.latest_snapshot().map(|s| s.applied), Some(Slot(11)));
}

#[test]
fn installing_a_snapshot_that_is_not_ahead_is_refused() {
    let dir = TempDir::new("behind");
    let mut a = populated(&dir, 3);
    let info = a.take_snapshot().unwrap();
    let err = a.install(&info).expect_err("not ahead");
    assert!(matches!(err, DbError::SnapshotBehind { .. }), "{err}");
}

#[test]
fn a_corrupt_snapshot_is_refused_naming_the_file_and_nothing_changes() {
    let (a_dir, b_dir) = (TempDir::new("bad-a"), TempDir::new("bad-b"));
    let mut a = populated(&a_dir, 10);
    let info = a.take_snapshot().unwrap();
    flip_byte(&info.path, info.len / 2);
    let (b, _) = Database::open(config(&b_dir)).unwrap();
    let before = b.namespace().digest().unwrap();
    let err = transfer(&a, &b).expect_err("corrupt snapshot must not verify");
    let message = err.to_string();
    assert!(
        matches!(
            err,
            DbError::SnapshotChecksum { .. } | DbError::SnapshotRecord { .. }
        ),
        "{message}"
    );
    assert!(message.contains("snapshot-"), "names the file: {message}");
    assert_eq!(b.namespace().digest().unwrap(), before);
    let leftovers = std::fs::read_dir(b.snapshot_dir()).unwrap().count();
    assert_eq!(leftovers, 0, "the bad temp file is removed");
}

#[test]
fn a_flipped_bit_in_the_trailer_fails_the_sha256_check() {
    let dir = TempDir::new("trailer");
    let mut a = populated(&dir, 3);
    let info = a.take_snapshot().unwrap();
    flip_byte(&info.path, info.len - 1);
    let err = libpaxos_db::snapshot::verify(&info.path).expect_err("bad trailer");
    assert!(
        matches!(err, DbError::SnapshotChecksum { index: Slot(7), .. }),
        "{err}"
    );
}

#[test]
fn a_truncated_snapshot_is_refused_with_the_offset() {
    let dir = TempDir::new("trunc");
    let mut a = populated(&dir, 3);
    let info = a.take_snapshot().unwrap();
    let bytes = std::fs::read(&info.path).unwrap();
    let cut = bytes.len() as u64 - 40;
    std::fs::write(&info.path, &bytes[..cut as usize]).unwrap();
    let err = libpaxos_db::snapshot::verify(&info.path).expect_err("truncated");
    match err {
        DbError::SnapshotTruncated { file, offset } => {
            assert_eq!(file, info.path);
            assert_eq!(offset, cut);
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn a_file_without_the_magic_or_with_another_version_is_refused() {
    let dir = TempDir::new("magic");
    let mut a = populated(&dir, 1);
    let info = a.take_snapshot().unwrap();
    flip_byte(&info.path, 0);
    assert!(matches!(
        libpaxos_db::snapshot::verify(&info.path),
        Err(DbError::SnapshotMagic { .. })
    ));
    flip_byte(&info.path, 0);
    flip_byte(&info.path, 8);
    assert!(matches!(
        libpaxos_db::snapshot::verify(&info.path),
        Err(DbError::SnapshotVersion { version, .. }) if version == libpaxos_db::snapshot::VERSION ^ 0x40
    ));
}

#[test]
fn a_record_for_an_unknown_tree_is_refused_with_its_offset() {
    let dir = TempDir::new("tag");
    let path = dir.path().join("snapshot-00000000000000000001.cld");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"CLDSNAP1");
    bytes.extend_from_slice(&libpaxos_db::snapshot::VERSION.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    let record = [9u8, 1, b'k', 1, b'v'];
    bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&record);
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    std::fs::write(&path, bytes).unwrap();
    let err = libpaxos_db::snapshot::verify(&path).expect_err("unknown tree");
    match err {
        DbError::SnapshotRecord { offset, reason, .. } => {
            assert_eq!(offset, 28);
            assert!(reason.contains("unknown tree tag 9"), "{reason}");
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn chunks_must_arrive_in_order_for_the_right_snapshot() {
    let dir = TempDir::new("chunks");
    let (db, _) = Database::open(config(&dir)).unwrap();
    let mut installer = db.receive_snapshot(Slot(5), 300).unwrap();
    let chunk = |applied, offset| SnapshotChunk {
        applied: Slot(applied),
        total: 300,
        offset,
        data: vec![0; 100],
    };
    assert!(matches!(
        installer.accept(&chunk(5, 100)),
        Err(DbError::ChunkOutOfOrder {
            expected: 0,
            got: 100
        })
    ));
    assert!(matches!(
        installer.accept(&chunk(6, 0)),
        Err(DbError::ChunkWrongSnapshot { .. })
    ));
    installer.accept(&chunk(5, 0)).unwrap();
    assert_eq!(installer.received(), 100);
    assert!(matches!(
        installer.finish(),
        Err(DbError::ChunkLength {
            received: 100,
            total: 300
        })
    ));
}

#[test]
fn a_chunk_past_the_announced_length_is_refused() {
    let dir = TempDir::new("overlong");
    let (db, _) = Database::open(config(&dir)).unwrap();
    let mut installer = db.receive_snapshot(Slot(5), 50).unwrap();
    let err = installer
        .accept(&SnapshotChunk {
            applied: Slot(5),
            total: 50,
            offset: 0,
            data: vec![0; 60],
        })
        .expect_err("too long");
    assert!(matches!(err, DbError::ChunkLength { .. }));
}

#[test]
fn trimming_stays_below_the_snapshot_tail_and_the_durable_applied_index() {
    let dir = TempDir::new("trim");
    let mut db = populated(&dir, 10);
    assert_eq!(db.trim_point(), None, "no snapshot yet");
    db.take_snapshot().unwrap();
    assert_eq!(db.durable_applied(), Slot(0), "nothing flushed since open");
    assert_eq!(db.trim_point(), None);
    db.flush().unwrap();
    assert_eq!(db.trim_point(), Some(Slot(21 - 3)));
}

#[test]
fn a_snapshot_is_due_every_n_entries() {
    let dir = TempDir::new("due");
    let mut db = populated(&dir, 4);
    assert!(!db.snapshot_due(), "9 applied, interval 10");
    db.apply(&committed(10, 0, &Command::Noop)).unwrap();
    assert!(db.snapshot_due());
    db.take_snapshot().unwrap();
    assert!(!db.snapshot_due());
}

#[test]
fn old_snapshots_are_pruned() {
    let dir = TempDir::new("prune");
    let mut db = populated(&dir, 2);
    for slot in 6..=8 {
        db.apply(&committed(slot, 0, &Command::Noop)).unwrap();
        db.take_snapshot().unwrap();
    }
    let mut names: Vec<String> = std::fs::read_dir(db.snapshot_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "snapshot-00000000000000000007.cld",
            "snapshot-00000000000000000008.cld"
        ]
    );
}

#[test]
fn namespace_trees_left_by_an_interrupted_install_are_dropped_at_open() {
    let dir = TempDir::new("stale-gen");
    let digest = {
        let db = populated(&dir, 3);
        db.namespace().digest().unwrap()
    };
    {
        let sled_db =
            libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
        sled_db
            .open_tree("ns1.nodes")
            .unwrap()
            .insert("/junk", &b"half an install"[..])
            .unwrap();
        sled_db.flush().unwrap();
    }
    let (db, _) = Database::open(config(&dir)).unwrap();
    assert_eq!(db.namespace().digest().unwrap(), digest);
    drop(db);
    let reopened =
        libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
    assert!(
        !reopened
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == b"ns1.nodes"),
        "stale generation dropped"
    );
}

#[test]
fn a_corrupt_namespace_record_is_an_error_naming_tree_and_key() {
    let dir = TempDir::new("corrupt-ns");
    drop(populated(&dir, 2));
    {
        let sled_db =
            libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
        kv_put(&sled_db, "ns0.nodes", b"/f1", b"garbage!");
    }
    let err = Database::open(config(&dir)).err().expect("corrupt record");
    let message = err.to_string();
    assert!(message.contains("ns0.nodes"), "{message}");
    assert!(message.contains("/f1"), "{message}");
}

#[test]
fn a_damaged_snapshot_found_at_open_is_set_aside_and_the_older_one_used() {
    let dir = TempDir::new("aside");
    let newest = {
        let mut db = populated(&dir, 2);
        db.take_snapshot().unwrap();
        db.apply(&committed(6, 0, &Command::Noop)).unwrap();
        db.take_snapshot().unwrap()
    };
    flip_byte(&newest.path, newest.len / 2);
    let (db, _) = Database::open(config(&dir)).unwrap();
    assert_eq!(db.latest_snapshot().map(|s| s.applied), Some(Slot(5)));
    assert_eq!(db.counters().corrupt_snapshots_set_aside, 1);
    assert!(
        db.snapshot_dir()
            .join("corrupt-snapshot-00000000000000000006.cld")
            .exists()
    );
}

#[test]
fn a_record_too_large_to_read_back_fails_the_snapshot_write_and_leaves_no_file() {
    let dir = TempDir::new("snap-huge");
    let db = common::temp_db();
    let ns = libpaxos_db::Namespace::open(&db, Default::default()).unwrap();
    // No command can make a record this large; a damaged or foreign tree could, and the writer
    // must not produce a file that every reader refuses.
    let huge = libpaxos_db::codec::encode(&vec![7u8; libpaxos_db::snapshot::MAX_RECORD as usize]);
    kv_put(&db, "ns0.data", b"/big", &huge);
    let err = libpaxos_db::snapshot::write(&ns, dir.path()).expect_err("record too large");
    assert!(
        matches!(&err, DbError::SnapshotRecordTooLarge { tree, key, .. } if tree == "ns0.data" && key == "/big"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no snapshot or temp file left: {left:?}");
}

#[test]
fn a_retry_after_a_snapshot_install_gets_the_cached_reply_without_executing() {
    let (a_dir, b_dir) = (TempDir::new("retry-a"), TempDir::new("retry-b"));
    let mut a = populated(&a_dir, 2);
    a.take_snapshot().unwrap();
    let (mut b, _) = Database::open(config(&b_dir)).unwrap();
    let received = transfer(&a, &b).unwrap();
    assert_eq!(b.install(&received).unwrap(), Slot(5));
    // Seq 5 was the Put of "contents of file 1" through handle 2; the retry carries other
    // bytes, which must not be written.
    let retry = Command::Client(ClientRequest {
        session: SessionId(1),
        seq: RequestSeq(5),
        time: WallTime(99),
        op: ClientOp::Put {
            handle: libpaxos_db::HandleId(2),
            data: b"executed twice".to_vec(),
            cas: None,
        },
    });
    let first = a.apply(&committed(6, 0, &retry)).unwrap().reply;
    let again = b.apply(&committed(6, 0, &retry)).unwrap().reply;
    assert!(
        matches!(again, Ok(libpaxos_db::Response::Written { .. })),
        "{again:?}"
    );
    assert_eq!(
        again, first,
        "the installed replica answers as the source does"
    );
    assert_eq!(b.namespace().counters().duplicates, 1);
    let (_, data) = b.namespace().dump().unwrap().nodes["/f1"].clone();
    assert_eq!(data, b"contents of file 1");
    let stale = Command::Client(ClientRequest {
        seq: RequestSeq(4),
        ..match retry {
            Command::Client(req) => req,
            _ => unreachable!(),
        }
    });
    assert!(matches!(
        b.apply(&committed(7, 0, &stale)).unwrap().reply,
        Err(libpaxos_db::CmdError::RequestTooOld { .. })
    ));
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp-"))
        .collect()
}

#[test]
fn an_abandoned_or_failed_transfer_leaves_no_temp_file() {
    let dir = TempDir::new("abandon");
    let (db, _) = Database::open(config(&dir)).unwrap();
    let snapshots = db.snapshot_dir().to_path_buf();
    let chunk = SnapshotChunk {
        applied: Slot(5),
        total: 300,
        offset: 0,
        data: vec![0; 100],
    };
    let mut installer = db.receive_snapshot(Slot(5), 300).unwrap();
    installer.accept(&chunk).unwrap();
    assert_eq!(temp_files(&snapshots).len(), 1, "precondition: receiving");
    drop(installer);
    assert_eq!(temp_files(&snapshots), Vec::<String>::new(), "abandoned");
    let mut installer = db.receive_snapshot(Slot(5), 100).unwrap();
    installer
        .accept(&SnapshotChunk {
            total: 100,
            ..chunk
        })
        .unwrap();
    assert!(installer.finish().is_err(), "zeros are no snapshot");
    assert_eq!(temp_files(&snapshots), Vec::<String>::new(), "failed");
}

#[test]
fn a_chunk_announcing_another_total_length_is_refused_as_such() {
    let dir = TempDir::new("total");
    let (db, _) = Database::open(config(&dir)).unwrap();
    let mut installer = db.receive_snapshot(Slot(5), 300).unwrap();
    let err = installer
        .accept(&SnapshotChunk {
            applied: Slot(5),
            total: 200,
            offset: 0,
            data: vec![0; 100],
        })
        .expect_err("another total");
    assert!(
        matches!(
            err,
            DbError::ChunkTotalMismatch {
                expected: 300,
                got: 200
            }
        ),
        "{err}"
    );
    assert_eq!(installer.received(), 0, "nothing written");
}

#[test]
fn a_snapshot_whose_pruning_fails_is_still_recorded_and_not_taken_again() {
    let dir = TempDir::new("prune-fails");
    let mut db = populated(&dir, 5);
    // Something prune cannot remove: a directory with an old snapshot's name.
    std::fs::create_dir(db.snapshot_dir().join("snapshot-00000000000000000001.cld")).unwrap();
    db.take_snapshot().unwrap();
    db.apply(&committed(12, 0, &Command::Noop)).unwrap();
    // Three candidates for two places: prune must remove the directory, and cannot.
    let info = db.take_snapshot().expect("the snapshot itself was written");
    assert_eq!(info.applied, Slot(12));
    assert_eq!(db.latest_snapshot().map(|s| s.applied), Some(Slot(12)));
    assert!(!db.snapshot_due(), "no snapshot again at once");
    assert_eq!(db.counters().prune_failures, 1);
    assert_eq!(db.counters().snapshot_failures, 0);
}

#[test]
fn after_a_failed_snapshot_the_next_attempt_waits_a_quarter_interval() {
    let dir = TempDir::new("snap-fails");
    let mut db = populated(&dir, 5);
    assert!(db.snapshot_due(), "precondition: 11 applied, interval 10");
    // Make writing impossible: the snapshot directory becomes a file.
    let snapshots = db.snapshot_dir().to_path_buf();
    std::fs::remove_dir_all(&snapshots).unwrap();
    std::fs::write(&snapshots, b"not a directory").unwrap();
    assert!(db.take_snapshot().is_err());
    assert_eq!(db.counters().snapshot_failures, 1);
    assert!(
        !db.snapshot_due(),
        "a failing disk is not retried at every apply (a full write each time)"
    );
    db.apply(&committed(12, 0, &Command::Noop)).unwrap();
    assert!(!db.snapshot_due());
    db.apply(&committed(13, 0, &Command::Noop)).unwrap();
    assert!(
        db.snapshot_due(),
        "due again a quarter interval (2 entries of 10, rounded down) later"
    );
    std::fs::remove_file(&snapshots).unwrap();
    std::fs::create_dir(&snapshots).unwrap();
    assert_eq!(db.take_snapshot().unwrap().applied, Slot(13));
}

#[test]
fn set_aside_corrupt_snapshots_beyond_the_newest_two_are_removed_at_open() {
    let dir = TempDir::new("aside-prune");
    let snap = {
        let mut db = populated(&dir, 2);
        db.take_snapshot().unwrap()
    };
    let snapshots = snap.path.parent().unwrap().to_path_buf();
    for index in [1u64, 2, 3] {
        std::fs::write(
            snapshots.join(format!("corrupt-snapshot-{index:020}.cld")),
            b"damaged",
        )
        .unwrap();
    }
    flip_byte(&snap.path, snap.len / 2);
    let (db, _) = Database::open(config(&dir)).unwrap();
    assert_eq!(db.latest_snapshot(), None);
    assert_eq!(db.counters().corrupt_snapshots_set_aside, 1);
    assert_eq!(db.counters().corrupt_snapshots_pruned, 2);
    let mut left: Vec<String> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "corrupt-snapshot-00000000000000000003.cld",
            "corrupt-snapshot-00000000000000000005.cld"
        ]
    );
}

/// Rewrites a record of the namespace trees of the database in `dir` (closed).
fn craft<T: serde::Serialize + serde::de::DeserializeOwned>(
    dir: &TempDir,
    tree: &str,
    key: &[u8],
    change: impl FnOnce(&mut T),
) {
    let sled_db =
        libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
    let kv = libpaxos_db::SledKv::unsynced(&sled_db);
    let mut value: T = libpaxos_db::codec::decode(&kv.get(tree, key).unwrap().unwrap()).unwrap();
    change(&mut value);
    kv_put(&sled_db, tree, key, &libpaxos_db::codec::encode(&value));
    sled_db.flush().unwrap();
}

/// Writes a record through the store's own layout (what a damaged or crafted record on disk
/// reads back as).
fn kv_put(db: &sled::Db, tree: &str, key: &[u8], value: &[u8]) {
    let mut batch = libpaxos_db::WriteBatch::new();
    batch.insert(tree, key, value);
    libpaxos_db::SledKv::unsynced(db).commit(&batch).unwrap();
}

#[test]
fn a_snapshot_record_with_an_exhausted_counter_is_refused_by_the_reader() {
    let dir = TempDir::new("counter-snap");
    drop(populated(&dir, 2));
    craft(&dir, "ns0.nodes", b"/f1", |node: &mut libpaxos_db::Node| {
        node.lock_generation = libpaxos_db::LockGeneration(u64::MAX);
    });
    let (mut db, _) = Database::open(config(&dir)).unwrap();
    let info = db.take_snapshot().unwrap();
    match libpaxos_db::snapshot::verify(&info.path) {
        Err(DbError::SnapshotRecord { reason, .. }) => {
            assert!(reason.contains("lock_generation"), "{reason}")
        }
        other => panic!("crafted counter accepted: {other:?}"),
    }
}

#[test]
fn commands_over_exhausted_counters_saturate_instead_of_overflowing() {
    let dir = TempDir::new("counter-apply");
    drop(populated(&dir, 2));
    craft(&dir, "ns0.nodes", b"/f0", |node: &mut libpaxos_db::Node| {
        node.content_generation = libpaxos_db::ContentGeneration(u64::MAX);
    });
    craft(
        &dir,
        "ns0.sessions",
        &1u64.to_be_bytes(),
        |session: &mut libpaxos_db::Session| {
            session.next_handle = libpaxos_db::HandleId(u64::MAX);
        },
    );
    let (mut db, _) = Database::open(config(&dir)).unwrap();
    let request = |seq: u64, op| {
        Command::Client(ClientRequest {
            session: SessionId(1),
            seq: RequestSeq(seq),
            time: WallTime(seq),
            op,
        })
    };
    let opened = db
        .apply(&committed(
            6,
            0,
            &request(
                6,
                ClientOp::Open {
                    path: "/f0".into(),
                    mode: CREATE_RW,
                    events: EventMask::NONE,
                },
            ),
        ))
        .unwrap();
    let Ok(libpaxos_db::Response::Opened { handle, .. }) = opened.reply else {
        panic!("open failed: {:?}", opened.reply)
    };
    assert_eq!(handle, libpaxos_db::HandleId(u64::MAX));
    let put = db
        .apply(&committed(
            7,
            0,
            &request(
                7,
                ClientOp::Put {
                    handle,
                    data: b"x".to_vec(),
                    cas: None,
                },
            ),
        ))
        .unwrap();
    assert!(put.reply.is_ok(), "{:?}", put.reply);
}

#[test]
fn an_install_over_an_exhausted_namespace_generation_is_refused() {
    let (a_dir, b_dir) = (TempDir::new("gen-a"), TempDir::new("gen-b"));
    let mut a = populated(&a_dir, 1);
    a.take_snapshot().unwrap();
    {
        let sled_db =
            libpaxos_db::open_sled(&sled::Config::new().path(b_dir.path().join("sled"))).unwrap();
        kv_put(
            &sled_db,
            "db.meta",
            b"ns_generation",
            &libpaxos_db::codec::encode(&u64::MAX),
        );
        // A store of this build's format (else it would be refused as unversioned).
        kv_put(
            &sled_db,
            "db.meta",
            b"format_version",
            &libpaxos_db::codec::encode(&libpaxos_db::FORMAT_VERSION),
        );
        sled_db.flush().unwrap();
    }
    let (mut b, _) = Database::open(config(&b_dir)).unwrap();
    let info = transfer(&a, &b).unwrap();
    match b.install(&info) {
        Err(DbError::GenerationExhausted(g)) => assert_eq!(g, u64::MAX),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(b.counters().installs_refused, 1);
    assert_eq!(b.namespace().applied(), Slot(0));
}
