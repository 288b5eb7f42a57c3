//! The durability checker on hand-written histories.

mod support;

use sim_tests::check::{Verdict, check_durability};
use support::*;

#[test]
fn an_acknowledged_write_read_back_passes() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(2, "/a", get(), 10, 11, read("v1", 1));
    assert_eq!(check_durability(&b.build()), Verdict::Pass);
}

#[test]
fn an_acknowledged_write_the_cell_forgot_is_caught() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    let w = b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.fault(5, sim_tests::history::FaultKind::CellCrash, &[1, 2, 3], &[]);
    let r = b.op(2, "/a", get(), 10, 11, read("", 0));
    match check_durability(&b.build()) {
        Verdict::Fail(v) => {
            assert_eq!(v[0].ops, vec![w, r]);
            assert!(v[0].message.contains("acknowledged write lost"), "{}", v[0]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_write_overwritten_by_a_later_or_unknown_one_passes() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    b.op(2, "/a", put("v2"), 4, 0, unknown());
    b.op(2, "/a", get(), 10, 11, read("v2", 2));
    assert_eq!(check_durability(&b.build()), Verdict::Pass);
}

#[test]
fn an_earlier_write_cannot_overwrite_a_later_one() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(2, "/a", put("v0"), 1, 2, written(1));
    b.op(1, "/a", put("v1"), 3, 4, written(2));
    b.op(2, "/a", get(), 10, 11, read("v0", 1));
    assert!(check_durability(&b.build()).is_fail());
}

#[test]
fn an_acknowledged_write_never_read_back_fails() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", put("v1"), 2, 3, written(1));
    match check_durability(&b.build()) {
        Verdict::Fail(v) => assert!(v[0].message.contains("never read back"), "{}", v[0]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_acknowledged_delete_must_stay_deleted() {
    let mut b = Builder::new();
    b.op(1, "/a", create(), 0, 1, created(0));
    b.op(1, "/a", delete(), 2, 3, ok());
    b.op(2, "/a", get(), 10, 11, absent());
    assert_eq!(check_durability(&b.build()), Verdict::Pass);
    b.op(2, "/a", get(), 12, 13, read("", 0));
    assert!(check_durability(&b.build()).is_fail());
    b.op(3, "/a", create(), 11, 12, created(0));
    assert_eq!(check_durability(&b.build()), Verdict::Pass);
}

#[test]
fn nothing_written_is_skipped() {
    let mut b = Builder::new();
    b.op(2, "/a", get(), 10, 11, absent());
    assert!(matches!(check_durability(&b.build()), Verdict::Skipped(_)));
}
