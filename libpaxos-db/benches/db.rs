//! Criterion benches for the hot paths: applying commands, sled log append + flush, and
//! snapshot creation/install for a 10 MB namespace (the 100 MB figures come from the
//! `snapshot_100mb` bench, which runs once and reports peak memory).

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use libpaxos::{Ballot, Committed, Entry, Epoch, LogStore, NodeId, Payload, Persist, Slot, Value};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, EventMask, HandleId, LockMode, Namespace,
    OpenMode, RequestSeq, Response, SessionId, SledLogStore, WallTime,
};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("libpaxos-db-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

struct Driver {
    slot: u64,
    seq: u64,
}

impl Driver {
    fn committed(&mut self, op: ClientOp) -> Committed {
        self.slot += 1;
        self.seq += 1;
        let command = Command::Client(ClientRequest {
            session: SessionId(1),
            seq: RequestSeq(self.seq),
            time: WallTime(self.seq),
            op,
        });
        Committed {
            slot: Slot(self.slot),
            value: Value {
                epoch: Epoch(0),
                payload: Payload::Command(command.encode().into()),
            },
        }
    }
}

fn session_with_handle(ns: &mut Namespace, mode: OpenMode) -> (Driver, HandleId) {
    let mut d = Driver { slot: 0, seq: 0 };
    ns.apply(&d.committed(ClientOp::NewSession {
        user: "bench".into(),
        lease: Duration::from_secs(10),
        keys: vec![7; 64],
    }))
    .expect("session");
    let opened = ns
        .apply(&d.committed(ClientOp::Open {
            path: "/f".into(),
            mode,
            events: EventMask::NONE,
        }))
        .expect("open");
    let Ok(Response::Opened { handle, .. }) = opened.reply else {
        panic!("open failed")
    };
    (d, handle)
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(1));
    let dir = temp_dir("apply");
    let db = sled::Config::new().path(&dir).open().expect("sled");
    let mut ns = Namespace::open(&db, Default::default()).expect("namespace");
    let mode = OpenMode::READ | OpenMode::WRITE | OpenMode::LOCK | OpenMode::CREATE;
    let (mut d, handle) = session_with_handle(&mut ns, mode);
    let data = vec![7u8; 1024];
    group.bench_function("put_1KiB", |b| {
        b.iter(|| {
            let c = d.committed(ClientOp::Put {
                handle,
                data: data.clone(),
                cas: None,
            });
            black_box(ns.apply(&c).expect("apply"))
        })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("put_1KiB_batch64", |b| {
        b.iter(|| {
            let batch: Vec<Committed> = (0..64)
                .map(|_| {
                    d.committed(ClientOp::Put {
                        handle,
                        data: data.clone(),
                        cas: None,
                    })
                })
                .collect();
            black_box(ns.apply_batch(&batch).expect("apply"))
        })
    });
    // The largest file of the default limits: before decision 0202 a sled blob file, now 64
    // chunks of 2 KiB in the same transaction.
    let large = vec![9u8; 128 * 1024];
    group.throughput(Throughput::Elements(1));
    group.bench_function("put_128KiB", |b| {
        b.iter(|| {
            let c = d.committed(ClientOp::Put {
                handle,
                data: large.clone(),
                cas: None,
            });
            black_box(ns.apply(&c).expect("apply"))
        })
    });
    group.bench_function("lock_unlock_pair", |b| {
        b.iter(|| {
            let lock = d.committed(ClientOp::Lock {
                handle,
                mode: LockMode::Exclusive,
                wait: false,
            });
            black_box(ns.apply(&lock).expect("lock"));
            let unlock = d.committed(ClientOp::Unlock { handle });
            black_box(ns.apply(&unlock).expect("unlock"))
        })
    });
    group.finish();
    drop(ns);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

fn entries(next: &mut u64, batch: usize) -> Vec<Entry> {
    let out = (0..batch)
        .map(|i| Entry {
            slot: Slot(*next + i as u64),
            ballot: Ballot {
                round: 1,
                node: NodeId(1),
            },
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Command(vec![3u8; 256].into()),
            },
        })
        .collect();
    *next += batch as u64;
    out
}

/// `log_append_flush`: `SledLogStore` write + `sync` as the replica does it (sled's flush, then
/// the fsyncs that make it durable). For the durability decision (docs/decisions/0201), two
/// references under the same load: `sled_flush_only` (sled's flush without our fsyncs: what the
/// store did before, not durable against power loss) and `wal_fdatasync` (the same entries
/// appended, postcard-encoded, to a plain file of our own and made durable with one
/// `fdatasync`: the write-ahead-log option).
fn log_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_append_flush");
    let dir = temp_dir("log");
    let db = sled::Config::new().path(&dir).open().expect("sled");
    let mut log = SledLogStore::open(&db, &dir).expect("log");
    let mut next = 1u64;
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                log.write(&Persist {
                    entries: entries(&mut next, batch),
                    ..Persist::default()
                })
                .expect("write");
                log.sync().expect("sync");
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("sled_flush_only");
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                log.write(&Persist {
                    entries: entries(&mut next, batch),
                    ..Persist::default()
                })
                .expect("write");
                db.flush().expect("flush");
            })
        });
    }
    group.finish();
    drop(log);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);

    let mut group = c.benchmark_group("wal_fdatasync");
    let dir = temp_dir("wal");
    let mut wal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("wal"))
        .expect("wal file");
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let mut bytes = Vec::new();
                for entry in entries(&mut next, batch) {
                    let record = postcard::to_allocvec(&entry).expect("encode");
                    bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
                    bytes.extend_from_slice(&record);
                }
                wal.write_all(&bytes).expect("append");
                wal.sync_data().expect("fdatasync");
            })
        });
    }
    group.finish();
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);

    // One entry carrying a 128 KiB put, written and synced (a blob file before decision 0202,
    // chunks now).
    let mut group = c.benchmark_group("log_append_flush_128KiB");
    let dir = temp_dir("log-large");
    let db = sled::Config::new().path(&dir).open().expect("sled");
    let mut log = SledLogStore::open(&db, &dir).expect("log");
    let mut next = 1u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("1", |b| {
        b.iter(|| {
            let mut batch = entries(&mut next, 1);
            batch[0].value.payload = Payload::Command(vec![3u8; 128 * 1024].into());
            log.write(&Persist {
                entries: batch,
                ..Persist::default()
            })
            .expect("write");
            log.sync().expect("sync");
        })
    });
    group.finish();
    drop(log);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A database with `files` files of 1 KiB.
fn populated(dir: &std::path::Path, files: u64) -> Database {
    let (mut db, _log) = Database::open(DbConfig::new(dir)).expect("db");
    let mut d = Driver { slot: 0, seq: 0 };
    db.apply(&d.committed(ClientOp::NewSession {
        user: "bench".into(),
        lease: Duration::from_secs(10),
        keys: vec![7; 64],
    }))
    .expect("session");
    let data = vec![5u8; 1024];
    for i in 0..files {
        let opened = db
            .apply(&d.committed(ClientOp::Open {
                path: format!("/f{i:06}"),
                mode: OpenMode::WRITE | OpenMode::CREATE,
                events: EventMask::NONE,
            }))
            .expect("open");
        let Ok(Response::Opened { handle, .. }) = opened.reply else {
            panic!("open failed")
        };
        db.apply(&d.committed(ClientOp::Put {
            handle,
            data: data.clone(),
            cas: None,
        }))
        .expect("put");
        db.apply(&d.committed(ClientOp::Close { handle }))
            .expect("close");
    }
    db.flush().expect("flush");
    db
}

fn snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_10MB");
    group.sample_size(10);
    let src_dir = temp_dir("snap-src");
    let mut src = populated(&src_dir, 10_000);
    group.bench_function("create", |b| {
        b.iter(|| black_box(src.take_snapshot().expect("snapshot")))
    });
    let info = src.take_snapshot().expect("snapshot");
    group.bench_function("install", |b| {
        b.iter_batched(
            || {
                let dir = temp_dir("snap-dst");
                let (db, _) = Database::open(DbConfig::new(&dir)).expect("db");
                let copy = db.snapshot_dir().join(info.path.file_name().expect("name"));
                std::fs::copy(&info.path, &copy).expect("copy");
                let mut local = info.clone();
                local.path = copy;
                (dir, db, local)
            },
            |(dir, mut db, local)| {
                black_box(db.install(&local).expect("install"));
                drop(db);
                let _ = std::fs::remove_dir_all(dir);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    drop(src);
    let _ = std::fs::remove_dir_all(&src_dir);
}

criterion_group!(benches, apply, log_append, snapshot);
criterion_main!(benches);
