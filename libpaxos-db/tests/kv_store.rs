//! The storage seam: sled's and the in-memory `KvStore` pass the same conformance suite; the
//! in-memory one's crash and failure model.

mod common;

use std::path::PathBuf;

use common::TempDir;
use libpaxos_db::kv_conformance::{Harness, run_all};
use libpaxos_db::{KvStore, MemKv, SledKv, WriteBatch};

struct SledHarness {
    root: TempDir,
    next: u64,
    current: PathBuf,
}

impl SledHarness {
    fn open(&self) -> SledKv {
        SledKv::open(&self.current).expect("open sled")
    }
}

impl Harness for SledHarness {
    type Store = SledKv;

    fn fresh(&mut self) -> SledKv {
        self.next += 1;
        self.current = self.root.path().join(format!("kv{}", self.next));
        self.open()
    }

    /// sled flushes when its last handle drops, so an in-process crash cannot lose unsynced
    /// writes (tests/crash.rs kills a child process for that): drop and reopen.
    fn crash(&mut self, store: SledKv) -> SledKv {
        drop(store);
        self.open()
    }

    fn reopen(&mut self, store: SledKv) -> SledKv {
        drop(store);
        self.open()
    }
}

/// Crashes keep 0, 1, 2, ... unsynced batches in turn, so the suite sees losses of every size.
struct MemHarness {
    crashes: usize,
}

impl Harness for MemHarness {
    type Store = MemKv;

    fn fresh(&mut self) -> MemKv {
        MemKv::new()
    }

    fn crash(&mut self, store: MemKv) -> MemKv {
        self.crashes += 1;
        store.crash(self.crashes % 4)
    }

    fn reopen(&mut self, store: MemKv) -> MemKv {
        store.sync().expect("a clean close syncs");
        store.crash(0)
    }
}

#[test]
fn sled_kv_passes_the_conformance_suite() {
    run_all(&mut SledHarness {
        root: TempDir::new("kv-conformance"),
        next: 0,
        current: PathBuf::new(),
    });
}

#[test]
fn mem_kv_passes_the_conformance_suite() {
    run_all(&mut MemHarness { crashes: 0 });
}

fn put(store: &MemKv, key: u8) {
    let mut batch = WriteBatch::new();
    batch.insert("t", vec![key], vec![key]);
    store.commit(&batch).unwrap();
}

fn keys(store: &MemKv) -> Vec<u8> {
    use std::ops::Bound::Unbounded;
    store
        .range("t", Unbounded, Unbounded, 100)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k[0])
        .collect()
}

#[test]
fn a_crash_loses_what_was_not_synced() {
    let store = MemKv::new();
    put(&store, 1);
    store.sync().unwrap();
    put(&store, 2);
    put(&store, 3);
    assert_eq!(store.unsynced(), 2);
    assert_eq!(keys(&store.crash(0)), [1]);
}

#[test]
fn a_crash_may_keep_a_prefix_of_the_unsynced_batches() {
    let store = MemKv::new();
    put(&store, 1);
    store.sync().unwrap();
    put(&store, 2);
    put(&store, 3);
    assert_eq!(keys(&store.crash(1)), [1, 2]);
    let store = MemKv::new();
    put(&store, 1);
    put(&store, 2);
    assert_eq!(keys(&store.crash(9)), [1, 2]);
}

#[test]
fn a_crashed_handle_writes_nothing() {
    let store = MemKv::new();
    let other = store.clone();
    let after = store.crash(0);
    let mut batch = WriteBatch::new();
    batch.insert("t", vec![1], vec![1]);
    let err = other.commit(&batch).unwrap_err();
    assert!(err.to_string().contains("crashed"), "{err}");
    assert!(after.get("t", &[1]).unwrap().is_none());
    assert_eq!(other.counters().failures, 1);
}

#[test]
fn a_failing_disk_fails_every_call_and_a_failed_sync_is_fatal() {
    let store = MemKv::new();
    put(&store, 1);
    store.set_failing(true);
    assert!(store.get("t", &[1]).is_err());
    let mut batch = WriteBatch::new();
    batch.insert("t", vec![2], vec![2]);
    assert!(store.commit(&batch).is_err());
    assert!(store.sync().is_err());
    store.set_failing(false);
    let err = store.sync().unwrap_err();
    assert!(err.to_string().contains("earlier sync failed"), "{err}");
    assert_eq!(store.counters().failures, 4);
    // The failed commit left nothing behind; what survives is what the crash keeps.
    assert_eq!(keys(&store.crash(9)), [1]);
}
