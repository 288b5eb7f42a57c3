//! The shell of the real binary against cldc's scripted cell: a failing line does not stop
//! a script, and `--json` in the shell. The shell through a pipe and on a pseudo-terminal
//! against real `cld` processes: real_cell.rs.

mod common;

use std::time::Duration;

use common::{Cell, json_lines, ok, outcome};

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
