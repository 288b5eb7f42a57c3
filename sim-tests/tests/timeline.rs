//! The HTML timeline and the files a failing run leaves behind.

mod support;

use sim_tests::check::{CheckConfig, check_all};
use sim_tests::history::{Event, FaultKind, History};
use sim_tests::timeline::render_html;
use sim_tests::write_failure;
use support::*;

fn failing() -> (History, OpIdPair) {
    let mut b = Builder::with_meta(0, Some(1000));
    b.master(0, 1, 1);
    b.op(1, "/a", create(), 0, 1, created(0));
    let w = b.op(1, "/a", put("<v1>"), 2, 3, written(1));
    b.fault(4, FaultKind::Partition, &[1], &[]);
    b.master(6, 2, 2);
    let r = b.op(2, "/a", get(), 8, 9, read("", 0));
    b.op(3, "/b", put("v2"), 8, 0, unknown());
    b.event(2, 9, Event::Jeopardy {});
    b.fault(12, FaultKind::Heal, &[], &[]);
    (b.build(), OpIdPair(w.0, r.0))
}

struct OpIdPair(u64, u64);

#[test]
fn the_timeline_has_lanes_bars_marks_and_the_first_violation() {
    let (history, _) = failing();
    let report = check_all(&history, &CheckConfig::for_history(&history));
    assert!(!report.passed());
    let first = report.first_violation().unwrap().clone();
    let html = render_html(&history, &report, "seed 7 <minority>");
    assert!(html.starts_with("<!DOCTYPE html>"));
    for lane in ["client 1", "client 2", "client 3", ">cell<"] {
        assert!(html.contains(lane), "no lane {lane}");
    }
    assert!(
        html.contains("seed 7 &lt;minority&gt;"),
        "title not escaped"
    );
    assert!(!html.contains("<v1>"), "op data not escaped");
    assert!(html.contains("&quot;&lt;v1&gt;&quot;"));
    assert!(html.contains("m2 e2"), "master change not marked");
    assert!(html.contains("partition m1"), "fault not marked");
    assert!(html.contains(">heal<"), "heal not marked");
    assert!(html.contains("jeopardy at"), "event not marked");
    assert!(
        html.contains("stroke-dasharray=\"4 3\""),
        "unknown op not dashed"
    );
    assert!(html.contains("First violation"));
    assert!(html.contains(&escape_like(&first.message)));
    // Every highlighted op has a red, thick outline; nothing else does.
    let red = html
        .matches("stroke=\"#d00000\" stroke-width=\"3\"")
        .count();
    assert_eq!(red, first.ops.len());
}

fn escape_like(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[test]
fn the_timeline_is_self_contained() {
    let (history, _) = failing();
    let report = check_all(&history, &CheckConfig::for_history(&history));
    let html = render_html(&history, &report, "t");
    assert!(!html.contains("<script"));
    assert!(!html.contains("src="));
    assert!(!html.contains("href="));
    assert_eq!(html.matches("http").count(), 1, "only the SVG namespace");
}

#[test]
fn a_passing_history_says_so() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    let h = b.build();
    let report = check_all(&h, &CheckConfig::default());
    assert!(report.passed(), "{report}");
    let html = render_html(&h, &report, "ok");
    assert!(html.contains("No violation."));
    assert!(!html.contains("First violation"));
}

#[test]
fn a_failure_writes_its_history_timeline_and_replay_command() {
    let (history, ids) = failing();
    let report = check_all(&history, &CheckConfig::for_history(&history));
    let dir = sim_tests::failure_dir().join("self-test");
    let files = write_failure(
        &dir,
        "timeline-self-test",
        &history,
        &report,
        "SIM_SEED=7 cargo test -p sim-tests",
    )
    .unwrap();
    let text = std::fs::read_to_string(&files.history).unwrap();
    assert_eq!(History::from_jsonl(&text).unwrap(), history);
    let html = std::fs::read_to_string(&files.timeline).unwrap();
    assert!(html.contains(&format!("#{} ", ids.1)));
    let summary = std::fs::read_to_string(&files.report).unwrap();
    assert!(summary.starts_with("replay: SIM_SEED=7 cargo test -p sim-tests\n"));
    assert!(summary.contains("durability: FAIL"), "{summary}");
    assert!(summary.contains(&format!("#{}", ids.0)), "{summary}");
    assert!(files.history.starts_with(sim_tests::failure_dir()));
}
