//! The linearizability checker on hand-written histories, linearizable and not, before it
//! judges any system; then on random histories generated from the sequential model, and on
//! those histories broken in ways no linearization can explain.

mod support;

use support::register::generate;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sim_tests::check::{CheckConfig, Verdict, check_linearizability};
use sim_tests::history::{Line, Op, OpResult, Reply, SimTime};
use support::*;

fn verdict(b: &Builder) -> Verdict {
    check_linearizability(&b.build(), &CheckConfig::default())
}

fn assert_pass(b: &Builder) {
    let v = verdict(b);
    assert_eq!(v, Verdict::Pass, "{}", b.build().to_jsonl());
}

/// Asserts a failure that blames op `blamed` and mentions `words`.
fn assert_fail(b: &Builder, blamed: u64, words: &str) {
    match verdict(b) {
        Verdict::Fail(violations) => {
            let v = &violations[0];
            assert_eq!(v.ops[0].0, blamed, "{v}");
            assert!(v.message.contains(words), "{v}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn sequential_create_put_get_is_linearizable() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(2, "/a", get(), 4, 5, read("v1", 1));
    b.op(2, "/a", put_if("v2", 1), 6, 7, written(2));
    b.op(1, "/a", put_if("v3", 1), 8, 9, stale_cas());
    b.op(1, "/a", delete(), 10, 11, ok());
    b.op(2, "/a", get(), 12, 13, absent());
    b.op(2, "/a", create_excl(), 14, 15, created(0));
    b.op(1, "/a", create_excl(), 16, 17, exists());
    assert_pass(&b);
}

#[test]
fn concurrent_writes_may_take_either_order() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 10, written(2));
    b.op(2, "/a", put("v2"), 3, 9, written(1));
    b.op(3, "/a", get(), 11, 12, read("v1", 2));
    assert_pass(&b);
}

#[test]
fn a_read_concurrent_with_a_write_may_see_the_old_value() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 20, written(1));
    b.op(2, "/a", get(), 5, 6, read("", 0));
    b.op(3, "/a", get(), 7, 8, read("v1", 1));
    assert_pass(&b);
}

#[test]
fn an_unknown_write_may_have_taken_effect() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 0, unknown());
    b.op(2, "/a", get(), 50, 51, read("v1", 1));
    assert_pass(&b);
}

#[test]
fn an_unknown_write_may_not_have_taken_effect() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 0, unknown());
    b.op(2, "/a", get(), 50, 51, read("", 0));
    b.op(2, "/a", put("v2"), 52, 53, written(1));
    assert_pass(&b);
}

#[test]
fn an_unknown_write_may_take_effect_long_after_it_was_sent() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("late"), 2, 0, unknown());
    b.op(2, "/a", get(), 50, 51, read("", 0));
    b.op(2, "/a", get(), 90, 91, read("late", 1));
    assert_pass(&b);
}

#[test]
fn an_unknown_write_with_a_bound_takes_effect_before_it_or_not_at_all() {
    for seen in ["v1", ""] {
        let mut b = Builder::new();
        b.op(1, "/a", create(), 0, 1, created(0));
        let w = b.op(1, "/a", put("v1"), 2, 0, unknown());
        b.bound(w, 10);
        let g = if seen.is_empty() { 0 } else { 1 };
        b.op(2, "/a", get(), 20, 21, read(seen, g));
        b.op(2, "/a", get(), 30, 31, read(seen, g));
        assert_pass(&b);
    }
}

#[test]
fn an_unknown_write_cannot_take_effect_after_its_bound() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    let w = b.op(1, "/a", put("v1"), 2, 0, unknown());
    b.bound(w, 10);
    b.op(2, "/a", get(), 20, 21, read("", 0));
    b.op(2, "/a", get(), 30, 31, read("v1", 1));
    assert_fail(&b, 4, "fits nowhere");
}

#[test]
fn a_bounded_unknown_write_may_be_skipped_while_a_later_one_takes_effect() {
    // Backtracking must try "no effect" for the first before giving up.
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    let w1 = b.op(1, "/a", put("v1"), 2, 0, unknown());
    b.bound(w1, 10);
    let w2 = b.op(2, "/a", put("v2"), 3, 0, unknown());
    b.bound(w2, 10);
    b.op(3, "/a", get(), 20, 21, read("v2", 1));
    assert_pass(&b);
}

#[test]
fn refusals_and_unknown_reads_change_nothing() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("never"), 2, 3, refused());
    b.op(2, "/a", get(), 4, 0, unknown());
    b.op(2, "/a", get(), 5, 6, read("", 0));
    assert_pass(&b);
}

#[test]
fn a_read_of_a_value_never_written_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(2, "/a", get(), 4, 5, read("ghost", 1));
    assert_fail(&b, 3, "/a has no linearization");
}

#[test]
fn a_stale_read_after_a_newer_write_completed_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(1, "/a", put("v2"), 4, 5, written(2));
    b.op(2, "/a", get(), 6, 7, read("v1", 1));
    assert_fail(&b, 4, "\"v2\" at generation 2");
}

#[test]
fn two_compare_and_sets_on_one_generation_both_succeeding_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put_if("v1", 0), 2, 10, written(1));
    b.op(2, "/a", put_if("v2", 0), 3, 11, written(1));
    let v = verdict(&b);
    assert!(v.is_fail(), "{v:?}");
}

#[test]
fn a_compare_and_set_on_a_stale_generation_succeeding_is_caught() {
    // No generation in the reply: only the CAS rule itself can catch it.
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(2, "/a", put_if("v2", 0), 4, 5, ok());
    assert_fail(&b, 3, "fits nowhere");
}

#[test]
fn a_write_applied_twice_shows_in_the_generation() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(2, "/a", get(), 4, 5, read("v1", 2));
    assert_fail(&b, 3, "fits nowhere");
}

#[test]
fn a_value_read_after_an_acknowledged_delete_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(1, "/a", delete(), 4, 5, ok());
    b.op(2, "/a", get(), 6, 7, read("v1", 1));
    assert_fail(&b, 4, "absent");
}

#[test]
fn an_unknown_write_cannot_explain_a_read_before_it_was_sent() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(2, "/a", get(), 2, 3, read("v1", 1));
    b.op(1, "/a", put("v1"), 4, 0, unknown());
    assert_fail(&b, 2, "fits nowhere");
}

#[test]
fn stale_cas_when_the_generation_matched_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put_if("v1", 0), 2, 3, stale_cas());
    assert_fail(&b, 2, "fits nowhere");
}

#[test]
fn exists_for_an_absent_file_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/a", create_excl(), 0, 1, exists());
    assert_fail(&b, 1, "absent");
}

#[test]
fn each_file_is_judged_alone_and_the_bad_one_is_named() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/b", create(), 0, 1, created(0));
    b.op(1, "/a", put("a1"), 2, 3, written(1));
    b.op(2, "/b", put("b1"), 2, 3, written(1));
    b.op(2, "/a", get(), 4, 5, read("a1", 1));
    b.op(1, "/b", get(), 4, 5, read("a1", 1));
    assert_fail(&b, 6, "/b has no linearization");
}

#[test]
fn a_search_past_its_budget_is_undecided_not_a_hang() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    for i in 0..12 {
        b.op(i, "/a", put(&format!("v{i}")), 2, 0, unknown());
    }
    b.op(20, "/a", get(), 100, 101, read("v3", 1));
    let config = CheckConfig {
        linearizability_steps: 50,
        ..CheckConfig::default()
    };
    let v = check_linearizability(&b.build(), &config);
    assert!(
        matches!(v, Verdict::Undecided(ref why) if why.contains("/a")),
        "{v:?}"
    );
    assert_eq!(verdict(&b), Verdict::Pass);
}

#[test]
fn a_history_without_file_operations_is_skipped() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 1, granted(ex(1)));
    assert!(matches!(verdict(&b), Verdict::Skipped(_)));
}

#[test]
fn random_histories_from_the_model_are_linearizable() {
    let config = CheckConfig::default();
    for seed in 0..400 {
        let deletes = seed % 2 == 0;
        let g = generate(seed, deletes);
        let v = check_linearizability(&g.history, &config);
        assert_eq!(v, Verdict::Pass, "seed {seed}:\n{}", g.history.to_jsonl());
    }
}

fn read_reply(line: &Line) -> Option<&Reply> {
    match line {
        Line::Op(op) if matches!(op.op, Op::Get {}) => match &op.result {
            OpResult::Ok(reply) => Some(reply),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn a_read_of_a_value_never_written_is_rejected_in_random_histories() {
    let config = CheckConfig::default();
    let mut mutated = 0;
    for seed in 0..300 {
        let mut g = generate(seed, seed % 2 == 0);
        let reads: Vec<usize> = (0..g.history.lines.len())
            .filter(|&i| read_reply(&g.history.lines[i]).is_some())
            .collect();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let Some(&i) = reads.get(rng.random_range(0..reads.len().max(1))) else {
            continue;
        };
        if let Line::Op(op) = &mut g.history.lines[i] {
            op.result = read("never-written", 1);
        }
        mutated += 1;
        let v = check_linearizability(&g.history, &config);
        assert!(v.is_fail(), "seed {seed}: {v:?}\n{}", g.history.to_jsonl());
    }
    assert!(mutated > 250, "only {mutated} histories mutated");
}

#[test]
fn two_reads_swapped_out_of_real_time_order_are_rejected_in_random_histories() {
    // Without deletes the content generation never goes down along a linearization, so two
    // reads in real-time order that saw generations g1 < g2 cannot see them swapped.
    let config = CheckConfig::default();
    let mut mutated = 0;
    for seed in 0..300 {
        let mut g = generate(seed, false);
        let lines = &g.history.lines;
        let mut pair = None;
        'search: for i in 0..lines.len() {
            for j in 0..lines.len() {
                let (Line::Op(a), Line::Op(b)) = (&lines[i], &lines[j]) else {
                    continue;
                };
                let (Some(ra), Some(rb)) = (read_reply(&lines[i]), read_reply(&lines[j])) else {
                    continue;
                };
                if a.path == b.path
                    && a.complete_ns.unwrap_or(SimTime(u64::MAX)) < b.invoke_ns
                    && ra.generation < rb.generation
                {
                    pair = Some((i, j));
                    break 'search;
                }
            }
        }
        let Some((i, j)) = pair else { continue };
        let (Line::Op(a), Line::Op(b)) = (lines[i].clone(), lines[j].clone()) else {
            unreachable!()
        };
        if let Line::Op(op) = &mut g.history.lines[i] {
            op.result = b.result.clone();
        }
        if let Line::Op(op) = &mut g.history.lines[j] {
            op.result = a.result.clone();
        }
        mutated += 1;
        let v = check_linearizability(&g.history, &config);
        assert!(v.is_fail(), "seed {seed}: {v:?}\n{}", g.history.to_jsonl());
    }
    assert!(mutated > 200, "only {mutated} histories mutated");
}
