//! One-shot commands of the real `cldcli` binary against cldc's scripted cell, where the
//! cell's faults are needed (a silent cell: exit 3 within the timeout) or no real cell is
//! (usage errors), and `watch` stopped by SIGINT. The commands themselves, their `--json`
//! output and the other exit statuses run against real `cld` processes in real_cell.rs.

mod common;

use std::time::Duration;

use common::{Cell, json_lines, ok, outcome};

fn cell() -> Cell {
    Cell::start(Duration::from_secs(12))
}

#[test]
fn usage_errors_exit_2() {
    let c = cell();
    let (code, _, err) = outcome(&c.run(&["put"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = outcome(&c.run(&["cd", "/"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only in the shell"), "{err}");
    let (code, _, err) = outcome(&c.run(&["lock", "/l"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = outcome(&c.run(&["cat", "relative/../../x\u{1}"]));
    assert!(code == 1 || code == 2, "{code} {err}");
    let (code, _, err) = outcome(
        &c.cldcli()
            .env_remove("CLD_USER")
            .args(["ls"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no user given"), "{err}");
    let (code, _, _) = outcome(&c.run(&["check-seq", "garbage"]));
    assert_eq!(code, 2);
}

#[test]
fn an_unreachable_cell_exits_3_within_the_timeout() {
    let c = cell();
    c.faults(|f| f.silent = true);
    let started = std::time::Instant::now();
    let (code, _, err) = outcome(
        &c.cldcli()
            .env("CLD_TIMEOUT", "1s")
            .args(["ls", "/"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(err.starts_with("cldcli: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn the_default_timeout_answers_3_within_30_seconds() {
    let c = cell();
    c.faults(|f| f.silent = true);
    let started = std::time::Instant::now();
    let (code, _, _) = outcome(
        &c.cldcli()
            .env_remove("CLD_TIMEOUT")
            .args(["stat", "/"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn watch_prints_events_until_interrupted() {
    let c = cell();
    ok(c.run(&["put", "/w", "0"]));
    let child = c
        .cldcli()
        .args(["--json", "watch", "/w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give the watcher time to open its handle, then write twice.
    std::thread::sleep(Duration::from_millis(800));
    ok(c.run(&["put", "/w", "1"]));
    ok(c.run(&["put", "/w", "2"]));
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) touches no memory.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let (code, stdout, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    let events = json_lines(&stdout);
    let modified: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "contents_modified")
        .collect();
    assert_eq!(modified.len(), 2, "{stdout}");
}
