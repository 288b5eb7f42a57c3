//! Survivors in libpaxos/src/replica.rs (Readys, storage reads and writes, compaction, snapshots).

use super::support::*;

/// replica.rs `outbox_range` / `read_entries`: a promise reports entries accepted earlier in
/// the same Ready, before they were written (a driver may feed several inputs per Ready).
#[test]
fn a_promise_reports_entries_accepted_earlier_in_the_same_ready() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, accept(&[1, 2])).unwrap();
    let prepare = Message::Prepare {
        ballot: ballot(2, N3),
        from: Slot(1),
    };
    r.on_message(at(ELECTION), N3, prepare).unwrap();
    let ready = drive(&mut r);
    let reported: Vec<Slot> = ready
        .after_persist
        .iter()
        .find_map(|e| match &e.msg {
            Message::Promise { entries, .. } => Some(entries.iter().map(|e| e.slot).collect()),
            _ => None,
        })
        .expect("a promise");
    assert_eq!(reported, vec![Slot(1), Slot(2)]);
}

/// replica.rs `write_entry`: entries written out of order, or twice, in one Ready reach the
/// log sorted and once per slot.
#[test]
fn entries_written_out_of_order_or_twice_in_one_ready_are_persisted_sorted_once() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, accept(&[3])).unwrap();
    r.on_message(at(101), N1, accept(&[1, 2])).unwrap();
    r.on_message(at(102), N1, accept(&[2])).unwrap();
    let ready = drive(&mut r);
    let slots: Vec<Slot> = ready.persist.entries.iter().map(|e| e.slot).collect();
    assert_eq!(slots, vec![Slot(1), Slot(2), Slot(3)]);
}

/// replica.rs `set_compacted`: an entry waiting to be written at the slot a snapshot now covers
/// is dropped from the Ready, not written next to the compaction.
#[test]
fn an_entry_at_the_snapshot_point_is_not_written_with_the_compaction() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, accept(&[1, 2])).unwrap();
    r.on_snapshot_installed(at(101), Slot(2)).unwrap();
    let ready = drive(&mut r);
    assert_eq!(ready.persist.compact_through, Some(Slot(2)));
    assert_eq!(ready.persist.entries, vec![]);
}

/// replica.rs `set_role` (`!` deleted): a master holding its lease that leaves office (here it
/// re-runs phase 1 above a rejection) reports the lease lost, exactly once.
#[test]
fn a_master_leaving_office_with_its_lease_reports_it_lost() {
    let mut r = elected_master();
    let b = ballot(1, N1);
    let sent = at(ELECTION + 10);
    r.on_tick(sent).unwrap();
    drive(&mut r);
    let ack = Message::HeartbeatAck {
        ballot: b,
        seq: 1,
        commit: Slot::ZERO,
    };
    r.on_message(sent, N2, ack).unwrap();
    r.on_tick(sent).unwrap();
    assert!(
        drive(&mut r)
            .events
            .contains(&libpaxos::Event::LeaseAcquired)
    );
    let reject = Message::Reject {
        ballot: b,
        promised: ballot(7, N3),
    };
    r.on_message(at(ELECTION + 20), N3, reject).unwrap();
    let events = drive(&mut r).events;
    assert!(matches!(r.role(), Role::Candidate { .. }), "{:?}", r.role());
    let lost = events
        .iter()
        .filter(|e| **e == libpaxos::Event::LeaseLost)
        .count();
    assert_eq!(lost, 1, "{events:?}");
}

/// replica.rs `lease_state` (its `Recovering` arm deleted): a master-elect still recovering
/// the chosen prefix already heartbeats and gains its lease from the acks, so followers are
/// bound to its ballot while it catches up and it takes office holding the lease.
#[test]
fn a_recovering_master_heartbeats_and_gains_its_lease() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(2),
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    assert!(
        matches!(r.role(), Role::Recovering { .. }),
        "{:?}",
        r.role()
    );
    let sent = at(ELECTION + 200);
    r.on_tick(sent).unwrap();
    let beats: Vec<(NodeId, u64)> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::Heartbeat { ballot: b, seq, .. } if b == ballot(1, N1) => Some((e.to, seq)),
            _ => None,
        })
        .collect();
    assert_eq!(beats.len(), 2, "one heartbeat per peer: {beats:?}");
    let seq = beats[0].1;
    let ack = Message::HeartbeatAck {
        ballot: ballot(1, N1),
        seq,
        commit: Slot(2),
    };
    r.on_message(sent, N2, ack).unwrap();
    assert!(r.lease_valid(sent));
}

/// replica.rs `find` (`==` → `!=`): a slot missing from this Ready's writes (a hole between
/// two accepted slots) is not mistaken for its neighbour, so a commit index learned before
/// the Ready is taken stops at the hole and the rest is fetched.
#[test]
fn a_hole_in_the_unwritten_accepts_stops_the_learned_commit() {
    let mut r = replica(N2);
    let entry = |slot| Entry {
        slot: Slot(slot),
        ballot: ballot(1, N1),
        value: Value {
            epoch: Epoch(1),
            payload: Payload::Noop,
        },
    };
    let accept = Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![entry(1), entry(3), entry(4)],
    };
    r.on_message(at(100), N1, accept).unwrap();
    // Before the Ready is taken: the entries are still only in the core's pending writes.
    r.on_message(at(101), N1, heartbeat(4, 1)).unwrap();
    assert_eq!(r.commit(), Slot(1));
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(2)]);
}

/// replica.rs `note_ballot` (body deleted): a refusal that reports a higher promise makes the
/// next candidacy go above it at once, not one round above its own promise.
#[test]
fn a_pre_vote_refusal_with_a_higher_promise_raises_the_next_round() {
    let mut r = replica(N1);
    r.on_tick(at(ELECTION)).unwrap();
    let first: Vec<(u64, u64)> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::PreVote { attempt, round, .. } => Some((attempt, round)),
            _ => None,
        })
        .collect();
    assert_eq!(first.len(), 2, "{first:?}");
    let (attempt, round) = first[0];
    assert_eq!(round, 1);
    let refusal = Message::PreVoteReply {
        attempt,
        round,
        granted: false,
        promised: ballot(5, N3),
    };
    r.on_message(at(ELECTION + 1), N2, refusal).unwrap();
    drive(&mut r);
    let later = at(ELECTION + 2 * r.config().election_timeout.as_millis() as u64 + 1);
    r.on_tick(later).unwrap();
    let rounds: Vec<u64> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::PreVote { round, .. } => Some(round),
            _ => None,
        })
        .collect();
    assert_eq!(rounds, vec![6, 6]);
}

/// replica.rs `raise_promise` (`>` → `>=`): hearing the ballot already promised writes no
/// hard state.
#[test]
fn the_same_ballot_again_writes_no_hard_state() {
    let mut r = follower_with_three_committed();
    r.on_message(at(110), N1, heartbeat(3, 2)).unwrap();
    let ready = drive(&mut r);
    assert_eq!(ready.persist.hard_state, None, "{ready:?}");
}

/// replica.rs `on_message` (`+=` → `*=` on `malformed`): a message carrying a ballot beyond
/// the round limit is counted malformed, unanswered, and promises nothing.
#[test]
fn a_message_with_an_invalid_ballot_is_counted_malformed() {
    let mut r = replica(N2);
    let absurd = Message::Heartbeat {
        ballot: ballot(Ballot::MAX_ROUND, N1),
        seq: 1,
        commit: Slot::ZERO,
    };
    r.on_message(at(100), N1, absurd).unwrap();
    assert!(drive(&mut r).messages.is_empty());
    assert_eq!(r.counters().malformed, 1);
    assert_eq!(r.promised(), Ballot::ZERO);
}

/// replica.rs `compact` (`>` → `>=`): asking to compact through the slot already compacted
/// (or beyond what was applied) writes no compaction: the next Ready is empty.
#[test]
fn compacting_through_the_compaction_point_again_writes_nothing() {
    let mut r = follower_with_three_committed();
    r.on_applied(Slot(3));
    r.compact(Slot(3));
    assert_eq!(drive(&mut r).persist.compact_through, Some(Slot(3)));
    r.compact(Slot(3));
    r.compact(Slot(9));
    let ready = drive(&mut r);
    assert_eq!(ready.persist.compact_through, None, "{ready:?}");
    assert_eq!(ready.number, 0);
}

/// replica.rs `on_snapshot_installed` (`>` → `>=` before raising the commit index): a
/// snapshot exactly at the commit index (ahead of what was applied) compacts the log but
/// writes no hard state: the commit index did not move.
#[test]
fn a_snapshot_at_the_commit_index_writes_no_hard_state() {
    let mut r = follower_with_three_committed();
    r.on_snapshot_installed(at(110), Slot(3)).unwrap();
    let ready = drive(&mut r);
    assert_eq!(ready.persist.compact_through, Some(Slot(3)));
    assert_eq!(ready.persist.hard_state, None, "{ready:?}");
    assert_eq!(r.commit(), Slot(3));
    assert_eq!(r.applied(), Slot(3));
}

/// replica.rs `ready` (`>` → `<`, `==` and `>=` in the `to_self` test): a self-accept waiting
/// for a Ready already taken (the last one, or an earlier one) does not number an empty
/// Ready: with nothing to do, `ready()` gives the empty Ready, number 0.
#[test]
fn an_empty_ready_gets_no_number_while_a_taken_ready_is_not_yet_durable() {
    let mut r = elected_master();
    let now = at(ELECTION + 10);
    r.propose(now, vec![7]).unwrap();
    let proposed = drive(&mut r);
    assert_eq!(proposed.persist.entries.len(), 1);
    assert_ne!(proposed.number, 0);
    // Its own accept waits for `proposed` to become durable; nothing else is to do.
    let idle = r.ready();
    assert!(idle.is_empty(), "{idle:?}");
    assert_eq!(idle.number, 0);
    // A later Ready (heartbeats) is taken; the self-accept still waits for the earlier one.
    r.on_tick(at(ELECTION + 200)).unwrap();
    let beats = drive(&mut r);
    assert_eq!(beats.number, proposed.number + 1);
    let idle = r.ready();
    assert!(idle.is_empty(), "{idle:?}");
    assert_eq!(idle.number, 0);
}

/// replica.rs `send_after_persist` (`+` → `*` on the Ready number): a candidate's own promise
/// belongs to the Ready that writes its promise, not to the one before it: an earlier Ready
/// becoming durable does not count it, so one peer's promise alone wins nothing.
#[test]
fn a_candidates_own_promise_counts_only_with_its_own_ready() {
    let mut r = replica(N1);
    let now = at(ELECTION);
    r.on_tick(now).unwrap();
    let prevote = drive(&mut r);
    assert_ne!(prevote.number, 0);
    r.on_message(
        now,
        N2,
        Message::PreVoteReply {
            attempt: r.counters().prevotes_started,
            round: 1,
            granted: true,
            promised: Ballot::ZERO,
        },
    )
    .unwrap();
    assert_eq!(
        r.role(),
        Role::Candidate {
            ballot: ballot(1, N1)
        }
    );
    // The pre-vote's Ready becomes durable; the one with the promise is not even taken.
    r.on_persisted(now, prevote.number).unwrap();
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(now, N2, promise).unwrap();
    assert_eq!(
        r.role(),
        Role::Candidate {
            ballot: ballot(1, N1)
        }
    );
    drive_persisted(&mut r, now);
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
}

/// replica.rs `take_committed` (`<` → `<=` on the batch size): a Ready hands out at most
/// `max_apply_batch` committed entries; the rest come in the next one.
#[test]
fn committed_entries_are_handed_out_at_most_max_apply_batch_per_ready() {
    let mut config = Config::new(N2, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    config.max_apply_batch = 2;
    let mut r = Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).unwrap();
    let accept = accept_with_commit(1..=3, 3);
    r.on_message(at(100), N1, accept).unwrap();
    let slots = |ready: &Ready| ready.committed.iter().map(|c| c.slot).collect::<Vec<_>>();
    assert_eq!(
        slots(&drive_persisted(&mut r, at(100))),
        vec![Slot(1), Slot(2)]
    );
    assert_eq!(slots(&drive_persisted(&mut r, at(100))), vec![Slot(3)]);
}
