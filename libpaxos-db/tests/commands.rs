//! One test per command and per command error.

mod common;

use std::time::Duration;

use common::*;
use libpaxos::{Committed, Epoch, Payload, Slot, Value};
use libpaxos_db::{
    ClientOp, CmdError, Command, ContentGeneration, EventKind, EventMask, HandleId, Limits,
    ModeRule, NodeKind, OpenMode, PathError, Permission, ReadError, RequestSeq, Response,
    SessionId, WallTime,
};

fn open_reply(f: &mut Fixture, s: u64, path: &str, mode: OpenMode) -> Result<Response, CmdError> {
    f.reply(
        s,
        ClientOp::Open {
            path: path.into(),
            mode,
            events: EventMask::NONE,
        },
    )
}

#[test]
fn new_session_creates_a_session_with_the_request_time() {
    let mut f = Fixture::new();
    f.session(1);
    let session = f.ns.session(SessionId(1)).expect("session exists");
    assert_eq!(session.user, "user1");
    assert_eq!(session.lease, Duration::from_secs(12));
    assert_eq!(session.created, WallTime(1_001));
}

#[test]
fn new_session_for_an_existing_session_is_refused() {
    let mut f = Fixture::new();
    f.session(1);
    let reply = f.reply(
        1,
        ClientOp::NewSession {
            user: "x".into(),
            lease: Duration::from_secs(1),
            keys: vec![7; 64],
        },
    );
    assert_eq!(reply, Err(CmdError::SessionExists(SessionId(1))));
}

#[test]
fn sessions_beyond_the_limit_are_refused() {
    let mut f = Fixture::with_limits(Limits {
        max_sessions: 2,
        ..Limits::default()
    });
    f.session(1);
    f.session(2);
    let reply = f.reply(
        3,
        ClientOp::NewSession {
            user: "x".into(),
            lease: Duration::from_secs(1),
            keys: vec![7; 64],
        },
    );
    assert_eq!(reply, Err(CmdError::TooManySessions(2)));
}

#[test]
fn requests_of_an_unknown_session_are_refused() {
    let mut f = Fixture::new();
    assert_eq!(
        f.reply(
            9,
            ClientOp::Close {
                handle: HandleId(1)
            }
        ),
        Err(CmdError::UnknownSession(SessionId(9)))
    );
}

#[test]
fn end_session_removes_the_session_and_its_handles() {
    let mut f = Fixture::new();
    f.session(1);
    f.open(1, "/f", CREATE_RW, EventMask::NONE);
    assert_eq!(f.reply(1, ClientOp::EndSession), Ok(Response::SessionEnded));
    assert!(f.ns.session(SessionId(1)).is_none());
    let dump = f.ns.dump().unwrap();
    assert!(dump.handles.is_empty());
    assert!(dump.nodes.contains_key("/f"), "permanent nodes stay");
}

#[test]
fn expire_session_ends_the_session() {
    let mut f = Fixture::new();
    f.session(1);
    let applied = f.command(&Command::ExpireSession {
        session: SessionId(1),
        time: WallTime(5),
    });
    assert_eq!(applied.reply, Ok(Response::SessionEnded));
    assert!(f.ns.session(SessionId(1)).is_none());
    let again = f.command(&Command::ExpireSession {
        session: SessionId(1),
        time: WallTime(6),
    });
    assert_eq!(again.reply, Err(CmdError::UnknownSession(SessionId(1))));
}

#[test]
fn open_with_create_makes_a_file_with_a_fresh_instance_and_the_command_time() {
    let mut f = Fixture::new();
    f.session(1);
    let Ok(Response::Opened {
        handle,
        created,
        node,
    }) = open_reply(&mut f, 1, "/f", CREATE_RW)
    else {
        panic!("open failed")
    };
    assert_eq!(handle, HandleId(1));
    assert!(created);
    assert_eq!(node.kind, NodeKind::File);
    assert_eq!(node.instance.0, 2, "root is instance 1");
    assert_eq!(node.created, WallTime(1_002));
    assert_eq!(node.size, 0);
}

#[test]
fn open_of_an_existing_node_does_not_create() {
    let mut f = Fixture::new();
    f.session(1);
    f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let Ok(Response::Opened {
        handle, created, ..
    }) = open_reply(&mut f, 1, "/f", RW)
    else {
        panic!("open failed")
    };
    assert_eq!(handle, HandleId(2));
    assert!(!created);
}

#[test]
fn open_with_directory_creates_a_directory() {
    let mut f = Fixture::new();
    f.session(1);
    f.mkdir(1, "/d");
    assert_eq!(f.ns.stat("/d").unwrap().kind, NodeKind::Directory);
}

#[test]
fn open_refuses_each_bad_path_rule() {
    let mut f = Fixture::new();
    f.session(1);
    for (path, err) in [
        ("", PathError::Empty),
        ("f", PathError::NotAbsolute),
        ("/f/", PathError::TrailingSlash),
        ("/a//b", PathError::DoubleSlash),
        ("/a/..", PathError::DotComponent),
        ("/a\0", PathError::Nul),
    ] {
        assert_eq!(
            open_reply(&mut f, 1, path, CREATE_RW),
            Err(CmdError::BadPath(err))
        );
    }
    let long = format!("/{}", "x".repeat(300));
    assert_eq!(
        open_reply(&mut f, 1, &long, CREATE_RW),
        Err(CmdError::BadPath(PathError::TooLong(301)))
    );
}

#[test]
fn open_refuses_each_contradictory_mode() {
    let mut f = Fixture::new();
    f.session(1);
    for (mode, rule) in [
        (OpenMode::EXCLUSIVE, ModeRule::ExclusiveWithoutCreate),
        (OpenMode::EPHEMERAL, ModeRule::EphemeralWithoutCreate),
        (
            OpenMode::CREATE | OpenMode::EPHEMERAL | OpenMode::DIRECTORY,
            ModeRule::EphemeralDirectory,
        ),
        (
            OpenMode::WRITE | OpenMode::DIRECTORY,
            ModeRule::WriteDirectory,
        ),
    ] {
        assert_eq!(
            open_reply(&mut f, 1, "/x", mode),
            Err(CmdError::BadMode(rule))
        );
    }
}

#[test]
fn open_without_create_of_a_missing_node_fails() {
    let mut f = Fixture::new();
    f.session(1);
    assert_eq!(
        open_reply(&mut f, 1, "/nope", RW),
        Err(CmdError::NoSuchNode)
    );
}

#[test]
fn exclusive_create_of_an_existing_node_fails() {
    let mut f = Fixture::new();
    f.session(1);
    f.open(1, "/f", CREATE_RW, EventMask::NONE);
    assert_eq!(
        open_reply(&mut f, 1, "/f", CREATE_RW | OpenMode::EXCLUSIVE),
        Err(CmdError::Exists)
    );
}

#[test]
fn create_needs_an_existing_parent() {
    let mut f = Fixture::new();
    f.session(1);
    assert_eq!(
        open_reply(&mut f, 1, "/missing/f", CREATE_RW),
        Err(CmdError::ParentMissing)
    );
}

#[test]
fn create_under_a_file_fails() {
    let mut f = Fixture::new();
    f.session(1);
    f.open(1, "/file", CREATE_RW, EventMask::NONE);
    assert_eq!(
        open_reply(&mut f, 1, "/file/child", CREATE_RW),
        Err(CmdError::ParentNotDirectory)
    );
}

#[test]
fn open_checks_the_directory_flag_against_the_node() {
    let mut f = Fixture::new();
    f.session(1);
    f.open(1, "/file", CREATE_RW, EventMask::NONE);
    f.mkdir(1, "/dir");
    assert_eq!(
        open_reply(&mut f, 1, "/file", OpenMode::READ | OpenMode::DIRECTORY),
        Err(CmdError::NotADirectory)
    );
    assert_eq!(
        open_reply(&mut f, 1, "/dir", RW),
        Err(CmdError::IsADirectory)
    );
}

#[test]
fn handles_beyond_the_limit_are_refused() {
    let mut f = Fixture::with_limits(Limits {
        max_handles_per_session: 2,
        ..Limits::default()
    });
    f.session(1);
    f.open(1, "/a", CREATE_RW, EventMask::NONE);
    f.open(1, "/a", RW, EventMask::NONE);
    assert_eq!(
        open_reply(&mut f, 1, "/a", RW),
        Err(CmdError::TooManyHandles(2))
    );
}

#[test]
fn close_removes_the_handle() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    assert_eq!(
        f.reply(1, ClientOp::Close { handle: h }),
        Ok(Response::Closed)
    );
    assert_eq!(
        f.reply(1, ClientOp::Close { handle: h }),
        Err(CmdError::UnknownHandle(h))
    );
}

#[test]
fn put_replaces_contents_and_bumps_generation_size_checksum_and_mtime() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let Ok(Response::Written { node }) = f.put(1, h, b"hello") else {
        panic!("put failed")
    };
    assert_eq!(node.content_generation, ContentGeneration(1));
    assert_eq!(node.size, 5);
    assert_eq!(node.checksum, libpaxos_db::Checksum::of(b"hello"));
    assert_eq!(node.modified, WallTime(f.time));
    let (stat, data) = f.ns.read(SessionId(1), h).unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(stat, node);
}

#[test]
fn put_needs_write_mode() {
    let mut f = Fixture::new();
    f.session(1);
    f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let h = f.open(1, "/f", OpenMode::READ, EventMask::NONE);
    assert_eq!(
        f.put(1, h, b"x"),
        Err(CmdError::ModeForbids(Permission::Write))
    );
}

#[test]
fn read_needs_read_mode() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/f", OpenMode::WRITE | OpenMode::CREATE, EventMask::NONE);
    assert!(matches!(
        f.ns.read(SessionId(1), h),
        Err(ReadError::Cmd(CmdError::ModeForbids(Permission::Read)))
    ));
}

#[test]
fn put_larger_than_the_limit_fails_and_the_limit_is_configurable() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    assert!(f.put(1, h, &vec![0; 128 * 1024]).is_ok());
    assert_eq!(
        f.put(1, h, &vec![0; 128 * 1024 + 1]),
        Err(CmdError::FileTooLarge {
            size: 128 * 1024 + 1,
            limit: 128 * 1024
        })
    );
    let mut big = Fixture::with_limits(Limits {
        max_file_size: 256 * 1024,
        ..Limits::default()
    });
    big.session(1);
    let h = big.open(1, "/f", CREATE_RW, EventMask::NONE);
    assert!(big.put(1, h, &vec![0; 256 * 1024]).is_ok());
}

#[test]
fn the_file_size_limit_cannot_exceed_256_kib() {
    let limits = Limits {
        max_file_size: 256 * 1024 + 1,
        ..Limits::default()
    };
    assert_eq!(
        limits.validate(),
        Err(libpaxos_db::ConfigError::FileSizeCeiling(256 * 1024 + 1))
    );
}

#[test]
fn put_with_matching_cas_succeeds_and_with_a_stale_one_fails() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let cas = |g| ClientOp::Put {
        handle: h,
        data: b"v".to_vec(),
        cas: Some(ContentGeneration(g)),
    };
    assert!(matches!(f.reply(1, cas(0)), Ok(Response::Written { .. })));
    assert_eq!(
        f.reply(1, cas(0)),
        Err(CmdError::CasConflict {
            expected: ContentGeneration(0),
            actual: ContentGeneration(1)
        })
    );
    assert!(matches!(f.reply(1, cas(1)), Ok(Response::Written { .. })));
}

#[test]
fn delete_removes_the_node_and_its_contents() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    f.put(1, h, b"data").unwrap();
    assert_eq!(
        f.reply(1, ClientOp::Delete { path: "/f".into() }),
        Ok(Response::Deleted)
    );
    assert_eq!(f.ns.stat("/f"), Err(CmdError::NoSuchNode));
    let dump = f.ns.dump().unwrap();
    assert!(!dump.nodes.contains_key("/f"));
    assert!(dump.handles.is_empty(), "deleting closes the handles on it");
}

#[test]
fn delete_of_a_missing_node_fails() {
    let mut f = Fixture::new();
    f.session(1);
    assert_eq!(
        f.reply(1, ClientOp::Delete { path: "/x".into() }),
        Err(CmdError::NoSuchNode)
    );
}

#[test]
fn delete_of_the_root_fails() {
    let mut f = Fixture::new();
    f.session(1);
    assert_eq!(
        f.reply(1, ClientOp::Delete { path: "/".into() }),
        Err(CmdError::RootImmutable)
    );
}

#[test]
fn delete_of_a_directory_with_children_fails() {
    let mut f = Fixture::new();
    f.session(1);
    f.mkdir(1, "/d");
    f.open(1, "/d/f", CREATE_RW, EventMask::NONE);
    assert_eq!(
        f.reply(1, ClientOp::Delete { path: "/d".into() }),
        Err(CmdError::DirectoryNotEmpty)
    );
    f.reply(
        1,
        ClientOp::Delete {
            path: "/d/f".into(),
        },
    )
    .unwrap();
    assert_eq!(
        f.reply(1, ClientOp::Delete { path: "/d".into() }),
        Ok(Response::Deleted)
    );
}

#[test]
fn delete_with_a_bad_path_fails() {
    let mut f = Fixture::new();
    f.session(1);
    assert_eq!(
        f.reply(1, ClientOp::Delete { path: "/d/".into() }),
        Err(CmdError::BadPath(PathError::TrailingSlash))
    );
}

#[test]
fn list_returns_sorted_children_with_metadata_only_one_level_deep() {
    let mut f = Fixture::new();
    f.session(1);
    f.mkdir(1, "/d");
    for name in ["/d/b", "/d/a", "/d/a-z"] {
        f.open(1, name, CREATE_RW, EventMask::NONE);
    }
    f.mkdir(1, "/d/c");
    f.open(1, "/d/c/deep", CREATE_RW, EventMask::NONE);
    let h = f.mkdir(1, "/d");
    let names: Vec<String> =
        f.ns.list(SessionId(1), h)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
    assert_eq!(names, ["a", "a-z", "b", "c"]);
}

#[test]
fn a_noop_command_changes_only_the_applied_index() {
    let mut f = Fixture::new();
    let before = f.ns.dump().unwrap();
    let applied = f.command(&Command::Noop);
    assert_eq!(applied.reply, Ok(Response::Noop));
    let after = f.ns.dump().unwrap();
    assert_eq!(after.applied, Slot(1));
    assert_eq!(after.nodes, before.nodes);
}

#[test]
fn undecodable_command_bytes_are_a_malformed_command_reply() {
    let mut f = Fixture::new();
    let applied =
        f.ns.apply(&Committed {
            slot: Slot(1),
            value: Value {
                epoch: Epoch(0),
                payload: Payload::Command(vec![0xff, 0xff, 0xff].into()),
            },
        })
        .unwrap();
    assert_eq!(applied.reply, Err(CmdError::MalformedCommand));
    assert_eq!(f.ns.applied(), Slot(1));
    assert_eq!(f.ns.counters().errors.get("malformed_command"), Some(&1));
}

#[test]
fn a_noop_payload_raises_the_epoch_and_stale_commands_are_refused() {
    let mut f = Fixture::new();
    f.session(1);
    f.noop(5);
    assert_eq!(f.ns.epoch(), Epoch(5));
    f.epoch = 4;
    let before = f.ns.dump().unwrap();
    let applied = f.request(
        1,
        ClientOp::Open {
            path: "/f".into(),
            mode: CREATE_RW,
            events: EventMask::NONE,
        },
    );
    assert_eq!(
        applied.reply,
        Err(CmdError::StaleEpoch {
            command: 4,
            current: 5
        })
    );
    let after = f.ns.dump().unwrap();
    assert_eq!(after.nodes, before.nodes);
    assert_eq!(
        after.sessions, before.sessions,
        "not even the reply cache changes"
    );
    assert_eq!(after.applied, before.applied.next());
}

#[test]
fn a_noop_with_a_lower_epoch_does_not_lower_it() {
    let mut f = Fixture::new();
    f.noop(5);
    f.noop(3);
    assert_eq!(f.ns.epoch(), Epoch(5));
}

#[test]
fn slots_must_be_applied_in_order() {
    let mut f = Fixture::new();
    let err =
        f.ns.apply(&committed(2, 0, &Command::Noop))
            .expect_err("slot 2 before slot 1");
    assert!(matches!(
        err,
        libpaxos_db::DbError::ApplyOutOfOrder {
            expected: Slot(1),
            got: Slot(2)
        }
    ));
    assert_eq!(f.ns.counters().refused_batches, 1, "the refusal is counted");
    assert_eq!(f.ns.counters().applied, 0);
}

#[test]
fn a_retried_request_gets_the_cached_reply_without_executing_again() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let first = f.request(
        1,
        ClientOp::Put {
            handle: h,
            data: b"x".to_vec(),
            cas: None,
        },
    );
    let seq = 3;
    let retry = f.request_seq(
        1,
        seq,
        ClientOp::Put {
            handle: h,
            data: b"x".to_vec(),
            cas: None,
        },
    );
    assert_eq!(retry.reply, first.reply);
    assert_eq!(
        f.ns.stat("/f").unwrap().content_generation,
        ContentGeneration(1),
        "executed once"
    );
    assert_eq!(f.ns.counters().duplicates, 1);
}

#[test]
fn a_request_older_than_the_last_is_refused() {
    let mut f = Fixture::new();
    f.session(1);
    f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let applied = f.request_seq(1, 1, ClientOp::EndSession);
    assert_eq!(
        applied.reply,
        Err(CmdError::RequestTooOld {
            seq: RequestSeq(1),
            last: RequestSeq(2)
        })
    );
    assert!(f.ns.session(SessionId(1)).is_some());
}

#[test]
fn creating_and_deleting_tell_the_parents_watchers() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    let watch = f.open(
        2,
        "/",
        OpenMode::READ | OpenMode::DIRECTORY,
        EventMask::CHILDREN,
    );
    let created = f.request(
        1,
        ClientOp::Open {
            path: "/f".into(),
            mode: CREATE_RW,
            events: EventMask::NONE,
        },
    );
    assert_eq!(targets(&created.events), [(2, watch.0)]);
    assert_eq!(
        created.events[0].event,
        EventKind::ChildAdded { name: "f".into() }
    );
    let deleted = f.request(1, ClientOp::Delete { path: "/f".into() });
    assert_eq!(
        deleted.events.last().map(|n| n.event.clone()),
        Some(EventKind::ChildRemoved { name: "f".into() })
    );
}

#[test]
fn put_tells_handles_that_asked_for_modifications() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    let writer = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let watcher = f.open(2, "/f", OpenMode::READ, EventMask::MODIFIED);
    let _quiet = f.open(2, "/f", OpenMode::READ, EventMask::NONE);
    let applied = f.request(
        1,
        ClientOp::Put {
            handle: writer,
            data: b"x".to_vec(),
            cas: None,
        },
    );
    assert_eq!(targets(&applied.events), [(2, watcher.0)]);
    assert_eq!(applied.events[0].event, EventKind::ContentModified);
}

#[test]
fn delete_tells_every_handle_on_the_node_regardless_of_mask() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    let a = f.open(1, "/f", CREATE_RW, EventMask::NONE);
    let b = f.open(2, "/f", OpenMode::READ, EventMask::NONE);
    let applied = f.request(1, ClientOp::Delete { path: "/f".into() });
    assert_eq!(targets(&applied.events), [(1, a.0), (2, b.0)]);
    assert!(
        applied
            .events
            .iter()
            .all(|n| n.event == EventKind::NodeDeleted)
    );
}

#[test]
fn lock_limits_that_could_outgrow_a_snapshot_record_are_refused() {
    let waiters = Limits {
        max_waiters_per_lock: 15_001,
        ..Limits::default()
    };
    assert_eq!(
        waiters.validate(),
        Err(libpaxos_db::ConfigError::LockPartiesCeiling {
            name: "max_waiters_per_lock",
            value: 15_001
        })
    );
    let holders = Limits {
        max_holders_per_lock: 15_001,
        ..Limits::default()
    };
    assert_eq!(
        holders.validate(),
        Err(libpaxos_db::ConfigError::LockPartiesCeiling {
            name: "max_holders_per_lock",
            value: 15_001
        })
    );
    let largest = Limits {
        max_waiters_per_lock: 15_000,
        max_holders_per_lock: 15_000,
        ..Limits::default()
    };
    assert_eq!(largest.validate(), Ok(()));
}

#[test]
fn a_stale_expiry_changes_nothing_but_the_applied_index() {
    let mut f = Fixture::new();
    f.session(1);
    let h = f.open(
        1,
        "/e",
        CREATE_RW.union(OpenMode::EPHEMERAL),
        EventMask::NONE,
    );
    f.put(1, h, b"x").unwrap();
    f.noop(5);
    f.epoch = 4;
    let before = f.ns.dump().unwrap();
    let applied = f.command(&Command::ExpireSession {
        session: SessionId(1),
        time: WallTime(9),
    });
    assert_eq!(
        applied.reply,
        Err(CmdError::StaleEpoch {
            command: 4,
            current: 5
        })
    );
    assert!(applied.events.is_empty());
    let after = f.ns.dump().unwrap();
    assert_eq!(after.applied, before.applied.next());
    assert_eq!(
        libpaxos_db::Dump {
            applied: after.applied,
            ..before
        },
        after
    );
}

#[test]
fn a_zero_epoch_hole_filler_neither_raises_nor_lowers_the_epoch() {
    let mut f = Fixture::new();
    f.noop(0);
    assert_eq!(f.ns.epoch(), Epoch(0), "does not raise");
    f.noop(7);
    f.noop(0);
    assert_eq!(f.ns.epoch(), Epoch(7), "does not lower");
    f.epoch = 7;
    f.session(1);
}
