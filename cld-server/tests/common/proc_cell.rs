//! A cell of real `cld` processes on loopback, with a cell key and a user, for tests that
//! drive it with cldc clients. Included with `#[path]` by the tests that need it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{SECRET, TempDir, write_file};

pub const CLD: &str = env!("CARGO_BIN_EXE_cld");
pub const USER: &str = "app";

pub use crate::common::ports::free_port;

pub struct ProcCell {
    pub dir: TempDir,
    pub config: PathBuf,
    pub peers: Vec<SocketAddr>,
    pub clients: Vec<SocketAddr>,
    pub metrics: Vec<SocketAddr>,
    pub public_key: String,
    children: Vec<Option<Child>>,
}

impl ProcCell {
    /// Writes a cell of `n` members (`timing` is extra `[timing]` lines) and its key.
    pub fn new(tag: &str, n: usize, timing: &str) -> ProcCell {
        let dir = TempDir::new(tag);
        let out = Command::new(CLD)
            .args(["keygen", "--out"])
            .arg(dir.path().join("cell.key"))
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {out:?}");
        let public_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        // A short lease keeps fail-over tests quick, unless `timing` sets one.
        let lease = if timing.contains("paxos_lease_ms") {
            ""
        } else {
            "paxos_lease_ms = 200\n"
        };
        let mut text = format!(
            "[cell]\nname = \"{tag}\"\nsecret = \"{SECRET}\"\nkey_file = \"cell.key\"\n[timing]\n{lease}{timing}\n"
        );
        let mut peers = Vec::new();
        let mut clients = Vec::new();
        let mut metrics = Vec::new();
        for id in 1..=n {
            let peer: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let client: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            text.push_str(&format!(
                "[[member]]\nid = {id}\nclient = \"{client}\"\npeer = \"{peer}\"\n"
            ));
            peers.push(peer);
            clients.push(client);
            metrics.push(format!("127.0.0.1:{}", free_port()).parse().unwrap());
        }
        text.push_str(&format!(
            "[[user]]\nname = \"{USER}\"\nsecret = \"{SECRET}\"\n"
        ));
        let config = write_file(dir.path(), "cell.toml", &text, 0o600);
        ProcCell {
            dir,
            config,
            peers,
            clients,
            metrics,
            public_key,
            children: (0..n).map(|_| None).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.children.len()
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("data{}", i + 1))
    }

    pub fn start(&mut self, i: usize) {
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
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.len() {
            self.start(i);
        }
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM to member `i` (a graceful stop), leaving it running until it exits.
    pub fn sigterm(&self, i: usize) {
        let child = self.children[i].as_ref().expect("member is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM: {status}");
    }

    /// Waits up to `timeout` for member `i` to exit; returns its exit status.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.children[i].as_mut().expect("member was started");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.children[i] = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "member {} still running {timeout:?} after the signal\n{}",
                i + 1,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Member `i`'s whole log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("log{}", i + 1))).unwrap_or_default()
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.children[i].is_some())
            .collect()
    }

    /// One gauge or counter from member `i`'s /metrics (`None` if unreachable).
    pub fn metric(&self, i: usize, name: &str) -> Option<i64> {
        let body = self.metrics_text(i)?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// Member `i`'s whole /metrics text.
    pub fn metrics_text(&self, i: usize) -> Option<String> {
        let mut s =
            TcpStream::connect_timeout(&self.metrics[i], Duration::from_millis(300)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    }

    /// The running members that say they are master (with a lease).
    pub fn masters(&self) -> Vec<usize> {
        self.running()
            .into_iter()
            .filter(|&i| self.metric(i, "cld_is_master") == Some(1))
            .collect()
    }

    /// Waits until exactly one running member is master; returns it.
    pub fn wait_master(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let masters = self.masters();
            if masters.len() == 1 {
                return masters[0];
            }
            assert!(
                Instant::now() < deadline,
                "no single master among {:?}: {masters:?}\n{}",
                self.running(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_metric(
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
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until member `i` votes and has applied what the master has.
    pub fn wait_caught_up(&self, i: usize, timeout: Duration) {
        let m = self.wait_master(timeout);
        let target = self.metric(m, "cld_applied_index").unwrap_or(0);
        self.wait_metric(i, "cld_rejoining", |r| r == 0, timeout);
        self.wait_metric(i, "cld_applied_index", |a| a >= target, timeout);
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.len() {
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

    /// Session options for this cell: its key, a short first retransmission timeout and
    /// `call_timeout`.
    pub fn options(&self, call_timeout: Duration) -> cldc::SessionOptions {
        cldc::SessionOptions {
            cell_key: Some(cldc::proto::CellPublicKey::from_base64(&self.public_key).unwrap()),
            call_timeout,
            initial_rto: Duration::from_millis(100),
            max_rto: Duration::from_millis(500),
            ..cldc::SessionOptions::default()
        }
    }

    pub fn credentials(&self) -> cldc::Credentials {
        cldc::Credentials::new(USER, SECRET.as_bytes()).unwrap()
    }

    /// Opens a session with every member's address.
    pub async fn session(&self, call_timeout: Duration) -> cldc::Session {
        cldc::Session::open(
            self.clients.clone(),
            self.credentials(),
            self.options(call_timeout),
        )
        .await
        .unwrap_or_else(|e| panic!("session: {e}\n{}", self.logs()))
    }
}

impl Drop for ProcCell {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.kill9(i);
        }
    }
}
