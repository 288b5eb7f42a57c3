//! Test fixtures: a namespace on a temporary sled database fed commands slot by slot.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libpaxos::{Committed, Epoch, Payload, Slot, Value};
use libpaxos_db::{
    Applied, ClientOp, ClientRequest, Command, EventMask, HandleId, Limits, LockMode, Namespace,
    Notice, OpenMode, Reply, RequestSeq, Response, SessionId, WallTime,
};

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("libpaxos-db-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_db() -> sled::Db {
    sled::Config::new()
        .temporary(true)
        .open()
        .expect("open temporary sled")
}

pub fn committed(slot: u64, epoch: u64, command: &Command) -> Committed {
    Committed {
        slot: Slot(slot),
        value: Value {
            epoch: Epoch(epoch),
            payload: Payload::Command(command.encode().into()),
        },
    }
}

pub const RW: OpenMode = OpenMode::READ.union(OpenMode::WRITE);
pub const CREATE_RW: OpenMode = RW.union(OpenMode::CREATE);
pub const LOCKER: OpenMode = OpenMode::READ.union(OpenMode::LOCK).union(OpenMode::CREATE);

/// A namespace and the next slot to apply; every client gets seqs counted per session.
pub struct Fixture {
    pub db: sled::Db,
    pub ns: Namespace,
    pub epoch: u64,
    pub time: u64,
    seqs: std::collections::BTreeMap<SessionId, u64>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Fixture {
        let db = temp_db();
        let ns = Namespace::open(&db, limits).expect("open namespace");
        Fixture {
            db,
            ns,
            epoch: 0,
            time: 1_000,
            seqs: Default::default(),
        }
    }

    pub fn next_slot(&self) -> u64 {
        self.ns.applied().0 + 1
    }

    pub fn command(&mut self, command: &Command) -> Applied {
        let c = committed(self.next_slot(), self.epoch, command);
        self.ns.apply(&c).expect("apply")
    }

    /// Sends `op` as the next request of session `s`.
    pub fn request(&mut self, s: u64, op: ClientOp) -> Applied {
        let seq = self.seqs.entry(SessionId(s)).or_insert(0);
        *seq += 1;
        let seq = *seq;
        self.request_seq(s, seq, op)
    }

    /// Sends `op` with an explicit seq (for retries).
    pub fn request_seq(&mut self, s: u64, seq: u64, op: ClientOp) -> Applied {
        self.time += 1;
        let command = Command::Client(ClientRequest {
            session: SessionId(s),
            seq: RequestSeq(seq),
            time: WallTime(self.time),
            op,
        });
        self.command(&command)
    }

    pub fn reply(&mut self, s: u64, op: ClientOp) -> Reply {
        self.request(s, op).reply
    }

    pub fn session(&mut self, s: u64) {
        let reply = self.reply(
            s,
            ClientOp::NewSession {
                user: format!("user{s}"),
                lease: Duration::from_secs(12),
                keys: vec![s as u8; 64],
            },
        );
        assert_eq!(reply, Ok(Response::SessionCreated));
    }

    pub fn open(&mut self, s: u64, path: &str, mode: OpenMode, events: EventMask) -> HandleId {
        match self.reply(
            s,
            ClientOp::Open {
                path: path.into(),
                mode,
                events,
            },
        ) {
            Ok(Response::Opened { handle, .. }) => handle,
            other => panic!("open {path} failed: {other:?}"),
        }
    }

    pub fn mkdir(&mut self, s: u64, path: &str) -> HandleId {
        self.open(
            s,
            path,
            OpenMode::READ | OpenMode::CREATE | OpenMode::DIRECTORY,
            EventMask::NONE,
        )
    }

    pub fn put(&mut self, s: u64, handle: HandleId, data: &[u8]) -> Reply {
        self.reply(
            s,
            ClientOp::Put {
                handle,
                data: data.to_vec(),
                cas: None,
            },
        )
    }

    pub fn lock(&mut self, s: u64, handle: HandleId, mode: LockMode, wait: bool) -> Applied {
        self.request(s, ClientOp::Lock { handle, mode, wait })
    }

    pub fn unlock(&mut self, s: u64, handle: HandleId) -> Applied {
        self.request(s, ClientOp::Unlock { handle })
    }

    pub fn noop(&mut self, epoch: u64) -> Applied {
        let c = Committed {
            slot: Slot(self.next_slot()),
            value: Value {
                epoch: Epoch(epoch),
                payload: Payload::Noop,
            },
        };
        self.ns.apply(&c).expect("apply noop")
    }
}

/// The (session, handle) pairs events went to, with the event, for compact assertions.
pub fn targets(events: &[Notice]) -> Vec<(u64, u64)> {
    events
        .iter()
        .map(|n| (n.to.session.0, n.to.handle.0))
        .collect()
}
