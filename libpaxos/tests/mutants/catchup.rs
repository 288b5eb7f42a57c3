//! Survivors in libpaxos/src/catchup.rs (catch-up requests and answers, snapshot offers).

use super::support::*;

/// catchup.rs `request_catch_up`: a second hint within the retry interval sends no second
/// request for the same slot.
#[test]
fn a_catch_up_request_in_flight_is_not_repeated_within_the_retry_interval() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(2, 1)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    r.on_message(at(110), N1, heartbeat(2, 2)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![]);
}

/// catchup.rs `on_catch_up`: an answer that brings the replica up to the sender's commit
/// index asks for nothing more.
#[test]
fn a_catch_up_that_reaches_the_senders_commit_asks_no_more() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(2, 1)).unwrap();
    drive(&mut r);
    let entry = |slot| Entry {
        slot: Slot(slot),
        ballot: ballot(1, N1),
        value: Value {
            epoch: Epoch(1),
            payload: Payload::Noop,
        },
    };
    let answer = Message::CatchUp {
        commit: Slot(2),
        entries: vec![entry(1), entry(2)],
    };
    r.on_message(at(105), N1, answer).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.commit(), Slot(2));
    assert_eq!(catch_up_requests(&ready), vec![]);
}

/// catchup.rs `on_catch_up`: an answer that helps but leaves the replica behind the sender's
/// commit index asks for the rest at once.
#[test]
fn a_catch_up_that_leaves_the_replica_behind_asks_for_the_rest() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(3, 1)).unwrap();
    drive(&mut r);
    let answer = Message::CatchUp {
        commit: Slot(3),
        entries: vec![Entry {
            slot: Slot(1),
            ballot: ballot(1, N1),
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Noop,
            },
        }],
    };
    r.on_message(at(105), N1, answer).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(2)]);
}

/// catchup.rs `request_catch_up` (`||` → `&&` in its guard): while a snapshot is
/// wanted, a hint that the replica is behind asks no peer for entries — the snapshot is on
/// its way and the entries it covers are compacted everywhere.
#[test]
fn no_catch_up_request_while_a_snapshot_is_wanted() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(3, 1)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    // catchup.rs `request_catch_up` (`+=` → `*=`): operators can read that it asked.
    assert_eq!(r.counters().catch_up_requests, 1);
    r.on_message(at(101), N1, Message::SnapshotNeeded { slot: Slot(40) })
        .unwrap();
    let ready = drive(&mut r);
    assert!(
        ready
            .events
            .iter()
            .any(|e| matches!(e, libpaxos::Event::SnapshotNeeded { .. })),
        "the snapshot is wanted"
    );
    // catchup.rs `on_snapshot_needed` (`+=` → `*=`): operators can read that it was asked.
    assert_eq!(r.counters().snapshots_needed, 1);
    r.on_message(at(110), N1, heartbeat(50, 2)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![]);
}

/// catchup.rs `request_catch_up` (`<` → `<=` in the retry test): a request unanswered for
/// exactly the retry interval is sent again on the next hint, even before a tick has cleared
/// it — the same boundary at which `tick_catch_up` forgets it.
#[test]
fn a_catch_up_request_is_repeated_exactly_one_retry_interval_later() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(2, 1)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    let retry = r.config().election_timeout.as_millis() as u64;
    r.on_message(at(100 + retry - 1), N1, heartbeat(2, 2))
        .unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![]);
    r.on_message(at(100 + retry), N1, heartbeat(2, 3)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
}

/// catchup.rs `on_catch_up_request` (`+` → `-` in the gap check): an answer carries every
/// consecutive committed entry from the slot asked, not only the first.
#[test]
fn a_catch_up_answer_carries_every_committed_entry_from_the_slot_asked() {
    let mut r = follower_with_three_committed();
    r.on_message(at(110), N3, Message::CatchUpRequest { from: Slot(1) })
        .unwrap();
    let answer = drive(&mut r)
        .messages
        .into_iter()
        .find(|e| e.to == N3)
        .map(|e| e.msg);
    let Some(Message::CatchUp { commit, entries }) = answer else {
        panic!("no catch-up answer: {answer:?}");
    };
    assert_eq!(commit, Slot(3));
    let slots: Vec<Slot> = entries.iter().map(|e| e.slot).collect();
    assert_eq!(slots, vec![Slot(1), Slot(2), Slot(3)]);
}

/// catchup.rs `on_catch_up_request` (`+=` → `-=`): a request for slot 0 is counted malformed
/// and unanswered.
#[test]
fn a_catch_up_request_for_slot_zero_is_counted_malformed() {
    let mut r = follower_with_three_committed();
    r.on_message(at(110), N3, Message::CatchUpRequest { from: Slot::ZERO })
        .unwrap();
    assert!(drive(&mut r).messages.iter().all(|e| e.to != N3));
    assert_eq!(r.counters().malformed, 1);
}

/// catchup.rs `on_catch_up_request` (`>` → `>=` in the byte cut): an answer may carry exactly
/// `max_batch_bytes` of values; only the entry that would pass it is left for the next ask.
#[test]
fn a_catch_up_answer_fills_exactly_max_batch_bytes() {
    let mut config = Config::new(N2, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    // Each value (16 bytes of overhead and a 1-byte command) counts 17 bytes: two fit exactly.
    config.max_batch_bytes = 34;
    let r = Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).expect("valid config");
    let mut r = follower_with_three_committed_with(r);
    r.on_message(at(110), N3, Message::CatchUpRequest { from: Slot(1) })
        .unwrap();
    let answer = drive(&mut r)
        .messages
        .into_iter()
        .find(|e| e.to == N3)
        .map(|e| e.msg);
    let Some(Message::CatchUp { entries, .. }) = answer else {
        panic!("no catch-up answer: {answer:?}");
    };
    let slots: Vec<Slot> = entries.iter().map(|e| e.slot).collect();
    assert_eq!(slots, vec![Slot(1), Slot(2)]);
}

/// catchup.rs `on_catch_up` (`+=` → `*=`): an answer with an entry beyond the commit index it
/// reports is counted malformed and taken not at all.
#[test]
fn a_catch_up_answer_beyond_its_own_commit_is_counted_malformed() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(3, 1)).unwrap();
    drive(&mut r);
    let entry = |slot| Entry {
        slot: Slot(slot),
        ballot: ballot(1, N1),
        value: Value {
            epoch: Epoch(1),
            payload: Payload::Noop,
        },
    };
    let answer = Message::CatchUp {
        commit: Slot(1),
        entries: vec![entry(1), entry(2)],
    };
    r.on_message(at(105), N1, answer).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().malformed, 1);
    assert_eq!(r.commit(), Slot::ZERO);
}

/// catchup.rs `on_catch_up` (`+=` → `*=` on `unexpected`): a master takes no catch-up answer
/// (it learns nothing from another term) and counts it unexpected.
#[test]
fn a_master_counts_a_catch_up_answer_unexpected() {
    let mut r = elected_master();
    let before = r.counters().unexpected;
    let answer = Message::CatchUp {
        commit: Slot(1),
        entries: vec![Entry {
            slot: Slot(1),
            ballot: ballot(0, N2),
            value: Value {
                epoch: Epoch(0),
                payload: Payload::Noop,
            },
        }],
    };
    r.on_message(at(ELECTION + 5), N2, answer).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().unexpected, before + 1);
    assert_eq!(r.commit(), Slot::ZERO);
}

/// catchup.rs `on_snapshot_needed`: a `SnapshotNeeded` from a peer this replica never asked
/// to catch it up is refused even when its slot is ahead: no snapshot is wanted, and it is
/// counted.
#[test]
fn a_snapshot_offer_nobody_asked_for_is_refused() {
    let mut r = replica(N2);
    offer_snapshot_expecting_refusal(
        &mut r,
        at(100),
        N1,
        40,
        true,
        "a snapshot was wanted without a request",
    );
}

/// catchup.rs `on_snapshot_needed`: the peer asked may answer with a snapshot point, but one
/// at or below this replica's commit index would install older state over newer: refused and
/// counted.
/// (Also kills the third run's catchup.rs:144:13 `||` → `&&`, which reads
/// `!asked || slot <= commit && snapshot_wanted || master` and takes this offer.)
#[test]
fn a_snapshot_offer_at_or_below_the_commit_index_is_refused() {
    let mut r = follower_with_three_committed();
    r.on_message(at(200), N1, heartbeat(10, 5)).unwrap();
    let asked: Vec<(NodeId, Slot)> = drive(&mut r)
        .messages
        .iter()
        .filter_map(|e| match e.msg {
            Message::CatchUpRequest { from } => Some((e.to, from)),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (peer, from) = asked[0];
    assert_eq!(from, Slot(4));
    offer_snapshot_expecting_refusal(
        &mut r,
        at(201),
        peer,
        3,
        true,
        "a snapshot at the commit index was wanted",
    );
}

/// catchup.rs `on_snapshot_needed` (`||` → `&&` before the master check): a master is never
/// sent to a snapshot, not even by the peer it asked for the chosen prefix while recovering.
/// Here the recovery stalls, the replica stands again and takes office with another
/// majority, its request to n2 still recorded; n2's late `SnapshotNeeded` is refused.
#[test]
fn a_master_refuses_a_snapshot_offer_from_the_peer_it_asked_while_recovering() {
    let (mut r, ready) = recovering_master();
    let asked: Vec<NodeId> = ready
        .messages
        .iter()
        .filter(|e| matches!(e.msg, Message::CatchUpRequest { .. }))
        .map(|e| e.to)
        .collect();
    assert_eq!(asked, vec![N2]);
    // n2 keeps acknowledging heartbeats (the lease holds) but never sends the prefix. The
    // ticks are 30 ms off the recovery's start: the request is re-sent at the first tick an
    // election timeout after the last, so it is younger than that when the recovery's
    // deadline (two election timeouts after its start) makes the replica stand again.
    let timeout = r.config().election_timeout.as_millis() as u64;
    let mut t = ELECTION + 30;
    while t < ELECTION + 2 * timeout {
        r.on_tick(at(t)).unwrap();
        let ready = drive_persisted(&mut r, at(t));
        ack_heartbeats_from_n2(&mut r, at(t), &ready);
        t += 50;
    }
    let restart = at(ELECTION + 2 * timeout);
    r.on_tick(restart).unwrap();
    drive_persisted(&mut r, restart);
    let Role::Candidate { ballot: second } = r.role() else {
        panic!("{:?}", r.role());
    };
    let promise = Message::Promise {
        ballot: second,
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(restart, N3, promise).unwrap();
    drive_persisted(&mut r, restart);
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
    offer_snapshot_expecting_refusal(&mut r, restart, N2, 40, true, "a master wanted a snapshot");
}

/// catchup.rs `on_catch_up` (`>` → `>=` in `progressed`): an answer that brings nothing new
/// (here no entries at all) leaves the request in flight as it is; only an answer that moved
/// the commit index asks again at once, so an empty answer cannot start a request storm.
#[test]
fn a_catch_up_answer_that_brings_nothing_asks_nothing_again() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(5, 1)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    let answer = Message::CatchUp {
        commit: Slot(5),
        entries: vec![],
    };
    r.on_message(at(105), N1, answer).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![]);
    assert_eq!(r.commit(), Slot::ZERO);
    assert_eq!(r.counters().catch_up_requests, 1);
}

/// catchup.rs `tick_catch_up` (body → `()`, and `>=` → `<` in the snapshot's expiry): a
/// wanted snapshot blocks catch-up requests for four election timeouts, not less; from then
/// on (the driver could not fetch it) the next hint asks a peer for entries again.
#[test]
fn a_wanted_snapshot_is_given_up_after_exactly_four_election_timeouts() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(3, 1)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    let wanted_at = 101;
    r.on_message(
        at(wanted_at),
        N1,
        Message::SnapshotNeeded { slot: Slot(40) },
    )
    .unwrap();
    drive(&mut r);
    assert_eq!(r.counters().snapshots_needed, 1);
    let give_up = wanted_at + 4 * r.config().election_timeout.as_millis() as u64;
    // n1 keeps heartbeating (every one a hint that n2 is behind) and time passes.
    let mut t = wanted_at + 10;
    let mut seq = 2;
    while t < give_up {
        r.on_message(at(t), N1, heartbeat(50, seq)).unwrap();
        r.on_tick(at(t)).unwrap();
        assert_eq!(catch_up_requests(&drive(&mut r)), vec![], "at {t}");
        seq += 1;
        t += 100;
    }
    r.on_tick(at(give_up - 1)).unwrap();
    r.on_message(at(give_up - 1), N1, heartbeat(50, seq))
        .unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![]);
    r.on_tick(at(give_up)).unwrap();
    r.on_message(at(give_up), N1, heartbeat(50, seq + 1))
        .unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    assert_eq!(r.counters().catch_up_requests, 2);
}
