//! One-shot measurement of snapshot creation and install for a 100 MB namespace (100 000
//! files of 1 KiB), each phase in its own process so that its peak memory (VmHWM from
//! /proc/self/status) is its own. Run with `cargo bench -p libpaxos-db --bench snapshot_100mb`.
//! This is a benchmark, not a test: it asserts nothing about time.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use libpaxos::{Committed, Epoch, Payload, Slot, Value};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, EventMask, OpenMode, RequestSeq,
    Response, SessionId, SnapshotInfo, WallTime,
};

const FILES: u64 = 100_000;
const PHASE_ENV: &str = "LIBPAXOS_DB_BENCH_PHASE";
const DIR_ENV: &str = "LIBPAXOS_DB_BENCH_DIR";
/// sled's cache (`DbConfig::cache_bytes`) for the `install` and `scan` phases; default 64 MiB.
const CACHE_ENV: &str = "LIBPAXOS_DB_BENCH_CACHE_MIB";
/// Comma-separated phases to run (default `populate,snapshot,install`; `scan` reads the whole
/// populated database through sled to compare its RSS with the cache size).
const PHASES_ENV: &str = "LIBPAXOS_DB_BENCH_PHASES";
/// Keep (and reuse) the databases in this directory instead of a fresh temporary one.
const ROOT_ENV: &str = "LIBPAXOS_DB_BENCH_ROOT";

fn cache_bytes() -> u64 {
    std::env::var(CACHE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(64 << 20, |mib| mib << 20)
}

fn config(dir: PathBuf) -> DbConfig {
    let mut config = DbConfig::new(dir);
    config.cache_bytes = cache_bytes();
    config
}

fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn committed(slot: u64, op: ClientOp) -> Committed {
    let command = Command::Client(ClientRequest {
        session: SessionId(1),
        seq: RequestSeq(slot),
        time: WallTime(slot),
        op,
    });
    Committed {
        slot: Slot(slot),
        value: Value {
            epoch: Epoch(0),
            payload: Payload::Command(command.encode().into()),
        },
    }
}

fn populate(dir: &Path) {
    let started = Instant::now();
    let (mut db, _log) = Database::open(DbConfig::new(dir.join("src"))).expect("db");
    let mut slot = 1;
    db.apply(&committed(
        slot,
        ClientOp::NewSession {
            user: "bench".into(),
            lease: Duration::from_secs(10),
            keys: vec![7; 64],
        },
    ))
    .expect("session");
    let data = vec![9u8; 1024];
    for i in 0..FILES {
        slot += 1;
        let opened = db
            .apply(&committed(
                slot,
                ClientOp::Open {
                    path: format!("/d{:03}-f{i:06}", i % 1000),
                    mode: OpenMode::WRITE | OpenMode::CREATE,
                    events: EventMask::NONE,
                },
            ))
            .expect("open");
        let Ok(Response::Opened { handle, .. }) = opened.reply else {
            panic!("open failed")
        };
        slot += 1;
        db.apply(&committed(
            slot,
            ClientOp::Put {
                handle,
                data: data.clone(),
                cas: None,
            },
        ))
        .expect("put");
        slot += 1;
        db.apply(&committed(slot, ClientOp::Close { handle }))
            .expect("close");
    }
    db.flush().expect("flush");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "populate: {FILES} files of 1 KiB, {slot} commands in {secs:.1} s ({:.0} commands/s), peak RSS {} MiB",
        slot as f64 / secs,
        peak_memory_kib() / 1024
    );
}

fn snapshot(dir: &Path) {
    let (mut db, _log) = Database::open(DbConfig::new(dir.join("src"))).expect("db");
    let opened_kib = peak_memory_kib();
    let started = Instant::now();
    let info = db.take_snapshot().expect("snapshot");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "snapshot create: {:.1} MB file in {secs:.2} s ({:.0} MB/s); peak RSS {} MiB (after open, before snapshot: {} MiB)",
        info.len as f64 / 1e6,
        info.len as f64 / 1e6 / secs,
        peak_memory_kib() / 1024,
        opened_kib / 1024
    );
    std::fs::write(
        dir.join("snapshot-path"),
        info.path.to_string_lossy().as_bytes(),
    )
    .expect("note path");
}

fn install(dir: &Path) {
    let path = PathBuf::from(std::fs::read_to_string(dir.join("snapshot-path")).expect("path"));
    let info = libpaxos_db::snapshot::verify(&path).expect("verify");
    let _ = std::fs::remove_dir_all(dir.join("dst"));
    let (mut db, _log) = Database::open(config(dir.join("dst"))).expect("db");
    let opened_kib = peak_memory_kib();
    let started = Instant::now();
    let mut reader = libpaxos_db::SnapshotReader::open(&info, 256 * 1024).expect("reader");
    let mut installer = db
        .receive_snapshot(info.applied, info.len)
        .expect("installer");
    while let Some(chunk) = reader.next_chunk().expect("chunk") {
        installer.accept(&chunk).expect("accept");
    }
    let received: SnapshotInfo = installer.finish().expect("verify");
    let transferred = started.elapsed().as_secs_f64();
    db.install(&received).expect("install");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "snapshot install (sled cache {} MiB): {:.1} MB in {secs:.2} s (chunked receive + verify {transferred:.2} s, install {:.2} s); peak RSS {} MiB (after open: {} MiB)",
        cache_bytes() >> 20,
        info.len as f64 / 1e6,
        secs - transferred,
        peak_memory_kib() / 1024,
        opened_kib / 1024
    );
}

/// Opens the populated database and reads every record of every tree through sled: peak RSS
/// against the configured cache (`DbConfig::cache_bytes`).
fn scan(dir: &Path) {
    let (db, _log) = Database::open(config(dir.join("src"))).expect("db");
    let opened_kib = peak_memory_kib();
    drop(db);
    drop(_log);
    let sled_db = libpaxos_db::open_sled(
        &sled::Config::new()
            .path(dir.join("src").join("sled"))
            .cache_capacity(cache_bytes()),
    )
    .expect("sled");
    let started = Instant::now();
    let mut bytes = 0u64;
    for name in sled_db.tree_names() {
        let tree = sled_db.open_tree(name).expect("tree");
        for item in tree.iter() {
            let (key, value) = item.expect("record");
            bytes += (key.len() + value.len()) as u64;
        }
    }
    println!(
        "scan (sled cache {} MiB): read {:.1} MB in {:.2} s; peak RSS {} MiB (Database::open with its working copy: {} MiB)",
        cache_bytes() >> 20,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        peak_memory_kib() / 1024,
        opened_kib / 1024
    );
}

fn main() {
    if let (Ok(phase), Ok(dir)) = (std::env::var(PHASE_ENV), std::env::var(DIR_ENV)) {
        let dir = PathBuf::from(dir);
        match phase.as_str() {
            "populate" => populate(&dir),
            "snapshot" => snapshot(&dir),
            "install" => install(&dir),
            "scan" => scan(&dir),
            other => eprintln!("unknown phase {other}"),
        }
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let keep = std::env::var_os(ROOT_ENV).map(PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("libpaxos-db-100mb-{}", std::process::id()))
    });
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).expect("dir");
    let exe = std::env::current_exe().expect("bench binary");
    let phases = std::env::var(PHASES_ENV).unwrap_or_else(|_| "populate,snapshot,install".into());
    for phase in phases.split(',') {
        let status = Process::new(&exe)
            .env(PHASE_ENV, phase)
            .env(DIR_ENV, &dir)
            .status()
            .expect("run phase");
        if !status.success() {
            eprintln!("phase {phase} failed: {status}");
            break;
        }
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
