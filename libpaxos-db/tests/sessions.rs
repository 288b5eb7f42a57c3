//! Session end and expiry: ephemeral nodes, handles and locks go with the session.

mod common;

use common::*;
use libpaxos_db::{
    ClientOp, CmdError, Command, EventKind, EventMask, LockMode, OpenMode, Response, SessionId,
    WallTime,
};

const EPHEMERAL: OpenMode = CREATE_RW.union(OpenMode::EPHEMERAL);

#[test]
fn ending_a_session_deletes_its_ephemeral_nodes_only() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    f.open(1, "/mine", EPHEMERAL, EventMask::NONE);
    f.open(1, "/permanent", CREATE_RW, EventMask::NONE);
    f.open(2, "/theirs", EPHEMERAL, EventMask::NONE);
    f.reply(1, ClientOp::EndSession).unwrap();
    assert_eq!(f.ns.stat("/mine"), Err(CmdError::NoSuchNode));
    assert!(f.ns.stat("/permanent").is_ok());
    assert!(f.ns.stat("/theirs").is_ok());
}

#[test]
fn expiry_deletes_ephemeral_nodes_and_tells_other_handles_and_watchers() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    f.open(1, "/e", EPHEMERAL, EventMask::NONE);
    let reader = f.open(2, "/e", OpenMode::READ, EventMask::NONE);
    let watcher = f.open(
        2,
        "/",
        OpenMode::READ | OpenMode::DIRECTORY,
        EventMask::CHILDREN,
    );
    let applied = f.command(&Command::ExpireSession {
        session: SessionId(1),
        time: WallTime(7),
    });
    assert_eq!(targets(&applied.events), [(2, reader.0), (2, watcher.0)]);
    assert_eq!(applied.events[0].event, EventKind::NodeDeleted);
    assert_eq!(
        applied.events[1].event,
        EventKind::ChildRemoved { name: "e".into() }
    );
    assert!(
        f.ns.dump()
            .unwrap()
            .handles
            .keys()
            .all(|h| h.handle != reader)
    );
}

#[test]
fn an_ephemeral_node_locked_by_another_session_is_deleted_with_its_lock() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    f.open(1, "/e", EPHEMERAL, EventMask::NONE);
    let h = f.open(2, "/e", LOCKER, EventMask::NONE);
    f.lock(2, h, LockMode::Exclusive, false).reply.unwrap();
    f.reply(1, ClientOp::EndSession).unwrap();
    assert!(f.ns.dump().unwrap().locks.is_empty());
}

#[test]
fn reopening_an_existing_node_as_ephemeral_does_not_make_it_ephemeral() {
    let mut f = Fixture::new();
    f.session(1);
    f.session(2);
    f.open(2, "/p", CREATE_RW, EventMask::NONE);
    f.open(1, "/p", EPHEMERAL, EventMask::NONE);
    f.reply(1, ClientOp::EndSession).unwrap();
    assert!(f.ns.stat("/p").is_ok());
}

#[test]
fn a_new_session_request_retried_gets_its_cached_reply() {
    let mut f = Fixture::new();
    let op = ClientOp::NewSession {
        user: "u".into(),
        lease: std::time::Duration::from_secs(3),
        keys: vec![7; 64],
    };
    assert_eq!(
        f.request_seq(1, 1, op.clone()).reply,
        Ok(Response::SessionCreated)
    );
    let retry = f.request_seq(1, 1, op);
    assert_eq!(retry.reply, Ok(Response::SessionCreated));
    assert_eq!(f.ns.counters().duplicates, 1);
}

#[test]
fn the_reply_cache_survives_a_restart() {
    let dir = TempDir::new("cache");
    let open = || libpaxos_db::open_sled(&sled::Config::new().path(dir.path())).unwrap();
    let first;
    {
        let db = open();
        let mut ns = libpaxos_db::Namespace::open(&db, Default::default()).unwrap();
        let new = Command::Client(libpaxos_db::ClientRequest {
            session: SessionId(1),
            seq: libpaxos_db::RequestSeq(1),
            time: WallTime(1),
            op: ClientOp::NewSession {
                user: "u".into(),
                lease: std::time::Duration::from_secs(3),
                keys: vec![7; 64],
            },
        });
        ns.apply(&committed(1, 0, &new)).unwrap();
        let open_cmd = Command::Client(libpaxos_db::ClientRequest {
            session: SessionId(1),
            seq: libpaxos_db::RequestSeq(2),
            time: WallTime(2),
            op: ClientOp::Open {
                path: "/f".into(),
                mode: CREATE_RW,
                events: EventMask::NONE,
            },
        });
        first = ns.apply(&committed(2, 0, &open_cmd)).unwrap().reply;
    }
    let db = open();
    let mut ns = libpaxos_db::Namespace::open(&db, Default::default()).unwrap();
    let retry = Command::Client(libpaxos_db::ClientRequest {
        session: SessionId(1),
        seq: libpaxos_db::RequestSeq(2),
        time: WallTime(3),
        op: ClientOp::Open {
            path: "/f".into(),
            mode: CREATE_RW,
            events: EventMask::NONE,
        },
    });
    assert_eq!(ns.apply(&committed(3, 0, &retry)).unwrap().reply, first);
    assert_eq!(ns.dump().unwrap().handles.len(), 1, "not opened twice");
}

#[test]
fn a_new_session_from_another_user_for_a_taken_id_is_refused_even_with_the_cached_seq() {
    let mut f = Fixture::new();
    let lease = std::time::Duration::from_secs(3);
    let alice = ClientOp::NewSession {
        user: "alice".into(),
        lease,
        keys: vec![7; 64],
    };
    let mallory = ClientOp::NewSession {
        user: "mallory".into(),
        lease,
        keys: vec![7; 64],
    };
    assert_eq!(
        f.request_seq(1, 1, alice).reply,
        Ok(Response::SessionCreated)
    );
    let theft = f.request_seq(1, 1, mallory);
    assert_eq!(theft.reply, Err(CmdError::SessionExists(SessionId(1))));
    assert_eq!(
        f.ns.session(SessionId(1)).map(|s| s.user.as_str()),
        Some("alice")
    );
    assert_eq!(f.ns.counters().duplicates, 0, "not answered from the cache");
}

#[test]
fn a_new_session_with_a_user_name_outside_1_to_32_bytes_or_with_nul_is_refused() {
    let mut f = Fixture::new();
    let lease = std::time::Duration::from_secs(3);
    for (s, user) in [
        (1, String::new()),
        (2, "x".repeat(33)),
        (3, "a\0b".to_string()),
    ] {
        let reply = f
            .request_seq(
                s,
                1,
                ClientOp::NewSession {
                    user,
                    lease,
                    keys: vec![7; 64],
                },
            )
            .reply;
        assert_eq!(reply, Err(CmdError::BadUserName), "session {s}");
        assert!(f.ns.session(SessionId(s)).is_none());
    }
    let longest = "x".repeat(32);
    let reply = f
        .request_seq(
            4,
            1,
            ClientOp::NewSession {
                user: longest,
                lease,
                keys: vec![7; 64],
            },
        )
        .reply;
    assert_eq!(reply, Ok(Response::SessionCreated));
}
