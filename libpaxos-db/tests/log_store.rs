//! The sled log store: libpaxos's conformance suite, and corruption handling.

mod common;

use std::path::PathBuf;

use common::TempDir;
use libpaxos::conformance::{Harness, run_all, sample_entry};
use libpaxos::{LogStore, Persist, Slot, Storage, StorageError};
use libpaxos_db::{KvStore, SledKv, SledLogStore, WriteBatch};

struct SledHarness {
    root: TempDir,
    next: u64,
    current: PathBuf,
}

impl SledHarness {
    fn open(&self) -> SledLogStore {
        let db =
            libpaxos_db::open_sled(&sled::Config::new().path(&self.current)).expect("open sled");
        SledLogStore::open(&db, &self.current).expect("open log store")
    }
}

impl Harness for SledHarness {
    type Store = SledLogStore;

    fn fresh(&mut self) -> SledLogStore {
        self.next += 1;
        self.current = self.root.path().join(format!("db{}", self.next));
        self.open()
    }

    /// sled 0.34 flushes when the last handle to a database is dropped, and holds an exclusive
    /// file lock while open, so an in-process "crash" cannot lose unsynced writes: this drops
    /// and reopens. Losing unsynced writes is exercised for real in `tests/crash.rs`, which
    /// kills a child process.
    fn crash(&mut self, store: SledLogStore) -> SledLogStore {
        drop(store);
        self.open()
    }

    fn reopen(&mut self, store: SledLogStore) -> SledLogStore {
        drop(store);
        self.open()
    }
}

#[test]
fn sled_log_store_passes_the_libpaxos_conformance_suite() {
    let mut harness = SledHarness {
        root: TempDir::new("conformance"),
        next: 0,
        current: PathBuf::new(),
    };
    run_all(&mut harness);
}

/// Overwrites a record through the store's own layout (tagged, chunked if large), as damage
/// to the record's bytes would leave it.
fn put(db: &sled::Db, tree: &str, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.insert(tree, key, value);
    SledKv::unsynced(db).commit(&batch).unwrap();
}

fn store_with_entries(dir: &TempDir) -> (sled::Db, SledLogStore) {
    let db = libpaxos_db::open_sled(&sled::Config::new().path(dir.path())).unwrap();
    let mut store = SledLogStore::open(&db, dir.path()).unwrap();
    store
        .write(&Persist {
            entries: (1..=3).map(|i| sample_entry(i, 1, i as u8)).collect(),
            ..Persist::default()
        })
        .unwrap();
    store.sync().unwrap();
    (db, store)
}

#[test]
fn a_corrupt_entry_is_a_typed_error_naming_the_slot_and_the_database() {
    let dir = TempDir::new("corrupt-entry");
    let (db, store) = store_with_entries(&dir);
    let kv = SledKv::unsynced(&db);
    let mut bytes = kv.get("log", &2u64.to_be_bytes()).unwrap().unwrap();
    bytes[0] ^= 0x55;
    put(&db, "log", &2u64.to_be_bytes(), &bytes);
    let err = store
        .entry(Slot(2))
        .expect_err("corrupt entry must not read");
    let StorageError::Corrupt { slot, reason } = err else {
        panic!("wrong error kind: {err:?}")
    };
    assert_eq!(slot, Slot(2));
    assert!(reason.contains("checksum"), "{reason}");
    assert!(
        reason.contains(&dir.path().display().to_string()),
        "{reason}"
    );
    assert!(
        store.entries(Slot(1), Slot(3), 10).is_err(),
        "a range over a corrupt entry fails rather than skipping it"
    );
    assert_eq!(store.counters().corrupt_reads, 2);
}

#[test]
fn a_truncated_entry_is_a_typed_error() {
    let dir = TempDir::new("truncated-entry");
    let (db, store) = store_with_entries(&dir);
    put(&db, "log", &3u64.to_be_bytes(), &[1u8, 2]);
    assert!(matches!(
        store.last_slot(),
        Err(StorageError::Corrupt { slot: Slot(3), .. })
    ));
}

#[test]
fn an_entry_stored_under_the_wrong_slot_is_corrupt() {
    let dir = TempDir::new("misplaced-entry");
    let (db, store) = store_with_entries(&dir);
    let one = SledKv::unsynced(&db)
        .get("log", &1u64.to_be_bytes())
        .unwrap()
        .unwrap();
    put(&db, "log", &2u64.to_be_bytes(), &one);
    assert!(matches!(
        store.entry(Slot(2)),
        Err(StorageError::Corrupt { slot: Slot(2), .. })
    ));
}

#[test]
fn a_corrupt_hard_state_is_a_typed_error() {
    let dir = TempDir::new("corrupt-hs");
    let (db, store) = store_with_entries(&dir);
    put(&db, "log.meta", b"hard_state", &[9u8; 9]);
    assert!(matches!(
        store.hard_state(),
        Err(StorageError::Corrupt { slot: Slot(0), .. })
    ));
}
