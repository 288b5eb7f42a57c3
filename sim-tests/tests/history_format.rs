//! The JSON-lines history format: what it looks like, that it round-trips, and that bad lines
//! are refused with the line named.

use sim_tests::HistoryError;
use sim_tests::history::{
    ClientId, DigestRecord, Event, EventRecord, FaultKind, FaultRecord, History, Line, LockMode,
    MasterRecord, MemberId, Meta, Op, OpError, OpId, OpRecord, OpResult, Reply, SCHEMA_VERSION,
    Sequencer, SimTime,
};

fn sample() -> History {
    let sequencer = Sequencer {
        mode: LockMode::Exclusive,
        generation: 3,
        instance: 1,
    };
    let mut h = History::new();
    h.push(Line::Meta(Meta {
        version: SCHEMA_VERSION,
        seed: 42,
        scenario: "minority-partition".to_owned(),
        members: 3,
        lock_delay_ns: 0,
        liveness_bound_ns: Some(5_000_000_000),
        clock_drift_ppm: 10_000,
    }));
    h.push(Line::Op(OpRecord {
        id: OpId(1),
        client: ClientId(2),
        path: "/f/a".to_owned(),
        op: Op::Put {
            data: "v1".to_owned(),
            cas: Some(0),
        },
        result: OpResult::Ok(Reply {
            generation: Some(1),
            ..Reply::default()
        }),
        invoke_ns: SimTime(1_000),
        complete_ns: Some(SimTime(5_000)),
    }));
    h.push(Line::Op(OpRecord {
        id: OpId(2),
        client: ClientId(3),
        path: "/f/a".to_owned(),
        op: Op::Get {},
        result: OpResult::Unknown,
        invoke_ns: SimTime(2_000),
        complete_ns: None,
    }));
    h.push(Line::Op(OpRecord {
        id: OpId(3),
        client: ClientId(3),
        path: "/l".to_owned(),
        op: Op::CheckSequencer { sequencer },
        result: OpResult::Err(OpError::StaleSequencer),
        invoke_ns: SimTime(6_000),
        complete_ns: Some(SimTime(7_000)),
    }));
    h.push(Line::Op(OpRecord {
        id: OpId(4),
        client: ClientId(2),
        path: "/l".to_owned(),
        op: Op::Lock {
            mode: LockMode::Shared,
            wait: true,
        },
        result: OpResult::Err(OpError::Refused("busy".to_owned())),
        invoke_ns: SimTime(6_000),
        complete_ns: Some(SimTime(7_000)),
    }));
    h.push(Line::Event(EventRecord {
        client: ClientId(2),
        at_ns: SimTime(8_000),
        event: Event::LockAcquired {
            path: "/l".to_owned(),
            sequencer,
        },
    }));
    h.push(Line::Event(EventRecord {
        client: ClientId(2),
        at_ns: SimTime(9_000),
        event: Event::Jeopardy {},
    }));
    h.push(Line::Fault(FaultRecord {
        at_ns: SimTime(3_000),
        fault: FaultKind::Partition,
        members: vec![MemberId(1)],
        clients: Vec::new(),
        detail: String::new(),
    }));
    h.push(Line::Master(MasterRecord {
        at_ns: SimTime(4_000),
        member: MemberId(2),
        epoch: 7,
    }));
    h.push(Line::Digest(DigestRecord {
        at_ns: SimTime(10_000),
        member: MemberId(2),
        applied: 99,
        digest: "ab12".to_owned(),
    }));
    h
}

#[test]
fn lines_look_as_docs_testing_md_shows() {
    let text = sample().to_jsonl();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"type":"meta","version":1,"seed":42,"scenario":"minority-partition","members":3,"lock_delay_ns":0,"liveness_bound_ns":5000000000,"clock_drift_ppm":10000}"#
    );
    assert_eq!(
        lines[1],
        r#"{"type":"op","id":1,"client":2,"path":"/f/a","op":"put","args":{"data":"v1","cas":0},"result":{"ok":{"generation":1}},"invoke_ns":1000,"complete_ns":5000}"#
    );
    assert_eq!(
        lines[2],
        r#"{"type":"op","id":2,"client":3,"path":"/f/a","op":"get","args":{},"result":"unknown","invoke_ns":2000,"complete_ns":null}"#
    );
    assert_eq!(
        lines[3],
        r#"{"type":"op","id":3,"client":3,"path":"/l","op":"check_sequencer","args":{"sequencer":{"mode":"exclusive","generation":3,"instance":1}},"result":{"err":"stale_sequencer"},"invoke_ns":6000,"complete_ns":7000}"#
    );
    assert_eq!(
        lines[4],
        r#"{"type":"op","id":4,"client":2,"path":"/l","op":"lock","args":{"mode":"shared","wait":true},"result":{"err":{"refused":"busy"}},"invoke_ns":6000,"complete_ns":7000}"#
    );
    assert_eq!(
        lines[5],
        r#"{"type":"event","client":2,"at_ns":8000,"event":"lock_acquired","path":"/l","sequencer":{"mode":"exclusive","generation":3,"instance":1}}"#
    );
    assert_eq!(
        lines[6],
        r#"{"type":"event","client":2,"at_ns":9000,"event":"jeopardy"}"#
    );
    assert_eq!(
        lines[7],
        r#"{"type":"fault","at_ns":3000,"fault":"partition","members":[1]}"#
    );
    assert_eq!(
        lines[8],
        r#"{"type":"master","at_ns":4000,"member":2,"epoch":7}"#
    );
    assert_eq!(
        lines[9],
        r#"{"type":"digest","at_ns":10000,"member":2,"applied":99,"digest":"ab12"}"#
    );
}

#[test]
fn a_history_round_trips_through_json_lines() {
    let history = sample();
    let text = history.to_jsonl();
    assert_eq!(History::from_jsonl(&text).unwrap(), history);
}

#[test]
fn a_bad_line_is_refused_naming_its_line() {
    let mut text = sample().to_jsonl();
    text.push_str("{\"type\":\"op\",\"id\":9}\n");
    let err = History::from_jsonl(&text).unwrap_err();
    assert!(matches!(err, HistoryError::Parse { line: 11, .. }), "{err}");
}

#[test]
fn a_repeated_op_id_is_refused() {
    let mut history = sample();
    let again = history.ops().next().unwrap().clone();
    history.push(Line::Op(again));
    let err = History::from_jsonl(&history.to_jsonl()).unwrap_err();
    assert!(
        matches!(err, HistoryError::Invalid { line: 11, ref reason } if reason.contains("used twice")),
        "{err}"
    );
}

#[test]
fn a_known_result_without_completion_or_completing_early_is_refused() {
    let text = r#"{"type":"op","id":1,"client":1,"path":"/a","op":"get","args":{},"result":{"err":"no_such_node"},"invoke_ns":5}"#;
    let err = History::from_jsonl(text).unwrap_err();
    assert!(
        matches!(err, HistoryError::Invalid { line: 1, .. }),
        "{err}"
    );
    let text = r#"{"type":"op","id":1,"client":1,"path":"/a","op":"get","args":{},"result":{"err":"no_such_node"},"invoke_ns":5,"complete_ns":4}"#;
    let err = History::from_jsonl(text).unwrap_err();
    assert!(
        matches!(err, HistoryError::Invalid { line: 1, ref reason } if reason.contains("before its invoke")),
        "{err}"
    );
}

#[test]
fn an_unsupported_schema_version_is_refused() {
    let text = r#"{"type":"meta","version":2,"seed":1}"#;
    let err = History::from_jsonl(text).unwrap_err();
    assert!(
        matches!(err, HistoryError::Invalid { line: 1, .. }),
        "{err}"
    );
}

#[test]
fn a_minimal_meta_line_takes_the_defaults() {
    let h = History::from_jsonl(r#"{"type":"meta","version":1,"seed":3}"#).unwrap();
    let meta = h.meta().unwrap();
    assert_eq!(meta.seed, 3);
    assert_eq!(meta.clock_drift_ppm, 10_000);
    assert_eq!(meta.liveness_bound_ns, None);
}

#[test]
fn blank_lines_are_skipped() {
    let text = format!("\n{}\n\n", sample().to_jsonl());
    assert_eq!(History::from_jsonl(&text).unwrap().lines.len(), 10);
}

#[test]
fn the_fingerprint_tells_histories_apart_and_equal_ones_alike() {
    let a = sample();
    assert_eq!(a.fingerprint(), sample().fingerprint());
    let mut b = sample();
    if let Line::Op(op) = &mut b.lines[1] {
        op.invoke_ns = SimTime(1_001);
    }
    assert_ne!(a.fingerprint(), b.fingerprint());
    // FNV-1a of the empty input is its offset basis.
    assert_eq!(History::new().fingerprint(), 0xcbf2_9ce4_8422_2325);
}
