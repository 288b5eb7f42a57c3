//! The convergence and liveness checkers on hand-written histories.

mod support;

use sim_tests::check::{CheckConfig, Verdict, check_convergence, check_liveness};
use sim_tests::history::FaultKind;
use support::*;

fn liveness(b: &Builder) -> Verdict {
    check_liveness(&b.build(), &CheckConfig::for_history(&b.build()))
}

#[test]
fn identical_digests_converge() {
    let mut b = Builder::new();
    for m in 1..=3 {
        b.digest(100, m, 42, "beef");
    }
    assert_eq!(check_convergence(&b.build()), Verdict::Pass);
}

#[test]
fn a_member_with_another_digest_or_index_is_caught() {
    let mut b = Builder::new();
    b.digest(100, 1, 42, "beef");
    b.digest(100, 2, 42, "beef");
    b.digest(100, 3, 42, "dead");
    assert!(check_convergence(&b.build()).is_fail());
    let mut b = Builder::new();
    b.digest(100, 1, 42, "beef");
    b.digest(100, 2, 41, "beef");
    b.digest(100, 3, 42, "beef");
    assert!(check_convergence(&b.build()).is_fail());
}

#[test]
fn only_the_latest_digest_of_each_member_counts() {
    let mut b = Builder::new();
    b.digest(50, 3, 40, "old");
    for m in 1..=3 {
        b.digest(100, m, 42, "beef");
    }
    assert_eq!(check_convergence(&b.build()), Verdict::Pass);
}

#[test]
fn a_member_missing_its_digest_is_caught() {
    let mut b = Builder::new();
    b.digest(100, 1, 42, "beef");
    b.digest(100, 2, 42, "beef");
    assert!(check_convergence(&b.build()).is_fail());
    assert!(matches!(
        check_convergence(&Builder::new().build()),
        Verdict::Skipped(_)
    ));
}

#[test]
fn every_live_client_served_after_the_heal_passes() {
    let mut b = Builder::with_meta(0, Some(50));
    b.fault(10, FaultKind::Partition, &[1], &[]);
    b.op(1, "/a", get(), 5, 0, unknown());
    b.fault(100, FaultKind::Heal, &[], &[]);
    b.op(1, "/a", get(), 120, 130, absent());
    b.op(2, "/a", get(), 90, 110, read("x", 1));
    assert_eq!(liveness(&b), Verdict::Pass);
}

#[test]
fn a_client_not_served_within_the_bound_is_caught() {
    let mut b = Builder::with_meta(0, Some(50));
    b.fault(100, FaultKind::Heal, &[], &[]);
    b.op(1, "/a", get(), 120, 130, absent());
    b.op(2, "/a", get(), 120, 160, absent());
    b.op(3, "/a", get(), 120, 0, unknown());
    b.op(4, "/a", get(), 120, 121, refused());
    match liveness(&b) {
        Verdict::Fail(v) => {
            let text: Vec<String> = v.iter().map(|v| v.message.clone()).collect();
            assert_eq!(v.len(), 3, "{text:?}");
            assert!(text[0].starts_with("client 2 "), "{text:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stopped_client_is_not_expected_to_be_served() {
    let mut b = Builder::with_meta(0, Some(50));
    b.fault(50, FaultKind::ClientStop, &[], &[2]);
    b.fault(100, FaultKind::Heal, &[], &[]);
    b.op(1, "/a", get(), 120, 130, absent());
    b.op(2, "/a", get(), 20, 0, unknown());
    assert_eq!(liveness(&b), Verdict::Pass);
}

#[test]
fn the_bound_runs_from_the_last_heal() {
    let mut b = Builder::with_meta(0, Some(50));
    b.fault(100, FaultKind::Heal, &[], &[]);
    b.op(1, "/a", get(), 120, 130, absent());
    b.fault(200, FaultKind::Heal, &[], &[]);
    assert!(liveness(&b).is_fail());
    assert!(matches!(
        check_liveness(&Builder::new().build(), &CheckConfig::default()),
        Verdict::Skipped(_)
    ));
}

/// The availability figure the long runs print: the longest stretch in which no client
/// learned an answer (success or a definite error); unknown outcomes answer nothing.
#[test]
fn the_longest_unanswered_stretch_counts_definite_answers_only() {
    use sim_tests::history::{OpError, OpResult, Reply};
    let mut b = Builder::new();
    assert_eq!(b.build().longest_unanswered(), None);
    b.op(1, "/f", get(), 0, 100, OpResult::Ok(Reply::default()));
    // Client 2 waits from 200 ms to 3,000 ms, unanswered; client 1 gets a definite error
    // at 1,100 ms, then nothing until 3,100 ms.
    b.op(2, "/f", get(), 200, 0, OpResult::Unknown);
    b.op(
        1,
        "/f",
        put("x"),
        900,
        1_100,
        OpResult::Err(OpError::StaleCas),
    );
    b.op(1, "/f", get(), 1_200, 3_100, OpResult::Ok(Reply::default()));
    b.op(2, "/f", get(), 3_000, 3_050, OpResult::Ok(Reply::default()));
    assert_eq!(b.build().longest_unanswered(), Some(ms(1_950).0));
}
