//! The v2 front end's additions: session keys, tombstones and their purge, the barrier,
//! per-user session counts, the lock-delay deadline, and the store's format version.

mod common;

use std::time::Duration;

use common::*;
use libpaxos_db::KvStore as _;
use libpaxos_db::{
    ClientOp, CmdError, Command, Database, DbConfig, DbError, EventMask, FORMAT_VERSION, LockMode,
    Namespace, Response, SESSION_KEYS_LEN, SessionId, Tombstone, WallTime,
};

fn new_session(user: &str, keys: Vec<u8>) -> ClientOp {
    ClientOp::NewSession {
        user: user.into(),
        lease: Duration::from_secs(12),
        keys,
    }
}

#[test]
fn session_keys_of_any_length_but_64_are_refused_and_64_are_kept() {
    let mut f = Fixture::new();
    for (s, len) in [(1, 0), (2, 63), (3, 65)] {
        let reply = f.request_seq(s, 1, new_session("u", vec![1; len])).reply;
        assert_eq!(reply, Err(CmdError::BadSessionKeys { len }));
        assert!(f.ns.session(SessionId(s)).is_none());
    }
    let keys: Vec<u8> = (0..SESSION_KEYS_LEN as u8).collect();
    let reply = f.request_seq(4, 1, new_session("u", keys.clone())).reply;
    assert_eq!(reply, Ok(Response::SessionCreated));
    assert_eq!(
        f.ns.session(SessionId(4)).map(|s| s.keys.clone()),
        Some(keys)
    );
}

#[test]
fn a_retried_creation_with_other_keys_is_not_a_retry() {
    let mut f = Fixture::new();
    f.request_seq(1, 1, new_session("u", vec![1; 64]))
        .reply
        .unwrap();
    let retry = f.request_seq(1, 1, new_session("u", vec![1; 64]));
    assert_eq!(retry.reply, Ok(Response::SessionCreated));
    let other = f.request_seq(1, 1, new_session("u", vec![2; 64]));
    assert_eq!(other.reply, Err(CmdError::SessionExists(SessionId(1))));
    assert_eq!(f.ns.session(SessionId(1)).unwrap().keys, vec![1; 64]);
}

#[test]
fn ending_or_expiring_a_session_leaves_a_tombstone_that_blocks_its_id_until_purged() {
    let mut f = Fixture::new();
    f.request_seq(1, 1, new_session("alice", vec![1; 64]))
        .reply
        .unwrap();
    f.request_seq(2, 1, new_session("bob", vec![2; 64]))
        .reply
        .unwrap();
    let end = f.request_seq(1, 2, ClientOp::EndSession);
    let ended_1 = WallTime(f.time);
    assert_eq!(end.reply, Ok(Response::SessionEnded));
    f.command(&Command::ExpireSession {
        session: SessionId(2),
        time: WallTime(5_000),
    })
    .reply
    .unwrap();
    assert!(f.ns.session(SessionId(1)).is_none());
    assert_eq!(
        f.ns.tombstone(SessionId(1)),
        Some(&Tombstone {
            user: "alice".into(),
            keys: vec![1; 64],
            ended_at: ended_1,
        })
    );
    assert_eq!(
        f.ns.tombstone(SessionId(2)).map(|t| t.ended_at),
        Some(WallTime(5_000))
    );
    assert_eq!(f.ns.tombstones().count(), 2);
    assert_eq!(f.ns.oldest_tombstone(), Some(ended_1));
    // The tombstone is in the same state as the removal, on disk too.
    let dump = f.ns.dump().unwrap();
    assert!(dump.sessions.is_empty());
    assert_eq!(dump.tombstones.len(), 2);

    // Neither id can be created again, not even as a "retry" of the first creation.
    for s in [1, 2] {
        let again = f.request_seq(s, 1, new_session("alice", vec![1; 64]));
        assert_eq!(again.reply, Err(CmdError::SessionExists(SessionId(s))));
    }

    // Purge is strict: `ended_at < before`.
    f.command(&Command::PurgeTombstones { before: ended_1 })
        .reply
        .unwrap();
    assert_eq!(f.ns.tombstones().count(), 2);
    f.command(&Command::PurgeTombstones {
        before: WallTime(5_000),
    })
    .reply
    .unwrap();
    assert!(f.ns.tombstone(SessionId(1)).is_none());
    assert_eq!(f.ns.oldest_tombstone(), Some(WallTime(5_000)));
    let again = f.request_seq(1, 1, new_session("carol", vec![3; 64]));
    assert_eq!(again.reply, Ok(Response::SessionCreated));
    assert_eq!(
        f.request_seq(2, 9, new_session("bob", vec![2; 64])).reply,
        Err(CmdError::SessionExists(SessionId(2)))
    );
}

#[test]
fn a_barrier_bars_its_seq_and_changes_nothing_for_an_old_one() {
    let mut f = Fixture::new();
    f.request_seq(1, 1, new_session("u", vec![1; 64]))
        .reply
        .unwrap();
    let barrier = f.request_seq(1, 5, ClientOp::Barrier);
    assert_eq!(barrier.reply, Ok(Response::Noop));
    let session = f.ns.session(SessionId(1)).unwrap().clone();
    assert_eq!(session.last_seq.0, 5);
    assert_eq!(session.last_reply, Err(CmdError::Barred));
    // The barred request arrives: answered from the cache, never executed.
    let barred = f.request_seq(
        1,
        5,
        ClientOp::Open {
            path: "/x".into(),
            mode: CREATE_RW,
            events: EventMask::NONE,
        },
    );
    assert_eq!(barred.reply, Err(CmdError::Barred));
    assert!(f.ns.stat("/x").is_err());
    // A barrier at or below the last seq changes nothing.
    let before = f.ns.dump().unwrap();
    assert_eq!(
        f.request_seq(1, 3, ClientOp::Barrier).reply,
        Err(CmdError::RequestTooOld {
            seq: libpaxos_db::RequestSeq(3),
            last: libpaxos_db::RequestSeq(5)
        })
    );
    assert_eq!(
        f.request_seq(1, 5, ClientOp::Barrier).reply,
        Err(CmdError::Barred)
    );
    let after = f.ns.dump().unwrap();
    assert_eq!(after.sessions, before.sessions);
    // Unknown session.
    assert_eq!(
        f.request_seq(9, 1, ClientOp::Barrier).reply,
        Err(CmdError::UnknownSession(SessionId(9)))
    );
    // The session goes on after the barrier.
    let next = f.request_seq(
        1,
        6,
        ClientOp::Open {
            path: "/x".into(),
            mode: CREATE_RW,
            events: EventMask::NONE,
        },
    );
    assert!(next.reply.is_ok(), "{:?}", next.reply);
}

#[test]
fn sessions_of_counts_live_sessions_per_user() {
    let mut f = Fixture::new();
    for (s, user) in [(1, "a"), (2, "a"), (3, "b")] {
        f.request_seq(s, 1, new_session(user, vec![1; 64]))
            .reply
            .unwrap();
    }
    assert_eq!((f.ns.sessions_of("a"), f.ns.sessions_of("b")), (2, 1));
    assert_eq!(f.ns.sessions_of("c"), 0);
    f.request_seq(1, 2, ClientOp::EndSession).reply.unwrap();
    f.command(&Command::ExpireSession {
        session: SessionId(3),
        time: WallTime(9_000),
    });
    assert_eq!((f.ns.sessions_of("a"), f.ns.sessions_of("b")), (1, 0));
    // Rebuilt at open.
    let ns = Namespace::open(&f.db, libpaxos_db::Limits::default()).unwrap();
    assert_eq!((ns.sessions_of("a"), ns.sessions_of("b")), (1, 0));
}

#[test]
fn next_lock_delay_end_is_the_earliest_block_until_it_is_lifted() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    f.session(3);
    let mut handles = Vec::new();
    for (path, ms) in [("/a", 3_000), ("/b", 1_000)] {
        let applied = f.request(
            1,
            ClientOp::OpenWith {
                path: path.into(),
                mode: LOCKER,
                events: EventMask::NONE,
                lock_delay: Duration::from_millis(ms),
            },
        );
        let Ok(Response::Opened { handle, .. }) = applied.reply else {
            panic!("{:?}", applied.reply)
        };
        handles.push(handle);
    }
    let a = f.open(2, "/a", LOCKER, EventMask::NONE);
    let b = f.open(3, "/b", LOCKER, EventMask::NONE);
    f.lock(2, a, LockMode::Exclusive, false).reply.unwrap();
    f.lock(3, b, LockMode::Exclusive, false).reply.unwrap();
    assert_eq!(f.ns.next_lock_delay_end(), None, "nothing blocked yet");
    f.command(&Command::ExpireSession {
        session: SessionId(2),
        time: WallTime(10_000),
    });
    assert_eq!(f.ns.next_lock_delay_end(), Some(WallTime(13_000)));
    f.command(&Command::ExpireSession {
        session: SessionId(3),
        time: WallTime(11_000),
    });
    assert_eq!(f.ns.next_lock_delay_end(), Some(WallTime(12_000)));
    f.command(&Command::EndLockDelays {
        time: WallTime(12_000),
    });
    assert_eq!(f.ns.next_lock_delay_end(), Some(WallTime(13_000)));
    let ns = Namespace::open(&f.db, libpaxos_db::Limits::default()).unwrap();
    assert_eq!(
        ns.next_lock_delay_end(),
        Some(WallTime(13_000)),
        "rebuilt at open"
    );
    f.command(&Command::EndLockDelays {
        time: WallTime(13_000),
    });
    assert_eq!(f.ns.next_lock_delay_end(), None);
}

fn stored_format(dir: &std::path::Path) -> Option<u32> {
    let db = libpaxos_db::open_sled(&sled::Config::new().path(dir.join("sled"))).unwrap();
    let bytes = libpaxos_db::SledKv::unsynced(&db)
        .get("db.meta", b"format_version")
        .unwrap()?;
    Some(libpaxos_db::codec::decode::<u32>(&bytes).unwrap())
}

#[test]
fn a_store_of_format_2_written_before_values_were_tagged_is_refused_by_version() {
    // Format 2 stored sled values as they were (no tag, no chunks): its version record must
    // still read as "version 2", not as a damaged record.
    let dir = TempDir::new("format-2");
    {
        let db =
            libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
        let meta = db.open_tree("db.meta").unwrap();
        meta.insert("format_version", libpaxos_db::codec::encode(&2u32))
            .unwrap();
        db.open_tree("ns0.meta")
            .unwrap()
            .insert("meta", &[1u8][..])
            .unwrap();
        db.flush().unwrap();
    }
    let Err(err) = Database::open(DbConfig::new(dir.path())) else {
        panic!("a store of format 2 was opened");
    };
    assert!(
        matches!(err, DbError::FormatVersion { found: 2, expected } if expected == FORMAT_VERSION),
        "{err}"
    );
}

#[test]
fn a_new_store_records_its_format_version() {
    let dir = TempDir::new("format-new");
    drop(Database::open(DbConfig::new(dir.path())).unwrap());
    assert_eq!(stored_format(dir.path()), Some(FORMAT_VERSION));
    drop(Database::open(DbConfig::new(dir.path())).unwrap());
}

#[test]
fn a_store_of_another_format_version_is_refused_and_left_unchanged() {
    let dir = TempDir::new("format-other");
    {
        let (mut db, _log) = Database::open(DbConfig::new(dir.path())).unwrap();
        let c = committed(
            1,
            0,
            &Command::Client(libpaxos_db::ClientRequest {
                session: SessionId(1),
                seq: libpaxos_db::RequestSeq(1),
                time: WallTime(1),
                op: new_session("u", vec![1; 64]),
            }),
        );
        db.apply(&c).unwrap();
        db.flush().unwrap();
    }
    // Another version recorded: refused, naming both.
    {
        let db =
            libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
        let mut batch = libpaxos_db::WriteBatch::new();
        let value = libpaxos_db::codec::encode(&(FORMAT_VERSION + 1));
        batch.insert("db.meta", &b"format_version"[..], value);
        libpaxos_db::SledKv::unsynced(&db).commit(&batch).unwrap();
        db.flush().unwrap();
    }
    let Err(err) = Database::open(DbConfig::new(dir.path())) else {
        panic!("a store of another version was opened");
    };
    assert!(
        matches!(err, DbError::FormatVersion { found, expected } if found == FORMAT_VERSION + 1 && expected == FORMAT_VERSION),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("version {}", FORMAT_VERSION + 1)),
        "{message}"
    );
    assert!(
        message.contains(&format!("version {FORMAT_VERSION}")),
        "{message}"
    );
    assert_eq!(
        stored_format(dir.path()),
        Some(FORMAT_VERSION + 1),
        "not rewritten"
    );

    // No version record but data (the unversioned format 1): refused, not stamped.
    {
        let db =
            libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
        db.open_tree("db.meta")
            .unwrap()
            .remove("format_version")
            .unwrap();
        db.flush().unwrap();
    }
    let Err(err) = Database::open(DbConfig::new(dir.path())) else {
        panic!("an unversioned store was opened");
    };
    assert!(
        matches!(err, DbError::FormatVersion { found: 1, expected } if expected == FORMAT_VERSION),
        "{err}"
    );
    assert_eq!(stored_format(dir.path()), None, "not stamped");
    let db = libpaxos_db::open_sled(&sled::Config::new().path(dir.path().join("sled"))).unwrap();
    assert!(
        Namespace::open(&db, libpaxos_db::Limits::default()).is_err(),
        "Namespace::open refuses it too"
    );
}
