//! Transcript tests: one input, the exact Ready it produces.

use std::time::Duration;

use libpaxos::NodeId;
use libpaxos::{
    Ballot, Committed, Config, Entry, Envelope, Epoch, Error, Event, HardState, LogStore,
    MemStorage, Message, Payload, Persist, ProposeError, Ready, Replica, Role, Slot, Storage,
    StorageError, Time, Value,
};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);
const N9: NodeId = NodeId(9);

fn config(id: NodeId) -> Config {
    Config::new(id, vec![N1, N2, N3]).with_lease(Duration::from_millis(400))
}

fn at(ms: u64) -> Time {
    Time(Duration::from_millis(ms))
}

fn ballot(round: u64, node: NodeId) -> Ballot {
    Ballot { round, node }
}

fn replica(id: NodeId) -> Replica<MemStorage> {
    Replica::new(config(id), MemStorage::new(), at(0), Slot::ZERO).expect("valid config")
}

/// Takes the Ready and performs its persist (write and sync), as a synchronous driver would.
fn drive(r: &mut Replica<MemStorage>) -> Ready {
    let ready = r.ready();
    r.storage_mut()
        .write(&ready.persist)
        .expect("memory storage writes");
    r.storage_mut().sync().expect("memory storage syncs");
    ready
}

/// Drives, then reports the Ready durable.
fn drive_persisted(r: &mut Replica<MemStorage>, now: Time) -> Ready {
    let ready = drive(r);
    r.on_persisted(now, ready.number).expect("no storage error");
    ready
}

fn to(node: NodeId, msg: Message) -> Envelope {
    Envelope { to: node, msg }
}

fn command(bytes: &[u8], epoch: Epoch) -> Value {
    Value {
        epoch,
        payload: Payload::Command(bytes.to_vec().into()),
    }
}

fn noop(epoch: Epoch) -> Value {
    Value {
        epoch,
        payload: Payload::Noop,
    }
}

/// Far enough for any randomized election deadline and the restart quiet period.
const ELECTION: u64 = 2000;

/// Ticks past the election deadline and wins the pre-vote with n2's grant: the replica is
/// now a candidate whose self-promise is durable.
fn stand(r: &mut Replica<MemStorage>, now: Time) {
    r.on_tick(now).unwrap();
    drive(r);
    let round = r.promised().round + 1;
    r.on_message(
        now,
        N2,
        Message::PreVoteReply {
            attempt: r.counters().prevotes_started,
            round,
            granted: true,
            promised: Ballot::ZERO,
        },
    )
    .unwrap();
    drive_persisted(r, now);
}

/// Makes n1 master of a 3-node cell with n2's promise; returns n1 and its ballot.
fn elected_master() -> (Replica<MemStorage>, Ballot) {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let b = ballot(1, N1);
    r.on_message(
        at(ELECTION),
        N2,
        Message::Promise {
            ballot: b,
            commit: Slot::ZERO,
            entries: vec![],
        },
    )
    .unwrap();
    drive_persisted(&mut r, at(ELECTION));
    (r, b)
}

#[test]
fn a_follower_that_hears_nothing_asks_for_pre_votes_then_stands_for_election() {
    let mut r = replica(N1);
    r.on_tick(at(100)).unwrap();
    assert!(drive(&mut r).is_empty(), "no election before the timeout");

    r.on_tick(at(ELECTION)).unwrap();
    let pre_vote = Message::PreVote {
        attempt: 1,
        round: 1,
        commit: Slot::ZERO,
    };
    assert_eq!(
        drive(&mut r),
        Ready {
            number: 1,
            messages: vec![to(N2, pre_vote.clone()), to(N3, pre_vote)],
            ..Ready::default()
        },
        "a pre-vote persists nothing"
    );

    r.on_message(
        at(ELECTION),
        N3,
        Message::PreVoteReply {
            attempt: 1,
            round: 1,
            granted: true,
            promised: Ballot::ZERO,
        },
    )
    .unwrap();
    let b = ballot(1, N1);
    assert_eq!(
        drive(&mut r),
        Ready {
            number: 2,
            persist: Persist {
                hard_state: Some(HardState {
                    promised: b,
                    commit: Slot::ZERO
                }),
                ..Persist::default()
            },
            after_persist: vec![
                to(
                    N2,
                    Message::Prepare {
                        ballot: b,
                        from: Slot(1)
                    }
                ),
                to(
                    N3,
                    Message::Prepare {
                        ballot: b,
                        from: Slot(1)
                    }
                ),
            ],
            messages: vec![],
            committed: vec![],
            events: vec![Event::RoleChanged(Role::Candidate { ballot: b })],
        }
    );
}

#[test]
fn a_replica_cut_off_alone_never_raises_its_ballot() {
    let mut r = replica(N1);
    for step in 1..=5 {
        r.on_tick(at(ELECTION * step)).unwrap();
        drive(&mut r);
        r.on_message(
            at(ELECTION * step),
            N2,
            Message::PreVoteReply {
                attempt: step,
                round: 1,
                granted: false,
                promised: Ballot::ZERO,
            },
        )
        .unwrap();
    }
    assert_eq!(
        r.promised(),
        Ballot::ZERO,
        "refused pre-votes persist nothing"
    );
    assert_eq!(r.counters().prevotes_started, 5);
    assert_eq!(r.counters().elections_started, 0);
}

#[test]
fn a_follower_that_heard_the_master_refuses_pre_votes() {
    let mut r = replica(N2);
    let master = ballot(1, N1);
    r.on_message(
        at(500),
        N1,
        Message::Heartbeat {
            ballot: master,
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    drive(&mut r);
    r.on_message(
        at(600),
        N3,
        Message::PreVote {
            attempt: 1,
            round: 2,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    assert_eq!(
        drive(&mut r).messages,
        vec![to(
            N3,
            Message::PreVoteReply {
                attempt: 1,
                round: 2,
                granted: false,
                promised: master
            }
        )]
    );
    r.on_message(
        at(1000),
        N3,
        Message::PreVote {
            attempt: 2,
            round: 2,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    assert_eq!(
        drive(&mut r).messages,
        vec![to(
            N3,
            Message::PreVoteReply {
                attempt: 2,
                round: 2,
                granted: true,
                promised: master
            }
        )]
    );
    assert_eq!(r.promised(), master, "granting a pre-vote promises nothing");
}

#[test]
fn a_majority_of_promises_makes_a_master_that_proposes_a_noop() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let b = ballot(1, N1);

    r.on_message(
        at(ELECTION),
        N2,
        Message::Promise {
            ballot: b,
            commit: Slot::ZERO,
            entries: vec![],
        },
    )
    .unwrap();
    let noop_entry = Entry {
        slot: Slot(1),
        ballot: b,
        value: noop(b.epoch()),
    };
    let accept = Message::Accept {
        ballot: b,
        commit: Slot::ZERO,
        entries: vec![noop_entry.clone()],
    };
    assert_eq!(
        drive(&mut r),
        Ready {
            number: 3,
            persist: Persist {
                entries: vec![noop_entry],
                ..Persist::default()
            },
            after_persist: vec![],
            messages: vec![to(N2, accept.clone()), to(N3, accept)],
            committed: vec![],
            events: vec![
                Event::RoleChanged(Role::Recovering { ballot: b }),
                Event::RoleChanged(Role::Master { ballot: b }),
            ],
        }
    );
}

#[test]
fn a_slot_commits_once_a_majority_has_it_durably() {
    let (mut r, b) = elected_master();
    // Only our own durable accept so far: nothing committed.
    assert_eq!(r.commit(), Slot::ZERO);
    r.on_message(
        at(ELECTION),
        N2,
        Message::Accepted {
            ballot: b,
            slots: vec![Slot(1)],
        },
    )
    .unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready.committed,
        vec![Committed {
            slot: Slot(1),
            value: noop(b.epoch())
        }]
    );
    assert_eq!(r.commit(), Slot(1));
}

#[test]
fn the_master_does_not_count_its_own_accept_before_it_is_durable() {
    let (mut r, b) = elected_master();
    r.on_message(
        at(ELECTION),
        N2,
        Message::Accepted {
            ballot: b,
            slots: vec![Slot(1)],
        },
    )
    .unwrap();
    drive_persisted(&mut r, at(ELECTION));
    let (slot, _) = r.propose(at(ELECTION), b"x".to_vec()).unwrap();
    r.on_message(
        at(ELECTION),
        N2,
        Message::Accepted {
            ballot: b,
            slots: vec![slot],
        },
    )
    .unwrap();
    // n2's accept alone is one vote; ours waits for the sync.
    let ready = drive(&mut r);
    assert!(ready.committed.is_empty());
    r.on_persisted(at(ELECTION), ready.number).unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready.committed,
        vec![Committed {
            slot,
            value: command(b"x", b.epoch())
        }]
    );
}

#[test]
fn proposals_are_batched_into_one_accept_per_follower() {
    let (mut r, b) = elected_master();
    for byte in [b'a', b'b', b'c'] {
        r.propose(at(ELECTION), vec![byte]).unwrap();
    }
    let ready = drive(&mut r);
    let entries: Vec<Entry> = [(2, b'a'), (3, b'b'), (4, b'c')]
        .into_iter()
        .map(|(slot, byte)| Entry {
            slot: Slot(slot),
            ballot: b,
            value: command(&[byte], b.epoch()),
        })
        .collect();
    let accept = Message::Accept {
        ballot: b,
        commit: Slot::ZERO,
        entries: entries.clone(),
    };
    assert_eq!(ready.persist.entries, entries);
    assert_eq!(ready.messages, vec![to(N2, accept.clone()), to(N3, accept)]);
}

#[test]
fn a_follower_refuses_to_propose_and_names_the_master() {
    let mut r = replica(N2);
    r.on_message(
        at(10),
        N1,
        Message::Heartbeat {
            ballot: ballot(1, N1),
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    assert_eq!(
        r.propose(at(10), b"x".to_vec()),
        Err(ProposeError::NotMaster { hint: Some(N1) })
    );
    assert_eq!(r.counters().proposals_refused, 1);
}

#[test]
fn heartbeats_acked_by_a_majority_grant_the_lease_from_their_send_time() {
    let (mut r, b) = elected_master();
    let sent = at(ELECTION + 10);
    r.on_tick(sent).unwrap();
    let ready = drive(&mut r);
    let beat = Message::Heartbeat {
        ballot: b,
        seq: 1,
        commit: Slot::ZERO,
    };
    assert_eq!(ready.messages, vec![to(N2, beat.clone()), to(N3, beat)]);
    assert!(!r.lease_valid(sent), "no lease before a majority answers");

    // The ack arrives 100 ms later; the lease still counts from the send time.
    let acked = at(ELECTION + 110);
    r.on_message(
        acked,
        N3,
        Message::HeartbeatAck {
            ballot: b,
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    let lease_end = sent + r.config().master_lease();
    assert!(r.lease_valid(acked));
    assert!(r.lease_valid(Time(lease_end.0 - Duration::from_millis(1))));
    assert!(!r.lease_valid(lease_end));

    r.on_tick(acked).unwrap();
    assert!(drive(&mut r).events.contains(&Event::LeaseAcquired));
}

#[test]
fn the_lease_expires_and_is_reported_lost() {
    let (mut r, b) = elected_master();
    let sent = at(ELECTION + 10);
    r.on_tick(sent).unwrap();
    r.on_message(
        sent,
        N2,
        Message::HeartbeatAck {
            ballot: b,
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    r.on_tick(sent).unwrap();
    drive(&mut r);
    let after = sent + r.config().master_lease();
    // Nobody answers later heartbeats.
    r.on_tick(after).unwrap();
    let ready = drive(&mut r);
    assert!(ready.events.contains(&Event::LeaseLost), "{ready:?}");
    assert!(!r.lease_valid(after));
    assert_eq!(r.read_fence(after), None);
}

#[test]
fn reads_wait_for_the_take_office_noop_and_the_lease() {
    let (mut r, b) = elected_master();
    let now = at(ELECTION + 10);
    r.on_tick(now).unwrap();
    r.on_message(
        now,
        N2,
        Message::HeartbeatAck {
            ballot: b,
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    assert!(r.lease_valid(now));
    assert_eq!(r.read_fence(now), None, "the no-op is not committed yet");
    r.on_message(
        now,
        N2,
        Message::Accepted {
            ballot: b,
            slots: vec![Slot(1)],
        },
    )
    .unwrap();
    assert_eq!(r.read_fence(now), Some(Slot(1)));
}

#[test]
fn a_follower_bound_by_a_lease_ignores_other_candidates_until_it_runs_out() {
    let mut r = replica(N2);
    let master = ballot(1, N1);
    // Past the restart quiet period.
    let t = at(500);
    r.on_message(
        t,
        N1,
        Message::Heartbeat {
            ballot: master,
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    assert_eq!(
        drive(&mut r).messages,
        vec![to(
            N1,
            Message::HeartbeatAck {
                ballot: master,
                seq: 1,
                commit: Slot::ZERO
            }
        )]
    );

    let rival = ballot(2, N3);
    r.on_message(
        at(600),
        N3,
        Message::Prepare {
            ballot: rival,
            from: Slot(1),
        },
    )
    .unwrap();
    assert!(drive(&mut r).after_persist.is_empty(), "bound by the lease");
    assert_eq!(r.counters().refused_by_lease, 1);

    r.on_message(
        at(900),
        N3,
        Message::Prepare {
            ballot: rival,
            from: Slot(1),
        },
    )
    .unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready.persist.hard_state,
        Some(HardState {
            promised: rival,
            commit: Slot::ZERO
        })
    );
    assert_eq!(
        ready.after_persist,
        vec![to(
            N3,
            Message::Promise {
                ballot: rival,
                commit: Slot::ZERO,
                entries: vec![]
            }
        )]
    );
}

#[test]
fn a_restarted_replica_promises_nothing_for_one_lease() {
    let mut r = replica(N2);
    r.on_message(
        at(100),
        N3,
        Message::Prepare {
            ballot: ballot(1, N3),
            from: Slot(1),
        },
    )
    .unwrap();
    assert!(drive(&mut r).is_empty());
    assert_eq!(r.counters().refused_while_quiet, 1);
    r.on_message(
        at(401),
        N3,
        Message::Prepare {
            ballot: ballot(1, N3),
            from: Slot(1),
        },
    )
    .unwrap();
    assert_eq!(drive(&mut r).after_persist.len(), 1);
}

#[test]
fn a_stale_ballot_is_rejected_with_the_promise_held() {
    let mut r = replica(N2);
    r.on_message(
        at(500),
        N3,
        Message::Prepare {
            ballot: ballot(5, N3),
            from: Slot(1),
        },
    )
    .unwrap();
    drive(&mut r);
    let old = ballot(4, N1);
    let stale = Message::Accept {
        ballot: old,
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(at(510), N1, stale).unwrap();
    assert_eq!(
        drive(&mut r),
        Ready {
            number: 2,
            messages: vec![to(
                N1,
                Message::Reject {
                    ballot: old,
                    promised: ballot(5, N3)
                }
            )],
            ..Ready::default()
        }
    );
    assert_eq!(r.counters().stale_ballot, 1);
}

#[test]
fn phase_one_recovers_accepted_values_and_fills_holes_with_noops() {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let b = ballot(1, N1);
    let old = ballot(0, N2);
    let lost = Entry {
        slot: Slot(1),
        ballot: old,
        value: command(b"kept", old.epoch()),
    };
    let far = Entry {
        slot: Slot(3),
        ballot: old,
        value: command(b"far", old.epoch()),
    };
    r.on_message(
        at(ELECTION),
        N2,
        Message::Promise {
            ballot: b,
            commit: Slot::ZERO,
            entries: vec![lost, far],
        },
    )
    .unwrap();
    let ready = drive(&mut r);
    let expected = vec![
        Entry {
            slot: Slot(1),
            ballot: b,
            value: command(b"kept", old.epoch()),
        },
        Entry {
            slot: Slot(2),
            ballot: b,
            value: noop(Epoch::default()),
        },
        Entry {
            slot: Slot(3),
            ballot: b,
            value: command(b"far", old.epoch()),
        },
        Entry {
            slot: Slot(4),
            ballot: b,
            value: noop(b.epoch()),
        },
    ];
    assert_eq!(ready.persist.entries, expected);
}

#[test]
fn phase_one_keeps_the_value_of_the_highest_ballot() {
    let mut r = replica(N1);
    // n1 itself accepted "low" at ballot 1.n3 before.
    let low = ballot(1, N3);
    let high = ballot(2, N2);
    let mine = Entry {
        slot: Slot(1),
        ballot: low,
        value: command(b"low", low.epoch()),
    };
    r.storage_mut()
        .write(&Persist {
            entries: vec![mine],
            ..Persist::default()
        })
        .unwrap();
    r.on_message(
        at(500),
        N2,
        Message::Heartbeat {
            ballot: high,
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    drive(&mut r);
    stand(&mut r, at(ELECTION));
    let b = ballot(3, N1);
    let theirs = Entry {
        slot: Slot(1),
        ballot: high,
        value: command(b"high", high.epoch()),
    };
    r.on_message(
        at(ELECTION),
        N3,
        Message::Promise {
            ballot: b,
            commit: Slot::ZERO,
            entries: vec![theirs],
        },
    )
    .unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready.persist.entries[0].value,
        command(b"high", high.epoch())
    );
}

#[test]
fn a_lagging_follower_catches_up_from_chosen_entries() {
    let mut r = replica(N2);
    let b = ballot(1, N1);
    r.on_message(
        at(500),
        N1,
        Message::Heartbeat {
            ballot: b,
            seq: 1,
            commit: Slot(2),
        },
    )
    .unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready.messages,
        vec![
            to(
                N1,
                Message::HeartbeatAck {
                    ballot: b,
                    seq: 1,
                    commit: Slot::ZERO
                }
            ),
            to(N1, Message::CatchUpRequest { from: Slot(1) }),
        ]
    );
    let chosen: Vec<Entry> = (1..=2)
        .map(|i| Entry {
            slot: Slot(i),
            ballot: b,
            value: command(&[i as u8], b.epoch()),
        })
        .collect();
    r.on_message(
        at(510),
        N1,
        Message::CatchUp {
            commit: Slot(2),
            entries: chosen.clone(),
        },
    )
    .unwrap();
    let ready = drive(&mut r);
    assert_eq!(ready.persist.entries, chosen);
    assert_eq!(
        ready.committed,
        chosen
            .iter()
            .map(|e| Committed {
                slot: e.slot,
                value: e.value.clone()
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_replica_serves_catch_up_from_its_committed_prefix() {
    let (mut r, b) = elected_master();
    r.on_message(
        at(ELECTION),
        N2,
        Message::Accepted {
            ballot: b,
            slots: vec![Slot(1)],
        },
    )
    .unwrap();
    drive(&mut r);
    r.on_message(at(ELECTION), N3, Message::CatchUpRequest { from: Slot(1) })
        .unwrap();
    let entry = Entry {
        slot: Slot(1),
        ballot: b,
        value: noop(b.epoch()),
    };
    assert_eq!(
        drive(&mut r).messages,
        vec![to(
            N3,
            Message::CatchUp {
                commit: Slot(1),
                entries: vec![entry]
            }
        )]
    );
}

#[test]
fn compaction_trims_the_log_and_sends_laggards_to_a_snapshot() {
    let (mut r, b) = elected_master();
    r.on_message(
        at(ELECTION),
        N2,
        Message::Accepted {
            ballot: b,
            slots: vec![Slot(1)],
        },
    )
    .unwrap();
    drive(&mut r);
    r.on_applied(Slot(1));
    r.compact(Slot(5));
    let ready = drive(&mut r);
    assert_eq!(
        ready.persist.compact_through,
        Some(Slot(1)),
        "capped at what was applied"
    );
    assert_eq!(r.storage().compacted_through().unwrap(), Slot(1));

    r.on_message(at(ELECTION), N3, Message::CatchUpRequest { from: Slot(1) })
        .unwrap();
    assert_eq!(
        drive(&mut r).messages,
        vec![to(N3, Message::SnapshotNeeded { slot: Slot(1) })]
    );
}

#[test]
fn a_follower_told_to_install_a_snapshot_asks_its_driver_then_resumes() {
    let mut r = replica(N2);
    let b = ballot(1, N1);
    r.on_message(
        at(500),
        N1,
        Message::Heartbeat {
            ballot: b,
            seq: 1,
            commit: Slot(50),
        },
    )
    .unwrap();
    assert!(
        drive(&mut r)
            .messages
            .contains(&to(N1, Message::CatchUpRequest { from: Slot(1) }))
    );
    // Only the peer that was asked may send us to a snapshot.
    r.on_message(at(505), N3, Message::SnapshotNeeded { slot: Slot(40) })
        .unwrap();
    assert!(drive(&mut r).events.is_empty());
    assert_eq!(r.counters().unexpected, 1);

    r.on_message(at(510), N1, Message::SnapshotNeeded { slot: Slot(40) })
        .unwrap();
    assert_eq!(
        drive(&mut r).events,
        vec![Event::SnapshotNeeded {
            from: N1,
            slot: Slot(40)
        }]
    );
    r.on_snapshot_installed(at(520), Slot(40)).unwrap();
    assert_eq!(r.commit(), Slot(40));
    assert_eq!(r.applied(), Slot(40));
    assert_eq!(drive(&mut r).persist.compact_through, Some(Slot(40)));
}

#[test]
fn messages_from_strangers_and_malformed_messages_are_counted_and_ignored() {
    let mut r = replica(N2);
    r.on_message(
        at(500),
        N9,
        Message::Prepare {
            ballot: ballot(1, N9),
            from: Slot(1),
        },
    )
    .unwrap();
    r.on_message(
        at(500),
        N2,
        Message::Prepare {
            ballot: ballot(1, N2),
            from: Slot(1),
        },
    )
    .unwrap();
    let b = ballot(1, N1);
    let e = |slot| Entry {
        slot: Slot(slot),
        ballot: b,
        value: noop(b.epoch()),
    };
    let unsorted = Message::Accept {
        ballot: b,
        commit: Slot::ZERO,
        entries: vec![e(2), e(1)],
    };
    r.on_message(at(500), N1, unsorted).unwrap();
    let slot_zero = Message::Accept {
        ballot: b,
        commit: Slot::ZERO,
        entries: vec![e(0)],
    };
    r.on_message(at(500), N1, slot_zero).unwrap();
    let wrong_owner = Message::Prepare {
        ballot: ballot(7, N3),
        from: Slot(1),
    };
    r.on_message(at(500), N1, wrong_owner).unwrap();
    let beyond_commit = Message::CatchUp {
        commit: Slot(1),
        entries: vec![e(1), e(2)],
    };
    r.on_message(at(500), N1, beyond_commit).unwrap();
    assert!(drive(&mut r).is_empty());
    assert_eq!(r.counters().unknown_sender, 2);
    assert_eq!(r.counters().malformed, 4);
    assert_eq!(r.promised(), Ballot::ZERO);
}

#[test]
fn a_storage_error_is_returned_typed_and_changes_nothing() {
    let mut r = replica(N2);
    r.storage_mut().set_failing(Some("disk on fire"));
    let result = r.on_message(
        at(500),
        N3,
        Message::Prepare {
            ballot: ballot(1, N3),
            from: Slot(1),
        },
    );
    assert_eq!(
        result,
        Err(Error::Storage(StorageError::Io("disk on fire".into())))
    );
    assert_eq!(r.promised(), Ballot::ZERO);
    r.storage_mut().set_failing(None);
    assert!(drive(&mut r).is_empty());
}

#[test]
fn a_bad_configuration_is_refused_with_its_reason() {
    use libpaxos::ConfigError;
    let bad = |f: fn(&mut Config)| {
        let mut c = config(N1);
        f(&mut c);
        Replica::new(c, MemStorage::new(), at(0), Slot::ZERO).err()
    };
    assert_eq!(
        bad(|c| c.members.clear()),
        Some(Error::Config(ConfigError::MemberCount(0)))
    );
    assert_eq!(
        bad(|c| c.members.push(N2)),
        Some(Error::Config(ConfigError::DuplicateMember(N2)))
    );
    assert_eq!(
        bad(|c| c.id = N9),
        Some(Error::Config(ConfigError::NotAMember(N9)))
    );
    assert!(matches!(
        bad(|c| c.election_timeout = Duration::from_millis(1)),
        Some(Error::Config(ConfigError::Timing(_)))
    ));
    assert!(matches!(
        bad(|c| c.heartbeat_interval = c.lease),
        Some(Error::Config(ConfigError::Timing(_)))
    ));
    assert_eq!(
        bad(|c| c.max_drift = 0.5),
        Some(Error::Config(ConfigError::Drift(0.5)))
    );
    assert_eq!(
        bad(|c| c.max_inflight = 0),
        Some(Error::Config(ConfigError::ZeroLimit("max_inflight")))
    );
    assert_eq!(
        bad(|c| c.members.push(NodeId(70_000))),
        Some(Error::Config(ConfigError::NodeIdTooLarge(NodeId(70_000))))
    );
}

#[test]
fn mem_storage_passes_the_conformance_suite() {
    struct Mem;
    impl libpaxos::conformance::Harness for Mem {
        type Store = MemStorage;
        fn fresh(&mut self) -> MemStorage {
            MemStorage::new()
        }
        fn crash(&mut self, mut store: MemStorage) -> MemStorage {
            store.crash();
            store
        }
        fn reopen(&mut self, store: MemStorage) -> MemStorage {
            store
        }
    }
    libpaxos::conformance::run_all(&mut Mem);
}

#[test]
fn mem_storage_crash_drops_exactly_the_unsynced_writes() {
    let mut s = MemStorage::new();
    let entry = |slot| libpaxos::conformance::sample_entry(slot, 1, slot as u8);
    s.write(&Persist {
        entries: vec![entry(1)],
        ..Persist::default()
    })
    .unwrap();
    s.sync().unwrap();
    s.write(&Persist {
        entries: vec![entry(2)],
        ..Persist::default()
    })
    .unwrap();
    assert_eq!(s.entry(Slot(2)).unwrap(), Some(entry(2)));
    s.crash();
    assert_eq!(s.entry(Slot(1)).unwrap(), Some(entry(1)));
    assert_eq!(s.entry(Slot(2)).unwrap(), None);
}

#[test]
fn a_too_large_or_excess_proposal_is_refused() {
    let (mut r, _) = elected_master();
    let limit = r.config().max_batch_bytes;
    assert_eq!(
        r.propose(at(ELECTION), vec![0; limit + 1]),
        Err(ProposeError::TooLarge {
            size: limit + 1,
            limit
        })
    );
    let mut c = config(N1);
    c.max_inflight = 2;
    let mut r = Replica::new(c, MemStorage::new(), at(0), Slot::ZERO).unwrap();
    stand(&mut r, at(ELECTION));
    r.on_message(
        at(ELECTION),
        N2,
        Message::Promise {
            ballot: ballot(1, N1),
            commit: Slot::ZERO,
            entries: vec![],
        },
    )
    .unwrap();
    r.propose(at(ELECTION), b"a".to_vec()).unwrap();
    assert_eq!(
        r.propose(at(ELECTION), b"b".to_vec()),
        Err(ProposeError::Busy { inflight: 2 })
    );
}

#[test]
fn status_reports_role_commit_and_lease() {
    let (mut r, b) = elected_master();
    let now = at(ELECTION + 10);
    r.on_tick(now).unwrap();
    r.on_message(
        now,
        N2,
        Message::HeartbeatAck {
            ballot: b,
            seq: 1,
            commit: Slot::ZERO,
        },
    )
    .unwrap();
    r.on_message(
        now,
        N2,
        Message::Accepted {
            ballot: b,
            slots: vec![Slot(1)],
        },
    )
    .unwrap();
    let status = r.status(now);
    assert_eq!(status.role, Role::Master { ballot: b });
    assert_eq!(status.master, Some(N1));
    assert_eq!(status.epoch, Some(b.epoch()));
    assert_eq!(status.commit, Slot(1));
    assert!(status.lease_valid);
}
