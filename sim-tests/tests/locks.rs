//! Lock safety, lock-delay and sequencer checks on hand-written histories, then on random
//! histories of a correct lock service and the same histories with one grant moved early.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sim_tests::check::{
    BeliefEnd, CheckConfig, Verdict, belief_intervals, check_lock_delay, check_lock_safety,
    check_sequencers,
};
use sim_tests::history::{ClientId, Event, FaultKind, Line, OpResult};
use support::*;

fn lock_delay(b: &Builder, delay_ms: u64) -> Verdict {
    let config = CheckConfig {
        lock_delay_ns: ms(delay_ms).0,
        ..CheckConfig::default()
    };
    check_lock_delay(&b.build(), &config)
}

fn fail_names(v: &Verdict, ops: &[u64]) {
    match v {
        Verdict::Fail(violations) => {
            let got: Vec<u64> = violations[0].ops.iter().map(|o| o.0).collect();
            for op in ops {
                assert!(
                    got.contains(op),
                    "op {op} not in {got:?}: {}",
                    violations[0]
                );
            }
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn handing_a_lock_on_after_unlock_is_safe() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.op(2, "/l", lock_ex(), 3, 4, conflict());
    b.op(1, "/l", unlock(), 5, 6, ok());
    b.op(2, "/l", lock_ex(), 5, 7, granted(ex(2)));
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
    assert_eq!(check_sequencers(&b.build()), Verdict::Pass);
}

#[test]
fn a_grant_while_the_holder_still_believes_is_caught() {
    let mut b = Builder::new();
    let a = b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    let c = b.op(2, "/l", lock_ex(), 3, 4, granted(ex(2)));
    b.op(1, "/l", unlock(), 5, 6, ok());
    fail_names(&check_lock_safety(&b.build()), &[a.0, c.0]);
}

#[test]
fn belief_ends_when_unlock_is_invoked_not_when_it_completes() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.op(1, "/l", unlock(), 5, 9, ok());
    b.op(2, "/l", lock_ex(), 3, 6, granted(ex(2)));
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
}

#[test]
fn shared_holders_may_overlap_but_not_with_an_exclusive_one() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_shared(), 0, 2, granted(sh(0)));
    b.op(2, "/l", lock_shared(), 1, 3, granted(sh(0)));
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
    let x = b.op(3, "/l", lock_ex(), 4, 5, granted(ex(1)));
    fail_names(&check_lock_safety(&b.build()), &[x.0]);
}

#[test]
fn different_locks_never_conflict() {
    let mut b = Builder::new();
    b.op(1, "/l1", lock_ex(), 0, 2, granted(ex(1)));
    b.op(2, "/l2", lock_ex(), 0, 2, granted(ex(1)));
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
}

#[test]
fn jeopardy_ends_belief_so_a_later_grant_is_safe() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.event(1, 10, Event::Jeopardy {});
    b.event(1, 40, Event::Expired {});
    b.op(2, "/l", lock_ex(), 15, 20, granted(ex(2)));
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
    let intervals = belief_intervals(&b.build());
    assert_eq!(intervals[0].end, ms(10));
    assert_eq!(intervals[0].end_cause, BeliefEnd::Jeopardy);
    assert!(intervals[0].lost_to_expiry);
}

#[test]
fn a_grant_before_the_holders_lease_ran_out_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.event(1, 10, Event::Jeopardy {});
    b.event(1, 40, Event::Expired {});
    b.op(2, "/l", lock_ex(), 5, 8, granted(ex(2)));
    assert!(check_lock_safety(&b.build()).is_fail());
}

#[test]
fn safe_after_jeopardy_restores_belief() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.event(1, 10, Event::Jeopardy {});
    b.event(1, 12, Event::Safe {});
    let x = b.op(2, "/l", lock_ex(), 15, 20, granted(ex(2)));
    fail_names(&check_lock_safety(&b.build()), &[x.0]);
    let intervals = belief_intervals(&b.build());
    assert!(intervals.iter().any(|i| i.resumed && i.start == ms(12)));
    assert!(!intervals.iter().any(|i| i.lost_to_expiry));
}

#[test]
fn a_grant_learned_in_jeopardy_is_believed_only_from_safe() {
    // The reply to a lock sent before the lease ran out arrives during jeopardy; the server
    // then expires the session and hands the lock on.
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 12, granted(ex(1)));
    b.event(1, 10, Event::Jeopardy {});
    b.op(2, "/l", lock_ex(), 13, 14, granted(ex(2)));
    b.event(1, 20, Event::Expired {});
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 12, granted(ex(1)));
    b.event(1, 10, Event::Jeopardy {});
    b.event(1, 13, Event::Safe {});
    b.op(2, "/l", lock_ex(), 13, 14, granted(ex(2)));
    assert!(check_lock_safety(&b.build()).is_fail());
}

#[test]
fn a_queued_request_is_believed_from_its_lock_acquired_event() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.op(2, "/l", lock_wait(), 3, 4, queued());
    b.op(1, "/l", unlock(), 10, 11, ok());
    b.event(2, 12, acquired("/l", ex(2)));
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
    assert_eq!(check_sequencers(&b.build()), Verdict::Pass);
    let mut bad = Builder::new();
    bad.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    bad.op(2, "/l", lock_wait(), 3, 4, queued());
    bad.event(2, 8, acquired("/l", ex(2)));
    bad.op(1, "/l", unlock(), 10, 11, ok());
    assert!(check_lock_safety(&bad.build()).is_fail());
}

#[test]
fn a_stopped_client_or_a_deleted_node_ends_belief() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.fault(5, FaultKind::ClientStop, &[], &[1]);
    b.op(3, "/m", lock_ex(), 0, 2, granted(ex(1)));
    b.event(
        3,
        6,
        Event::NodeDeleted {
            path: "/m".to_owned(),
        },
    );
    b.op(2, "/l", lock_ex(), 7, 8, granted(ex(2)));
    b.op(2, "/m", lock_ex(), 7, 8, granted(ex(1)));
    assert_eq!(check_lock_safety(&b.build()), Verdict::Pass);
}

#[test]
fn a_lock_lost_to_expiry_waits_the_lock_delay() {
    let mut b = Builder::with_meta(10, None);
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.event(1, 5, Event::Jeopardy {});
    b.op(2, "/l", lock_ex(), 14, 16, granted(ex(2)));
    assert_eq!(lock_delay(&b, 10), Verdict::Pass);
    assert!(lock_delay(&b, 12).is_fail(), "granted at 16 < 5 + 12");
    assert!(matches!(lock_delay(&b, 0), Verdict::Skipped(_)));
}

#[test]
fn the_lock_delay_allows_for_a_server_clock_running_slow_by_the_drift_bound() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.event(1, 10, Event::Jeopardy {});
    b.op(2, "/l", lock_ex(), 1000, 1005, granted(ex(2)));
    let config = |ppm| CheckConfig {
        lock_delay_ns: ms(1000).0,
        clock_drift_ppm: ppm,
        ..CheckConfig::default()
    };
    // Granted 995 ms after the belief ended: within 1 % of the 1 s delay.
    assert_eq!(check_lock_delay(&b.build(), &config(10_000)), Verdict::Pass);
    assert!(check_lock_delay(&b.build(), &config(0)).is_fail());
}

#[test]
fn a_lock_of_a_stopped_client_waits_the_lock_delay() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.fault(5, FaultKind::ClientStop, &[], &[1]);
    b.op(2, "/l", lock_ex(), 8, 9, granted(ex(2)));
    assert!(lock_delay(&b, 10).is_fail());
    assert_eq!(lock_delay(&b, 3), Verdict::Pass);
}

#[test]
fn a_lock_released_by_unlock_needs_no_lock_delay() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.op(1, "/l", unlock(), 5, 6, ok());
    b.op(2, "/l", lock_ex(), 6, 7, granted(ex(2)));
    assert_eq!(lock_delay(&b, 100), Verdict::Pass);
}

#[test]
fn a_session_that_came_back_safe_lost_nothing_to_expiry() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.event(1, 5, Event::Jeopardy {});
    b.event(1, 7, Event::Safe {});
    b.op(1, "/l", unlock(), 8, 9, ok());
    b.op(2, "/l", lock_ex(), 9, 10, granted(ex(2)));
    assert_eq!(lock_delay(&b, 100), Verdict::Pass);
}

#[test]
fn sequencers_going_back_or_repeating_are_caught() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(5)));
    b.op(1, "/l", unlock(), 3, 4, ok());
    let x = b.op(2, "/l", lock_ex(), 5, 6, granted(ex(5)));
    fail_names(&check_sequencers(&b.build()), &[x.0]);
}

#[test]
fn a_stale_sequencer_passing_the_check_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.event(1, 5, Event::Jeopardy {});
    b.op(2, "/l", lock_ex(), 10, 12, granted(ex(2)));
    b.op(3, "/l", check_seq(ex(1)), 13, 14, stale_seq());
    assert_eq!(check_sequencers(&b.build()), Verdict::Pass);
    let c = b.op(3, "/l", check_seq(ex(1)), 15, 16, ok());
    fail_names(&check_sequencers(&b.build()), &[c.0]);
}

#[test]
fn a_check_concurrent_with_the_newer_grant_may_pass() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.op(1, "/l", unlock(), 5, 6, ok());
    b.op(2, "/l", lock_ex(), 6, 12, granted(ex(2)));
    b.op(3, "/l", check_seq(ex(1)), 8, 9, ok());
    assert_eq!(check_sequencers(&b.build()), Verdict::Pass);
}

#[test]
fn a_fresh_sequencer_called_stale_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/l", lock_ex(), 0, 2, granted(ex(1)));
    b.op(3, "/l", check_seq(ex(1)), 3, 4, ok());
    assert_eq!(check_sequencers(&b.build()), Verdict::Pass);
    let c = b.op(3, "/l", check_seq(ex(1)), 5, 6, stale_seq());
    fail_names(&check_sequencers(&b.build()), &[c.0]);
}

// ---- Random histories of a correct lock service ----

/// Clients taking one exclusive lock in turn, each holding it a while and then unlocking or
/// losing it to expiry (jeopardy, then `lock_delay` before the next grant), with try-locks
/// that conflict meanwhile. Correct by construction.
fn generate(seed: u64, delay: u64) -> Builder {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut b = Builder::with_meta(delay, None);
    let mut t = 0;
    let mut generation = 0;
    for _ in 0..rng.random_range(2..20) {
        let client = rng.random_range(1..6);
        generation += 1;
        let granted_at = t + rng.random_range(1..5);
        b.op(
            client,
            "/l",
            lock_ex(),
            t,
            granted_at,
            granted(ex(generation)),
        );
        let held = rng.random_range(1..30);
        let end = granted_at + held;
        for _ in 0..rng.random_range(0..3) {
            let other = client % 5 + 1;
            let at = rng.random_range(granted_at..end);
            b.op(other, "/l", lock_ex(), at, at + 1, conflict());
        }
        if rng.random_bool(0.3) {
            b.event(client, end, Event::Jeopardy {});
            b.event(client, end + 1, Event::Expired {});
            t = end + delay + rng.random_range(0..3);
        } else {
            b.op(client, "/l", unlock(), end, end + 2, ok());
            t = end + rng.random_range(0..3);
        }
    }
    b
}

#[test]
fn random_correct_lock_histories_pass() {
    for seed in 0..300 {
        let b = generate(seed, 10);
        let h = b.build();
        assert!(
            !check_lock_safety(&h).is_fail(),
            "seed {seed}\n{}",
            h.to_jsonl()
        );
        assert!(
            !lock_delay(&b, 10).is_fail(),
            "seed {seed}\n{}",
            h.to_jsonl()
        );
        assert!(
            !check_sequencers(&h).is_fail(),
            "seed {seed}\n{}",
            h.to_jsonl()
        );
    }
}

#[test]
fn a_grant_moved_before_the_previous_holder_let_go_is_caught() {
    let mut caught = 0;
    for seed in 0..300 {
        let mut b = generate(seed, 10);
        let grants: Vec<usize> = b
            .history
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                matches!(l, Line::Op(op) if matches!(&op.result, OpResult::Ok(r) if r.sequencer.is_some()))
            })
            .map(|(i, _)| i)
            .collect();
        if grants.len() < 2 {
            continue;
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let k = rng.random_range(1..grants.len());
        let previous = match &b.history.lines[grants[k - 1]] {
            Line::Op(op) => op.complete_ns.unwrap(),
            _ => unreachable!(),
        };
        if let Line::Op(op) = &mut b.history.lines[grants[k]] {
            // Granted to someone else just after the previous grant.
            op.invoke_ns = previous;
            op.complete_ns = Some(previous.plus(1));
            op.client = ClientId(77);
        }
        caught += 1;
        let v = check_lock_safety(&b.build());
        assert!(v.is_fail(), "seed {seed}: {v:?}\n{}", b.build().to_jsonl());
    }
    assert!(caught > 250, "only {caught} mutated");
}
