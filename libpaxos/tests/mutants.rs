//! Tests written to kill mutants that survived the mutation run (scripts/mutants-libpaxos.sh,
//! docs/libpaxos.md "Mutation run"): each pins one behaviour a survivor changed.

use std::time::Duration;

use libpaxos::{
    Ballot, Config, Entry, Epoch, LogStore, MemStorage, Message, NodeId, Payload, ProposeError,
    Ready, Replica, Role, Slot, Time, Value,
};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);
const ELECTION: u64 = 2000;

fn at(ms: u64) -> Time {
    Time(Duration::from_millis(ms))
}

fn ballot(round: u64, node: NodeId) -> Ballot {
    Ballot { round, node }
}

fn replica(id: NodeId) -> Replica<MemStorage> {
    let config = Config::new(id, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).expect("valid config")
}

fn drive(r: &mut Replica<MemStorage>) -> Ready {
    let ready = r.ready();
    r.storage_mut().write(&ready.persist).unwrap();
    r.storage_mut().sync().unwrap();
    ready
}

fn drive_persisted(r: &mut Replica<MemStorage>, now: Time) -> Ready {
    let ready = drive(r);
    r.on_persisted(now, ready.number).unwrap();
    ready
}

/// Ticks past the deadline and wins the pre-vote with n2's grant: a candidate at round 1.
fn stand(r: &mut Replica<MemStorage>, now: Time) {
    r.on_tick(now).unwrap();
    drive(r);
    r.on_message(
        now,
        N2,
        Message::PreVoteReply {
            attempt: r.counters().prevotes_started,
            round: r.promised().round + 1,
            granted: true,
            promised: Ballot::ZERO,
        },
    )
    .unwrap();
    drive_persisted(r, now);
}

fn elected_master() -> Replica<MemStorage> {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    assert!(matches!(r.role(), Role::Master { .. }));
    // election.rs `take_office` (`+=` → `*=`): operators can read that a term was won.
    assert_eq!(r.counters().terms_won, 1);
    r
}

fn catch_up_requests(ready: &Ready) -> Vec<Slot> {
    ready
        .messages
        .iter()
        .filter_map(|e| match e.msg {
            Message::CatchUpRequest { from } => Some(from),
            _ => None,
        })
        .collect()
}

fn heartbeat(commit: u64, seq: u64) -> Message {
    Message::Heartbeat {
        ballot: ballot(1, N1),
        seq,
        commit: Slot(commit),
    }
}

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

/// election.rs `on_prevote`: a pre-vote with an absurd round is counted as malformed.
#[test]
fn a_pre_vote_beyond_the_round_limit_is_counted_malformed_and_unanswered() {
    let mut r = replica(N2);
    let absurd = Message::PreVote {
        attempt: 1,
        round: Ballot::MAX_ROUND,
        commit: Slot::ZERO,
    };
    r.on_message(at(ELECTION), N1, absurd).unwrap();
    assert!(drive(&mut r).messages.is_empty());
    assert_eq!(r.counters().malformed, 1);
}

/// election.rs `on_prevote_reply`: a grant counts only if both the attempt and the round match.
#[test]
fn a_pre_vote_grant_for_another_round_of_the_same_attempt_counts_for_nothing() {
    let mut r = replica(N1);
    r.on_tick(at(ELECTION)).unwrap();
    drive(&mut r);
    let reply = Message::PreVoteReply {
        attempt: r.counters().prevotes_started,
        round: 7,
        granted: true,
        promised: Ballot::ZERO,
    };
    r.on_message(at(ELECTION), N2, reply).unwrap();
    drive(&mut r);
    assert_eq!(r.role(), Role::Follower { master: None });
    assert_eq!(r.promised(), Ballot::ZERO);
}

/// election.rs `on_prepare`: a master that promises a higher ballot steps down at once (it may
/// no longer accept its own proposals).
#[test]
fn a_master_that_promises_a_higher_ballot_steps_down() {
    let mut r = elected_master();
    let prepare = Message::Prepare {
        ballot: ballot(5, N2),
        from: Slot(1),
    };
    r.on_message(at(ELECTION + 1000), N2, prepare).unwrap();
    drive(&mut r);
    assert_eq!(r.promised(), ballot(5, N2));
    assert!(matches!(r.role(), Role::Follower { .. }), "{:?}", r.role());
    assert!(r.propose(at(ELECTION + 1000), vec![1]).is_err());
}

/// election.rs `on_promise`: an entry exactly at the promise bound (commit + accept window +
/// 2^16) is taken, not refused as malformed.
#[test]
fn a_promise_entry_exactly_at_the_bound_is_taken() {
    let mut config = Config::new(N1, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    config.max_inflight = 1;
    let mut r = Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).unwrap();
    stand(&mut r, at(ELECTION));
    let limit = 4 + (1 << 16);
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![Entry {
            slot: Slot(limit),
            ballot: ballot(0, N2),
            value: Value {
                epoch: Epoch(0),
                payload: Payload::Noop,
            },
        }],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    assert_eq!(r.counters().malformed, 0);
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
}

/// election.rs `maybe_finish_recovery`: a new master catching up keeps its ballot until its
/// recovery deadline (two election timeouts), instead of standing again at every tick.
#[test]
fn a_recovering_master_keeps_its_ballot_until_the_recovery_deadline() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(5),
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    assert_eq!(
        r.role(),
        Role::Recovering {
            ballot: ballot(1, N1)
        }
    );
    r.on_tick(at(ELECTION + 10)).unwrap();
    drive(&mut r);
    assert_eq!(
        r.role(),
        Role::Recovering {
            ballot: ballot(1, N1)
        }
    );
}

/// election.rs `on_reject`: a candidate ignores a rejection of some other ballot.
#[test]
fn a_candidate_ignores_a_rejection_of_another_ballot() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let reject = Message::Reject {
        ballot: ballot(0, N1),
        promised: ballot(3, N3),
    };
    r.on_message(at(ELECTION), N3, reject).unwrap();
    drive(&mut r);
    assert_eq!(
        r.role(),
        Role::Candidate {
            ballot: ballot(1, N1)
        }
    );
}

/// lease.rs `heartbeat_if_due`: a heartbeat goes out exactly one interval after the last.
#[test]
fn a_heartbeat_goes_out_exactly_one_interval_after_the_last() {
    let mut r = elected_master();
    r.on_tick(at(ELECTION)).unwrap();
    let beats = |ready: &Ready| {
        ready
            .messages
            .iter()
            .filter(|e| matches!(e.msg, Message::Heartbeat { .. }))
            .count()
    };
    assert_eq!(beats(&drive(&mut r)), 2);
    r.on_tick(at(ELECTION + 99)).unwrap();
    assert_eq!(beats(&drive(&mut r)), 0);
    r.on_tick(at(ELECTION + 100)).unwrap();
    assert_eq!(beats(&drive(&mut r)), 2);
}

/// lease.rs `on_heartbeat_ack`: an ack for another ballot is counted as stale.
#[test]
fn a_heartbeat_ack_of_another_ballot_is_counted_stale() {
    let mut r = elected_master();
    let before = r.counters().stale_ballot;
    let ack = Message::HeartbeatAck {
        ballot: ballot(0, N1),
        seq: 1,
        commit: Slot::ZERO,
    };
    r.on_message(at(ELECTION), N2, ack).unwrap();
    assert_eq!(r.counters().stale_ballot, before + 1);
    assert!(!r.lease_valid(at(ELECTION)));
}

fn accept(slots: &[u64]) -> Message {
    Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: slots
            .iter()
            .map(|&s| Entry {
                slot: Slot(s),
                ballot: ballot(1, N1),
                value: Value {
                    epoch: Epoch(1),
                    payload: Payload::Command(vec![s as u8].into()),
                },
            })
            .collect(),
    }
}

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

/// replication.rs `on_accept`: entries beyond the accept window are left out and counted.
#[test]
fn entries_beyond_the_accept_window_are_counted_and_left_out() {
    let mut r = replica(N2);
    let window = r.config().accept_window();
    r.on_message(at(99), N1, accept(&[1])).unwrap();
    assert_eq!(r.counters().beyond_accept_window, 0);
    r.on_message(at(100), N1, accept(&[1, window + 1])).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.counters().beyond_accept_window, 1);
    let slots: Vec<Slot> = ready.persist.entries.iter().map(|e| e.slot).collect();
    assert_eq!(slots, vec![Slot(1)]);
}

/// replication.rs `batches`: an Accept carries about `max_batch_bytes` of payload at most; more
/// goes in the next Accept to the same follower.
#[test]
fn accepts_are_split_by_payload_bytes() {
    let mut config = Config::new(N1, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    config.max_batch_bytes = 100;
    let mut r = Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).unwrap();
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    for _ in 0..3 {
        r.propose(at(ELECTION), vec![9u8; 60]).unwrap();
    }
    let ready = drive(&mut r);
    let accepts_to_n2 = ready
        .messages
        .iter()
        .filter(|e| e.to == N2 && matches!(e.msg, Message::Accept { .. }))
        .count();
    assert_eq!(accepts_to_n2, 3, "76 bytes each, at most 100 per Accept");
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

/// election.rs `maybe_finish_recovery`: a new master whose recovery stalls for two election
/// timeouts stands again with a higher ballot.
#[test]
fn a_recovery_that_stalls_past_its_deadline_starts_over() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(5),
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    // It keeps its lease (n2 acks every heartbeat) but never gets the chosen prefix.
    let timeout = r.config().election_timeout.as_millis() as u64;
    let mut t = ELECTION;
    while t < ELECTION + 2 * timeout {
        r.on_tick(at(t)).unwrap();
        for e in drive(&mut r).messages {
            if let Message::Heartbeat { ballot, seq, .. } = e.msg
                && e.to == N2
            {
                let ack = Message::HeartbeatAck {
                    ballot,
                    seq,
                    commit: Slot::ZERO,
                };
                r.on_message(at(t), N2, ack).unwrap();
            }
        }
        assert!(
            matches!(r.role(), Role::Recovering { .. }),
            "{t}: {:?}",
            r.role()
        );
        t += 50;
    }
    r.on_tick(at(ELECTION + 2 * timeout)).unwrap();
    drive(&mut r);
    assert!(
        matches!(r.role(), Role::Candidate { ballot } if ballot.round > 1),
        "{:?}",
        r.role()
    );
}

/// election.rs `on_reject`: a candidate whose own ballot is rejected stops standing.
#[test]
fn a_candidate_whose_ballot_is_rejected_steps_down() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let reject = Message::Reject {
        ballot: ballot(1, N1),
        promised: ballot(3, N3),
    };
    r.on_message(at(ELECTION), N3, reject).unwrap();
    drive(&mut r);
    assert_eq!(r.role(), Role::Follower { master: None });
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

/// A follower (n2) holding slots 1..=3, accepted at n1's ballot 1 and committed.
fn follower_with_three_committed() -> Replica<MemStorage> {
    follower_with_three_committed_with(replica(N2))
}

fn follower_with_three_committed_with(mut r: Replica<MemStorage>) -> Replica<MemStorage> {
    let entries = (1..=3)
        .map(|slot| Entry {
            slot: Slot(slot),
            ballot: ballot(1, N1),
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Command(vec![slot as u8].into()),
            },
        })
        .collect();
    let accept = Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot(3),
        entries,
    };
    r.on_message(at(100), N1, accept).unwrap();
    drive_persisted(&mut r, at(100));
    assert_eq!(r.commit(), Slot(3));
    r
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

/// election.rs `on_prevote` (`>` → `>=`): a pre-vote for exactly the ballot already promised
/// (a late copy of the asker's own pre-vote, arriving after its Prepare) is refused: a grant
/// needs a ballot above the promise.
#[test]
fn a_pre_vote_for_the_ballot_already_promised_is_refused() {
    let mut r = replica(N2);
    let prepare = Message::Prepare {
        ballot: ballot(1, N1),
        from: Slot(1),
    };
    r.on_message(at(ELECTION), N1, prepare).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    assert_eq!(r.promised(), ballot(1, N1));
    let late = Message::PreVote {
        attempt: 1,
        round: 1,
        commit: Slot::ZERO,
    };
    r.on_message(at(ELECTION + 1), N1, late).unwrap();
    let replies: Vec<bool> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::PreVoteReply { granted, .. } => Some(granted),
            _ => None,
        })
        .collect();
    assert_eq!(replies, vec![false]);
    assert_eq!(r.counters().prevotes_refused, 1);
    // One round higher is granted: the refusal above is about the ballot, nothing else.
    let next = Message::PreVote {
        attempt: 2,
        round: 2,
        commit: Slot::ZERO,
    };
    r.on_message(at(ELECTION + 2), N1, next).unwrap();
    let granted = drive(&mut r)
        .messages
        .into_iter()
        .any(|e| matches!(e.msg, Message::PreVoteReply { granted: true, .. }));
    assert!(granted);
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

/// election.rs `maybe_finish_recovery` (its first guard → `false`): a new master behind the
/// commit index a promise reported takes office as soon as a catch-up answer brings it there,
/// not at the recovery deadline.
#[test]
fn a_recovering_master_takes_office_once_caught_up() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(2),
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    let ready = drive_persisted(&mut r, at(ELECTION));
    assert!(
        matches!(r.role(), Role::Recovering { .. }),
        "{:?}",
        r.role()
    );
    assert_eq!(catch_up_requests(&ready), vec![Slot(1)]);
    let entry = |slot| Entry {
        slot: Slot(slot),
        ballot: ballot(0, N2),
        value: Value {
            epoch: Epoch(0),
            payload: Payload::Noop,
        },
    };
    let answer = Message::CatchUp {
        commit: Slot(2),
        entries: vec![entry(1), entry(2)],
    };
    r.on_message(at(ELECTION + 5), N2, answer).unwrap();
    drive_persisted(&mut r, at(ELECTION + 5));
    assert_eq!(r.commit(), Slot(2));
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
}

/// election.rs `on_reject` (`+=` → `*=`): a rejection naming a promise that is not above the
/// ballot it rejects is counted malformed, and changes nothing.
#[test]
fn a_rejection_that_is_not_higher_is_counted_malformed() {
    let mut r = elected_master();
    let reject = Message::Reject {
        ballot: ballot(1, N1),
        promised: ballot(1, N1),
    };
    r.on_message(at(ELECTION + 20), N3, reject).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().malformed, 1);
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
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

/// replication.rs `on_accept` (`>` → `<` in the fast path's test): an Accept that re-sends
/// slots this follower already holds committed writes only the slots above its commit index
/// (chosen slots are never rewritten), and acknowledges them all.
#[test]
fn an_accept_overlapping_the_commit_index_rewrites_no_chosen_slot() {
    let mut r = follower_with_three_committed();
    let entries = (2..=4)
        .map(|slot| Entry {
            slot: Slot(slot),
            ballot: ballot(1, N1),
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Command(vec![slot as u8].into()),
            },
        })
        .collect();
    let accept = Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot(3),
        entries,
    };
    r.on_message(at(110), N1, accept).unwrap();
    let ready = drive(&mut r);
    let written: Vec<Slot> = ready.persist.entries.iter().map(|e| e.slot).collect();
    assert_eq!(written, vec![Slot(4)]);
    let acked: Vec<Vec<Slot>> = ready
        .after_persist
        .iter()
        .filter_map(|e| match &e.msg {
            Message::Accepted { slots, .. } => Some(slots.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(acked, vec![vec![Slot(2), Slot(3), Slot(4)]]);
}

/// replication.rs `on_accepted` (`+=` → `*=`): an accept ack of another ballot is counted
/// stale and counts for nothing.
#[test]
fn an_accept_ack_of_another_ballot_is_counted_stale() {
    let mut r = elected_master();
    let before = r.counters().stale_ballot;
    let commit = r.commit();
    let stale = Message::Accepted {
        ballot: ballot(0, N1),
        slots: vec![Slot(1)],
    };
    r.on_message(at(ELECTION + 5), N2, stale).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().stale_ballot, before + 1);
    assert_eq!(r.commit(), commit);
}

/// replication.rs `advance_commit` (`<=` → `>`): once the commit index passes the slot a
/// catch-up request asked for, the request is settled, and a later `SnapshotNeeded` from that
/// peer is not taken (it answers a question no longer asked).
#[test]
fn a_settled_catch_up_request_takes_no_snapshot_offer() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(3, 1)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    let entries = (1..=3)
        .map(|slot| Entry {
            slot: Slot(slot),
            ballot: ballot(1, N1),
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Noop,
            },
        })
        .collect();
    let accept = Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot(3),
        entries,
    };
    r.on_message(at(105), N1, accept).unwrap();
    drive_persisted(&mut r, at(105));
    assert_eq!(r.commit(), Slot(3));
    r.on_message(at(106), N1, Message::SnapshotNeeded { slot: Slot(40) })
        .unwrap();
    let ready = drive(&mut r);
    assert!(
        !ready
            .events
            .iter()
            .any(|e| matches!(e, libpaxos::Event::SnapshotNeeded { .. })),
        "{ready:?}"
    );
    assert_eq!(r.counters().snapshots_needed, 0);
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

/// replication.rs `append_as_master` (`==` → `!=` on the Ready number): the master's own
/// accept of a slot counts only once the Ready that wrote it is durable — not with an earlier
/// Ready's `on_persisted`, even for the next consecutive slot.
#[test]
fn the_masters_own_accept_counts_only_with_its_own_ready() {
    let mut r = elected_master();
    let (first, _) = r.propose(at(ELECTION + 1), vec![1]).unwrap();
    let ready_a = r.ready();
    r.storage_mut().write(&ready_a.persist).unwrap();
    let (second, _) = r.propose(at(ELECTION + 2), vec![2]).unwrap();
    assert_eq!(second, first.next());
    let ready_b = r.ready();
    r.storage_mut().write(&ready_b.persist).unwrap();
    assert!(ready_b.number > ready_a.number);
    // Only the first Ready is durable so far.
    r.on_persisted(at(ELECTION + 3), ready_a.number).unwrap();
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: (1..=second.0).map(Slot).collect(),
    };
    r.on_message(at(ELECTION + 4), N2, ack).unwrap();
    assert_eq!(r.commit(), first);
    r.storage_mut().sync().unwrap();
    r.on_persisted(at(ELECTION + 5), ready_b.number).unwrap();
    assert_eq!(r.commit(), second);
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

/// election.rs `on_reject` (the master's guard → `true`): a rejection of an older ballot of
/// this node (a late answer from an earlier candidacy) is stale; the master stays in office.
#[test]
fn a_master_ignores_a_rejection_of_its_older_ballot() {
    let mut r = elected_master();
    let before = r.counters().stale_ballot;
    let late = Message::Reject {
        ballot: ballot(0, N1),
        promised: ballot(0, N2),
    };
    r.on_message(at(ELECTION + 5), N2, late).unwrap();
    drive(&mut r);
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
    assert_eq!(r.counters().stale_ballot, before + 1);
}

/// election.rs `on_prepare` (`>` → `>=`): a restarted replica in its quiet period still
/// answers a Prepare of the very ballot it promised before the crash (a re-sent Prepare):
/// the quiet period bars new promises only.
#[test]
fn a_quiet_replica_answers_a_prepare_of_the_ballot_it_already_promised() {
    let mut r = replica(N2);
    let prepare = Message::Prepare {
        ballot: ballot(1, N1),
        from: Slot(1),
    };
    r.on_message(at(ELECTION), N1, prepare.clone()).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    let config = r.config().clone();
    let storage = r.into_storage();
    let mut r = Replica::new(config, storage, at(ELECTION + 10), Slot::ZERO).unwrap();
    assert_eq!(r.promised(), ballot(1, N1));
    r.on_message(at(ELECTION + 20), N1, prepare).unwrap();
    let ready = drive(&mut r);
    let promised = ready
        .messages
        .iter()
        .chain(&ready.after_persist)
        .any(|e| e.to == N1 && matches!(e.msg, Message::Promise { .. }));
    assert!(promised, "{ready:?}");
}

/// election.rs `on_promise` (`+=` → `*=`): a promise for another ballot is counted stale.
#[test]
fn a_promise_for_another_ballot_is_counted_stale() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let before = r.counters().stale_ballot;
    let other = Message::Promise {
        ballot: ballot(0, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(ELECTION + 1), N2, other).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().stale_ballot, before + 1);
    assert!(matches!(r.role(), Role::Candidate { .. }), "{:?}", r.role());
}

/// lease.rs `on_heartbeat` (`+=` → `-=`): a heartbeat whose ballot is not its sender's is
/// counted malformed and unanswered.
#[test]
fn a_heartbeat_from_another_node_than_its_ballots_is_malformed() {
    let mut r = replica(N2);
    r.on_message(at(100), N3, heartbeat(0, 1)).unwrap();
    assert!(drive(&mut r).messages.is_empty());
    assert_eq!(r.counters().malformed, 1);
}

/// lease.rs `on_heartbeat_ack` (`>` → `<`): an ack of a heartbeat never sent is malformed and
/// gives no lease; an ack of the one sent does.
#[test]
fn an_ack_of_a_heartbeat_never_sent_gives_no_lease() {
    let mut r = elected_master();
    let sent = at(ELECTION + 10);
    r.on_tick(sent).unwrap();
    drive(&mut r);
    let ack = |seq| Message::HeartbeatAck {
        ballot: ballot(1, N1),
        seq,
        commit: Slot::ZERO,
    };
    r.on_message(sent, N2, ack(9)).unwrap();
    assert_eq!(r.counters().malformed, 1);
    assert!(!r.lease_valid(sent));
    r.on_message(sent, N2, ack(1)).unwrap();
    assert!(r.lease_valid(sent));
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

/// replication.rs `on_accept` (`>` → `>=` in the fast path's test): an Accept starting exactly
/// at the commit index does not rewrite that chosen slot either.
#[test]
fn an_accept_starting_at_the_commit_index_rewrites_no_chosen_slot() {
    let mut r = follower_with_three_committed();
    let entries = (3..=4)
        .map(|slot| Entry {
            slot: Slot(slot),
            ballot: ballot(1, N1),
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Command(vec![slot as u8].into()),
            },
        })
        .collect();
    let accept = Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot(3),
        entries,
    };
    r.on_message(at(110), N1, accept).unwrap();
    let written: Vec<Slot> = drive(&mut r)
        .persist
        .entries
        .iter()
        .map(|e| e.slot)
        .collect();
    assert_eq!(written, vec![Slot(4)]);
}

/// replication.rs `tick_master` (`<<` → `>>`): each follower gets re-sent only the accepts it
/// has not acknowledged.
#[test]
fn accepts_are_re_sent_only_to_followers_that_did_not_ack() {
    let mut r = elected_master();
    let (slot, _) = r.propose(at(ELECTION + 1), vec![1]).unwrap();
    drive_persisted(&mut r, at(ELECTION + 1));
    // n2 acknowledges the proposal but not the take-office no-op before it: nothing commits.
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: vec![slot],
    };
    r.on_message(at(ELECTION + 2), N2, ack).unwrap();
    drive(&mut r);
    assert_eq!(r.commit(), Slot::ZERO);
    let later = at(ELECTION + 6 + r.config().heartbeat_interval.as_millis() as u64);
    r.on_tick(later).unwrap();
    let mut resent: Vec<(NodeId, Vec<Slot>)> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::Accept { entries, .. } => {
                Some((e.to, entries.iter().map(|x| x.slot).collect()))
            }
            _ => None,
        })
        .collect();
    resent.sort();
    assert_eq!(resent, vec![(N2, vec![Slot(1)]), (N3, vec![Slot(1), slot])]);
    // replication.rs `tick_master` (`+=` → `*=`): operators can read the two re-sends.
    assert_eq!(r.counters().accepts_resent, 2);
}

/// lease.rs `grant_lease` (`==` → `!=`): a follower that hears a newer master at the same
/// instant as the old one binds its lease to the newer master, so that master may re-prepare.
#[test]
fn a_newer_master_heard_at_the_same_instant_holds_the_lease() {
    let mut r = replica(N2);
    r.on_message(at(ELECTION), N1, heartbeat(0, 1)).unwrap();
    let newer = Message::Heartbeat {
        ballot: ballot(2, N3),
        seq: 1,
        commit: Slot::ZERO,
    };
    r.on_message(at(ELECTION), N3, newer).unwrap();
    drive(&mut r);
    let prepare = Message::Prepare {
        ballot: ballot(3, N3),
        from: Slot(1),
    };
    r.on_message(at(ELECTION + 1), N3, prepare).unwrap();
    let ready = drive(&mut r);
    let promised = ready
        .messages
        .iter()
        .chain(&ready.after_persist)
        .any(|e| e.to == N3 && matches!(e.msg, Message::Promise { .. }));
    assert!(promised, "{ready:?}");
}

/// replication.rs `batches` (`>=` → `<` on the entry count): proposals beyond
/// `max_batch_entries` go out in full batches of that many, the rest in a last one.
#[test]
fn accepts_are_split_by_entry_count() {
    let mut config = Config::new(N1, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    config.max_batch_entries = 2;
    let mut r = Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).unwrap();
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    for i in 0..5 {
        r.propose(at(ELECTION), vec![i]).unwrap();
    }
    let ready = drive(&mut r);
    let sizes: Vec<usize> = ready
        .messages
        .iter()
        .filter_map(|e| match &e.msg {
            Message::Accept { entries, .. } if e.to == N2 => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
}

/// election.rs `on_promise` (`||` → `&&` in the shape check, and its `+=` → `*=`): a promise
/// whose entries are sorted but one of which lies at or below the promised commit index is
/// malformed: counted, and not counted as a vote. (Also kills the third run's election.rs:263:43
/// `||` → `&&`, which needs the slot both at or below the commit and beyond the bound.)
#[test]
fn a_sorted_promise_with_an_entry_below_its_commit_is_malformed() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(2),
        entries: vec![Entry {
            slot: Slot(2),
            ballot: ballot(0, N2),
            value: Value {
                epoch: Epoch(0),
                payload: Payload::Noop,
            },
        }],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().malformed, 1);
    assert!(matches!(r.role(), Role::Candidate { .. }), "{:?}", r.role());
}

/// catchup.rs `on_snapshot_needed`: a `SnapshotNeeded` from a peer this replica never asked
/// to catch it up is refused even when its slot is ahead: no snapshot is wanted, and it is
/// counted.
#[test]
fn a_snapshot_offer_nobody_asked_for_is_refused() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, Message::SnapshotNeeded { slot: Slot(40) })
        .unwrap();
    let ready = drive(&mut r);
    assert!(
        !ready
            .events
            .iter()
            .any(|e| matches!(e, libpaxos::Event::SnapshotNeeded { .. })),
        "a snapshot was wanted without a request"
    );
    assert_eq!(r.counters().unexpected, 1);
    assert_eq!(r.counters().snapshots_needed, 0);
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
    let unexpected = r.counters().unexpected;
    r.on_message(at(201), peer, Message::SnapshotNeeded { slot: Slot(3) })
        .unwrap();
    let ready = drive(&mut r);
    assert!(
        !ready
            .events
            .iter()
            .any(|e| matches!(e, libpaxos::Event::SnapshotNeeded { .. })),
        "a snapshot at the commit index was wanted"
    );
    assert_eq!(r.counters().unexpected, unexpected + 1);
    assert_eq!(r.counters().snapshots_needed, 0);
}

/// catchup.rs `on_snapshot_needed` (`||` → `&&` before the master check): a master is never
/// sent to a snapshot, not even by the peer it asked for the chosen prefix while recovering.
/// Here the recovery stalls, the replica stands again and takes office with another
/// majority, its request to n2 still recorded; n2's late `SnapshotNeeded` is refused.
#[test]
fn a_master_refuses_a_snapshot_offer_from_the_peer_it_asked_while_recovering() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(5),
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    let asked: Vec<NodeId> = drive_persisted(&mut r, at(ELECTION))
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
        for e in drive_persisted(&mut r, at(t)).messages {
            if let Message::Heartbeat { ballot, seq, .. } = e.msg
                && e.to == N2
            {
                let ack = Message::HeartbeatAck {
                    ballot,
                    seq,
                    commit: Slot::ZERO,
                };
                r.on_message(at(t), N2, ack).unwrap();
            }
        }
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
    let unexpected = r.counters().unexpected;
    r.on_message(restart, N2, Message::SnapshotNeeded { slot: Slot(40) })
        .unwrap();
    let ready = drive(&mut r);
    assert!(
        !ready
            .events
            .iter()
            .any(|e| matches!(e, libpaxos::Event::SnapshotNeeded { .. })),
        "a master wanted a snapshot"
    );
    assert_eq!(r.counters().unexpected, unexpected + 1);
    assert_eq!(r.counters().snapshots_needed, 0);
}

/// replication.rs `on_accepted` (`+=` → `*=` on `unexpected`): an accept acknowledgement
/// reaching a replica that is not master (a deposed one, say) is counted and changes nothing.
#[test]
fn an_accept_ack_to_a_follower_is_counted_unexpected() {
    let mut r = follower_with_three_committed();
    let before = r.counters().unexpected;
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: vec![Slot(4)],
    };
    r.on_message(at(200), N3, ack).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.counters().unexpected, before + 1);
    assert_eq!(r.commit(), Slot(3));
    assert!(ready.messages.is_empty(), "{:?}", ready.messages);
}

// ---- Third mutation run, group A ----

fn committed_entry(slot: u64) -> Entry {
    Entry {
        slot: Slot(slot),
        ballot: ballot(1, N1),
        value: Value {
            epoch: Epoch(1),
            payload: Payload::Command(vec![slot as u8].into()),
        },
    }
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

/// election.rs `on_prevote` (`<` → `<=` in the lease test): a lease granted to the master
/// until `t` no longer holds at `t`, so a pre-vote from another node is granted from then on
/// (and refused a millisecond before).
#[test]
fn a_pre_vote_is_granted_from_the_instant_the_lease_runs_out() {
    let mut r = replica(N2);
    let heard = 1000;
    r.on_message(at(heard), N1, heartbeat(0, 1)).unwrap();
    drive(&mut r);
    let lease = r.config().lease.as_millis() as u64;
    let granted = |r: &mut Replica<MemStorage>, now: u64, attempt: u64| {
        let pre_vote = Message::PreVote {
            attempt,
            round: 2,
            commit: Slot::ZERO,
        };
        r.on_message(at(now), N3, pre_vote).unwrap();
        drive(r)
            .messages
            .iter()
            .find_map(|e| match e.msg {
                Message::PreVoteReply { granted, .. } if e.to == N3 => Some(granted),
                _ => None,
            })
            .expect("a pre-vote reply")
    };
    assert!(!granted(&mut r, heard + lease - 1, 1));
    assert_eq!(r.counters().prevotes_refused, 1);
    assert!(granted(&mut r, heard + lease, 2));
    assert_eq!(r.counters().prevotes_refused, 1);
}

/// election.rs `on_prevote_reply` (`+=` → `*=`): a pre-vote reply when no pre-vote is under
/// way is counted unexpected, and starts nothing.
#[test]
fn a_pre_vote_reply_with_no_pre_vote_under_way_is_counted_unexpected() {
    let mut r = replica(N1);
    let reply = Message::PreVoteReply {
        attempt: 1,
        round: 1,
        granted: true,
        promised: Ballot::ZERO,
    };
    r.on_message(at(100), N2, reply).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().unexpected, 1);
    assert_eq!(r.role(), Role::Follower { master: None });
    assert_eq!(r.promised(), Ballot::ZERO);
}

/// election.rs `start_election` (`+=` → `*=`): operators can read that a candidacy began.
#[test]
fn a_candidacy_is_counted() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    assert_eq!(
        r.role(),
        Role::Candidate {
            ballot: ballot(1, N1)
        }
    );
    assert_eq!(r.counters().elections_started, 1);
}

/// election.rs `on_promise` (`||` → `&&` before the ballot test): a promise reporting an
/// entry accepted at the candidate's own ballot (or a higher one), which no acceptor can have
/// before promising it, is malformed: counted, and not counted as a vote — even when the
/// entry's slot is in range.
#[test]
fn a_promise_entry_at_the_candidates_own_ballot_is_malformed() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![committed_entry(1)],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().malformed, 1);
    assert!(matches!(r.role(), Role::Candidate { .. }), "{:?}", r.role());
}

/// election.rs `on_promise` (`||` → `&&` after the slot test): a promise whose entry lies
/// at its commit index is malformed even though its ballot is below the candidate's.
#[test]
fn a_promise_entry_at_its_commit_index_is_malformed_whatever_its_ballot() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let mut entry = committed_entry(3);
    entry.ballot = ballot(0, N3);
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(3),
        entries: vec![entry],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().malformed, 1);
    assert!(matches!(r.role(), Role::Candidate { .. }), "{:?}", r.role());
}

/// election.rs `on_promise` (`+=` → `*=` on `unexpected`): a promise reaching a replica that
/// is not standing is counted unexpected and changes nothing.
#[test]
fn a_promise_to_a_replica_not_standing_is_counted_unexpected() {
    let mut r = replica(N1);
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(100), N2, promise).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().unexpected, 1);
    assert_eq!(r.role(), Role::Follower { master: None });
}

/// election.rs `maybe_finish_recovery` (its last `Recovering` arm deleted): a master-elect
/// whose catch-up request goes unanswered asks its source again one retry interval (an
/// election timeout) later, while it still has time before its recovery deadline.
#[test]
fn a_recovering_master_asks_its_source_again_after_the_retry_interval() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(5),
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    let ready = drive_persisted(&mut r, at(ELECTION));
    assert_eq!(catch_up_requests(&ready), vec![Slot(1)]);
    let timeout = r.config().election_timeout.as_millis() as u64;
    let mut t = ELECTION;
    while t < ELECTION + timeout {
        r.on_tick(at(t)).unwrap();
        let ready = drive(&mut r);
        assert_eq!(catch_up_requests(&ready), vec![], "at {t}");
        for e in ready.messages {
            if let Message::Heartbeat { ballot, seq, .. } = e.msg
                && e.to == N2
            {
                let ack = Message::HeartbeatAck {
                    ballot,
                    seq,
                    commit: Slot::ZERO,
                };
                r.on_message(at(t), N2, ack).unwrap();
            }
        }
        t += 50;
    }
    r.on_tick(at(ELECTION + timeout)).unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        r.role(),
        Role::Recovering {
            ballot: ballot(1, N1)
        }
    );
    let asked: Vec<(NodeId, Slot)> = ready
        .messages
        .iter()
        .filter_map(|e| match e.msg {
            Message::CatchUpRequest { from } => Some((e.to, from)),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![(N2, Slot(1))]);
    assert_eq!(r.counters().catch_up_requests, 2);
}

/// election.rs `entries_sorted` (`<` → `<=`): entries must have strictly increasing slots; a
/// catch-up answer carrying the same slot twice is malformed and taken not at all.
#[test]
fn a_catch_up_answer_with_a_slot_twice_is_malformed() {
    let mut r = replica(N2);
    let answer = Message::CatchUp {
        commit: Slot(1),
        entries: vec![committed_entry(1), committed_entry(1)],
    };
    r.on_message(at(100), N1, answer).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.counters().malformed, 1);
    assert_eq!(r.commit(), Slot::ZERO);
    assert_eq!(ready.persist.entries, vec![]);
}

/// election.rs `may_promise` (`<` → `<=`): the quiet period after a restart (one lease) ends
/// at `start + lease` exactly: a Prepare a millisecond before is refused and counted, one at
/// that instant is promised.
#[test]
fn a_restarted_replica_promises_from_the_instant_its_quiet_period_ends() {
    let mut r = replica(N2);
    let quiet_end = r.config().lease.as_millis() as u64;
    let prepare = Message::Prepare {
        ballot: ballot(1, N1),
        from: Slot(1),
    };
    r.on_message(at(quiet_end - 1), N1, prepare.clone())
        .unwrap();
    drive(&mut r);
    assert_eq!(r.counters().refused_while_quiet, 1);
    assert_eq!(r.promised(), Ballot::ZERO);
    r.on_message(at(quiet_end), N1, prepare).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.counters().refused_while_quiet, 1);
    assert_eq!(r.promised(), ballot(1, N1));
    assert!(
        ready
            .after_persist
            .iter()
            .any(|e| e.to == N1 && matches!(e.msg, Message::Promise { .. })),
        "no promise"
    );
}

/// lease.rs `heartbeat_if_due` (`>` → `>=` and `>` → `==` in the window's trim): the master
/// remembers the send times of its last 64 heartbeats, so a majority's ack of the 64th newest
/// still earns the lease (the mutants keep 63).
#[test]
fn an_ack_of_the_64th_newest_heartbeat_still_earns_the_lease() {
    let mut config = Config::new(N1, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    config.heartbeat_interval = Duration::from_millis(1);
    let mut r = Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).unwrap();
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
    let mut seqs = Vec::new();
    for t in ELECTION..ELECTION + 70 {
        r.on_tick(at(t)).unwrap();
        for e in drive_persisted(&mut r, at(t)).messages {
            if let Message::Heartbeat { seq, .. } = e.msg
                && e.to == N2
            {
                seqs.push(seq);
            }
        }
    }
    assert_eq!(seqs.len(), 70, "one heartbeat a millisecond");
    let newest = *seqs.last().unwrap();
    let now = at(ELECTION + 70);
    let ack = |seq| Message::HeartbeatAck {
        ballot: ballot(1, N1),
        seq,
        commit: Slot::ZERO,
    };
    // The 65th newest is forgotten: its ack earns nothing.
    r.on_message(now, N2, ack(newest - 64)).unwrap();
    assert!(!r.lease_valid(now));
    r.on_message(now, N2, ack(newest - 63)).unwrap();
    assert!(r.lease_valid(now));
}

// ---- Third mutation run, group B ----

/// lease.rs `on_heartbeat` (`+=` → `*=` on `stale_releases`): a heartbeat of the ballot this
/// follower released (sent by its master before it handed over) is counted, once, and neither
/// answered nor followed.
#[test]
fn a_heartbeat_of_a_released_ballot_is_counted_and_unanswered() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(0, 1)).unwrap();
    drive(&mut r);
    let release = Message::LeaseRelease {
        ballot: ballot(1, N1),
    };
    r.on_message(at(110), N1, release).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().leases_released, 1);
    assert_eq!(r.counters().stale_releases, 0);
    r.on_message(at(120), N1, heartbeat(0, 2)).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.counters().stale_releases, 1);
    assert!(ready.messages.is_empty(), "{:?}", ready.messages);
    assert_eq!(r.role(), Role::Follower { master: None });
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
    let entries = (1..=3)
        .map(|slot| Entry {
            slot: Slot(slot),
            ballot: ballot(1, N1),
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Command(vec![slot as u8].into()),
            },
        })
        .collect();
    let accept = Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot(3),
        entries,
    };
    r.on_message(at(100), N1, accept).unwrap();
    let slots = |ready: &Ready| ready.committed.iter().map(|c| c.slot).collect::<Vec<_>>();
    assert_eq!(
        slots(&drive_persisted(&mut r, at(100))),
        vec![Slot(1), Slot(2)]
    );
    assert_eq!(slots(&drive_persisted(&mut r, at(100))), vec![Slot(3)]);
}

// ---- Third mutation run, group C ----
// (replication.rs `batches` 455:22, `<=` → `>` in the one-group test, is killed by
// `accepts_are_split_by_entry_count` above: five small proposals went out in one Accept.)

/// An elected master (n1, ballot 1, its take-office no-op in slot 1 and that Ready durable)
/// built on `config`.
fn elected_master_with(config: Config) -> Replica<MemStorage> {
    let mut r = Replica::new(config, MemStorage::new(), at(0), Slot::ZERO).expect("valid config");
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    drive_persisted(&mut r, at(ELECTION));
    assert!(matches!(r.role(), Role::Master { .. }), "{:?}", r.role());
    r
}

/// The number of entries in each Accept to n2, in order.
fn accept_sizes_to_n2(ready: &Ready) -> Vec<usize> {
    ready
        .messages
        .iter()
        .filter_map(|e| match &e.msg {
            Message::Accept { entries, .. } if e.to == N2 => Some(entries.len()),
            _ => None,
        })
        .collect()
}

/// replication.rs `propose_command` (`>` → `>=`): a command of exactly `max_batch_bytes` is
/// proposed; only a larger one is refused as too large.
#[test]
fn a_command_of_exactly_max_batch_bytes_is_proposed() {
    let mut config = Config::new(N1, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    config.max_batch_bytes = 100;
    let mut r = elected_master_with(config);
    let (slot, _) = r
        .propose(at(ELECTION + 1), vec![7u8; 100])
        .expect("a command of exactly the limit is taken");
    assert_eq!(slot, Slot(2));
    assert_eq!(
        r.propose(at(ELECTION + 1), vec![7u8; 101]),
        Err(ProposeError::TooLarge {
            size: 101,
            limit: 100
        })
    );
    assert_eq!(r.counters().proposals_refused, 1);
}

/// replication.rs `batches` (`&&` → `||`, `+` → `*` and `>` → `>=` in the cut): when the
/// proposals of a Ready do not fit one Accept, each Accept still takes as many as fit —
/// exactly `max_batch_bytes` of values here (two of 17 bytes in 34), the third in the next.
#[test]
fn accepts_fill_exactly_max_batch_bytes() {
    let mut config = Config::new(N1, vec![N1, N2, N3]).with_lease(Duration::from_millis(400));
    // Each value (16 bytes of overhead and a 1-byte command) counts 17 bytes: two fit exactly.
    config.max_batch_bytes = 34;
    let mut r = elected_master_with(config);
    for i in 0..3 {
        r.propose(at(ELECTION + 1), vec![i]).unwrap();
    }
    assert_eq!(accept_sizes_to_n2(&drive(&mut r)), vec![2, 1]);
}

/// replication.rs `follow` (`!` deleted): a follower hearing again from the master it already
/// follows reports no role change; only the first message from a master does.
#[test]
fn a_follower_hearing_its_master_again_reports_no_role_change() {
    let role_changes = |ready: &Ready| -> Vec<Role> {
        ready
            .events
            .iter()
            .filter_map(|e| match e {
                libpaxos::Event::RoleChanged(role) => Some(*role),
                _ => None,
            })
            .collect()
    };
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(0, 1)).unwrap();
    assert_eq!(
        role_changes(&drive(&mut r)),
        vec![Role::Follower { master: Some(N1) }]
    );
    r.on_message(at(150), N1, heartbeat(0, 2)).unwrap();
    r.on_message(at(160), N1, accept(&[1])).unwrap();
    assert_eq!(role_changes(&drive(&mut r)), vec![]);
    assert_eq!(r.role(), Role::Follower { master: Some(N1) });
}

/// replication.rs `append_as_master` (`==` → `!=` on the ballot, and on `last.next()`; also
/// its whole guard → `false`): the master's own accepts of the slots it proposed in one Ready
/// count together, when that Ready is durable. A hand-over whose wait ran out meanwhile then
/// releases with all of them committed — not after the first, with the rest arriving (and
/// counted unexpected) at a replica no longer master. So one self-ack per slot is not just
/// more work.
#[test]
fn a_readys_own_accepts_all_count_before_a_late_hand_over_releases() {
    let mut r = elected_master();
    let start = at(ELECTION + 1);
    let (a, _) = r.propose(start, vec![1]).unwrap();
    let (b, _) = r.propose(start, vec![2]).unwrap();
    assert_eq!((a, b), (Slot(2), Slot(3)));
    r.hand_over(start, Some(N2)).unwrap();
    let ready = drive(&mut r);
    // n2 acknowledges the no-op and both proposals; the no-op (acknowledged by n1 too) commits.
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: vec![Slot(1), a, b],
    };
    r.on_message(at(ELECTION + 2), N2, ack).unwrap();
    assert_eq!(r.commit(), Slot(1));
    assert!(r.handing_over());
    // The master's disk is slow: its Ready is durable only after the hand-over's wait.
    let unexpected = r.counters().unexpected;
    let late = at(ELECTION + 1 + r.config().election_timeout.as_millis() as u64);
    r.on_persisted(late, ready.number).unwrap();
    assert_eq!(r.commit(), b);
    assert_eq!(r.counters().unexpected, unexpected);
    let released: Vec<(NodeId, Slot)> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::TimeoutNow { commit, .. } => Some((e.to, commit)),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![(N2, b)]);
}

/// Not a mutant: a real bug found while checking replication.rs `on_accepted` 331:15 (delete
/// `!`; equivalent once this is fixed). A master (n1, ballot 1) that is handed a `TimeoutNow` by a newer master it never
/// heard of (n3, ballot 2, elected with n2), then gets a late copy of one of n3's Accepts,
/// raises its promise to n3's ballot but stays master: `follow` returns early for a released
/// ballot (before stepping a leading replica down) and `on_accept` goes on to write n3's
/// entries and learn its commit index. The master then proposes into slot 2, chosen at n3's
/// ballot, and handed slot 2 out as committed with its own value. Fixed: `follow` steps a
/// replica leading at a lower ballot down even for a released ballot. A master never proposes
/// at or below its commit index and hands out only chosen values.
#[test]
fn a_master_never_proposes_into_a_slot_chosen_at_a_released_higher_ballot() {
    let mut r = elected_master();
    let newer = ballot(2, N3);
    let release = Message::TimeoutNow {
        ballot: newer,
        commit: Slot::ZERO,
    };
    r.on_message(at(ELECTION + 1), N3, release).unwrap();
    let chosen = |slot: u64| Entry {
        slot: Slot(slot),
        ballot: newer,
        value: Value {
            epoch: Epoch(2),
            payload: Payload::Command(vec![30 + slot as u8].into()),
        },
    };
    let late = Message::Accept {
        ballot: newer,
        commit: Slot(2),
        entries: vec![chosen(1), chosen(2)],
    };
    r.on_message(at(ELECTION + 2), N3, late).unwrap();
    let (role, promised) = (r.role(), r.promised());
    let proposed = r.propose(at(ELECTION + 3), vec![99]);
    let commit = r.commit();
    let ready = drive_persisted(&mut r, at(ELECTION + 3));
    for c in &ready.committed {
        assert_eq!(
            c.value,
            chosen(c.slot.0).value,
            "{:?} handed out with a value never chosen",
            c.slot
        );
    }
    if let Ok((slot, _)) = proposed {
        assert!(
            slot > commit,
            "proposed into {slot:?}, committed through {commit:?}"
        );
    }
    assert!(
        promised <= ballot(1, N1) || !matches!(role, Role::Master { .. }),
        "{role:?} with a promise to {promised:?}"
    );
}
