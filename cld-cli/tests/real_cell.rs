//! The real `cldcli` binary against real `cld` processes on loopback (built from cld-server
//! on first use: `cargo build --profile test -p cld-server --bin cld`, or `$CLD_BIN`).
//!
//! - a 3-member cell serves every kind of command, `status` shows the members and the master,
//!   and a short `bench` runs;
//! - the shell's ephemeral file goes when the shell's session ends;
//! - a lock holder cut off from the cell (a UDP relay in front of it stops relaying) has its
//!   COMMAND terminated before the cell grants the lock to the next waiter, whose COMMAND
//!   starts only after the first one's ended.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{CLDCLI, Reaped, TempDir, json_lines, ok, outcome};

const USER: &str = "alice";
const USER_SECRET: &str = "alice-secret-alice-secret-alice-secret";
const CELL_SECRET: &str = "0123456789abcdef0123456789abcdef";

fn cld_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CLD_BIN") {
            return p.into();
        }
        let release = CLDCLI.contains("/release/");
        let profile = if release { "release" } else { "test" };
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--profile",
                profile,
                "-p",
                "cld-server",
                "--bin",
                "cld",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building cld failed");
        Path::new(CLDCLI).with_file_name("cld")
    })
}

#[path = "../../cld-server/tests/common/ports.rs"]
mod ports;
use ports::free_port;

struct RealCell {
    dir: TempDir,
    clients: Vec<SocketAddr>,
    key: String,
    members: Vec<Reaped>,
}

impl RealCell {
    fn start(tag: &str, n: u64, timing: &str) -> RealCell {
        let dir = TempDir::new(tag);
        let private = cldc::proto::CellPrivateKey::from_bytes([0x42; 32]);
        cldc::keyfile::write_private_key(&dir.path().join("cell.key"), &private).unwrap();
        let mut text = format!(
            "[cell]\nname = \"{tag}\"\nsecret = \"{CELL_SECRET}\"\nkey_file = \"cell.key\"\n\
             [timing]\npaxos_lease_ms = 300\nheartbeat_ms = 50\nelection_timeout_ms = 400\n{timing}\n"
        );
        let mut clients = Vec::new();
        for id in 1..=n {
            let client = SocketAddr::from(([127, 0, 0, 1], free_port()));
            clients.push(client);
            text.push_str(&format!(
                "[[member]]\nid = {id}\nclient = \"{client}\"\npeer = \"127.0.0.1:{}\"\n",
                free_port()
            ));
        }
        text.push_str(&format!(
            "[[user]]\nname = \"{USER}\"\nsecret = \"{USER_SECRET}\"\n"
        ));
        let config = dir.path().join("cell.toml");
        std::fs::write(&config, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let members = (1..=n)
            .map(|id| {
                let log =
                    std::fs::File::create(dir.path().join(format!("member{id}.log"))).unwrap();
                Reaped(
                    Command::new(cld_binary())
                        .arg("--config")
                        .arg(&config)
                        .args(["--id", &id.to_string()])
                        .arg("--data-dir")
                        .arg(dir.path().join(format!("data{id}")))
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .expect("cld starts"),
                )
            })
            .collect();
        let cell = RealCell {
            dir,
            clients,
            key: private.public().to_base64(),
            members,
        };
        cell.wait_master();
        cell
    }

    /// `cldcli` for this cell reaching it at `members`.
    fn cldcli_at(&self, members: &[SocketAddr]) -> Command {
        let list: Vec<String> = members.iter().map(|a| a.to_string()).collect();
        let mut c = Command::new(CLDCLI);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["--cell", &list.join(",")])
            .args([
                "--cell-key",
                &self.key,
                "--user",
                USER,
                "--secret",
                USER_SECRET,
            ])
            .args(["--timeout", "5s"])
            .stdin(Stdio::null());
        c
    }

    fn cldcli(&self) -> Command {
        self.cldcli_at(&self.clients)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cldcli().args(args).output().unwrap()
    }

    fn wait_master(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let o = self.run(&["--json", "status"]);
            if o.status.success() {
                let v = &json_lines(&String::from_utf8_lossy(&o.stdout))[0];
                if !v["master"].is_null() {
                    return;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = (1..=self.members.len())
                    .map(|i| {
                        std::fs::read_to_string(self.dir.path().join(format!("member{i}.log")))
                            .unwrap_or_default()
                    })
                    .collect();
                panic!(
                    "no master: {}\n{}",
                    String::from_utf8_lossy(&o.stderr),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn a_three_member_cell_serves_every_command() {
    let c = RealCell::start("cli3", 3, "");
    ok(c.run(&["mkdir", "-p", "/svc/app"]));
    ok(c.run(&["put", "/svc/app/config", "port=80"]));
    assert_eq!(ok(c.run(&["cat", "/svc/app/config"])), "port=80");
    assert_eq!(ok(c.run(&["ls", "/svc/app"])), "config\n");
    assert!(ok(c.run(&["stat", "/svc/app/config"])).contains("size: 7"));
    let (code, _, err) = outcome(&c.run(&["rm", "/svc"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rm /svc: directory not empty"), "{err}");
    let status = &json_lines(&ok(c.run(&["--json", "status"])))[0];
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
    let masters = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["is_master"] == true)
        .count();
    assert_eq!(masters, 1, "{status}");
    let text = ok(c.run(&["status"]));
    assert!(text.contains("master member"), "{text}");
    // Every member's indexes, as it reported them to the master, reach the master's.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = &json_lines(&ok(c.run(&["--json", "status"])))[0];
        let members = status["members"].as_array().unwrap();
        let master = members.iter().find(|m| m["is_master"] == true).unwrap();
        let applied = master["applied_index"].as_u64().unwrap();
        let caught_up = members.iter().all(|m| {
            m["reachable"] == true
                && m["applied_index"] == master["applied_index"]
                && m["commit_index"] == master["commit_index"]
        });
        if applied > 0 && caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "members' indexes: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A sequencer is valid while its lock is held, stale after.
    let script = format!(
        "{CLDCLI} --cell {} --cell-key {} --user {USER} --secret {USER_SECRET} check-seq \"$CLD_SEQUENCER\" && printf %s \"$CLD_SEQUENCER\"",
        c.clients[0], c.key
    );
    let seq = ok(c.run(&["lock", "/svc/leader", "--", "sh", "-c", &script]));
    let seq = seq.lines().last().unwrap();
    let (code, _, _) = outcome(&c.run(&["check-seq", seq]));
    assert_eq!(code, 5);
    let (code, _, _) =
        outcome(&c.run(&["lock", "--lock-delay", "2s", "/svc/delayed", "--", "true"]));
    assert_eq!(code, 0);
    let b = &json_lines(&ok(c.run(&[
        "--json",
        "bench",
        "--workload",
        "put",
        "--sessions",
        "2",
        "--duration",
        "1s",
    ])))[0];
    assert!(b["ops"].as_u64().unwrap() > 0, "{b}");
}

#[test]
fn the_shells_ephemeral_file_goes_with_its_session() {
    let c = RealCell::start("clieph", 1, "");
    let mut shell = c
        .cldcli()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"touch --ephemeral /e\nput /p kept\nls /\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("e\n").count(),
        1
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("e\np\n"));
    assert_eq!(ok(c.run(&["ls", "/"])), "p\n");
}

/// Relays UDP between one client and `to` until `cut` is set; then drops everything.
fn relay(to: SocketAddr, cut: Arc<AtomicBool>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let mut client: Option<SocketAddr> = None;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if cut.load(Ordering::SeqCst) {
                continue;
            }
            if from == to {
                if let Some(c) = client {
                    let _ = sock.send_to(&buf[..n], c);
                }
            } else {
                client = Some(from);
                let _ = sock.send_to(&buf[..n], to);
            }
        }
    });
    addr
}

fn read_nanos(p: &Path) -> u128 {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_cut_off_holder_is_stopped_before_the_next_holder_starts() {
    let c = RealCell::start("clicut", 1, "session_lease_ms = 3000\n");
    let cut = Arc::new(AtomicBool::new(false));
    let via = relay(c.clients[0], cut.clone());
    let d = TempDir::new("cut");
    let dir = d.path().display().to_string();
    let first: Child = c
        .cldcli_at(&[via])
        .args(["lock", "/x", "--", "sh", "-c"])
        .arg(format!(
            "trap 'date +%s%N > {dir}/a_end; exit 0' TERM; touch {dir}/ready; while :; do sleep 0.05; done"
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = Reaped(first);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.path().join("ready").exists() {
        assert!(Instant::now() < deadline, "first COMMAND never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = Reaped(
        c.cldcli()
            .args(["lock", "/x", "--", "sh", "-c"])
            .arg(format!("date +%s%N > {dir}/b_start"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !d.path().join("b_start").exists(),
        "the second holder overlapped the first"
    );
    cut.store(true, Ordering::SeqCst);
    let mut first = first;
    let started = Instant::now();
    let code = loop {
        if let Some(s) = first.0.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "first cldcli never gave up"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(6));
    let mut second = second;
    let code = loop {
        if let Some(s) = second.0.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "second never got the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let a_end = read_nanos(&d.path().join("a_end"));
    let b_start = read_nanos(&d.path().join("b_start"));
    assert!(
        a_end < b_start,
        "first COMMAND ended {} ms after the second began",
        (a_end - b_start) / 1_000_000
    );
    eprintln!(
        "first COMMAND ended {} ms before the second began",
        (b_start - a_end) / 1_000_000
    );
}
