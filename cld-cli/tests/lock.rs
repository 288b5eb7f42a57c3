//! `lock PATH -- COMMAND` with the real binary against the scripted cell: a session cut off
//! from the cell (the cell stops answering keepalives right after answering one) gets COMMAND's whole process group terminated, exit 6, before the cell could have
//! expired the session (lease + 1 s after the last keepalive it answered).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Cell, TempDir, outcome};

/// Starts `lock /j -- sh -c SCRIPT` on a cell with a 3 s lease, waits for SCRIPT to write
/// `ready`, then cuts the session off right after the cell answered a keepalive. Returns the
/// exit code, stderr, how long after that keepalive cldcli was done (SIGKILL sent), and the
/// directory.
fn cut_off_while_running(script: &str, dir: &TempDir) -> (i32, String, Duration) {
    let lease = Duration::from_secs(3);
    let c = Cell::start(lease);
    let ready = dir.path().join("ready");
    let script = script.replace("DIR", &dir.path().display().to_string());
    let child = c
        .cldcli()
        .args(["lock", "/j", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cldcli starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "COMMAND never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Wait for the next keepalive the cell answers, then stop answering.
    let seen = c.keepalives();
    while c.keepalives() == seen {
        std::thread::sleep(Duration::from_millis(2));
    }
    let answered = Instant::now() - Duration::from_millis(20);
    c.faults(|f| f.ignore_keepalives = true);
    let out = child.wait_with_output().unwrap();
    let done = answered.elapsed();
    let (code, _, err) = outcome(&out);
    // The cell could expire the session no earlier than lease + 1 s after that keepalive.
    let expiry = lease + Duration::from_secs(1);
    assert!(
        done < expiry,
        "COMMAND outlived the bound: {done:?} >= {expiry:?}"
    );
    (code, err, done)
}

#[test]
fn a_cut_off_session_terminates_the_command_before_the_cell_could_expire_it() {
    let dir = TempDir::new("jeopardy");
    let (code, err, done) = cut_off_while_running(
        "trap 'echo term > DIR/term; exit 0' TERM; touch DIR/ready; while :; do sleep 0.05; done",
        &dir,
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("lock /j lost"), "{err}");
    assert!(err.contains("jeopardy"), "{err}");
    // COMMAND shares stderr (its shell may report the signalled sleep); cldcli says one line.
    assert_eq!(
        err.lines().filter(|l| l.starts_with("cldcli:")).count(),
        1,
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("term"))
            .unwrap()
            .trim(),
        "term",
        "COMMAND got SIGTERM first"
    );
    // Not before the client's own lease ran out (3 s - 250 ms after the keepalive was sent).
    assert!(done > Duration::from_millis(2000), "{done:?}");
}

#[test]
fn a_group_that_ignores_sigterm_is_killed_within_the_bound() {
    let dir = TempDir::new("stubborn");
    let (code, err, _) = cut_off_while_running(
        "trap '' TERM; sleep 60 & echo $! > DIR/bg; touch DIR/ready; wait; wait",
        &dir,
    );
    assert_eq!(code, 6, "{err}");
    let bg: i32 = std::fs::read_to_string(dir.path().join("bg"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    };
    while alive(bg) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(bg), "a member of COMMAND's process group survived");
}
