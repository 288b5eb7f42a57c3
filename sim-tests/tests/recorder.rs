//! The recorder: op lines in invoke order, results filled in, harness mistakes refused.

use sim_tests::history::{ClientId, Meta, Op, OpError, OpId, OpResult, SCHEMA_VERSION, SimTime};
use sim_tests::{History, RecordError, Recorder};

fn recorder() -> Recorder {
    Recorder::new(Meta {
        version: SCHEMA_VERSION,
        ..Meta::default()
    })
}

#[test]
fn ops_are_written_at_invoke_and_filled_in_at_completion() {
    let mut r = recorder();
    let a = r.invoke(ClientId(1), "/a", Op::Get {}, SimTime(10));
    let b = r.invoke(ClientId(2), "/a", Op::Delete {}, SimTime(11));
    r.complete(b, OpResult::Err(OpError::NoSuchNode), SimTime(12))
        .unwrap();
    assert_eq!(r.pending().collect::<Vec<_>>(), vec![a]);
    let h = r.finish();
    let ops: Vec<_> = h.ops().collect();
    assert_eq!(ops[0].id, a);
    assert_eq!(ops[0].result, OpResult::Unknown);
    assert_eq!(ops[0].complete_ns, None);
    assert_eq!(ops[1].complete_ns, Some(SimTime(12)));
    assert_eq!(History::from_jsonl(&h.to_jsonl()).unwrap(), h);
}

#[test]
fn harness_mistakes_are_refused_and_counted_and_change_nothing() {
    let mut r = recorder();
    let a = r.invoke(ClientId(1), "/a", Op::Get {}, SimTime(10));
    let before = r.history().clone();
    assert_eq!(
        r.complete(a, OpResult::Unknown, SimTime(11)),
        Err(RecordError::UnknownResult(1))
    );
    assert!(matches!(
        r.complete(a, OpResult::Err(OpError::NoSuchNode), SimTime(9)),
        Err(RecordError::BeforeInvoke { id: 1, .. })
    ));
    assert_eq!(
        r.complete(OpId(7), OpResult::Err(OpError::NoSuchNode), SimTime(11)),
        Err(RecordError::NotInvoked(7))
    );
    assert_eq!(r.history(), &before);
    r.complete(a, OpResult::Err(OpError::NoSuchNode), SimTime(11))
        .unwrap();
    assert_eq!(
        r.complete(a, OpResult::Err(OpError::NoSuchNode), SimTime(12)),
        Err(RecordError::AlreadyComplete(1))
    );
    assert_eq!(r.refused, 4);
}

#[test]
fn an_unknown_op_can_be_settled_with_a_bound() {
    let mut r = recorder();
    let a = r.invoke(ClientId(1), "/a", Op::Delete {}, SimTime(10));
    assert!(matches!(
        r.settle_unknown(a, SimTime(9)),
        Err(RecordError::BeforeInvoke { .. })
    ));
    r.settle_unknown(a, SimTime(50)).unwrap();
    assert_eq!(r.pending().count(), 0);
    assert_eq!(
        r.complete(a, OpResult::Err(OpError::NoSuchNode), SimTime(60)),
        Err(RecordError::AlreadyComplete(1))
    );
    let h = r.finish();
    let op = h.ops().next().unwrap();
    assert_eq!(
        (op.result.clone(), op.complete_ns),
        (OpResult::Unknown, Some(SimTime(50)))
    );
    assert_eq!(History::from_jsonl(&h.to_jsonl()).unwrap(), h);
}
