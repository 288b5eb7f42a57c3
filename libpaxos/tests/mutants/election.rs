//! Survivors in libpaxos/src/election.rs (pre-votes, elections, promises, recovery).

use super::support::*;

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
    let mut config = config(N1);
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
    let (mut r, _) = recovering_master();
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

/// election.rs `maybe_finish_recovery`: a new master whose recovery stalls for two election
/// timeouts stands again with a higher ballot.
#[test]
fn a_recovery_that_stalls_past_its_deadline_starts_over() {
    let (mut r, _) = recovering_master();
    // It keeps its lease (n2 acks every heartbeat) but never gets the chosen prefix.
    let timeout = r.config().election_timeout.as_millis() as u64;
    let mut t = ELECTION;
    while t < ELECTION + 2 * timeout {
        r.on_tick(at(t)).unwrap();
        let ready = drive(&mut r);
        ack_heartbeats_from_n2(&mut r, at(t), &ready);
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
    let (mut r, ready) = recovering_master();
    assert_eq!(catch_up_requests(&ready), vec![Slot(1)]);
    let timeout = r.config().election_timeout.as_millis() as u64;
    let mut t = ELECTION;
    while t < ELECTION + timeout {
        r.on_tick(at(t)).unwrap();
        let ready = drive(&mut r);
        assert_eq!(catch_up_requests(&ready), vec![], "at {t}");
        ack_heartbeats_from_n2(&mut r, at(t), &ready);
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
