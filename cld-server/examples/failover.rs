//! Fail-over time of a 3-member cell of real `cld` processes on loopback: kills the master
//! with SIGKILL under a write load, again and again, and reports for each kill the time from
//! the kill to the first write acknowledged that was issued after it (the client-visible cost
//! of a fail-over: lease expiry, election, the new master's first commit, the client's
//! rotation to it). Prints every kill and the median. `scripts/failover.sh` builds and runs it.
//!
//! With `--mode term` it sends SIGTERM instead (a planned restart): the master hands
//! mastership over, waits for the new master and exits; the figure is then the time from the
//! signal to the first write issued after it, and the member must exit with status 0.
//!
//! ```text
//! cargo run --release -p cld-server --example failover -- [--kills N] [--writers N]
//!     [--cld PATH] [--paxos-lease-ms MS] [--initial-rto-ms MS] [--rotate-after N]
//!     [--mode kill|term]
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cldc::proto::{CellPublicKey, OpenMode};
use cldc::{Credentials, Session, SessionOptions};

const SECRET: &str = "failover-example-secret-0123456789abcdef";

struct Args {
    kills: usize,
    writers: usize,
    cld: PathBuf,
    paxos_lease_ms: Option<u64>,
    initial_rto_ms: Option<u64>,
    rotate_after: Option<u32>,
    /// Stop the master with SIGTERM (a graceful stop) instead of SIGKILL.
    term: bool,
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/failover → target/<profile>/cld
    let default_cld = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("cld"))
        .unwrap_or_else(|| PathBuf::from("cld"));
    let mut args = Args {
        kills: 10,
        writers: 4,
        cld: default_cld,
        paxos_lease_ms: None,
        initial_rto_ms: None,
        rotate_after: None,
        term: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag}: missing value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--kills" => args.kills = num(value()?)? as usize,
            "--writers" => args.writers = num(value()?)?.max(1) as usize,
            "--cld" => args.cld = PathBuf::from(value()?),
            "--paxos-lease-ms" => args.paxos_lease_ms = Some(num(value()?)?),
            "--initial-rto-ms" => args.initial_rto_ms = Some(num(value()?)?),
            "--rotate-after" => args.rotate_after = Some(num(value()?)? as u32),
            "--mode" => {
                args.term = match value()?.as_str() {
                    "kill" => false,
                    "term" => true,
                    other => return Err(format!("--mode: {other} is neither kill nor term")),
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

struct Cell {
    dir: PathBuf,
    cld: PathBuf,
    config: PathBuf,
    clients: Vec<SocketAddr>,
    metrics: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Cell {
    fn start(&mut self, i: usize) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("member{}.log", i + 1)))?;
        let child = Command::new(&self.cld)
            .arg("--config")
            .arg(&self.config)
            .args(["--id", &(i + 1).to_string()])
            .arg("--data-dir")
            .arg(self.dir.join(format!("data{}", i + 1)))
            .args(["--metrics", &self.metrics[i].to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.children[i] = Some(child);
        Ok(())
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM to member `i` and waits (up to 30 s) for it to exit; its exit status and
    /// how long it took.
    fn terminate(&mut self, i: usize) -> Result<(std::process::ExitStatus, Duration), String> {
        let Some(mut child) = self.children[i].take() else {
            return Err(format!("member {} is not running", i + 1));
        };
        let signalled = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(|e| format!("kill -TERM: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM: {sent}"));
        }
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Ok((status, signalled.elapsed()));
            }
            if signalled.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                return Err(format!("member {} still running 30 s after SIGTERM", i + 1));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn metric(&self, i: usize, name: &str) -> Option<i64> {
        let mut s =
            TcpStream::connect_timeout(&self.metrics[i], Duration::from_millis(300)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    fn master(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let masters: Vec<usize> = (0..self.children.len())
                .filter(|&i| self.children[i].is_some())
                .filter(|&i| self.metric(i, "cld_is_master") == Some(1))
                .collect();
            if masters.len() == 1 {
                return Some(masters[0]);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn caught_up(&self, i: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(m) = self.master(Duration::from_secs(1))
                && let (Some(target), Some(applied), Some(0)) = (
                    self.metric(m, "cld_applied_index"),
                    self.metric(i, "cld_applied_index"),
                    self.metric(i, "cld_rejoining"),
                )
                && applied >= target
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_cell(args: &Args) -> Result<(Cell, String), String> {
    let dir = std::env::temp_dir().join(format!("cld-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = Command::new(&args.cld)
        .args(["keygen", "--out"])
        .arg(dir.join("cell.key"))
        .output()
        .map_err(|e| format!("{}: {e}", args.cld.display()))?;
    if !out.status.success() {
        return Err(format!("cld keygen: {out:?}"));
    }
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut text = format!(
        "[cell]\nname = \"failover\"\nsecret = \"{SECRET}\"\nkey_file = \"cell.key\"\n[timing]\n"
    );
    if let Some(ms) = args.paxos_lease_ms {
        text.push_str(&format!("paxos_lease_ms = {ms}\n"));
    }
    let mut clients = Vec::new();
    let mut metrics = Vec::new();
    for id in 1..=3 {
        let client: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .map_err(|e| format!("{e}"))?;
        text.push_str(&format!(
            "[[member]]\nid = {id}\nclient = \"{client}\"\npeer = \"127.0.0.1:{}\"\n",
            free_port()
        ));
        clients.push(client);
        metrics.push(
            format!("127.0.0.1:{}", free_port())
                .parse()
                .map_err(|e| format!("{e}"))?,
        );
    }
    text.push_str(&format!(
        "[[user]]\nname = \"bench\"\nsecret = \"{SECRET}\"\n"
    ));
    let config = dir.join("cell.toml");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&config)
            .map_err(|e| e.to_string())?;
        f.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok((
        Cell {
            dir,
            cld: args.cld.clone(),
            config,
            clients,
            metrics,
            children: (0..3).map(|_| None).collect(),
        },
        public,
    ))
}

/// (start, end) of every acknowledged write.
type Acks = Arc<Mutex<Vec<(Instant, Instant)>>>;

async fn writer(session: Session, n: usize, acks: Acks, stop: Arc<AtomicBool>) {
    let mode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);
    let Ok(handle) = session.open_node(&format!("/load{n}"), mode).await else {
        eprintln!("writer {n}: open failed");
        return;
    };
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        if handle.put(format!("{i}").as_bytes()).await.is_ok() {
            let end = Instant::now();
            if let Ok(mut acks) = acks.lock() {
                acks.push((start, end));
            }
            i += 1;
        }
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("failover: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let (mut cell, public) = make_cell(&args)?;
    for i in 0..3 {
        cell.start(i)
            .map_err(|e| format!("starting member {}: {e}", i + 1))?;
    }
    cell.master(Duration::from_secs(20))
        .ok_or("no master after 20 s")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut options = SessionOptions {
        cell_key: Some(CellPublicKey::from_base64(&public).map_err(|e| e.to_string())?),
        call_timeout: Duration::from_secs(30),
        ..SessionOptions::default()
    };
    if let Some(ms) = args.initial_rto_ms {
        options.initial_rto = Duration::from_millis(ms);
    }
    if let Some(n) = args.rotate_after {
        options.sends_before_rotate = n;
    }
    println!(
        "client: initial_rto {:?}, max_rto {:?}, sends_before_rotate {}; server lease {}",
        options.initial_rto,
        options.max_rto,
        options.sends_before_rotate,
        args.paxos_lease_ms
            .map_or("default".to_string(), |ms| format!("{ms} ms"))
    );
    let acks: Acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..args.writers {
        let credentials =
            Credentials::new("bench", SECRET.as_bytes()).map_err(|e| e.to_string())?;
        let session = rt
            .block_on(Session::open(
                cell.clients.clone(),
                credentials,
                options.clone(),
            ))
            .map_err(|e| format!("session: {e}"))?;
        tasks.push(rt.spawn(writer(session, n, acks.clone(), stop.clone())));
    }
    let mut times = Vec::new();
    let what = if args.term { "SIGTERM" } else { "kill -9" };
    for k in 0..args.kills {
        std::thread::sleep(Duration::from_millis(1000));
        let m = cell.master(Duration::from_secs(20)).ok_or("no master")?;
        let killed = Instant::now();
        if args.term {
            let (status, exit_took) = cell.terminate(m)?;
            if !status.success() {
                return Err(format!(
                    "member {} exited with {status} after SIGTERM",
                    m + 1
                ));
            }
            println!(
                "stop {k}: member {} exited 0 {exit_took:?} after SIGTERM",
                m + 1
            );
        } else {
            cell.kill9(m);
        }
        let deadline = killed + Duration::from_secs(30);
        let first = loop {
            let found = acks.lock().ok().and_then(|a| {
                a.iter()
                    .filter(|(start, _)| *start >= killed)
                    .map(|(_, end)| *end)
                    .min()
            });
            if let Some(end) = found {
                break end;
            }
            if Instant::now() > deadline {
                return Err(format!("kill {k}: no write acknowledged within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let took = first.duration_since(killed);
        println!("{what} {k}: member {} → first write after {took:?}", m + 1);
        times.push(took);
        cell.start(m).map_err(|e| e.to_string())?;
        if !cell.caught_up(m, Duration::from_secs(30)) {
            return Err(format!("member {} did not catch up", m + 1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = acks.lock().map(|a| a.len()).unwrap_or(0);
    times.sort();
    if let (Some(min), Some(max)) = (times.first(), times.last()) {
        let median = times[times.len() / 2];
        println!(
            "{what} master → first successful write: median {median:?}, min {min:?}, max {max:?} over {} stops ({writes} writes)",
            times.len()
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
