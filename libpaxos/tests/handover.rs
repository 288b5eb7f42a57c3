//! Hand-over transcripts: a master gives mastership to another member without a fail-over
//! wait (docs/libpaxos.md, "Hand-over"). One input, the Ready or the state it produces.

use std::time::Duration;

use libpaxos::sim::{Cluster, SimConfig};
use libpaxos::{
    Ballot, Config, Entry, Envelope, Epoch, Event, HandOverError, HardState, LogStore, MemStorage,
    Message, Payload, ProposeError, Ready, Replica, Role, Slot, Time, Value,
};
use libpaxos::{NodeId, Storage};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

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

fn drive(r: &mut Replica<MemStorage>) -> Ready {
    let ready = r.ready();
    r.storage_mut().write(&ready.persist).expect("writes");
    r.storage_mut().sync().expect("syncs");
    ready
}

fn drive_persisted(r: &mut Replica<MemStorage>, now: Time) -> Ready {
    let ready = drive(r);
    r.on_persisted(now, ready.number).expect("no storage error");
    ready
}

fn to(node: NodeId, msg: Message) -> Envelope {
    Envelope { to: node, msg }
}

const ELECTION: u64 = 2000;

/// n1 master of a 3-node cell (n2 promised), its take-office no-op in slot 1 committed, a
/// lease held from a heartbeat n2 acknowledged. Returns n1, its ballot and the time.
fn serving_master() -> (Replica<MemStorage>, Ballot, Time) {
    let mut r = replica(N1);
    let now = at(ELECTION);
    r.on_tick(now).unwrap();
    drive(&mut r);
    r.on_message(
        now,
        N2,
        Message::PreVoteReply {
            attempt: 1,
            round: 1,
            granted: true,
            promised: Ballot::ZERO,
        },
    )
    .unwrap();
    drive_persisted(&mut r, now);
    let b = ballot(1, N1);
    let promise = Message::Promise {
        ballot: b,
        commit: Slot::ZERO,
        entries: vec![],
    };
    r.on_message(now, N2, promise).unwrap();
    drive_persisted(&mut r, now);
    let accepted = Message::Accepted {
        ballot: b,
        slots: vec![Slot(1)],
    };
    r.on_message(now, N2, accepted).unwrap();
    r.on_tick(now).unwrap();
    let ack = Message::HeartbeatAck {
        ballot: b,
        seq: 1,
        commit: Slot(1),
    };
    r.on_message(now, N2, ack).unwrap();
    r.on_tick(now).unwrap();
    let ready = drive_persisted(&mut r, now);
    assert!(ready.events.contains(&Event::LeaseAcquired));
    assert_eq!(r.commit(), Slot(1));
    assert!(r.read_fence(now).is_some(), "serving reads from its lease");
    (r, b, now)
}

/// n2 following n1 at `b`, having acknowledged a heartbeat at `now` (so it owes n1 a lease).
fn follower_of(b: Ballot, now: Time) -> Replica<MemStorage> {
    let mut r = replica(N2);
    let beat = Message::Heartbeat {
        ballot: b,
        seq: 1,
        commit: Slot::ZERO,
    };
    r.on_message(now, b.node, beat).unwrap();
    drive_persisted(&mut r, now);
    r
}

fn prepare(b: Ballot) -> Message {
    Message::Prepare {
        ballot: b,
        from: Slot(1),
    }
}

fn promise_of(b: Ballot) -> Message {
    Message::Promise {
        ballot: b,
        commit: Slot::ZERO,
        entries: vec![],
    }
}

#[test]
fn a_master_with_nothing_open_steps_down_then_releases_and_asks_the_target_to_stand() {
    let (mut r, b, now) = serving_master();
    r.hand_over(now, Some(N3)).unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready,
        Ready {
            number: ready.number,
            messages: vec![
                to(N2, Message::LeaseRelease { ballot: b }),
                to(
                    N3,
                    Message::TimeoutNow {
                        ballot: b,
                        commit: Slot(1)
                    }
                ),
            ],
            events: vec![
                Event::LeaseLost,
                Event::RoleChanged(Role::Follower { master: None }),
                Event::HandedOver { to: N3 },
            ],
            ..Ready::default()
        },
        "the lease is given up (LeaseLost) in the same step, before anything leaves"
    );
    assert!(!r.lease_valid(now));
    assert_eq!(r.read_fence(now), None);
    assert_eq!(r.master_hint(), Some(N3), "clients are sent to the target");
    assert_eq!(r.counters().handovers_started, 1);
    assert_eq!(r.counters().handovers_released, 1);
    // It gave up its own promise too: the target's Prepare gets a promise at once.
    r.on_message(now, N3, prepare(ballot(2, N3))).unwrap();
    assert_eq!(
        drive(&mut r).after_persist,
        vec![to(
            N3,
            Message::Promise {
                ballot: ballot(2, N3),
                commit: Slot(1),
                entries: vec![],
            }
        )]
    );
}

#[test]
fn a_master_handing_over_refuses_new_commands_and_waits_for_its_open_slots() {
    let (mut r, b, now) = serving_master();
    let (slot, epoch) = r.propose(now, b"x".to_vec()).unwrap();
    drive_persisted(&mut r, now);
    r.hand_over(now, None).unwrap();
    assert!(r.handing_over());
    assert_eq!(
        r.propose(now, b"y".to_vec()),
        Err(ProposeError::HandingOver { to: None })
    );
    assert!(
        drive(&mut r).is_empty(),
        "slot {slot} is still open: no release yet"
    );
    assert!(r.read_fence(now).is_some(), "reads go on while draining");

    // n3 acknowledges the open slot: it is now the most up-to-date follower.
    let accepted = Message::Accepted {
        ballot: b,
        slots: vec![slot],
    };
    r.on_message(now, N3, accepted).unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready.persist.hard_state,
        Some(HardState {
            promised: b,
            commit: slot
        })
    );
    assert_eq!(
        ready.committed.last().map(|c| c.value.clone()),
        Some(Value {
            epoch,
            payload: Payload::Command(b"x".to_vec().into())
        })
    );
    assert_eq!(
        ready.messages,
        vec![
            to(N2, Message::LeaseRelease { ballot: b }),
            to(
                N3,
                Message::TimeoutNow {
                    ballot: b,
                    commit: slot
                }
            ),
        ]
    );
    assert!(ready.events.contains(&Event::HandedOver { to: N3 }));
}

#[test]
fn a_hand_over_that_cannot_commit_releases_after_an_election_timeout() {
    let (mut r, _, now) = serving_master();
    r.propose(now, b"x".to_vec()).unwrap();
    drive_persisted(&mut r, now);
    r.hand_over(now, Some(N2)).unwrap();
    let timeout = r.config().election_timeout;
    r.on_tick(Time(now.0 + timeout - Duration::from_millis(1)))
        .unwrap();
    assert!(!drive(&mut r).events.contains(&Event::HandedOver { to: N2 }));
    r.on_tick(now + timeout).unwrap();
    let ready = drive(&mut r);
    assert!(
        ready.events.contains(&Event::HandedOver { to: N2 }),
        "{ready:?}"
    );
}

#[test]
fn only_a_master_hands_over_and_only_to_another_member() {
    let mut follower = follower_of(ballot(1, N1), at(500));
    assert_eq!(
        follower.hand_over(at(500), None),
        Err(HandOverError::NotMaster { hint: Some(N1) })
    );
    let (mut master, _, now) = serving_master();
    assert_eq!(
        master.hand_over(now, Some(N1)),
        Err(HandOverError::NotAnotherMember(N1))
    );
    assert_eq!(
        master.hand_over(now, Some(NodeId(9))),
        Err(HandOverError::NotAnotherMember(NodeId(9)))
    );
    let mut alone = Replica::new(
        Config::new(N1, vec![N1]),
        MemStorage::new(),
        at(0),
        Slot::ZERO,
    )
    .unwrap();
    assert_eq!(
        alone.hand_over(at(0), None),
        Err(HandOverError::NoOtherMember)
    );
    assert_eq!(master.counters().handovers_started, 0);
}

#[test]
fn a_release_of_the_promised_ballot_frees_the_follower_at_once() {
    let old = ballot(1, N1);
    let mut r = follower_of(old, at(500));
    r.on_message(at(510), N1, Message::LeaseRelease { ballot: old })
        .unwrap();
    assert_eq!(r.counters().leases_released, 1);
    let new = ballot(2, N3);
    r.on_message(at(520), N3, prepare(new)).unwrap();
    assert_eq!(drive(&mut r).after_persist, vec![to(N3, promise_of(new))]);
}

#[test]
fn a_stale_release_of_an_earlier_term_of_the_same_master_is_ignored() {
    // n1 was master at 1.n1, handed over, and is master again at 3.n1; a copy of its old
    // release arrives late. It must not cancel the promise made to 3.n1.
    let mut r = follower_of(ballot(3, N1), at(500));
    r.on_message(
        at(510),
        N1,
        Message::LeaseRelease {
            ballot: ballot(1, N1),
        },
    )
    .unwrap();
    assert_eq!(r.counters().stale_releases, 1);
    assert_eq!(r.counters().leases_released, 0);
    r.on_message(at(520), N3, prepare(ballot(4, N3))).unwrap();
    assert!(drive(&mut r).after_persist.is_empty(), "still bound");
    assert_eq!(r.counters().refused_by_lease, 1);
}

#[test]
fn a_release_from_a_lower_ballot_of_another_member_is_ignored() {
    let mut r = follower_of(ballot(2, N3), at(500));
    r.on_message(
        at(510),
        N1,
        Message::LeaseRelease {
            ballot: ballot(1, N1),
        },
    )
    .unwrap();
    let timeout_now = Message::TimeoutNow {
        ballot: ballot(1, N1),
        commit: Slot::ZERO,
    };
    r.on_message(at(511), N1, timeout_now).unwrap();
    assert_eq!(r.counters().leases_released, 0);
    assert_eq!(r.counters().elections_started, 0, "a stale TimeoutNow");
    r.on_message(at(520), N1, prepare(ballot(3, N1))).unwrap();
    assert!(
        drive(&mut r).after_persist.is_empty(),
        "still bound to 2.n3"
    );
    assert_eq!(r.counters().refused_by_lease, 1);
}

#[test]
fn a_release_naming_another_members_ballot_is_malformed() {
    let b = ballot(1, N1);
    let mut r = follower_of(b, at(500));
    r.on_message(at(510), N3, Message::LeaseRelease { ballot: b })
        .unwrap();
    assert_eq!(r.counters().malformed, 1);
    assert_eq!(r.counters().leases_released, 0);
}

#[test]
fn a_late_heartbeat_of_a_released_ballot_is_neither_followed_nor_acknowledged() {
    let b = ballot(1, N1);
    let mut r = follower_of(b, at(500));
    r.on_message(at(510), N1, Message::LeaseRelease { ballot: b })
        .unwrap();
    drive(&mut r);
    let late = Message::Heartbeat {
        ballot: b,
        seq: 7,
        commit: Slot::ZERO,
    };
    r.on_message(at(520), N1, late).unwrap();
    assert!(drive(&mut r).messages.is_empty(), "no ack: no new lease");
    assert_eq!(r.role(), Role::Follower { master: None });
    r.on_message(at(530), N3, prepare(ballot(2, N3))).unwrap();
    assert_eq!(
        drive(&mut r).after_persist,
        vec![to(N3, promise_of(ballot(2, N3)))]
    );
}

#[test]
fn a_caught_up_target_stands_at_once_without_pre_votes() {
    let b = ballot(1, N1);
    let mut r = follower_of(b, at(500));
    let timeout_now = Message::TimeoutNow {
        ballot: b,
        commit: Slot::ZERO,
    };
    r.on_message(at(510), N1, timeout_now).unwrap();
    let new = ballot(2, N2);
    let ready = drive(&mut r);
    assert_eq!(
        ready.persist.hard_state,
        Some(HardState {
            promised: new,
            commit: Slot::ZERO
        })
    );
    assert_eq!(
        ready.after_persist,
        vec![to(N1, prepare(new)), to(N3, prepare(new))]
    );
    assert!(
        ready
            .events
            .contains(&Event::RoleChanged(Role::Candidate { ballot: new }))
    );
    assert_eq!(r.counters().prevotes_started, 0);
    assert_eq!(r.counters().elections_on_handover, 1);
}

#[test]
fn a_target_that_is_not_caught_up_does_not_stand_until_it_is() {
    let b = ballot(1, N1);
    let mut r = follower_of(b, at(500));
    // n1 committed two slots n2 never received.
    let timeout_now = Message::TimeoutNow {
        ballot: b,
        commit: Slot(2),
    };
    r.on_message(at(510), N1, timeout_now).unwrap();
    let ready = drive(&mut r);
    assert_eq!(
        ready.messages,
        vec![to(N1, Message::CatchUpRequest { from: Slot(1) })]
    );
    assert!(
        ready.after_persist.is_empty(),
        "no Prepare before it caught up"
    );
    assert_eq!(r.role(), Role::Follower { master: None });
    assert_eq!(r.counters().elections_started, 0);

    let entries = (1..=2)
        .map(|s| Entry {
            slot: Slot(s),
            ballot: b,
            value: Value {
                epoch: Epoch(b.epoch().0),
                payload: Payload::Noop,
            },
        })
        .collect();
    let catch_up = Message::CatchUp {
        commit: Slot(2),
        entries,
    };
    r.on_message(at(520), N1, catch_up).unwrap();
    let ready = drive(&mut r);
    let new = ballot(2, N2);
    assert_eq!(ready.committed.len(), 2);
    assert_eq!(
        ready.after_persist,
        vec![
            to(
                N1,
                Message::Prepare {
                    ballot: new,
                    from: Slot(3)
                }
            ),
            to(
                N3,
                Message::Prepare {
                    ballot: new,
                    from: Slot(3)
                }
            ),
        ]
    );
    assert_eq!(r.counters().elections_on_handover, 1);
}

#[test]
fn a_target_that_cannot_catch_up_in_time_leaves_it_to_the_election_timer() {
    let b = ballot(1, N1);
    let mut r = follower_of(b, at(500));
    let timeout_now = Message::TimeoutNow {
        ballot: b,
        commit: Slot(2),
    };
    r.on_message(at(510), N1, timeout_now).unwrap();
    drive(&mut r);
    let late = at(510) + r.config().election_timeout;
    r.on_tick(late).unwrap();
    drive(&mut r);
    let entries = (1..=2)
        .map(|s| Entry {
            slot: Slot(s),
            ballot: b,
            value: Value {
                epoch: Epoch(b.epoch().0),
                payload: Payload::Noop,
            },
        })
        .collect();
    r.on_message(
        late,
        N1,
        Message::CatchUp {
            commit: Slot(2),
            entries,
        },
    )
    .unwrap();
    drive(&mut r);
    assert_eq!(r.counters().elections_on_handover, 0);
}

/// In a healthy simulated cell, a hand-over makes the target master well within one lease
/// of simulated time (a fail-over needs the lease to run out, then an election timeout), and
/// no election timer fired anywhere: the target stood on the `TimeoutNow`, without pre-votes.
#[test]
fn a_hand_over_in_a_healthy_cell_elects_the_target_without_any_timeout() {
    for seed in 0..20 {
        let mut config = SimConfig::new(3, seed);
        config.network.loss = 0.0;
        config.network.duplicate = 0.0;
        config.network.slow = 0.0;
        config.network.replay = 0.0;
        let lease = config.lease;
        let mut cell = Cluster::new(config);
        cell.run_for(Duration::from_secs(1));
        let old = cell.master().expect("a master within a second");
        let target = (old + 1) % 3;
        let prevotes_before: u64 = (0..3)
            .map(|i| cell.replica(i).unwrap().counters().prevotes_started)
            .sum();
        let target_id = cell.nodes[target].id;
        assert!(cell.hand_over(old, Some(target_id)));
        let start = cell.now;
        while cell.master() != Some(target) && cell.now < start + lease * 4 {
            cell.step();
        }
        assert_eq!(cell.master(), Some(target), "seed {seed}");
        let took = cell.now - start;
        assert!(
            took < lease,
            "seed {seed}: the target took office {took:?} after the hand-over"
        );
        let prevotes_after: u64 = (0..3)
            .map(|i| cell.replica(i).unwrap().counters().prevotes_started)
            .sum();
        assert_eq!(
            prevotes_before, prevotes_after,
            "seed {seed}: no timer fired"
        );
        assert_eq!(
            cell.replica(target)
                .unwrap()
                .counters()
                .elections_on_handover,
            1
        );
        cell.run_for(Duration::from_millis(500));
        assert_eq!(cell.violation(), None, "seed {seed}");
        assert!(cell.replica(old).unwrap().storage().last_slot().is_ok());
    }
}
