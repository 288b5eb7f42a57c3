//! Checks a history written as JSON lines (docs/testing.md) and optionally writes its timeline.
//!
//! `cargo run -p sim-tests --example check_history -- HISTORY.jsonl [--html OUT.html]`
//! Exit status: 0 when no check failed, 1 when one did, 2 for a usage or input error.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use sim_tests::check::{CheckConfig, check_all};
use sim_tests::history::History;
use sim_tests::timeline::render_html;

fn usage() -> ExitCode {
    eprintln!("usage: check_history HISTORY.jsonl [--html OUT.html]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, html) = match args.as_slice() {
        [input] => (input, None),
        [input, flag, out] if flag == "--html" => (input, Some(out)),
        _ => return usage(),
    };
    let file = match File::open(input) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("cannot open {input}: {e}");
            return ExitCode::from(2);
        }
    };
    let history = match History::read_jsonl(BufReader::new(file)) {
        Ok(history) => history,
        Err(e) => {
            eprintln!("{input}: {e}");
            return ExitCode::from(2);
        }
    };
    let report = check_all(&history, &CheckConfig::for_history(&history));
    print!("{report}");
    if let Some(out) = html
        && let Err(e) = std::fs::write(out, render_html(&history, &report, input))
    {
        eprintln!("cannot write {out}: {e}");
        return ExitCode::from(2);
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
