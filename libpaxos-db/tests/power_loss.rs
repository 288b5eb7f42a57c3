//! Power loss, not just a killed process. A one-member cell (`DbReplica::open`, snapshots
//! and log compaction on, snapshots in the background) runs in a child process on a FUSE file
//! system (`crashfs`) that keeps what was not fsynced apart. The parent cuts the power at a
//! point the seed picks: after a random number of acknowledged commands, right after a
//! background snapshot job was handed out (mid-snapshot), or right after the trim point moved
//! (the compaction is written and synced by the next Ready: mid-trim). It kills the child and
//! lets the file system decide what of the unsynced writes survives, in the seed's mode
//! (nothing; a prefix in order; a random subset of blocks and names). Then, for the state on
//! "disk":
//!
//! - the hard state never moved backwards (the promise and commit index the child reported
//!   after each sync are still there);
//! - the namespace is exactly the script's commands 1..n for some n (compared record by record
//!   with a reference namespace fed the same commands), and the log holds what it must
//!   (namespace not ahead of the log, the log not compacted past the namespace);
//! - after the replica restarts and recovers, every command the child acknowledged is there,
//!   and the namespace is still exactly a prefix of the script.
//!
//! Then the child starts again on that state and the next round cuts the power again. Files of
//! 128 KiB are a quarter of the writes: before decision 0202 they were sled blob files (for the
//! namespace and for the log), whose loss at a cut tore transactions (seed 14: "files differ
//! from the script's first 36 commands"; seed 629: sled's panic "cannot find pid 19 in
//! view_for_key"); now they are chunked and every cut checks that `sled/blobs` is empty.
//! [`REGRESSION_SEEDS`] run in every run besides the range.
//!
//! A second test cuts the power mid-install: a child installs a series of snapshots (40, 80,
//! ... 240) through the chunked transfer and the off-loop install job, and the power goes
//! after a random step (file received, generation staged, switched); the reopened namespace
//! must be exactly one of the snapshots (by digest), at or past the last install the child
//! acknowledged, with the log compacted exactly through it. With a sync that is sled's flush
//! alone it fails (seed 1: "install of 120 acknowledged, namespace at 80").
//!
//! Before the fix (commit 56cb115, where a sync was sled's `flush` alone) every seed from 1 to
//! 30 failed at its first power cut: seed 1 (prefix mode) "promise went back from (1, 1) to
//! (0, 0)", seed 4 "commit went back from 19 to 1", seed 23 "sled failed while opening the
//! database: Read corrupted data" (a blob file the log pointed at was lost). A seed fixes the
//! cut point and what survives; which writes are in flight when the child is killed depends
//! on timing, so a seed is not byte-for-byte reproducible.
//!
//! Seeds: `LIBPAXOS_DB_POWER_LOSS_SEEDS` (count, default 100) from
//! `LIBPAXOS_DB_POWER_LOSS_FIRST_SEED` (default 1); `scripts/power-loss.sh` runs many more.
//! Without FUSE (no /dev/fuse, no fusermount3, mount refused) the test prints that it was
//! SKIPPED and passes; set `LIBPAXOS_DB_REQUIRE_FUSE=1` to make that a failure instead.

mod common;
mod crashfs;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use crashfs::{CrashFs, Mode, Rng};
use libpaxos::{Committed, Config, Epoch, NodeId, Payload, Role, Slot, Storage, Time, Value};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, Database, DbConfig, DbReplica, Dump, EventMask, HandleId,
    Namespace, OpenMode, RequestSeq, SessionId, WallTime,
};

const CHILD_DIR: &str = "LIBPAXOS_DB_POWER_LOSS_CHILD_DIR";
const CHILD_SEED: &str = "LIBPAXOS_DB_POWER_LOSS_CHILD_SEED";
const TEST_NAME: &str = "power_loss_never_loses_an_acknowledged_command";
const ROUNDS: usize = 3;
/// Seeds that failed once (a seed fixes the cut points and what survives, not the timing, so
/// they are not certain to fail again without the fix): 14 and 629 lost sled blob files.
const REGRESSION_SEEDS: [u64; 2] = [14, 629];

fn config() -> Config {
    Config::new(NodeId(1), vec![NodeId(1)])
}

fn db_config(dir: &Path) -> DbConfig {
    let mut config = DbConfig::new(dir);
    config.snapshot_every = 12;
    config.keep_tail = 3;
    config.cache_bytes = 8 << 20;
    config
}

/// The script's command `i` (1-based): a session, then per file k: open /f<k> (handle k),
/// put its contents, close.
fn command(seed: u64, i: u64) -> Command {
    let request = |op| {
        Command::Client(ClientRequest {
            session: SessionId(1),
            seq: RequestSeq(i),
            time: WallTime(i),
            op,
        })
    };
    if i == 1 {
        return request(ClientOp::NewSession {
            user: "power".into(),
            lease: Duration::from_secs(3600),
            keys: vec![7; 64],
        });
    }
    let k = (i - 2) / 3 + 1;
    let handle = HandleId(k);
    request(match (i - 2) % 3 {
        0 => ClientOp::Open {
            path: format!("/f{k}"),
            mode: OpenMode::WRITE | OpenMode::CREATE,
            events: EventMask::NONE,
        },
        1 => ClientOp::Put {
            handle,
            data: contents(seed, k),
            cas: None,
        },
        _ => ClientOp::Close { handle },
    })
}

/// File k's contents: a quarter are the largest file (128 KiB: sled blob files).
fn contents(seed: u64, k: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(1_000_003).wrapping_add(k));
    let len = if rng.below(4) == 0 {
        128 * 1024
    } else {
        16 + rng.below(3000) as usize
    };
    (0..len).map(|_| rng.next() as u8).collect()
}

/// The namespace after the script's commands 1..=n, applied to a fresh database.
fn reference(seed: u64, n: u64) -> Dump {
    let db = sled::Config::new()
        .temporary(true)
        .open()
        .expect("temporary sled");
    let mut ns = Namespace::open(&db, Default::default()).expect("namespace");
    for i in 1..=n {
        let applied = ns
            .apply(&Committed {
                slot: Slot(i),
                value: Value {
                    epoch: Epoch(0),
                    payload: Payload::Command(command(seed, i).encode().into()),
                },
            })
            .expect("apply");
        assert!(applied.reply.is_ok(), "script command {i} failed");
    }
    ns.dump().expect("dump")
}

/// How many script commands a namespace has executed (its session's last seq).
fn executed(ns: &Namespace) -> u64 {
    ns.session(SessionId(1)).map_or(0, |s| s.last_seq.0)
}

/// Checks that `ns` is exactly the script's prefix of `executed(ns)` commands.
fn assert_prefix(seed: u64, ns: &Namespace, when: &str) -> u64 {
    let n = executed(ns);
    let got = ns.dump().expect("dump");
    let want = reference(seed, n);
    if got.nodes != want.nodes {
        let next = reference(seed, n + 1);
        panic!(
            "seed {seed} {when}: files differ from the script's first {n} commands \
             (they {} the first {}): {}",
            if got.nodes == next.nodes {
                "are"
            } else {
                "are not"
            },
            n + 1,
            node_differences(&got, &want)
        );
    }
    assert_eq!(
        got.sessions, want.sessions,
        "seed {seed} {when}: sessions differ (n = {n})"
    );
    assert_eq!(
        got.handles, want.handles,
        "seed {seed} {when}: handles differ (n = {n})"
    );
    assert_eq!(
        got.locks, want.locks,
        "seed {seed} {when}: locks differ (n = {n})"
    );
    assert_eq!(
        got.next_instance, want.next_instance,
        "seed {seed} {when}: instance counter differs (n = {n})"
    );
    n
}

/// Which files differ between `got` and `want`, and how (for a failure message).
fn node_differences(got: &Dump, want: &Dump) -> String {
    let summary = |entry: Option<&(libpaxos_db::Node, Vec<u8>)>| match entry {
        None => "absent".to_string(),
        Some((node, data)) => format!(
            "{:?} {} bytes (first {:?})",
            node,
            data.len(),
            &data[..data.len().min(4)]
        ),
    };
    let paths: std::collections::BTreeSet<&String> =
        got.nodes.keys().chain(want.nodes.keys()).collect();
    paths
        .into_iter()
        .filter(|p| got.nodes.get(*p) != want.nodes.get(*p))
        .map(|p| {
            format!(
                "{p}: on disk {}, expected {}",
                summary(got.nodes.get(p)),
                summary(want.nodes.get(p))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn drive_all(
    node: &mut DbReplica,
    now: Time,
    mut each: impl FnMut(&DbReplica, &libpaxos_db::Output),
) {
    loop {
        let mut out = node.drive(now).expect("drive");
        each(node, &out);
        if let Some(job) = out.snapshot_job.take() {
            println!("job {}", job.applied().0);
            let result = job.run();
            let finished = node.snapshot_finished(result).expect("snapshot finished");
            each(node, &finished);
        }
        if !out.performed {
            return;
        }
    }
}

/// The child: recovers, then runs the script until the parent cuts the power.
fn child(dir: &Path, seed: u64) -> ! {
    let mut node = DbReplica::open(config(), db_config(dir), Time::ZERO).expect("open");
    node.set_background_snapshots(true);
    let mut now = Time::ZERO;
    let mut hard_state = node.replica().storage().hard_state().expect("hard state");
    let mut report =
        |node: &DbReplica, out: &libpaxos_db::Output, proposed: &BTreeMap<Slot, u64>| {
            let hs = node.replica().storage().hard_state().expect("hard state");
            if hs != hard_state {
                // Printed after the drive whose sync made it durable.
                println!(
                    "hs {} {} {}",
                    hs.promised.round, hs.promised.node.0, hs.commit.0
                );
                hard_state = hs;
            }
            for applied in &out.applied {
                if let Some(i) = proposed.get(&applied.slot)
                    && applied.reply.is_ok()
                {
                    println!("ack {i}");
                }
            }
        };
    let mut proposed = BTreeMap::new();
    // Recover: until master and every earlier command is applied.
    while !node.can_read(now) {
        now = now + Duration::from_millis(2);
        node.on_tick(now).expect("tick");
        drive_all(&mut node, now, |n, o| report(n, o, &proposed));
    }
    let mut next = executed(node.database().namespace()) + 1;
    println!("ready {next}");
    let mut trim = node.database().trim_point();
    loop {
        now = now + Duration::from_millis(1);
        node.on_tick(now).expect("tick");
        if matches!(node.replica().role(), Role::Master { .. })
            && proposed.len() < 64
            && let Ok((slot, _)) = node.propose(now, &command(seed, next))
        {
            proposed.insert(slot, next);
            next += 1;
        }
        drive_all(&mut node, now, |n, o| report(n, o, &proposed));
        let applied = node.database().namespace().applied();
        proposed.retain(|slot, _| *slot > applied);
        if node.database().trim_point() != trim {
            trim = node.database().trim_point();
            println!("trim {}", trim.map_or(0, |s| s.0));
        }
    }
}

/// Where a round cuts the power.
#[derive(Clone, Copy, Debug)]
enum Cut {
    AfterAcks(u64),
    MidSnapshot(u64),
    MidTrim(u64),
}

struct Round {
    acked: u64,
    hard_state: Option<(u64, u64, u64)>,
}

fn run_round(fs_dir: &Path, seed: u64, cut: Cut, round: usize) -> Round {
    let mut process = Process::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, fs_dir)
        .env(CHILD_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = process.stdout.take().expect("piped stdout");
    let mut acked = 0;
    let mut acks_this_round = 0;
    let mut jobs = 0;
    let mut trims = 0;
    let mut hard_state = None;
    let mut ended = true;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        // The harness prints "test NAME ... " before the first line without a newline.
        let line = line
            .rsplit_once("... ")
            .map_or(line.as_str(), |(_, l)| l)
            .to_string();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ack", i] => {
                let i: u64 = i.parse().expect("ack");
                assert!(
                    i > acked,
                    "seed {seed} round {round}: ack {i} after {acked}"
                );
                acked = i;
                acks_this_round += 1;
            }
            ["hs", round, node, commit] => {
                hard_state = Some((
                    round.parse().expect("hs"),
                    node.parse().expect("hs"),
                    commit.parse().expect("hs"),
                ));
            }
            ["job", _] => jobs += 1,
            ["trim", _] => trims += 1,
            _ => {}
        }
        let stop = match cut {
            Cut::AfterAcks(n) => acks_this_round >= n,
            Cut::MidSnapshot(n) => words.first() == Some(&"job") && jobs >= n,
            Cut::MidTrim(n) => words.first() == Some(&"trim") && trims >= n,
        };
        if stop {
            ended = false;
            break;
        }
    }
    process.kill().expect("kill child");
    let status = process.wait().expect("reap child");
    assert!(
        !ended,
        "seed {seed} round {round}: the child ended on its own ({status}) before the cut {cut:?}"
    );
    Round { acked, hard_state }
}

fn check_disk(
    dir: &Path,
    seed: u64,
    round: usize,
    acked: u64,
    hard_state: Option<(u64, u64, u64)>,
) {
    let when = format!("after power cut {round}");
    // sled must never write a blob file (decision 0202): its recovery skips a log record whose
    // blob is missing, tearing the transaction (failures seen before: seed 14 "files differ",
    // seed 629 "cannot find pid 19 in view_for_key"). Before the fix every seed had some here.
    let blobs = blob_files(dir);
    assert!(
        blobs.is_empty(),
        "seed {seed} {when}: sled wrote blob files: {blobs:?}"
    );
    {
        let (db, log) = Database::open(db_config(dir))
            .unwrap_or_else(|e| panic!("seed {seed} {when}: reopening failed: {e}"));
        let hs = log.hard_state().expect("hard state");
        if let Some((r, n, c)) = hard_state {
            assert!(
                (hs.promised.round, hs.promised.node.0) >= (r, n),
                "seed {seed} {when}: promise went back from ({r}, {n}) to {:?}",
                hs.promised
            );
            assert!(
                hs.commit.0 >= c,
                "seed {seed} {when}: commit went back from {c} to {}",
                hs.commit
            );
        }
        let applied = db.namespace().applied();
        let last = log.last_slot().expect("last slot");
        let compacted = log.compacted_through().expect("compaction point");
        assert!(
            applied <= last,
            "seed {seed} {when}: namespace at {applied} ahead of the log's {last}"
        );
        assert!(
            compacted <= applied,
            "seed {seed} {when}: log compacted to {compacted} past the namespace's {applied}"
        );
        assert_prefix(seed, db.namespace(), &format!("{when}, before recovery"));
    }
    let mut node = DbReplica::open(config(), db_config(dir), Time::ZERO)
        .unwrap_or_else(|e| panic!("seed {seed} {when}: restart failed: {e}"));
    let mut now = Time::ZERO;
    while !node.can_read(now) {
        now = now + Duration::from_millis(2);
        assert!(
            now < Time(Duration::from_secs(10)),
            "seed {seed} {when}: no recovery"
        );
        node.on_tick(now).expect("tick");
        while node.drive(now).expect("drive").performed {}
    }
    let n = assert_prefix(
        seed,
        node.database().namespace(),
        &format!("{when}, after recovery"),
    );
    assert!(
        n >= acked,
        "seed {seed} {when}: command {acked} was acknowledged, only {n} survived"
    );
}

/// The names of the files in sled's blob directory (`sled/blobs`), sorted.
fn blob_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir.join("sled").join("blobs")) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("blob entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("listing sled's blob directory: {e}"),
    };
    names.sort();
    names
}

fn mode(seed: u64) -> Mode {
    match seed % 3 {
        0 => Mode::Nothing,
        1 => Mode::Prefix,
        _ => Mode::Subset,
    }
}

fn run_seed(seed: u64, root: &Path) {
    let mountpoint = root.join(format!("mnt-{seed}"));
    std::fs::create_dir_all(&mountpoint).expect("mountpoint");
    let (fs, state) = CrashFs::new();
    let session = crashfs::mount(fs, &mountpoint).expect("mount");
    let dir = mountpoint.join("db");
    let mut rng = Rng(seed ^ 0x5eed);
    let mut acked = 0;
    let mut hard_state = None;
    for round in 1..=ROUNDS {
        let cut = match rng.below(3) {
            0 => Cut::AfterAcks(1 + rng.below(60)),
            1 => Cut::MidSnapshot(1 + rng.below(3)),
            _ => Cut::MidTrim(1 + rng.below(3)),
        };
        let result = run_round(&dir, seed, cut, round);
        acked = acked.max(result.acked);
        hard_state = result.hard_state.or(hard_state);
        crashfs::lock(&state).power_off(mode(seed), &mut rng);
        check_disk(&dir, seed, round, acked, hard_state);
    }
    let counters = crashfs::lock(&state).counters.clone();
    eprintln!(
        "power-loss seed {seed} ({:?}): {acked} acknowledged, {counters:?}",
        mode(seed)
    );
    crashfs::unmount(session, &mountpoint);
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn skip(why: &str) {
    let message = format!("\n!!!!!!!! SKIPPED: the power-loss test did not run: {why}. !!!!!!!!\n");
    if std::env::var_os("LIBPAXOS_DB_REQUIRE_FUSE").is_some() {
        panic!("{message}");
    }
    eprintln!("{message}");
    println!("{message}");
}

#[test]
fn power_loss_never_loses_an_acknowledged_command() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let seed = std::env::var(CHILD_SEED)
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("seed");
        child(&PathBuf::from(dir), seed);
    }
    if let Some(why) = crashfs::unavailable() {
        return skip(&why);
    }
    let swept = crashfs::sweep_stale_mounts();
    if swept > 0 {
        eprintln!("power-loss: unmounted {swept} crashfs mounts left by killed test processes");
    }
    let root = TempDir::new("power-loss");
    // Probe the mount once, so a refusal is a loud skip rather than a failure of every seed.
    let probe = root.path().join("probe");
    std::fs::create_dir_all(&probe).expect("probe dir");
    match crashfs::mount(CrashFs::new().0, &probe) {
        Ok(session) => drop(session),
        Err(e) => return skip(&format!("mounting a FUSE file system failed: {e}")),
    }
    let first = env_u64("LIBPAXOS_DB_POWER_LOSS_FIRST_SEED", 1);
    let count = env_u64("LIBPAXOS_DB_POWER_LOSS_SEEDS", 100);
    let started = Instant::now();
    for seed in REGRESSION_SEEDS {
        if !(first..first + count).contains(&seed) {
            run_seed(seed, root.path());
        }
    }
    for seed in first..first + count {
        run_seed(seed, root.path());
    }
    eprintln!(
        "power-loss: {count} seeds from {first}, {ROUNDS} power cuts each, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

const INSTALL_CHILD_DIR: &str = "LIBPAXOS_DB_POWER_LOSS_INSTALL_CHILD_DIR";
const INSTALL_CHILD_SOURCE: &str = "LIBPAXOS_DB_POWER_LOSS_INSTALL_SOURCE";
const INSTALL_TEST: &str = "power_loss_during_snapshot_installs_leaves_one_whole_snapshot";
const SNAPSHOTS: u64 = 6;

fn session_command(id: u64) -> Command {
    Command::Client(ClientRequest {
        session: SessionId(id),
        seq: RequestSeq(1),
        time: WallTime(id),
        op: ClientOp::NewSession {
            user: "install".into(),
            lease: Duration::from_secs(3600),
            keys: vec![7; 64],
        },
    })
}

/// Snapshot files at indexes 40, 80, ... (copies kept in `out`), with their digests.
fn source_snapshots(dir: &Path, out: &Path) -> BTreeMap<u64, [u8; 32]> {
    let (mut db, log) = Database::open(DbConfig::new(dir)).expect("source");
    drop(log);
    std::fs::create_dir_all(out).expect("out");
    let mut digests = BTreeMap::new();
    let mut slot = 0;
    for _ in 0..SNAPSHOTS {
        for _ in 0..40 {
            slot += 1;
            db.apply(&Committed {
                slot: Slot(slot),
                value: Value {
                    epoch: Epoch(0),
                    payload: Payload::Command(session_command(slot).encode().into()),
                },
            })
            .expect("apply");
        }
        let info = db.take_snapshot().expect("snapshot");
        let name = info.path.file_name().expect("name");
        std::fs::copy(&info.path, out.join(name)).expect("copy");
        digests.insert(slot, db.namespace().digest().expect("digest"));
    }
    digests
}

/// The child: installs every source snapshot ahead of its namespace in order, through the
/// transfer path and the off-loop install job, printing each step.
fn install_child(dir: &Path, source: &Path) -> ! {
    let (mut db, log) = Database::open(DbConfig::new(dir)).expect("open target");
    drop(log);
    let mut files: Vec<PathBuf> = std::fs::read_dir(source)
        .expect("source dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for path in files {
        let info = libpaxos_db::snapshot::verify(&path).expect("source snapshot");
        if info.applied <= db.namespace().applied() {
            continue;
        }
        let mut reader = libpaxos_db::SnapshotReader::open(&info, 16 * 1024).expect("reader");
        let mut installer = db
            .receive_snapshot(info.applied, info.len)
            .expect("receive");
        while let Some(chunk) = reader.next_chunk().expect("chunk") {
            installer.accept(&chunk).expect("accept");
        }
        let received = installer.finish().expect("received");
        println!("received {}", info.applied.0);
        let staged = db.install_job(&received).expect("job").run();
        println!("staged {}", info.applied.0);
        let slot = db
            .finish_install(staged)
            .expect("not fatal")
            .expect("installed");
        println!("installed {}", slot.0);
    }
    println!("done");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn power_loss_during_snapshot_installs_leaves_one_whole_snapshot() {
    if let (Ok(dir), Ok(source)) = (
        std::env::var(INSTALL_CHILD_DIR),
        std::env::var(INSTALL_CHILD_SOURCE),
    ) {
        install_child(Path::new(&dir), Path::new(&source));
    }
    if let Some(why) = crashfs::unavailable() {
        return skip(&why);
    }
    let swept = crashfs::sweep_stale_mounts();
    if swept > 0 {
        eprintln!("power-loss: unmounted {swept} crashfs mounts left by killed test processes");
    }
    let root = TempDir::new("power-loss-install");
    let source_files = root.path().join("source-files");
    let digests = source_snapshots(&root.path().join("source"), &source_files);
    let first = env_u64("LIBPAXOS_DB_POWER_LOSS_FIRST_SEED", 1);
    let count = env_u64("LIBPAXOS_DB_POWER_LOSS_SEEDS", 100) / 4 + 1;
    for seed in first..first + count {
        let mountpoint = root.path().join(format!("mnt-{seed}"));
        std::fs::create_dir_all(&mountpoint).expect("mountpoint");
        let (fs, state) = CrashFs::new();
        let session = match crashfs::mount(fs, &mountpoint) {
            Ok(session) => session,
            Err(e) => return skip(&format!("mounting a FUSE file system failed: {e}")),
        };
        let dir = mountpoint.join("db");
        let mut rng = Rng(seed ^ 0x1257a11);
        let mut installed = 0;
        for round in 1..=2 {
            // Cut after the n-th line of a step: received (mid-transfer rename), staged (filled,
            // not switched), installed (switched, old generation being dropped).
            let steps = ["received", "staged", "installed"];
            let step = steps[rng.below(3) as usize];
            let nth = 1 + rng.below(2);
            let mut child = Process::new(std::env::current_exe().expect("test binary"))
                .args(["--exact", INSTALL_TEST, "--nocapture", "--test-threads=1"])
                .env(INSTALL_CHILD_DIR, &dir)
                .env(INSTALL_CHILD_SOURCE, &source_files)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn child");
            let stdout = child.stdout.take().expect("stdout");
            let mut seen = 0;
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("child output");
                let line = line
                    .rsplit_once("... ")
                    .map_or(line.as_str(), |(_, l)| l)
                    .to_string();
                let mut words = line.split_whitespace();
                let word = words.next().unwrap_or("");
                if word == "installed" {
                    installed = words.next().and_then(|n| n.parse().ok()).expect("index");
                }
                if word == step {
                    seen += 1;
                }
                if seen >= nth || word == "done" {
                    break;
                }
            }
            child.kill().expect("kill");
            child.wait().expect("reap");
            crashfs::lock(&state).power_off(mode(seed), &mut rng);
            let when = format!("seed {seed} power cut {round} (after {step} #{nth})");
            let (db, log) = Database::open(DbConfig::new(&dir))
                .unwrap_or_else(|e| panic!("{when}: reopening failed: {e}"));
            let applied = db.namespace().applied().0;
            assert!(
                applied >= installed,
                "{when}: install of {installed} acknowledged, namespace at {applied}"
            );
            if applied > 0 {
                let want = digests.get(&applied).unwrap_or_else(|| {
                    panic!("{when}: namespace at {applied}, not a snapshot index")
                });
                assert_eq!(
                    &db.namespace().digest().expect("digest"),
                    want,
                    "{when}: namespace is not the snapshot at {applied}"
                );
            }
            assert_eq!(
                log.compacted_through().expect("log").0,
                applied,
                "{when}: log compaction point"
            );
            eprintln!("{when}: acknowledged install {installed}, namespace at {applied}");
        }
        crashfs::unmount(session, &mountpoint);
    }
}
