//! Survivors in libpaxos/src/lease.rs (heartbeats and leases).

use super::support::*;

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

/// lease.rs `heartbeat_if_due` (`>` → `>=` and `>` → `==` in the window's trim): the master
/// remembers the send times of its last 64 heartbeats, so a majority's ack of the 64th newest
/// still earns the lease (the mutants keep 63).
#[test]
fn an_ack_of_the_64th_newest_heartbeat_still_earns_the_lease() {
    let mut config = config(N1);
    config.heartbeat_interval = Duration::from_millis(1);
    let mut r = elected_master_with(config);
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
