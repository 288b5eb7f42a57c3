//! `cldcli bench` with the real binary: short runs of each workload; the JSON report parses
//! and the HTML report is written.

mod common;

use std::time::Duration;

use common::{Cell, json_lines, ok};

fn bench(c: &Cell, workload: &str, sessions: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--json",
        "bench",
        "--workload",
        workload,
        "--sessions",
        sessions,
        "--duration",
        "1s",
    ];
    args.extend_from_slice(extra);
    let out = ok(c.run(&args));
    let mut lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    lines.remove(0)
}

#[test]
fn each_workload_reports_throughput_and_percentiles() {
    let c = Cell::start(Duration::from_secs(12));
    for workload in ["put", "get", "lock", "lock-contended"] {
        let r = bench(&c, workload, "3", &["--size", "200"]);
        assert_eq!(r["workload"], workload);
        assert_eq!(r["sessions"], 3);
        let ops = r["ops"].as_u64().unwrap();
        assert!(ops > 0, "{workload}: {r}");
        assert_eq!(r["errors"], 0, "{workload}: {r}");
        let l = &r["latency_us"];
        let p50 = l["p50"].as_u64().unwrap();
        let max = l["max"].as_u64().unwrap();
        assert!(
            p50 > 0 && p50 <= l["p99"].as_u64().unwrap() && l["p999"].as_u64().unwrap() <= max,
            "{r}"
        );
        let per_s: u64 = r["throughput_per_s"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(per_s <= ops, "{r}");
    }
}

#[test]
fn idle_sessions_hold_many_sessions_and_the_html_report_is_written() {
    let c = Cell::start(Duration::from_secs(12));
    let dir = common::TempDir::new("bench");
    let page = dir.path().join("r.html");
    let r = bench(
        &c,
        "idle-sessions",
        "40",
        &["--report", page.to_str().unwrap()],
    );
    assert_eq!(r["ops"], 40, "every session opened: {r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["idle"]["jeopardy"], 0, "{r}");
    assert_eq!(r["idle"]["expired"], 0, "{r}");
    assert!(r["idle"]["handshake_restarts"].is_u64(), "{r}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<svg") && html.contains("idle-sessions"),
        "{html}"
    );
}

/// 10,000 idle sessions from one cldcli process (a long run, not in CI):
/// `cargo test -p cld-cli --test bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn ten_thousand_idle_sessions_from_one_process() {
    let c = Cell::start(Duration::from_secs(12));
    let started = std::time::Instant::now();
    let out = ok(c.run(&[
        "--json",
        "bench",
        "--workload",
        "idle-sessions",
        "--sessions",
        "10000",
        "--duration",
        "15s",
    ]));
    let r = &json_lines(&out)[0];
    eprintln!(
        "opened {} sessions, open latency {} (us), wall time {:?}",
        r["ops"],
        r["latency_us"],
        started.elapsed()
    );
    assert_eq!(r["ops"], 10_000, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
}
