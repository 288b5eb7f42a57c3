//! Every one-shot command of the real `cldcli` binary against a cell on loopback: text and
//! `--json` output, and each documented exit status.

mod common;

use std::time::Duration;

use common::{Cell, json_lines, ok, outcome};

fn cell() -> Cell {
    Cell::start(Duration::from_secs(12))
}

#[test]
fn files_are_written_read_listed_and_removed() {
    let c = cell();
    ok(c.run(&["mkdir", "/app"]));
    let out = ok(c.run(&["put", "/app/config", "hello world"]));
    assert!(out.contains("wrote 11 bytes to /app/config"), "{out}");
    assert_eq!(ok(c.run(&["cat", "/app/config"])), "hello world");
    ok(c.run(&["mkdir", "/app/sub"]));
    assert_eq!(ok(c.run(&["ls", "/app"])), "config\nsub/\n");
    let long = ok(c.run(&["ls", "-l", "/app"]));
    assert!(
        long.lines()
            .any(|l| l.starts_with("d-") && l.ends_with("sub/")),
        "{long}"
    );
    let stat = ok(c.run(&["stat", "/app/config"]));
    assert!(stat.contains("size: 11"), "{stat}");
    ok(c.run(&["rm", "/app/config"]));
    let (code, _, err) = outcome(&c.run(&["cat", "/app/config"]));
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "cldcli: cat /app/config: no such node");
}

#[test]
fn put_reads_stdin_without_a_value() {
    let c = cell();
    ok(c.run_with_input(&["put", "/f"], b"from\nstdin"));
    assert_eq!(ok(c.run(&["cat", "/f"])), "from\nstdin");
}

#[test]
fn put_if_generation_is_a_compare_and_swap() {
    let c = cell();
    ok(c.run(&["put", "/f", "v1"]));
    let meta = &json_lines(&ok(c.run(&["--json", "stat", "/f"])))[0];
    let generation = meta["content_generation"].as_u64().unwrap().to_string();
    ok(c.run(&["put", "--if-generation", &generation, "/f", "v2"]));
    // The same generation again is stale now.
    let (code, _, err) = outcome(&c.run(&["put", "--if-generation", &generation, "/f", "v3"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("put /f:") && err.contains("compare-and-swap"),
        "{err}"
    );
    assert_eq!(ok(c.run(&["cat", "/f"])), "v2");
}

#[test]
fn cpin_and_cpout_copy_local_files() {
    let c = cell();
    let dir = common::TempDir::new("cp");
    let src = dir.path().join("in.bin");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    std::fs::write(&src, &bytes).unwrap();
    ok(c.run(&["cpin", src.to_str().unwrap(), "/blob"]));
    let dst = dir.path().join("out.bin");
    ok(c.run(&["cpout", "/blob", dst.to_str().unwrap()]));
    assert_eq!(std::fs::read(&dst).unwrap(), bytes);
    let (code, _, err) = outcome(&c.run(&["cpin", "/nonexistent/file", "/x"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/file"), "{err}");
}

#[test]
fn mkdir_p_creates_parents_and_tolerates_existing() {
    let c = cell();
    ok(c.run(&["mkdir", "-p", "/a/b/c"]));
    ok(c.run(&["mkdir", "-p", "/a/b/c"]));
    assert_eq!(ok(c.run(&["ls", "/a/b"])), "c/\n");
    let (code, _, err) = outcome(&c.run(&["mkdir", "/a"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mkdir /a: node already exists"), "{err}");
}

#[test]
fn json_output_parses_for_each_command() {
    let c = cell();
    ok(c.run(&["put", "/j", "data"]));
    let v = &json_lines(&ok(c.run(&["--json", "cat", "/j"])))[0];
    assert_eq!(v["data"], "data");
    assert_eq!(v["meta"]["size"], 4);
    let v = &json_lines(&ok(c.run(&["ls", "--json", "/"])))[0];
    assert_eq!(v["entries"][0]["name"], "j");
    let v = &json_lines(&ok(c.run(&["--json", "status"])))[0];
    assert!(v["epoch"].as_u64().is_some(), "{v}");
    assert!(v["counters"].is_object(), "{v}");
    let v = &json_lines(&ok(c.run(&["--json", "put", "/j", "x"])))[0];
    assert_eq!(v["path"], "/j");
    let (code, out, err) = outcome(&c.run(&["--json", "cat", "/missing"]));
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let e: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(e["exit"], 1);
    assert!(e["error"].as_str().unwrap().contains("/missing"), "{e}");
}

#[test]
fn status_shows_the_epoch_and_counters() {
    let c = cell();
    let out = ok(c.run(&["status"]));
    assert!(out.starts_with("epoch 1"), "{out}");
    assert!(out.contains("counters"), "{out}");
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
fn try_lock_held_elsewhere_exits_4_and_check_seq_tells_valid_from_stale() {
    let c = cell();
    let dir = common::TempDir::new("seq");
    let seq_file = dir.path().join("seq");
    // The first lock holder records its sequencer, then checks that a --try fails with 4
    // while it holds the lock.
    let script = format!(
        "printf %s \"$CLD_SEQUENCER\" > {seq}; {cli} lock --try /l -- true; echo $? > {seq}.try",
        seq = seq_file.display(),
        cli = common::CLDCLI
    );
    let out = c.run(&["lock", "/l", "--", "sh", "-c", &script]);
    ok(out);
    let try_code = std::fs::read_to_string(dir.path().join("seq.try")).unwrap();
    assert_eq!(try_code.trim(), "4");
    let seq = std::fs::read_to_string(&seq_file).unwrap();
    assert!(seq.starts_with("cldseq1:x:"), "{seq}");
    // Released when COMMAND ended: the sequencer is stale now.
    let (code, _, err) = outcome(&c.run(&["check-seq", &seq]));
    assert_eq!(code, 5, "{err}");
    // A sequencer checked while the lock is held is valid (exit 0).
    let script = format!("{} check-seq \"$CLD_SEQUENCER\"", common::CLDCLI);
    let out = ok(c.run(&["lock", "/l", "--", "sh", "-c", &script]));
    assert!(out.contains("valid"), "{out}");
}

#[test]
fn lock_exits_with_the_commands_status() {
    let c = cell();
    let (code, _, _) = outcome(&c.run(&["lock", "/l", "--", "sh", "-c", "exit 7"]));
    assert_eq!(code, 7);
    let (code, _, _) = outcome(&c.run(&["lock", "--shared", "/l", "--", "true"]));
    assert_eq!(code, 0);
    let (code, _, err) = outcome(&c.run(&["lock", "/l", "--", "/nonexistent/cmd"]));
    assert_eq!(code, 1, "{err}");
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
