//! Real `cld` processes on loopback: election, kill -9 of the master, a minority down, a wiped
//! member rejoining without a vote, two wiped members waiting, hostile bytes on the peer
//! port, and start-up refusals with exit status 2.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cld_server::datadir::MemberState;
use cld_server::peer::{PeerIdentity, probe};
use common::{SECRET, TempDir, write_file};
use libpaxos::NodeId;

const CLD: &str = env!("CARGO_BIN_EXE_cld");

use common::ports::free_port;

struct Cell {
    dir: TempDir,
    config: PathBuf,
    peers: Vec<SocketAddr>,
    metrics: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Cell {
    fn new(tag: &str, n: usize) -> Cell {
        let dir = TempDir::new(tag);
        let mut text = format!(
            "[cell]\nname = \"{tag}\"\nsecret = \"{SECRET}\"\n[timing]\npaxos_lease_ms = 200\n"
        );
        let mut peers = Vec::new();
        let mut metrics = Vec::new();
        for id in 1..=n {
            let peer: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            text.push_str(&format!(
                "[[member]]\nid = {id}\nclient = \"127.0.0.1:{}\"\npeer = \"{peer}\"\n",
                free_port()
            ));
            peers.push(peer);
            metrics.push(format!("127.0.0.1:{}", free_port()).parse().unwrap());
        }
        let config = write_file(dir.path(), "cell.toml", &text, 0o600);
        Cell {
            dir,
            config,
            peers,
            metrics,
            children: (0..n).map(|_| None).collect(),
        }
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("data{}", i + 1))
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("log{}", i + 1)))
            .unwrap();
        let child = Command::new(CLD)
            .arg("--config")
            .arg(&self.config)
            .args(["--id", &(i + 1).to_string()])
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(["--metrics", &self.metrics[i].to_string()])
            .arg("--pid-file")
            .arg(self.dir.path().join(format!("pid{}", i + 1)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn running(&self) -> Vec<usize> {
        (0..self.children.len())
            .filter(|&i| self.children[i].is_some())
            .collect()
    }

    /// One gauge or counter from member `i`'s /metrics (`None` if unreachable).
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

    /// Waits until exactly one running member is master; returns it.
    fn wait_master(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let masters: Vec<usize> = self
                .running()
                .into_iter()
                .filter(|&i| self.metric(i, "cld_is_master") == Some(1))
                .collect();
            if masters.len() == 1 {
                return masters[0];
            }
            assert!(
                Instant::now() < deadline,
                "no single master among {:?}: {masters:?}\n{}",
                self.running(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_metric(
        &self,
        i: usize,
        name: &str,
        ok: impl Fn(i64) -> bool,
        timeout: Duration,
    ) -> i64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.metric(i, name)
                && ok(v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "member {} {name} = {:?}\n{}",
                i + 1,
                self.metric(i, name),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.children.len() {
            let text = std::fs::read_to_string(self.dir.path().join(format!("log{}", i + 1)))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- member {} ---\n", i + 1));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
    }
}

#[test]
fn three_members_elect_fail_over_on_kill9_keep_state_and_serve_with_a_minority_down() {
    let mut cell = Cell::new("proc3", 3);
    for i in 0..3 {
        cell.start(i);
    }
    let m = cell.wait_master(Duration::from_secs(15));
    let epoch1 = cell.metric(m, "cld_epoch").unwrap();
    let applied1 = cell.metric(m, "cld_applied_index").unwrap();
    assert!(applied1 >= 1, "the master's take-office no-op is applied");
    assert!(std::fs::read_to_string(cell.dir.path().join(format!("pid{}", m + 1))).is_ok());

    cell.kill9(m);
    let m2 = cell.wait_master(Duration::from_secs(15));
    assert_ne!(m2, m);
    let epoch2 = cell.metric(m2, "cld_epoch").unwrap();
    assert!(epoch2 > epoch1, "new epoch {epoch2} > {epoch1}");
    for i in cell.running() {
        cell.wait_metric(
            i,
            "cld_applied_index",
            |a| a > applied1,
            Duration::from_secs(5),
        );
    }

    // The killed member comes back from its disk and catches up as a voter.
    cell.start(m);
    let target = cell.metric(m2, "cld_applied_index").unwrap();
    cell.wait_metric(
        m,
        "cld_applied_index",
        |a| a >= target,
        Duration::from_secs(10),
    );
    assert_eq!(cell.metric(m, "cld_rejoining"), Some(0));

    // A follower down: the master keeps its lease and office.
    let follower = (0..3).find(|&i| i != m2).unwrap();
    cell.kill9(follower);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cell.wait_master(Duration::from_secs(1)),
        m2,
        "{}",
        cell.logs()
    );
    assert_eq!(cell.metric(m2, "cld_epoch"), Some(epoch2));
}

#[test]
fn five_members_survive_two_failures_including_the_master() {
    let mut cell = Cell::new("proc5", 5);
    for i in 0..5 {
        cell.start(i);
    }
    let m = cell.wait_master(Duration::from_secs(15));
    let epoch1 = cell.metric(m, "cld_epoch").unwrap();
    cell.kill9(m);
    cell.kill9((m + 1) % 5);
    let m2 = cell.wait_master(Duration::from_secs(15));
    assert!(cell.metric(m2, "cld_epoch").unwrap() > epoch1);
}

#[test]
fn a_wiped_member_rejoins_without_voting_and_two_wiped_members_wait() {
    let mut cell = Cell::new("procwipe", 3);
    for i in 0..3 {
        cell.start(i);
    }
    let m = cell.wait_master(Duration::from_secs(15));
    let f = (m + 1) % 3;
    cell.kill9(f);
    std::fs::remove_dir_all(cell.data_dir(f)).unwrap();
    cell.start(f);
    // It withholds its votes until a barrier proposed after it rejoined has committed and
    // been applied, then votes.
    cell.wait_metric(f, "cld_rejoining", |r| r == 0, Duration::from_secs(10));
    let log = std::fs::read_to_string(cell.dir.path().join(format!("log{}", f + 1))).unwrap();
    assert!(log.contains("rejoining without a vote"), "{log}");
    assert!(log.contains("voting again"), "{log}");
    let target = cell.metric(m, "cld_applied_index").unwrap();
    cell.wait_metric(
        f,
        "cld_applied_index",
        |a| a >= target,
        Duration::from_secs(5),
    );

    // Everyone down; two data dirs wiped; those two come back without the third: they wait.
    for i in 0..3 {
        cell.kill9(i);
    }
    let keep = m;
    let wiped: Vec<usize> = (0..3).filter(|&i| i != keep).collect();
    for &i in &wiped {
        std::fs::remove_dir_all(cell.data_dir(i)).unwrap();
        cell.start(i);
    }
    std::thread::sleep(Duration::from_secs(3));
    for &i in &wiped {
        assert_eq!(cell.metric(i, "cld_is_master"), Some(0), "{}", cell.logs());
        assert_eq!(cell.metric(i, "cld_rejoining"), Some(1), "{}", cell.logs());
        assert_eq!(cell.metric(i, "cld_applied_index"), Some(0));
        // Their own election attempts (pre-votes) never left them.
        let withheld = cell.metric(i, "cld_rejoin_dropped_votes_total").unwrap();
        assert!(withheld > 0, "member {} withheld nothing", i + 1);
    }
}

#[test]
fn hostile_bytes_and_the_wrong_secret_on_the_peer_port_are_counted_and_harmless() {
    let mut cell = Cell::new("prochostile", 3);
    for i in 0..3 {
        cell.start(i);
    }
    let m = cell.wait_master(Duration::from_secs(15));
    // Member 3 is dialed by 1 and 2; probe it as member 1 with the wrong secret.
    let members: Vec<(NodeId, SocketAddr)> = cell
        .peers
        .iter()
        .enumerate()
        .map(|(i, a)| (NodeId(i as u64 + 1), *a))
        .collect();
    let wrong = PeerIdentity::new(
        "prochostile",
        b"not the secret but at least 32 characters",
        NodeId(1),
        members,
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(
        rt.block_on(probe(&wrong, NodeId(3), cell.peers[2], MemberState::Voter))
            .is_err()
    );
    for seed in 0..5u32 {
        let mut s = TcpStream::connect(cell.peers[2]).unwrap();
        let junk: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(seed + 7) >> 1) as u8)
            .collect();
        let _ = s.write_all(&junk);
    }
    cell.wait_metric(
        2,
        "cld_peer_auth_failures_total",
        |v| v == 1,
        Duration::from_secs(5),
    );
    cell.wait_metric(
        2,
        "cld_peer_bad_hello_total",
        |v| v == 5,
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        cell.wait_master(Duration::from_secs(2)),
        m,
        "nothing changed"
    );
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn one_member_serves_healthz_and_stops_cleanly_on_sigterm() {
    let mut cell = Cell::new("procterm", 1);
    cell.start(0);
    cell.wait_master(Duration::from_secs(10));
    let health = http_get(cell.metrics[0], "/healthz").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let missing = http_get(cell.metrics[0], "/nope").unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    assert_eq!(cell.metric(0, "cld_http_bad_requests_total"), Some(1));
    let pid_file = cell.dir.path().join("pid1");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let mut child = cell.children[0].take().unwrap();
    assert_eq!(pid.trim(), child.id().to_string());
    let kill = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", cell.logs());
    assert!(!pid_file.exists(), "pid file removed");
    let log = std::fs::read_to_string(cell.dir.path().join("log1")).unwrap();
    assert!(log.contains("SIGTERM"), "{log}");
    // Restarting on the same data dir recovers its state.
    cell.start(0);
    cell.wait_master(Duration::from_secs(10));
    assert!(cell.metric(0, "cld_applied_index").unwrap() >= 2);
}

fn refused(args: &[&str], dir: &Path) -> String {
    let out = Command::new(CLD)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn bad_starts_exit_2_with_one_line_naming_the_cause() {
    let cell = Cell::new("procbad", 3);
    let d = cell.dir.path();
    let cfg = cell.config.to_str().unwrap();
    let data1 = cell.data_dir(0);
    let data1 = data1.to_str().unwrap();
    let err = refused(&["--config", cfg, "--id", "9", "--data-dir", data1], d);
    assert!(err.contains("--id: 9"), "{err}");
    let bad = write_file(d, "bad.toml", "[cell]\nname = \"x\"\nsekret = 1\n", 0o600);
    let err = refused(
        &[
            "--config",
            bad.to_str().unwrap(),
            "--id",
            "1",
            "--data-dir",
            data1,
        ],
        d,
    );
    assert!(err.contains("sekret"), "{err}");

    // Member 1's data dir, then member 2 started on it.
    std::fs::create_dir_all(data1).unwrap();
    cld_server::datadir::DataDir::open(Path::new(data1), "procbad", NodeId(1)).unwrap();
    let err = refused(&["--config", cfg, "--id", "2", "--data-dir", data1], d);
    assert!(err.contains("belongs to member 1"), "{err}");

    // A port in use.
    let _hold = TcpListener::bind(cell.peers[1]).unwrap();
    let data2 = cell.data_dir(1);
    let err = refused(
        &[
            "--config",
            cfg,
            "--id",
            "2",
            "--data-dir",
            data2.to_str().unwrap(),
        ],
        d,
    );
    assert!(err.contains(&cell.peers[1].to_string()), "{err}");
    assert!(!data2.exists(), "a port in use changes nothing on disk");
}

#[test]
fn gen_secret_and_keygen() {
    let dir = TempDir::new("prockeys");
    let out = Command::new(CLD).arg("gen-secret").output().unwrap();
    assert!(out.status.success());
    let secret = String::from_utf8(out.stdout).unwrap();
    assert!(secret.trim().len() >= 32, "{secret}");
    let key = dir.path().join("cell.key");
    let out = Command::new(CLD)
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public =
        cldc::proto::CellPublicKey::from_base64(String::from_utf8(out.stdout).unwrap().trim())
            .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // cldc's key file format: the private key reads back and matches the printed public key.
    let private = cldc::keyfile::read_private_key(&key).unwrap();
    assert_eq!(private.public(), public);
    // Never overwrites an existing key.
    let out = Command::new(CLD)
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cld_dev_runs_a_cell_until_sigterm_and_reuses_its_dir() {
    use std::io::BufRead;
    let tmp = TempDir::new("procdev");
    let dir = tmp.path().join("dev");
    for run in 0..2 {
        let mut child = Command::new(CLD)
            .args(["dev", "--nodes", "3", "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut metrics: Vec<SocketAddr> = Vec::new();
        let mut clients: Vec<String> = Vec::new();
        let mut cldcli = None;
        let mut self_check = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.split("metrics http://").nth(1) {
                metrics.push(rest.split('/').next().unwrap().parse().unwrap());
            }
            if let Some(rest) = line.split(": client ").nth(1) {
                clients.push(rest.split(' ').next().unwrap().to_string());
            }
            if line.trim_start().starts_with("cldcli ") {
                cldcli = Some(line.trim().to_string());
            }
            if line.starts_with("self-check") {
                self_check = Some(line.clone());
            }
            if line.starts_with("running;") {
                break;
            }
        }
        assert_eq!(metrics.len(), 3);
        // The cell answered a real client before "running" was printed.
        let self_check = self_check.expect("a self-check line");
        assert!(
            self_check.starts_with("self-check: session opened as dev; put and get"),
            "{self_check}"
        );
        assert!(self_check.contains("master is member "), "{self_check}");
        // The printed cldcli line names every member, the cell's public key and the dev
        // user's private secret file.
        let cldcli = cldcli.expect("a cldcli line");
        let words: Vec<&str> = cldcli.split_whitespace().collect();
        let arg = |name: &str| {
            let i = words.iter().position(|w| *w == name).expect(name);
            words[i + 1].to_string()
        };
        assert_eq!(arg("--cell"), clients.join(","));
        assert_eq!(clients.len(), 3);
        cldc::proto::CellPublicKey::from_base64(&arg("--cell-key")).unwrap();
        assert_eq!(arg("--user"), "dev");
        assert_eq!(PathBuf::from(arg("--secret-file")), dir.join("dev.secret"));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let masters = metrics
                .iter()
                .filter(|a| {
                    http_get(**a, "/metrics").is_some_and(|b| b.contains("\ncld_is_master 1"))
                })
                .count();
            if masters == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "run {run}: no master");
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "run {run}: {status:?}");
        for a in &metrics {
            assert!(http_get(*a, "/healthz").is_none(), "member still up");
        }
        use std::os::unix::fs::PermissionsExt;
        for f in ["cell.secret", "dev.secret", "cell.key", "cell.toml"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{f} is private");
        }
    }
}

#[test]
fn cld_dev_without_dir_makes_a_fresh_one_under_the_temp_dir() {
    use std::io::BufRead;
    let mut child = Command::new(CLD)
        .args(["dev", "--nodes", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut dir = None;
    let mut metrics: Option<SocketAddr> = None;
    for line in lines {
        let line = line.unwrap();
        if let Some(rest) = line.split("metrics http://").nth(1) {
            metrics = Some(rest.split('/').next().unwrap().parse().unwrap());
        }
        if let Some(rest) = line.split("on loopback in ").nth(1) {
            dir = Some(PathBuf::from(rest.trim()));
        }
        if line.starts_with("running;") {
            break;
        }
    }
    let dir = dir.expect("the dir is printed");
    let _cleanup = TempDir(dir.clone());
    assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
    for f in ["cell.toml", "cell.key", "cell.secret", "dev.secret"] {
        assert!(dir.join(f).exists(), "{f} written");
    }
    let config = cld_server::CellConfig::load(
        &dir.join("cell.toml"),
        &cld_server::TimingOverrides::default(),
    )
    .unwrap();
    assert_eq!(config.members.len(), 1);
    assert!(config.users.iter().any(|u| u.name == "dev"));
    // The member serves (and has its signal handlers) before it is stopped.
    let metrics = metrics.expect("the metrics address is printed");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !http_get(metrics, "/healthz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        assert!(Instant::now() < deadline, "the member never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}
