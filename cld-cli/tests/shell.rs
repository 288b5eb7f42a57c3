//! The shell of the real binary: a script on stdin, and line editing (backspace, history,
//! completion) through a pseudo-terminal.

mod common;

use std::time::Duration;

use common::pty::Terminal;
use common::{Cell, json_lines, ok, outcome};

#[test]
fn a_script_on_stdin_runs_with_a_working_directory_and_shell_locks() {
    let c = Cell::start(Duration::from_secs(12));
    let script = "\
mkdir /s
cd /s
put f hello
cat f
pwd
cd ..
ls s
touch --ephemeral s/e
ls /s
lock s/l
locks
seq s/l
unlock s/l
locks
lock s/held-at-exit
";
    let out = ok(c.run_with_input(&[], script.as_bytes()));
    // cat prints the contents as they are (no newline), then pwd's line.
    assert!(out.contains("hello/s\n"), "{out}");
    assert!(out.contains("f\n"), "{out}");
    assert!(out.contains("e\nf\n"), "ephemeral file listed: {out}");
    assert!(
        out.contains("locked /s/l (exclusive); sequencer cldseq1:x:"),
        "{out}"
    );
    assert!(out.contains("/s/l exclusive\n"), "{out}");
    // After unlock, `locks` prints nothing: the sequencer line is followed by the last lock.
    let last: Vec<&str> = out.trim_end().lines().rev().take(2).collect();
    assert!(last[1].starts_with("cldseq1:x:"), "{out}");
    assert!(last[0].starts_with("locked /s/held-at-exit"), "{out}");
    // The shell ended its session on exit: the lock it still held is free at once.
    ok(c.run(&["lock", "--try", "/s/held-at-exit", "--", "true"]));
}

#[test]
fn a_failing_line_does_not_stop_the_shell_and_sets_the_status() {
    let c = Cell::start(Duration::from_secs(12));
    let (code, out, err) = outcome(&c.run_with_input(&[], b"cat /missing\nput /x ok\nbogus\n"));
    assert!(err.contains("cldcli: cat /missing: no such node"), "{err}");
    assert!(out.contains("wrote 2 bytes to /x"), "{out}");
    // The last line was a usage error.
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = outcome(&c.run_with_input(&[], b"put /y 1\nexit\ncat /missing\n"));
    assert_eq!(code, 0, "exit stops before the failing line");
}

#[test]
fn the_shell_speaks_json_too() {
    let c = Cell::start(Duration::from_secs(12));
    let out = ok(c.run_with_input(&["--json"], b"put /j v\npwd\nls /\n"));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[1]["cwd"], "/");
    assert_eq!(lines[2]["entries"][0]["name"], "j");
}

#[test]
fn line_editing_history_and_completion_work_on_a_terminal() {
    let c = Cell::start(Duration::from_secs(12));
    ok(c.run(&["put", "/greeting", "hi-there"]));
    let history = common::TempDir::new("history");
    let mut cmd = c.cldcli();
    cmd.env("CLDCLI_HISTORY", history.path().join("h"));
    let mut t = Terminal::spawn(cmd);
    t.wait_for("alice@cld:/> ", 1);
    // A typo fixed with backspace.
    t.type_keys("cat /greetingX\x7f\r");
    t.wait_for("hi-there", 1);
    // Up-arrow recalls the line.
    t.wait_for("alice@cld:/> ", 2);
    t.type_keys("\x1b[A\r");
    t.wait_for("hi-there", 2);
    // Tab completes the command name and the path.
    t.wait_for("alice@cld:/> ", 3);
    t.type_keys("ca\t/gre\t\r");
    t.wait_for("hi-there", 3);
    t.type_keys("exit\r");
    assert!(t.wait_exit().success());
    let saved = std::fs::read_to_string(history.path().join("h")).unwrap();
    assert!(saved.contains("cat /greeting"), "history saved: {saved}");
}
