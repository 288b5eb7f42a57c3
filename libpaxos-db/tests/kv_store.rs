//! The storage seam: sled's and the in-memory `KvStore` pass the same conformance suite; the
//! in-memory one's crash and failure model.

mod common;

use std::path::PathBuf;

use common::TempDir;
use libpaxos_db::kv_conformance::{Harness, run_all};
use libpaxos_db::{DynKv, KvStore, MemKv, SledKv, WriteBatch};

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

/// `DynKv` over `MemKv`: the same crashes, through the erased type.
struct DynMemHarness {
    mem: MemHarness,
    current: MemKv,
}

impl Harness for DynMemHarness {
    type Store = DynKv;

    fn fresh(&mut self) -> DynKv {
        self.current = self.mem.fresh();
        DynKv::new(self.current.clone())
    }

    fn crash(&mut self, store: DynKv) -> DynKv {
        drop(store);
        self.current = self.mem.crash(self.current.clone());
        DynKv::new(self.current.clone())
    }

    fn reopen(&mut self, store: DynKv) -> DynKv {
        drop(store);
        self.current = self.mem.reopen(self.current.clone());
        DynKv::new(self.current.clone())
    }
}

/// `DynKv` over `SledKv`.
struct DynSledHarness(SledHarness);

impl Harness for DynSledHarness {
    type Store = DynKv;

    fn fresh(&mut self) -> DynKv {
        DynKv::new(self.0.fresh())
    }

    fn crash(&mut self, store: DynKv) -> DynKv {
        drop(store);
        DynKv::new(self.0.open())
    }

    fn reopen(&mut self, store: DynKv) -> DynKv {
        drop(store);
        DynKv::new(self.0.open())
    }
}

#[test]
fn dyn_kv_passes_the_conformance_suite_on_both_engines() {
    run_all(&mut DynMemHarness {
        mem: MemHarness { crashes: 0 },
        current: MemKv::new(),
    });
    run_all(&mut DynSledHarness(SledHarness {
        root: TempDir::new("kv-conformance-dyn"),
        next: 0,
        current: PathBuf::new(),
    }));
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

// ---- The Paxos log on the seam ----

mod log_on_kv {
    use super::common::TempDir;
    use libpaxos::conformance::{Harness, run_all, sample_entry};
    use libpaxos::{LogStore, Persist, Slot, Storage};
    use libpaxos_db::{KvLogStore, KvStore, MemKv, SledKv, SledLogStore};

    /// Real crashes: each keeps a different number of unsynced batches (0, 1, 2, all).
    struct MemLog {
        crashes: usize,
    }

    impl Harness for MemLog {
        type Store = KvLogStore<MemKv>;

        fn fresh(&mut self) -> Self::Store {
            KvLogStore::new(MemKv::new(), "memory")
        }

        fn crash(&mut self, store: Self::Store) -> Self::Store {
            self.crashes += 1;
            let kept = [0, 1, 2, usize::MAX][self.crashes % 4];
            KvLogStore::new(store.store().crash(kept), "memory")
        }

        fn reopen(&mut self, mut store: Self::Store) -> Self::Store {
            store.sync().expect("a clean close syncs");
            KvLogStore::new(store.store().crash(0), "memory")
        }
    }

    #[test]
    fn the_log_on_mem_kv_passes_the_libpaxos_conformance_suite() {
        run_all(&mut MemLog { crashes: 0 });
    }

    #[test]
    fn a_crash_of_the_log_on_mem_kv_loses_exactly_the_unsynced_batches() {
        let mut log = KvLogStore::new(MemKv::new(), "memory");
        let persist = |slot| Persist {
            entries: vec![sample_entry(slot, 1, slot as u8)],
            ..Persist::default()
        };
        log.write(&persist(1)).unwrap();
        log.sync().unwrap();
        log.write(&persist(2)).unwrap();
        log.write(&persist(3)).unwrap();
        let kept_one = KvLogStore::new(log.store().crash(1), "memory");
        assert_eq!(kept_one.last_slot().unwrap(), Slot(2));
    }

    struct SledLog {
        root: TempDir,
        next: u64,
    }

    impl SledLog {
        fn dir(&self) -> std::path::PathBuf {
            self.root.path().join(format!("log{}", self.next))
        }
    }

    impl Harness for SledLog {
        type Store = KvLogStore<SledKv>;

        fn fresh(&mut self) -> Self::Store {
            self.next += 1;
            KvLogStore::new(SledKv::open(&self.dir()).unwrap(), "sled")
        }

        /// sled flushes on drop: an in-process crash loses nothing (see SledHarness).
        fn crash(&mut self, store: Self::Store) -> Self::Store {
            drop(store);
            KvLogStore::new(SledKv::open(&self.dir()).unwrap(), "sled")
        }

        fn reopen(&mut self, store: Self::Store) -> Self::Store {
            self.crash(store)
        }
    }

    #[test]
    fn the_log_on_sled_kv_passes_the_libpaxos_conformance_suite() {
        run_all(&mut SledLog {
            root: TempDir::new("kv-log"),
            next: 0,
        });
    }

    #[test]
    fn a_log_written_by_sled_log_store_reads_the_same_through_the_seam() {
        let dir = TempDir::new("kv-log-compat");
        let path = dir.path().join("db");
        {
            let db = libpaxos_db::open_sled(&sled::Config::new().path(&path)).unwrap();
            let mut old = SledLogStore::open(&db, &path).unwrap();
            old.write(&Persist {
                entries: (1..=6).map(|i| sample_entry(i, 2, i as u8)).collect(),
                hard_state: Some(libpaxos::HardState::default()),
                ..Persist::default()
            })
            .unwrap();
            old.write(&Persist {
                compact_through: Some(Slot(2)),
                ..Persist::default()
            })
            .unwrap();
            old.sync().unwrap();
        }
        let kv = SledKv::open(&path).unwrap();
        let log = KvLogStore::new(kv.clone(), "sled");
        assert_eq!(log.compacted_through().unwrap(), Slot(2));
        assert_eq!(log.last_slot().unwrap(), Slot(6));
        let got = log.entries(Slot(1), Slot(6), 10).unwrap();
        let want: Vec<_> = (3..=6).map(|i| sample_entry(i, 2, i as u8)).collect();
        assert_eq!(got, want);
        assert_eq!(kv.tree_names().unwrap(), ["log", "log.meta"]);
    }
}
