//! What the mutant tests share: the three-node cell, time, and replicas driven to a state.

pub use std::time::Duration;

pub use libpaxos::{
    Ballot, Config, Entry, Epoch, LogStore, MemStorage, Message, NodeId, Payload, ProposeError,
    Ready, Replica, Role, Slot, Time, Value,
};

pub const N1: NodeId = NodeId(1);

pub const N2: NodeId = NodeId(2);

pub const N3: NodeId = NodeId(3);

pub const ELECTION: u64 = 2000;

pub fn at(ms: u64) -> Time {
    Time(Duration::from_millis(ms))
}

pub fn ballot(round: u64, node: NodeId) -> Ballot {
    Ballot { round, node }
}

/// The configuration every test starts from: node `id` of n1..n3, a 400 ms lease.
pub fn config(id: NodeId) -> Config {
    Config::new(id, vec![N1, N2, N3]).with_lease(Duration::from_millis(400))
}

pub fn replica(id: NodeId) -> Replica<MemStorage> {
    Replica::new(config(id), MemStorage::new(), at(0), Slot::ZERO).expect("valid config")
}

pub fn drive(r: &mut Replica<MemStorage>) -> Ready {
    let ready = r.ready();
    r.storage_mut().write(&ready.persist).unwrap();
    r.storage_mut().sync().unwrap();
    ready
}

pub fn drive_persisted(r: &mut Replica<MemStorage>, now: Time) -> Ready {
    let ready = drive(r);
    r.on_persisted(now, ready.number).unwrap();
    ready
}

/// Ticks past the deadline and wins the pre-vote with n2's grant: a candidate at round 1.
pub fn stand(r: &mut Replica<MemStorage>, now: Time) {
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

pub fn elected_master() -> Replica<MemStorage> {
    let r = elected_master_with(config(N1));
    // election.rs `take_office` (`+=` → `*=`): operators can read that a term was won.
    assert_eq!(r.counters().terms_won, 1);
    r
}

pub fn catch_up_requests(ready: &Ready) -> Vec<Slot> {
    ready
        .messages
        .iter()
        .filter_map(|e| match e.msg {
            Message::CatchUpRequest { from } => Some(from),
            _ => None,
        })
        .collect()
}

pub fn heartbeat(commit: u64, seq: u64) -> Message {
    Message::Heartbeat {
        ballot: ballot(1, N1),
        seq,
        commit: Slot(commit),
    }
}

pub fn accept(slots: &[u64]) -> Message {
    accept_with_commit(slots.iter().copied(), 0)
}

/// n1's Accept at ballot 1 of `slots` (each a `committed_entry`), telling its commit index.
pub fn accept_with_commit(slots: impl IntoIterator<Item = u64>, commit: u64) -> Message {
    Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot(commit),
        entries: slots.into_iter().map(committed_entry).collect(),
    }
}

/// A follower (n2) holding slots 1..=3, accepted at n1's ballot 1 and committed.
pub fn follower_with_three_committed() -> Replica<MemStorage> {
    follower_with_three_committed_with(replica(N2))
}

pub fn follower_with_three_committed_with(mut r: Replica<MemStorage>) -> Replica<MemStorage> {
    let accept = accept_with_commit(1..=3, 3);
    r.on_message(at(100), N1, accept).unwrap();
    drive_persisted(&mut r, at(100));
    assert_eq!(r.commit(), Slot(3));
    r
}

/// n1's entry at ballot 1 for `slot`, its payload the slot number (as a byte).
pub fn committed_entry(slot: u64) -> Entry {
    Entry {
        slot: Slot(slot),
        ballot: ballot(1, N1),
        value: Value {
            epoch: Epoch(1),
            payload: Payload::Command(vec![slot as u8].into()),
        },
    }
}

/// An elected master (n1, ballot 1, its take-office no-op in slot 1 and that Ready durable)
/// built on `config`.
pub fn elected_master_with(config: Config) -> Replica<MemStorage> {
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
pub fn accept_sizes_to_n2(ready: &Ready) -> Vec<usize> {
    ready
        .messages
        .iter()
        .filter_map(|e| match &e.msg {
            Message::Accept { entries, .. } if e.to == N2 => Some(entries.len()),
            _ => None,
        })
        .collect()
}

/// n1 stands and n2 promises with commit index 5: n1 takes office recovering, and asks n2 for
/// the chosen prefix from slot 1 (which, in these tests, never comes). Returns the replica and
/// the Ready that carries that first request.
pub fn recovering_master() -> (Replica<MemStorage>, Ready) {
    let mut r = replica(N1);
    stand(&mut r, at(ELECTION));
    let promise = Message::Promise {
        ballot: ballot(1, N1),
        commit: Slot(5),
        entries: vec![],
    };
    r.on_message(at(ELECTION), N2, promise).unwrap();
    let ready = drive_persisted(&mut r, at(ELECTION));
    (r, ready)
}

/// n2 acknowledges, at `now`, every heartbeat `ready` sends it: a master keeps its lease.
pub fn ack_heartbeats_from_n2(r: &mut Replica<MemStorage>, now: Time, ready: &Ready) {
    for e in &ready.messages {
        if let Message::Heartbeat { ballot, seq, .. } = e.msg
            && e.to == N2
        {
            let ack = Message::HeartbeatAck {
                ballot,
                seq,
                commit: Slot::ZERO,
            };
            r.on_message(now, N2, ack).unwrap();
        }
    }
}

/// Delivers `SnapshotNeeded { slot }` from `from` at `now` and checks that it was refused: no
/// snapshot wanted (no event, `snapshots_needed` still 0), and, when `counted`, one more
/// `unexpected`. `why` names what a failure would mean.
pub fn offer_snapshot_expecting_refusal(
    r: &mut Replica<MemStorage>,
    now: Time,
    from: NodeId,
    slot: u64,
    counted: bool,
    why: &str,
) {
    let unexpected = r.counters().unexpected;
    r.on_message(now, from, Message::SnapshotNeeded { slot: Slot(slot) })
        .unwrap();
    let ready = drive(r);
    assert!(
        !ready
            .events
            .iter()
            .any(|e| matches!(e, libpaxos::Event::SnapshotNeeded { .. })),
        "{why}: {ready:?}"
    );
    assert_eq!(r.counters().snapshots_needed, 0, "{why}");
    if counted {
        assert_eq!(r.counters().unexpected, unexpected + 1, "{why}");
    }
}
