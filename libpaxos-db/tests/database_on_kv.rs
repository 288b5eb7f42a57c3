//! The `Database` on both stores: the same snapshot, install, replay and restart tests run on
//! sled (`Database::open`) and on the in-memory store (`Database::open_on` on a `MemKv`), and
//! a snapshot taken on one installs on the other. Then the in-memory store's power cuts:
//! a database crashed at any point (`MemKv::crash`, keeping any prefix of the unsynced
//! batches) reopens through the same open path at exactly what was durable, never a torn batch.

mod common;

use common::{CREATE_RW, TempDir, committed};
use libpaxos::conformance::sample_entry;
use libpaxos::{LogStore, Persist, Slot, Storage};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, DbError, EventMask, KvLogStore, KvStore,
    MemKv, RequestSeq, SessionId, SledKv, SledLogStore, SnapshotInfo, WallTime, WriteBatch,
};

/// Where a test's database lives.
trait Store {
    type Kv: KvStore;
    type Log: LogStore;
    /// Opens (or reopens) the database.
    fn open(&mut self, config: DbConfig) -> (Database<Self::Kv>, Self::Log);
    /// Before a reopen: on the in-memory store a power cut keeping nothing unsynced (what
    /// survives must have been synced); nothing on sled (its files are the test).
    fn power_cut(&mut self);
}

struct Sled;

impl Store for Sled {
    type Kv = SledKv;
    type Log = SledLogStore;

    fn open(&mut self, config: DbConfig) -> (Database, SledLogStore) {
        Database::open(config).expect("open on sled")
    }

    fn power_cut(&mut self) {}
}

#[derive(Default)]
struct Mem(MemKv);

impl Store for Mem {
    type Kv = MemKv;
    type Log = KvLogStore<MemKv>;

    fn open(&mut self, config: DbConfig) -> (Database<MemKv>, KvLogStore<MemKv>) {
        Database::open_on(config, self.0.clone()).expect("open on MemKv")
    }

    fn power_cut(&mut self) {
        self.0 = self.0.crash(0);
    }
}

fn config(dir: &TempDir) -> DbConfig {
    let mut config = DbConfig::new(dir.path());
    config.snapshot_every = 10;
    config.keep_tail = 3;
    config.chunk_size = 100;
    config
}

fn request(seq: u64, op: ClientOp) -> Command {
    Command::Client(ClientRequest {
        session: SessionId(1),
        seq: RequestSeq(seq),
        time: WallTime(seq),
        op,
    })
}

/// The commands of a session and `files` files of a few bytes each (1 + 2 * files slots);
/// a put names the handle its open returns, which is 1 + i for the i-th open.
fn commands(files: u64) -> Vec<Command> {
    let mut out = vec![request(
        1,
        ClientOp::NewSession {
            user: "u".into(),
            lease: std::time::Duration::from_secs(5),
            keys: vec![7; 64],
        },
    )];
    for i in 0..files {
        out.push(request(
            2 + 2 * i,
            ClientOp::Open {
                path: format!("/f{i}"),
                mode: CREATE_RW,
                events: EventMask::NONE,
            },
        ));
        out.push(request(
            3 + 2 * i,
            ClientOp::Put {
                handle: libpaxos_db::HandleId(i + 1),
                data: format!("contents of file {i}").into_bytes(),
                cas: None,
            },
        ));
    }
    out
}

/// Applies `commands(files)` one slot at a time, checking every reply succeeded.
fn populate<K: KvStore>(db: &mut Database<K>, files: u64) {
    for (i, command) in commands(files).iter().enumerate() {
        let applied = db.apply(&committed(i as u64 + 1, 0, command)).unwrap();
        assert!(applied.reply.is_ok(), "slot {}: {:?}", i + 1, applied.reply);
    }
}

fn transfer<A: KvStore, B: KvStore>(
    from: &Database<A>,
    to: &Database<B>,
) -> Result<SnapshotInfo, DbError> {
    let info = from.latest_snapshot().expect("a snapshot").clone();
    let mut reader = from.snapshot_reader()?;
    let mut installer = to.receive_snapshot(info.applied, info.len)?;
    while let Some(chunk) = reader.next_chunk()? {
        installer.accept(&chunk)?;
    }
    installer.finish()
}

/// Runs a generic test body on sled and on `MemKv`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_sled {
            $(#[test] fn $name() { super::$name(super::Sled, super::Sled); })*
        }
        mod on_memkv {
            $(#[test] fn $name() { super::$name(super::Mem::default(), super::Mem::default()); })*
        }
        mod sled_to_memkv {
            $(#[test] fn $name() { super::$name(super::Sled, super::Mem::default()); })*
        }
        mod memkv_to_sled {
            $(#[test] fn $name() { super::$name(super::Mem::default(), super::Sled); })*
        }
    };
}

on_both_stores!(
    a_snapshot_round_trips_through_chunks_and_install,
    install_compacts_the_log_through_the_snapshot_and_keeps_later_entries,
    an_installed_namespace_survives_a_power_cut,
    an_install_job_stages_then_switches,
    the_log_replays_into_the_namespace_after_a_power_cut,
    trees_of_an_interrupted_install_are_dropped_at_open,
);

fn a_snapshot_round_trips_through_chunks_and_install(mut a: impl Store, mut b: impl Store) {
    let (a_dir, b_dir) = (TempDir::new("kvrt-a"), TempDir::new("kvrt-b"));
    let (mut src, _) = a.open(config(&a_dir));
    populate(&mut src, 20);
    let info = src.take_snapshot().unwrap();
    assert_eq!(info.applied, Slot(41));
    let (mut dst, _) = b.open(config(&b_dir));
    let received = transfer(&src, &dst).unwrap();
    assert_eq!(dst.install(&received).unwrap(), Slot(41));
    assert_eq!(dst.namespace().applied(), Slot(41));
    assert_eq!(
        src.namespace().digest().unwrap(),
        dst.namespace().digest().unwrap()
    );
    assert_eq!(dst.counters().snapshots_installed, 1);
}

fn install_compacts_the_log_through_the_snapshot_and_keeps_later_entries(
    mut a: impl Store,
    mut b: impl Store,
) {
    let (a_dir, b_dir) = (TempDir::new("kvcmp-a"), TempDir::new("kvcmp-b"));
    let (mut src, _) = a.open(config(&a_dir));
    populate(&mut src, 5);
    src.take_snapshot().unwrap();
    let (mut dst, mut log) = b.open(config(&b_dir));
    let stale: Vec<_> = (1..=4).map(|i| sample_entry(i, 1, i as u8)).collect();
    log.write(&Persist {
        entries: [stale, vec![sample_entry(30, 2, 30)]].concat(),
        ..Persist::default()
    })
    .unwrap();
    let received = transfer(&src, &dst).unwrap();
    dst.install(&received).unwrap();
    assert_eq!(log.compacted_through().unwrap(), Slot(11));
    assert_eq!(log.entry(Slot(2)).unwrap(), None);
    assert_eq!(log.entries(Slot(1), Slot(11), 100).unwrap(), vec![]);
    assert_eq!(log.entry(Slot(30)).unwrap(), Some(sample_entry(30, 2, 30)));
}

fn an_installed_namespace_survives_a_power_cut(mut a: impl Store, mut b: impl Store) {
    let (a_dir, b_dir) = (TempDir::new("kvrs-a"), TempDir::new("kvrs-b"));
    let (mut src, _) = a.open(config(&a_dir));
    populate(&mut src, 5);
    src.take_snapshot().unwrap();
    let digest = {
        let (mut dst, _) = b.open(config(&b_dir));
        let received = transfer(&src, &dst).unwrap();
        dst.install(&received).unwrap();
        dst.namespace().digest().unwrap()
    };
    b.power_cut();
    let (dst, log) = b.open(config(&b_dir));
    assert_eq!(dst.namespace().applied(), Slot(11));
    assert_eq!(dst.namespace().digest().unwrap(), digest);
    assert_eq!(log.compacted_through().unwrap(), Slot(11));
    assert_eq!(dst.latest_snapshot().map(|s| s.applied), Some(Slot(11)));
}

fn an_install_job_stages_then_switches(mut a: impl Store, mut b: impl Store) {
    let (a_dir, b_dir) = (TempDir::new("kvjob-a"), TempDir::new("kvjob-b"));
    let (mut src, _) = a.open(config(&a_dir));
    populate(&mut src, 8);
    src.take_snapshot().unwrap();
    let (mut dst, _) = b.open(config(&b_dir));
    dst.apply(&committed(1, 0, &Command::Noop)).unwrap();
    let received = transfer(&src, &dst).unwrap();
    let job = dst.install_job(&received).unwrap();
    assert_eq!(job.applied(), Slot(17));
    // The job runs on another thread, as the server runs it; nothing live changes meanwhile.
    let staged = std::thread::spawn(move || job.run()).join().unwrap();
    assert_eq!(dst.namespace().applied(), Slot(1));
    assert_eq!(dst.finish_install(staged).unwrap().unwrap(), Slot(17));
    assert_eq!(
        dst.namespace().digest().unwrap(),
        src.namespace().digest().unwrap()
    );
    // A second job for the same snapshot is refused: not ahead any more.
    assert!(matches!(
        dst.install_job(&received),
        Err(DbError::SnapshotBehind { .. })
    ));
}

fn the_log_replays_into_the_namespace_after_a_power_cut(mut a: impl Store, mut b: impl Store) {
    let (a_dir, b_dir) = (TempDir::new("kvrp-a"), TempDir::new("kvrp-b"));
    // The reference: the commands applied directly.
    let (mut reference, _) = a.open(config(&a_dir));
    populate(&mut reference, 4);
    let commands = commands(4);
    let through = Slot(commands.len() as u64);
    {
        // The log holds the commands durably; the namespace applies only the first three.
        let (mut db, mut log) = b.open(config(&b_dir));
        let entries: Vec<libpaxos::Entry> = commands
            .iter()
            .enumerate()
            .map(|(i, c)| libpaxos::Entry {
                slot: Slot(i as u64 + 1),
                value: committed(i as u64 + 1, 0, c).value,
                ballot: libpaxos::Ballot {
                    round: 1,
                    node: libpaxos::NodeId(1),
                },
            })
            .collect();
        log.write(&Persist {
            entries,
            ..Persist::default()
        })
        .unwrap();
        let replayed = db.replay(&log, Slot(3)).unwrap();
        assert_eq!(replayed.len(), 3);
        log.sync().unwrap();
    }
    b.power_cut();
    let (mut db, log) = b.open(config(&b_dir));
    // The log's sync made the three applies durable too (one store).
    assert_eq!(db.namespace().applied(), Slot(3));
    let replayed = db.replay(&log, through).unwrap();
    assert_eq!(replayed.len() as u64, through.0 - 3);
    assert_eq!(
        db.namespace().digest().unwrap(),
        reference.namespace().digest().unwrap()
    );
    // A hole is an error, never skipped.
    assert!(matches!(
        db.replay(&log, Slot(through.0 + 1)),
        Err(DbError::ReplayHole(_))
    ));
}

fn trees_of_an_interrupted_install_are_dropped_at_open(_a: impl Store, mut b: impl Store) {
    let dir = TempDir::new("kvstale");
    let digest = {
        let (mut db, _) = b.open(config(&dir));
        populate(&mut db, 3);
        // What a crash in the middle of an install leaves: a half-filled next generation.
        let mut junk = WriteBatch::new();
        junk.insert("ns1.nodes", b"/junk".to_vec(), b"half an install".to_vec());
        db.store().commit(&junk).unwrap();
        db.flush().unwrap();
        db.namespace().digest().unwrap()
    };
    b.power_cut();
    let (db, _) = b.open(config(&dir));
    assert_eq!(db.namespace().digest().unwrap(), digest);
    assert!(
        !db.store()
            .tree_names()
            .unwrap()
            .contains(&"ns1.nodes".to_string()),
        "the stale generation was dropped"
    );
}

/// Power cuts of a `MemKv` database at every point of a run that applies single slots and
/// batches of three, flushing now and then: the reopened namespace is at a whole batch, never
/// behind the last flush, never ahead of what was committed, and equal to a reference that
/// applied the same slots.
#[test]
fn a_memkv_database_crashed_anywhere_reopens_at_exactly_a_durable_prefix() {
    let commands = commands(6); // 13 slots
    // The run: (slots applied by one apply_batch, flush after it).
    let plan: &[(usize, bool)] = &[(1, false), (3, false), (1, true), (3, false), (2, false)];
    let dir = TempDir::new("kvcrash");
    // The reference digests by applied index.
    let mut digests = vec![None; commands.len() + 1];
    {
        let (mut reference, _) = Mem::default().open(config(&TempDir::new("kvcrash-ref")));
        digests[0] = Some(reference.namespace().digest().unwrap());
        for (i, c) in commands.iter().enumerate() {
            reference.apply(&committed(i as u64 + 1, 0, c)).unwrap();
            digests[i + 1] = Some(reference.namespace().digest().unwrap());
        }
    }
    let mut cases = 0;
    // Crash after every step of the plan, keeping every possible prefix of unsynced batches.
    for stop in 0..=plan.len() {
        let kv = MemKv::new();
        let (mut db, _) = Database::open_on(config(&dir), kv.clone()).unwrap();
        let mut slot = 0u64;
        // The applied index after each unsynced batch, in commit order (a new namespace's
        // root is written after the open's sync: a batch at applied index 0).
        let mut boundaries = vec![0; kv.unsynced()];
        let mut durable = 0u64;
        for &(count, flush) in &plan[..stop] {
            let batch: Vec<_> = (0..count)
                .map(|k| {
                    let s = slot + k as u64 + 1;
                    committed(s, 0, &commands[s as usize - 1])
                })
                .collect();
            db.apply_batch(&batch).unwrap();
            slot += count as u64;
            boundaries.push(slot);
            if flush {
                db.flush().unwrap();
                assert_eq!(db.durable_applied(), Slot(slot));
                durable = slot;
                boundaries.clear();
            }
        }
        assert_eq!(kv.unsynced(), boundaries.len(), "one batch per apply_batch");
        for kept in 0..=boundaries.len() + 1 {
            let crashed = kv.crash(kept);
            let (db, log) = Database::open_on(config(&dir), crashed.clone()).unwrap();
            let expected = if kept == 0 || boundaries.is_empty() {
                durable
            } else {
                boundaries[kept.min(boundaries.len()) - 1]
            };
            assert_eq!(
                db.namespace().applied(),
                Slot(expected),
                "stop {stop}, kept {kept}: reopened at a whole batch"
            );
            assert_eq!(
                Some(db.namespace().digest().unwrap()),
                digests[expected as usize],
                "stop {stop}, kept {kept}: the namespace of the reference at {expected}"
            );
            assert_eq!(log.last_slot().unwrap(), Slot(0), "no log entry invented");
            // A crash kills every old handle: the dead database's store refuses writes.
            assert!(kv.commit(&WriteBatch::new()).is_err());
            cases += 1;
            drop(db);
        }
        drop(db);
    }
    // 6 stopping points; at each, every prefix of the unsynced batches and one past them.
    assert_eq!(cases, 21, "crash points checked");
}

/// After a failed sync the database is fatal (`SyncFailed`), every later flush fails the same
/// way, and a restart on the crashed store finds the last synced state.
#[test]
fn a_failed_sync_on_memkv_is_fatal_and_the_restart_finds_the_synced_state() {
    let dir = TempDir::new("kvsyncfail");
    let kv = MemKv::new();
    let (mut db, _) = Database::open_on(config(&dir), kv.clone()).unwrap();
    populate(&mut db, 2);
    db.flush().unwrap();
    let synced = db.namespace().digest().unwrap();
    db.apply(&committed(6, 0, &Command::Noop)).unwrap();
    kv.set_failing(true);
    assert!(matches!(db.flush(), Err(DbError::SyncFailed(_))));
    kv.set_failing(false);
    assert!(
        matches!(db.flush(), Err(DbError::SyncFailed(_))),
        "a failed sync is never retried"
    );
    assert_eq!(db.durable_applied(), Slot(5));
    let (db, _) = Database::open_on(config(&dir), kv.crash(0)).unwrap();
    assert_eq!(db.namespace().applied(), Slot(5));
    assert_eq!(db.namespace().digest().unwrap(), synced);
    assert_eq!(db.sync_counters(), Default::default(), "no sled counters");
}
