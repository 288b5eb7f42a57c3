//! A failed sync is fatal and distinct: the glue reports `GlueError::SyncFailed` (never a
//! retryable storage error), counts it, and the sled store refuses every later write and sync
//! without trying again.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::TempDir;
use libpaxos::{
    Config, Entry, HardState, LogStore, MemStorage, NodeId, Persist, Role, Slot, Storage,
    StorageError, Time,
};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, DbReplica, GlueError, RequestSeq,
    SessionId, WallTime,
};

/// `MemStorage` whose `sync` fails once `fail` is set (writes still succeed).
struct FailingSync {
    inner: MemStorage,
    fail: Rc<Cell<bool>>,
}

impl Storage for FailingSync {
    fn hard_state(&self) -> Result<HardState, StorageError> {
        self.inner.hard_state()
    }
    fn compacted_through(&self) -> Result<Slot, StorageError> {
        self.inner.compacted_through()
    }
    fn last_slot(&self) -> Result<Slot, StorageError> {
        self.inner.last_slot()
    }
    fn entry(&self, slot: Slot) -> Result<Option<Entry>, StorageError> {
        self.inner.entry(slot)
    }
    fn entries(&self, from: Slot, to: Slot, max: usize) -> Result<Vec<Entry>, StorageError> {
        self.inner.entries(from, to, max)
    }
}

impl LogStore for FailingSync {
    fn write(&mut self, batch: &Persist) -> Result<(), StorageError> {
        self.inner.write(batch)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        if self.fail.get() {
            return Err(StorageError::Io("fsync: EIO (injected)".into()));
        }
        self.inner.sync()
    }
}

fn session(id: u64) -> Command {
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

#[test]
fn a_failed_log_sync_is_the_fatal_sync_failed_error_and_is_counted() {
    let dir = TempDir::new("sync-failure");
    let (db, _) = Database::open(DbConfig::new(dir.path())).expect("open");
    let fail = Rc::new(Cell::new(false));
    let store = FailingSync {
        inner: MemStorage::new(),
        fail: fail.clone(),
    };
    let mut node = DbReplica::new(
        Config::new(NodeId(1), vec![NodeId(1)]),
        db,
        store,
        Time::ZERO,
    )
    .expect("start");
    let mut now = Time::ZERO;
    while !matches!(node.replica().role(), Role::Master { .. }) {
        now = now + Duration::from_millis(5);
        assert!(now < Time(Duration::from_secs(5)), "no master");
        node.on_tick(now).expect("tick");
        while node.drive(now).expect("drive").performed {}
    }
    fail.set(true);
    node.propose(now, &session(1)).expect("propose");
    let err = node.drive(now).expect_err("the sync fails");
    assert!(matches!(err, GlueError::SyncFailed(_)), "got {err:?}");
    assert!(err.is_fatal());
    assert!(err.to_string().contains("never retried"), "{err}");
    assert!(err.to_string().contains("EIO (injected)"), "{err}");
    assert_eq!(node.counters().sync_failures, 1);
}

#[test]
fn the_sled_store_refuses_writes_after_a_failed_sync() {
    let dir = TempDir::new("sync-failure-sled");
    let sled_dir = dir.path().join("sled");
    let db = libpaxos_db::open_sled(&sled::Config::new().path(&sled_dir)).expect("sled");
    // The store fsyncs files of another directory, where sled's data file does not exist.
    let wrong = dir.path().join("wrong");
    std::fs::create_dir_all(&wrong).expect("dir");
    let mut store = libpaxos_db::SledLogStore::open(&db, &wrong).expect("store");
    store.write(&Persist::default()).expect("write before");
    let first = store.sync().expect_err("fsync fails");
    assert!(first.to_string().contains("fatal"), "{first}");
    std::fs::write(wrong.join("db"), b"").expect("the cause goes away");
    assert_eq!(store.sync(), Err(first.clone()), "not retried");
    assert_eq!(
        store.write(&Persist::default()),
        Err(first),
        "no more writes"
    );
    assert_eq!(store.sync_counters().failures, 1);
    assert_eq!(store.counters().io_failures, 3);
}

#[test]
fn files_sled_refuses_to_open_are_an_error_naming_the_directory() {
    let dir = TempDir::new("open-refused");
    let held = Database::open(DbConfig::new(dir.path())).expect("first open");
    // A second open of the same files (here: their lock is held) is refused by sled.
    let err = match Database::open(DbConfig::new(dir.path())) {
        Err(err) => err,
        Ok(_) => panic!("the second open succeeded"),
    };
    let sled_dir = dir.path().join("sled");
    assert!(
        matches!(&err, libpaxos_db::DbError::OpenFailed { dir, .. } if *dir == sled_dir),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&sled_dir.display().to_string()),
        "{message}"
    );
    assert!(message.contains("Rebuilding a member"), "{message}");
    drop(held);
}
