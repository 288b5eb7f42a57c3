//! Regression tests for bugs found by a second hostile review (each failed before its fix):
//! a promise cut short losing a chosen value after restarts, a new master's recovery batch
//! refused forever, a replica poisoned by an Accept with an absurd commit index, a stale
//! pre-vote deposing a fresh master, and entries delivered twice around a snapshot.

use core::time::Duration;
use libpaxos::*;

type Q = Vec<(NodeId, NodeId, Message)>;

struct H {
    r: Vec<Replica<MemStorage>>,
    cfg: Vec<Config>,
    q: Q,
    applied: Vec<Vec<(Slot, Value)>>,
    now: Time,
}

fn ms(x: u64) -> Time {
    Time(Duration::from_millis(x))
}

impl H {
    fn new(n: u64, inflight: u64) -> H {
        H::new_b(n, inflight, 256)
    }
    fn new_b(n: u64, inflight: u64, batch: usize) -> H {
        let members: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let cfg: Vec<Config> = members
            .iter()
            .map(|&id| {
                let mut c = Config::new(id, members.clone());
                c.max_inflight = inflight;
                c.max_batch_entries = batch;
                c
            })
            .collect();
        let r = cfg
            .iter()
            .map(|c| Replica::new(c.clone(), MemStorage::new(), ms(0), Slot::ZERO).unwrap())
            .collect();
        H {
            r,
            cfg,
            q: Vec::new(),
            applied: vec![Vec::new(); n as usize],
            now: ms(0),
        }
    }
    fn pump(&mut self, i: usize) {
        loop {
            let rd = self.r[i].ready();
            if rd.is_empty() && rd.number == 0 {
                break;
            }
            self.r[i].storage_mut().write(&rd.persist).unwrap();
            self.r[i].storage_mut().sync().unwrap();
            let id = self.r[i].id();
            for e in rd.messages.into_iter().chain(rd.after_persist) {
                self.q.push((id, e.to, e.msg));
            }
            for c in rd.committed {
                self.applied[i].push((c.slot, c.value));
            }
            let now = self.now;
            self.r[i].on_persisted(now, rd.number).unwrap();
            let a = self.applied[i].last().map(|x| x.0).unwrap_or(Slot::ZERO);
            self.r[i].on_applied(a);
        }
    }
    fn tick(&mut self, i: usize) {
        let now = self.now;
        self.r[i].on_tick(now).unwrap();
        self.pump(i);
    }
    /// deliver messages passing `keep`; drop the others
    fn deliver(&mut self, keep: impl Fn(u64, u64, &Message) -> bool) {
        while !self.q.is_empty() {
            let (from, to, m) = self.q.remove(0);
            if !keep(from.0, to.0, &m) {
                continue;
            }
            let i = (to.0 - 1) as usize;
            let now = self.now;
            self.r[i].on_message(now, from, m).unwrap();
            self.pump(i);
        }
    }
    fn restart(&mut self, i: usize, applied: Slot) {
        let r = core::mem::replace(
            &mut self.r[i],
            Replica::new(self.cfg[i].clone(), MemStorage::new(), self.now, Slot::ZERO).unwrap(),
        );
        let mut s = r.into_storage();
        s.crash();
        self.r[i] = Replica::new(self.cfg[i].clone(), s, self.now, applied).unwrap();
        self.applied[i].retain(|(s, _)| *s <= applied);
    }
}

fn is_master(r: &Replica<MemStorage>) -> bool {
    matches!(r.role(), Role::Master { .. })
}

/// A replica restarted with an in-memory state machine (applied = 0) holds more than
/// `accept_window` accepted entries above its commit index; its Promise is silently truncated,
/// so a chosen value held only by it and the dead master is overwritten.
#[test]
fn a_replica_restarted_far_behind_still_promises_every_accepted_entry() {
    let mut h = H::new(3, 2); // accept window 8
    h.now = ms(3000);
    h.tick(0);
    for _ in 0..5 {
        h.deliver(|_, _, _| true);
        for i in 0..3 {
            h.tick(i);
        }
    }
    assert!(is_master(&h.r[0]));
    // 20 commands, committed everywhere
    for k in 0..20u8 {
        h.now = Time(h.now.0 + Duration::from_millis(5));
        h.r[0].propose(h.now, vec![k]).unwrap();
        h.pump(0);
        for _ in 0..3 {
            h.deliver(|_, _, _| true);
            for i in 0..3 {
                h.tick(i);
            }
        }
    }
    h.now = Time(h.now.0 + Duration::from_millis(150));
    for i in 0..3 {
        h.tick(i);
    }
    h.deliver(|_, _, _| true);
    let c2 = h.r[1].commit();
    // X is chosen by n1 + n3 only; n2 hears nothing more from n1.
    h.now = Time(h.now.0 + Duration::from_millis(5));
    let (sx, _) = h.r[0].propose(h.now, b"X".to_vec()).unwrap();
    h.pump(0);
    for _ in 0..3 {
        h.deliver(|f, t, _| !((f == 1 && t == 2) || (f == 2 && t == 1)));
    }
    assert!(h.r[0].commit() >= sx, "X committed at n1");
    let x_at_n1 = h.applied[0].iter().find(|(s, _)| *s == sx).cloned();
    println!(
        "X slot {sx}, n1 applied {:?}, n2 commit {c2}, n3 commit {}",
        x_at_n1,
        h.r[2].commit()
    );
    // n1 dies. n3 restarts with an in-memory state machine: applied 0.
    h.restart(2, Slot::ZERO);
    h.q.clear();
    // n3 stands (only n3 is ticked), n2 and n3 talk.
    for step in 0..200 {
        h.now = Time(h.now.0 + Duration::from_millis(10));
        h.tick(2);
        h.deliver(|f, t, _| f != 1 && t != 1);
        if is_master(&h.r[2]) && step > 0 && h.r[2].commit() >= sx {
            break;
        }
    }
    for _ in 0..10 {
        h.now = Time(h.now.0 + Duration::from_millis(10));
        h.tick(2);
        h.deliver(|f, t, _| f != 1 && t != 1);
    }
    let at_n3 = h.applied[2].iter().find(|(s, _)| *s == sx).cloned();
    let at_n2 = h.applied[1].iter().find(|(s, _)| *s == sx).cloned();
    println!(
        "n3 role {:?}, slot {sx}: n1 {:?} n2 {:?} n3 {:?}",
        h.r[2].role(),
        x_at_n1,
        at_n2,
        at_n3
    );
    assert_eq!(
        x_at_n1.map(|x| x.1),
        at_n3.map(|x| x.1),
        "two values chosen for one slot"
    );
}

/// Whole-cell restart of a driver whose state machine is in memory (applied = 0, which the
/// contract allows): every replica's Promise is cut at accept_window entries, and the new master
/// overwrites acknowledged slots beyond the window with no-ops.
#[test]
fn a_whole_cell_restart_with_in_memory_state_machines_keeps_acknowledged_writes() {
    let mut h = H::new(3, 2); // accept window 8
    h.now = ms(3000);
    h.tick(0);
    for _ in 0..5 {
        h.deliver(|_, _, _| true);
        for i in 0..3 {
            h.tick(i);
        }
    }
    assert!(is_master(&h.r[0]));
    for k in 0..20u8 {
        h.now = Time(h.now.0 + Duration::from_millis(5));
        h.r[0].propose(h.now, vec![k]).unwrap();
        h.pump(0);
        for _ in 0..3 {
            h.deliver(|_, _, _| true);
            for i in 0..3 {
                h.tick(i);
            }
        }
    }
    let before = h.applied[0].clone();
    println!("n1 applied through {:?}", before.last().map(|x| x.0));
    for i in 0..3 {
        h.restart(i, Slot::ZERO);
    }
    h.q.clear();
    for _ in 0..300 {
        h.now = Time(h.now.0 + Duration::from_millis(10));
        for i in 0..3 {
            h.tick(i);
        }
        h.deliver(|_, _, _| true);
    }
    println!(
        "roles {:?} {:?} {:?}",
        h.r[0].role(),
        h.r[1].role(),
        h.r[2].role()
    );
    for i in 0..3 {
        println!(
            "n{} malformed {} slot9 {:?} last {:?}",
            i + 1,
            h.r[i].counters().malformed,
            h.r[i].storage().entry(Slot(9)).unwrap(),
            h.r[i].storage().last_slot()
        );
    }
    for i in 0..3 {
        println!(
            "n{} commit {} applied {:?}",
            i + 1,
            h.r[i].commit(),
            h.applied[i].last().map(|x| x.0)
        );
        for (s, v) in &h.applied[i] {
            if let Some((_, old)) = before.iter().find(|(t, _)| t == s) {
                assert_eq!(
                    old,
                    v,
                    "slot {s} changed value across the restart at n{}",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn a_whole_cell_restart_with_small_batches_keeps_applied_values() {
    let mut h = H::new_b(3, 2, 4); // accept window 8
    h.now = ms(3000);
    h.tick(0);
    for _ in 0..5 {
        h.deliver(|_, _, _| true);
        for i in 0..3 {
            h.tick(i);
        }
    }
    assert!(is_master(&h.r[0]));
    for k in 0..20u8 {
        h.now = Time(h.now.0 + Duration::from_millis(5));
        h.r[0].propose(h.now, vec![k]).unwrap();
        h.pump(0);
        for _ in 0..3 {
            h.deliver(|_, _, _| true);
            for i in 0..3 {
                h.tick(i);
            }
        }
    }
    let before = h.applied[0].clone();
    println!("n1 applied through {:?}", before.last().map(|x| x.0));
    for i in 0..3 {
        h.restart(i, Slot::ZERO);
    }
    h.q.clear();
    for _ in 0..300 {
        h.now = Time(h.now.0 + Duration::from_millis(10));
        for i in 0..3 {
            h.tick(i);
        }
        h.deliver(|_, _, _| true);
    }
    println!(
        "roles {:?} {:?} {:?}",
        h.r[0].role(),
        h.r[1].role(),
        h.r[2].role()
    );
    for i in 0..3 {
        println!(
            "n{} malformed {} slot9 {:?} last {:?}",
            i + 1,
            h.r[i].counters().malformed,
            h.r[i].storage().entry(Slot(9)).unwrap(),
            h.r[i].storage().last_slot()
        );
    }
    for i in 0..3 {
        println!(
            "n{} commit {} applied {:?}",
            i + 1,
            h.r[i].commit(),
            h.applied[i].last().map(|x| x.0)
        );
        for (s, v) in &h.applied[i] {
            if let Some((_, old)) = before.iter().find(|(t, _)| t == s) {
                assert_eq!(
                    old,
                    v,
                    "slot {s} changed value across the restart at n{}",
                    i + 1
                );
            }
        }
    }
}

/// An Accept whose `commit` field is huge bypasses the accept window; the entry it plants
/// makes every later Promise of that replica "malformed" forever.
#[test]
fn an_accept_with_an_absurd_commit_index_cannot_poison_a_replica() {
    let mut h = H::new(3, 2);
    h.now = ms(3000);
    let b = Ballot {
        round: 1,
        node: NodeId(1),
    };
    let e = Entry {
        slot: Slot(u64::MAX - 5),
        ballot: b,
        value: Value {
            epoch: b.epoch(),
            payload: Payload::Noop,
        },
    };
    h.r[1]
        .on_message(
            h.now,
            NodeId(1),
            Message::Accept {
                ballot: b,
                commit: Slot(u64::MAX - 10),
                entries: vec![e],
            },
        )
        .unwrap();
    h.pump(1);
    println!(
        "n2 last slot {:?} commit {}",
        h.r[1].storage().last_slot(),
        h.r[1].commit()
    );
    h.q.clear();
    // n1 is gone; n3 stands, n2 promises.
    for _ in 0..300 {
        h.now = Time(h.now.0 + Duration::from_millis(10));
        h.tick(1);
        h.tick(2);
        h.deliver(|f, t, _| f != 1 && t != 1);
    }
    println!(
        "n2 {:?} n3 {:?} malformed n2 {} n3 {}",
        h.r[1].role(),
        h.r[2].role(),
        h.r[1].counters().malformed,
        h.r[2].counters().malformed
    );
    assert!(
        is_master(&h.r[1]) || is_master(&h.r[2]),
        "no master can ever be elected"
    );
}

/// A candidate whose promises are slow starts a new pre-vote; the old promises then make it
/// master, and the late pre-vote grants make the fresh master depose itself.
#[test]
fn a_late_pre_vote_grant_does_not_depose_a_fresh_master() {
    let members = vec![NodeId(1), NodeId(2), NodeId(3)];
    let c = Config::new(NodeId(1), members);
    let mut r = Replica::new(c, MemStorage::new(), ms(0), Slot::ZERO).unwrap();
    let drive = |r: &mut Replica<MemStorage>, now: Time| {
        let rd = r.ready();
        r.storage_mut().write(&rd.persist).unwrap();
        r.storage_mut().sync().unwrap();
        r.on_persisted(now, rd.number).unwrap();
        rd
    };
    let t = ms(2000);
    r.on_tick(t).unwrap();
    drive(&mut r, t);
    r.on_message(
        t,
        NodeId(2),
        Message::PreVoteReply {
            attempt: 1,
            round: 1,
            granted: true,
            promised: Ballot::ZERO,
        },
    )
    .unwrap();
    drive(&mut r, t);
    let b1 = Ballot {
        round: 1,
        node: NodeId(1),
    };
    assert_eq!(r.role(), Role::Candidate { ballot: b1 });
    // promises are slow: the election deadline passes, a new pre-vote (round 2) starts
    let t2 = ms(4500);
    r.on_tick(t2).unwrap();
    let rd = drive(&mut r, t2);
    assert!(
        rd.messages
            .iter()
            .any(|e| matches!(e.msg, Message::PreVote { round: 2, .. }))
    );
    // the old promise arrives: n1 becomes master of ballot 1
    r.on_message(
        t2,
        NodeId(2),
        Message::Promise {
            ballot: b1,
            commit: Slot::ZERO,
            entries: vec![],
        },
    )
    .unwrap();
    drive(&mut r, t2);
    assert_eq!(r.role(), Role::Master { ballot: b1 });
    // a late pre-vote grant for round 2
    r.on_message(
        t2,
        NodeId(3),
        Message::PreVoteReply {
            attempt: 2,
            round: 2,
            granted: true,
            promised: b1,
        },
    )
    .unwrap();
    drive(&mut r, t2);
    assert_eq!(
        r.role(),
        Role::Master { ballot: b1 },
        "a master deposed itself on a stale pre-vote"
    );
}

/// on_snapshot_installed below `delivered` rewinds `delivered`: committed entries come out twice.
#[test]
fn a_snapshot_below_what_was_handed_out_delivers_nothing_twice() {
    let members = vec![NodeId(1), NodeId(2), NodeId(3)];
    let mut r = Replica::new(
        Config::new(NodeId(2), members),
        MemStorage::new(),
        ms(0),
        Slot::ZERO,
    )
    .unwrap();
    let t = ms(100);
    let b = Ballot {
        round: 1,
        node: NodeId(1),
    };
    let entries: Vec<Entry> = (1..=5)
        .map(|s| Entry {
            slot: Slot(s),
            ballot: b,
            value: Value {
                epoch: b.epoch(),
                payload: Payload::Command(vec![s as u8].into()),
            },
        })
        .collect();
    r.on_message(
        t,
        NodeId(1),
        Message::Accept {
            ballot: b,
            commit: Slot(5),
            entries,
        },
    )
    .unwrap();
    let rd = r.ready();
    r.storage_mut().write(&rd.persist).unwrap();
    r.storage_mut().sync().unwrap();
    let first: Vec<u64> = rd.committed.iter().map(|c| c.slot.0).collect();
    r.on_applied(Slot(2)); // the driver applied 1..2 so far (3..5 still held)
    r.on_persisted(t, rd.number).unwrap();
    // a snapshot through 3 is installed (log compacted through 3 in the same durable step)
    r.storage_mut()
        .write(&Persist {
            compact_through: Some(Slot(3)),
            ..Persist::default()
        })
        .unwrap();
    r.storage_mut().sync().unwrap();
    r.on_snapshot_installed(t, Slot(3)).unwrap();
    let rd = r.ready();
    let again: Vec<u64> = rd.committed.iter().map(|c| c.slot.0).collect();
    println!("first {first:?} again {again:?}");
    assert!(again.is_empty(), "slots delivered twice: {again:?}");
}
