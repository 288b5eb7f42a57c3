//! Test support: a cell on loopback for the real `cldcli` binary to talk to, and helpers
//! to run the binary.
//!
//! The cell is cldc's scripted one-process cell (`cldc/tests/support/fake_cell`: the v2
//! protocol over real UDP, an in-memory namespace, locks with waiters, events, and fault
//! knobs such as "stop answering keepalives").
#![allow(dead_code)]

// Its `fake_cell` module is behind cldc's `tokio` feature, which this crate does not have;
// it is included below instead.
#[allow(unexpected_cfgs)]
#[path = "../../../cldc/tests/support/mod.rs"]
mod upstream;

pub use upstream::{SECRET, USER, cell_key, cell_keys, secret};

#[path = "../../../cldc/tests/support/fake_cell/mod.rs"]
pub mod fake_cell;

pub mod pty;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub const CLDCLI: &str = env!("CARGO_BIN_EXE_cldcli");

/// A fake cell running on its own runtime thread.
pub struct Cell {
    pub addr: SocketAddr,
    pub faults: std::sync::Arc<std::sync::Mutex<fake_cell::Faults>>,
    pub seen: std::sync::Arc<std::sync::Mutex<fake_cell::Seen>>,
    _rt: tokio::runtime::Runtime,
}

impl Cell {
    /// A cell granting `lease`.
    pub fn start(lease: Duration) -> Cell {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let cell = rt.block_on(fake_cell::FakeCell::start(lease));
        Cell {
            addr: cell.addr,
            faults: cell.faults,
            seen: cell.seen,
            _rt: rt,
        }
    }

    pub fn faults(&self, f: impl FnOnce(&mut fake_cell::Faults)) {
        f(&mut self.faults.lock().expect("faults"));
    }

    /// Keepalives the cell has received so far.
    pub fn keepalives(&self) -> u64 {
        self.seen.lock().expect("seen").keepalives
    }

    /// `cldcli` configured for this cell through the environment (CLD_CELL, CLD_CELL_KEY,
    /// CLD_USER, CLD_SECRET), with a short timeout.
    pub fn cldcli(&self) -> Command {
        let mut c = Command::new(CLDCLI);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CLD_CELL", self.addr.to_string())
            .env("CLD_CELL_KEY", cell_key().to_base64())
            .env("CLD_USER", USER)
            .env("CLD_SECRET", std::str::from_utf8(SECRET).expect("utf-8"))
            .env("CLD_TIMEOUT", "5s")
            .stdin(Stdio::null());
        c
    }

    /// Runs `cldcli ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cldcli().args(args).output().expect("cldcli runs")
    }

    /// Runs `cldcli ARGS` with `input` on stdin.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cldcli()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cldcli starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("input written");
        child.wait_with_output().expect("cldcli ends")
    }
}

/// The exit code, stdout and stderr of a run, for assertions.
pub fn outcome(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts a run succeeded and returns its stdout.
#[track_caller]
pub fn ok(o: Output) -> String {
    let (code, out, err) = outcome(&o);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    out
}

/// Parses every stdout line as JSON.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "cldcli-test-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped when dropped (so a failed test leaves nothing behind).
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
