//! `cld`: one member of a CLD cell. See docs/operations.md.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cld_server::env::{Entropy, OsEntropy, SystemClock};
use cld_server::metrics::{self, Metrics};
use cld_server::peer::TokioNet;
use cld_server::{CellConfig, ServerOptions, TimingOverrides, keys};
use libpaxos::NodeId;
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(name = "cld", about = "A member of a CLD cell", version)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The cell's configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This member's id (one of the ids of the config's member tables).
    #[arg(long)]
    id: Option<u64>,
    /// This member's data dir (created on first start).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Write the process id to this file (removed on clean exit).
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Serve Prometheus /metrics and /healthz on this address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Override timing.paxos_lease_ms.
    #[arg(long, value_name = "MS")]
    paxos_lease_ms: Option<u64>,
    /// Override timing.election_timeout_ms.
    #[arg(long, value_name = "MS")]
    election_timeout_ms: Option<u64>,
    /// Override timing.heartbeat_ms.
    #[arg(long, value_name = "MS")]
    heartbeat_ms: Option<u64>,
    /// Override timing.session_lease_ms.
    #[arg(long, value_name = "MS")]
    session_lease_ms: Option<u64>,
    /// Override timing.expiry_margin_ms.
    #[arg(long, value_name = "MS")]
    expiry_margin_ms: Option<u64>,
    /// Override timing.snapshot_every.
    #[arg(long, value_name = "ENTRIES")]
    snapshot_every: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a fresh random secret (for a user or the cell).
    GenSecret,
    /// Write a new cell private key (X25519) to FILE (mode 0600) and print its public key.
    Keygen {
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Run a whole cell on loopback (child processes) until Ctrl-C.
    Dev {
        /// How many members (1, 3 or 5).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Where the config, keys, secrets and data dirs go (reused if it holds a cell;
        /// default: a fresh directory under the system temp dir).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Fatal start-up problems exit with this status.
const EXIT_START: u8 = 2;
/// A member that failed while running (disk error) exits with this status.
const EXIT_FAILED: u8 = 1;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("cld: {message}");
    ExitCode::from(EXIT_START)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::GenSecret) => {
            println!("{}", keys::new_secret_text(&OsEntropy).as_str());
            ExitCode::SUCCESS
        }
        Some(Cmd::Keygen { out }) => keygen(&out),
        Some(Cmd::Dev { nodes, dir }) => dev(nodes, dir),
        None => run(cli.run),
    }
}

fn keygen(out: &Path) -> ExitCode {
    match keys::write_new_cell_key(out) {
        Ok(public) => {
            println!("{}", public.to_base64());
            ExitCode::SUCCESS
        }
        Err(err) => fail(format!("keygen: {err}")),
    }
}

/// `count` distinct loopback ports, each free for both TCP and UDP and not in `avoid`.
/// Every socket stays bound until all are chosen, so the kernel cannot hand the same port
/// out twice.
fn free_ports(count: usize, avoid: &[u16]) -> std::io::Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..count * 16 {
        if ports.len() == count {
            break;
        }
        let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if avoid.contains(&port) {
            continue;
        }
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            ports.push(port);
            held.push((tcp, udp));
        }
    }
    if ports.len() < count {
        return Err(std::io::Error::other(format!(
            "found only {} of {count} loopback ports free for both TCP and UDP",
            ports.len()
        )));
    }
    Ok(ports)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A fresh directory under the system temp dir for `cld dev`.
fn fresh_dev_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let dir = base.join(format!(
            "cld-dev-{}-{:08x}",
            std::process::id(),
            OsEntropy.next_u64() as u32
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(std::io::Error::other(format!(
        "no fresh directory could be made in {}",
        base.display()
    )))
}

/// Writes a loopback cell of `nodes` members into `dir` (unless one is there) and returns
/// the config path.
fn dev_cell(nodes: u64, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("cell.toml");
    if config.exists() {
        return Ok(config);
    }
    let secret = |entropy: &OsEntropy| format!("{}\n", keys::new_secret_text(entropy).as_str());
    write_private(&dir.join("cell.secret"), &secret(&OsEntropy))?;
    write_private(&dir.join("dev.secret"), &secret(&OsEntropy))?;
    let public = keys::write_new_cell_key(&dir.join("cell.key"))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(dir.join("cell.pub"), format!("{}\n", public.to_base64()))?;
    let mut text = String::from(
        "# written by `cld dev`\n[cell]\nname = \"dev\"\nsecret_file = \"cell.secret\"\nkey_file = \"cell.key\"\n",
    );
    let ports = free_ports(2 * nodes as usize, &[])?;
    for (id, pair) in (1..=nodes).zip(ports.chunks(2)) {
        text.push_str(&format!(
            "\n[[member]]\nid = {id}\nclient = \"127.0.0.1:{}\"\npeer = \"127.0.0.1:{}\"\n",
            pair[0], pair[1]
        ));
    }
    text.push_str("\n[[user]]\nname = \"dev\"\nsecret_file = \"dev.secret\"\n");
    write_private(&config, &text)?;
    Ok(config)
}

fn dev(nodes: u64, dir: Option<PathBuf>) -> ExitCode {
    if ![1, 3, 5].contains(&nodes) {
        return fail(format!("--nodes: {nodes} is not 1, 3 or 5"));
    }
    let dir = match dir {
        Some(dir) => dir,
        None => match fresh_dev_dir() {
            Ok(dir) => dir,
            Err(err) => return fail(format!("dev: {err}")),
        },
    };
    let dir = &dir;
    let config = match dev_cell(nodes, dir) {
        Ok(c) => c,
        Err(err) => return fail(format!("dev: {}: {err}", dir.display())),
    };
    let cell = match CellConfig::load(&config, &TimingOverrides::default()) {
        Ok(c) => c,
        Err(err) => return fail(err),
    };
    let Ok(exe) = std::env::current_exe() else {
        return fail("dev: cannot find the cld executable");
    };
    let public = match std::fs::read_to_string(dir.join("cell.pub")) {
        Ok(text) => text.trim().to_string(),
        Err(err) => return fail(format!("dev: {}: {err}", dir.join("cell.pub").display())),
    };
    if cell.members.len() as u64 != nodes {
        println!(
            "note: {} already holds a {}-member cell; --nodes {nodes} is ignored",
            dir.display(),
            cell.members.len()
        );
    }
    println!(
        "cld dev: a {}-member cell on loopback in {}",
        cell.members.len(),
        dir.display()
    );
    println!("cell config: {}", config.display());
    let mut children = Vec::new();
    let taken: Vec<u16> = cell
        .members
        .iter()
        .flat_map(|m| [m.client.port(), m.peer.port()])
        .collect();
    let metrics_ports = match free_ports(cell.members.len(), &taken) {
        Ok(ports) => ports,
        Err(err) => return fail(format!("dev: choosing metrics ports: {err}")),
    };
    for (member, port) in cell.members.iter().zip(metrics_ports) {
        let id = member.id.0;
        let started = Ok::<_, std::io::Error>(format!("127.0.0.1:{port}")).and_then(|metrics| {
            let log = std::fs::File::create(dir.join(format!("member{id}.log")))?;
            let child = std::process::Command::new(&exe)
                .arg("--config")
                .arg(&config)
                .args(["--id", &id.to_string(), "--metrics", &metrics])
                .arg("--data-dir")
                .arg(dir.join(format!("data{id}")))
                .stderr(log)
                .spawn()?;
            Ok((metrics, child))
        });
        let (metrics, pid) = match started {
            Ok((metrics, child)) => {
                let pid = child.id();
                children.push(child);
                (metrics, pid)
            }
            Err(err) => {
                stop_children(children);
                return fail(format!("dev: starting member {id}: {err}"));
            }
        };
        println!(
            "member {id}: client {} peer {} metrics http://{metrics}/metrics log {} pid {pid}",
            member.client,
            member.peer,
            dir.join(format!("member{id}.log")).display()
        );
    }
    let addrs: Vec<String> = cell.members.iter().map(|m| m.client.to_string()).collect();
    println!("connect with:");
    println!(
        "  cldcli --cell {} --cell-key {public} --user dev --secret-file {}",
        addrs.join(","),
        dir.join("dev.secret").display()
    );
    let _ = std::io::stdout().flush();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            stop_children(children);
            return fail(format!("runtime: {err}"));
        }
    };
    let clients: Vec<SocketAddr> = cell.members.iter().map(|m| m.client).collect();
    let secret_file = dir.join("dev.secret");
    let signal = rt.block_on(async {
        let signal = shutdown_signal();
        tokio::pin!(signal);
        // Biased (no RNG): both complete once; a signal wins a tie.
        tokio::select! {
            biased;
            signal = &mut signal => return signal,
            report = self_check(&clients, &public, &secret_file) => match report {
                Ok(line) => println!("self-check: {line}"),
                Err(err) => println!("self-check FAILED: {err} (see the members' logs)"),
            },
        }
        println!("running; Ctrl-C stops the cell.");
        let _ = std::io::stdout().flush();
        signal.await
    });
    // stdout may be closed by now (a pipe whose reader left): never panic on it.
    let _ = writeln!(std::io::stdout(), "{signal}: stopping the cell");
    if stop_children(children) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// How long `cld dev`'s self-check waits for the cell to serve.
const SELF_CHECK_WAIT: Duration = Duration::from_secs(20);

/// Opens a session as the dev user, writes and reads back a file, and says which member is
/// master and how long the read's round trip took.
async fn self_check(
    clients: &[SocketAddr],
    public: &str,
    secret_file: &Path,
) -> Result<String, String> {
    use cldc::proto::OpenMode;
    let key =
        cldc::proto::CellPublicKey::from_base64(public).map_err(|e| format!("cell.pub: {e}"))?;
    let text = std::fs::read_to_string(secret_file)
        .map_err(|e| format!("{}: {e}", secret_file.display()))?;
    let secret = text.strip_suffix('\n').unwrap_or(&text);
    let credentials = cldc::Credentials::new("dev", secret.as_bytes())
        .map_err(|e| format!("{}: {e}", secret_file.display()))?;
    let options = cldc::SessionOptions {
        cell_key: Some(key),
        call_timeout: Duration::from_secs(5),
        ..cldc::SessionOptions::default()
    };
    // The members are still electing a master: retry until the wait runs out.
    let deadline = tokio::time::Instant::now() + SELF_CHECK_WAIT;
    let session = loop {
        match cldc::Session::open(clients.to_vec(), credentials.clone(), options.clone()).await {
            Ok(session) => break session,
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("no session after {SELF_CHECK_WAIT:?}: {err}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let path = "/cld-dev-self-check";
    let mode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);
    let handle = session
        .open_node(path, mode)
        .await
        .map_err(|e| format!("open {path}: {e}"))?;
    let written = b"hello from cld dev";
    handle
        .put(written)
        .await
        .map_err(|e| format!("put {path}: {e}"))?;
    let started = std::time::Instant::now();
    let read = handle.get().await.map_err(|e| format!("get {path}: {e}"))?;
    let rtt = started.elapsed();
    if read.data != written {
        return Err(format!("get {path}: read back {:?}", read.data));
    }
    let status = session.status().await.map_err(|e| format!("status: {e}"))?;
    let master = status
        .members
        .iter()
        .find(|m| m.is_master)
        .map_or("unknown".to_string(), |m| {
            format!("member {} ({})", m.id, m.addr)
        });
    let _ = handle.close().await;
    let _ = session.close().await;
    Ok(format!(
        "session opened as dev; put and get {path} ok; master is {master}, epoch {}; get round trip {:.2} ms",
        status.epoch.0,
        rtt.as_secs_f64() * 1000.0
    ))
}

/// Sends SIGTERM to every child and waits for them; `true` if all exited cleanly.
fn stop_children(children: Vec<std::process::Child>) -> bool {
    for child in &children {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let mut clean = true;
    for mut child in children {
        match child.wait() {
            Ok(status) if status.success() => {}
            _ => clean = false,
        }
    }
    clean
}

fn run(args: RunArgs) -> ExitCode {
    let Some(config_path) = args.config.clone() else {
        return fail("--config: missing (cld --config cell.toml --id N --data-dir DIR)");
    };
    let Some(id) = args.id else {
        return fail("--id: missing");
    };
    let Some(data_dir) = args.data_dir.clone() else {
        return fail("--data-dir: missing");
    };
    let ms = |v: Option<u64>| v.map(Duration::from_millis);
    let overrides = TimingOverrides {
        paxos_lease: ms(args.paxos_lease_ms),
        election_timeout: ms(args.election_timeout_ms),
        heartbeat: ms(args.heartbeat_ms),
        session_lease: ms(args.session_lease_ms),
        expiry_margin: ms(args.expiry_margin_ms),
        snapshot_every: args.snapshot_every,
    };
    let config = match CellConfig::load(&config_path, &overrides) {
        Ok(c) => c,
        Err(err) => return fail(err),
    };
    if let Err(err) = config.member(NodeId(id)) {
        return fail(err);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(err) => return fail(format!("runtime: {err}")),
    };
    runtime.block_on(serve(
        ServerOptions {
            config,
            id: NodeId(id),
            data_dir,
            inline_jobs: false,
            bugs: Default::default(),
        },
        args.pid_file,
        args.metrics,
    ))
}

async fn serve(
    options: ServerOptions,
    pid_file: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
) -> ExitCode {
    let metrics = Metrics::new();
    if let Some(addr) = metrics_addr {
        match metrics::bind(addr).await {
            Ok(listener) => {
                tokio::spawn(metrics.clone().serve(listener));
            }
            Err(err) => return fail(format!("--metrics {addr}: {err}")),
        }
    }
    let server = match cld_server::start(
        options,
        Arc::new(TokioNet),
        Arc::new(SystemClock::new()),
        Arc::new(OsEntropy),
        metrics,
    )
    .await
    {
        Ok(s) => s,
        Err(err) => return fail(err),
    };
    if let Some(path) = &pid_file
        && let Err(err) = std::fs::write(path, format!("{}\n", std::process::id()))
    {
        return fail(format!("--pid-file {}: {err}", path.display()));
    }
    let handle = server.handle.clone();
    let mut task = server.task;
    // Biased (no RNG): both complete once; a member that already ended reports its result.
    let code = tokio::select! {
        biased;
        result = &mut task => exit_of(result),
        signal = shutdown_signal() => {
            info!(signal, "signal received; shutting down");
            handle.shutdown().await;
            exit_of(task.await)
        }
    };
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    code
}

fn exit_of(
    result: Result<Result<(), cld_server::replica_loop::LoopError>, tokio::task::JoinError>,
) -> ExitCode {
    match result {
        Ok(Ok(())) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Err(err)) => {
            error!(%err, "member failed");
            eprintln!("cld: member failed: {err}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(err) => {
            eprintln!("cld: replica loop panicked: {err}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still dies on the default action.
        return std::future::pending().await;
    };
    // Biased (no RNG): the first signal ends the wait; SIGTERM wins a tie.
    tokio::select! {
        biased;
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
