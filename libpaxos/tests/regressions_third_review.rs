//! Regression tests for what a third hostile review found (each failed before its fix): a
//! chain of failed master terms wedging the cell through the promise bound, and a log whose
//! compaction was lost behind a snapshot install serving unchosen entries as chosen.

use libpaxos::*;
use std::time::Duration;

type R = Replica<MemStorage>;

struct Net {
    nodes: Vec<Option<R>>,
    q: Vec<(usize, usize, Message)>,
    now: Time,
}

fn ids() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

impl Net {
    fn drive(&mut self, i: usize) {
        loop {
            let r = self.nodes[i].as_mut().expect("node is up");
            let ready = r.ready();
            if ready.is_empty() && ready.number == 0 {
                break;
            }
            r.storage_mut().write(&ready.persist).unwrap();
            r.storage_mut().sync().unwrap();
            for e in ready.messages.into_iter().chain(ready.after_persist) {
                self.q.push((i, (e.to.0 - 1) as usize, e.msg));
            }
            if let Some(last) = ready.committed.last() {
                r.on_applied(last.slot);
            }
            r.on_persisted(self.now, ready.number).unwrap();
        }
    }

    fn tick(&mut self, i: usize) {
        let now = self.now;
        if let Some(r) = self.nodes[i].as_mut() {
            r.on_tick(now).unwrap();
            self.drive(i);
        }
    }

    fn deliver(&mut self, keep: &dyn Fn(&Net, usize, usize, &Message) -> bool) {
        while !self.q.is_empty() {
            let (f, t, m) = self.q.remove(0);
            if self.nodes[t].is_none() || !keep(self, f, t, &m) {
                continue;
            }
            let now = self.now;
            self.nodes[t]
                .as_mut()
                .expect("node is up")
                .on_message(now, NodeId(f as u64 + 1), m)
                .unwrap();
            self.drive(t);
        }
    }

    fn r(&self, i: usize) -> &R {
        self.nodes[i].as_ref().expect("node is up")
    }

    fn adv(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
    }
}

fn is_master(r: &R) -> bool {
    matches!(r.role(), Role::Master { .. })
}

fn leads(r: &R) -> bool {
    matches!(r.role(), Role::Master { .. } | Role::Recovering { .. })
}

#[test]
fn a_chain_of_failed_terms_does_not_wedge_the_cell() {
    let make = |id: u64| {
        let mut c = Config::new(NodeId(id), ids());
        c.max_inflight = 1; // accept window 4
        Replica::new(c, MemStorage::new(), Time::ZERO, Slot::ZERO).unwrap()
    };
    let mut n = Net {
        nodes: vec![Some(make(1)), Some(make(2)), Some(make(3))],
        q: vec![],
        now: Time::ZERO,
    };
    let all = |_: &Net, _: usize, _: usize, _: &Message| true;
    n.adv(1100);
    n.tick(0);
    n.deliver(&all);
    for _ in 0..5 {
        n.adv(50);
        n.tick(0);
        n.deliver(&all);
    }
    assert!(is_master(n.r(0)));
    // One slot reaches only n3; three more reach only n2, whose catch-up requests are lost:
    // n2's commit sticks while its log grows to the edge of its accept window.
    let now = n.now;
    n.nodes[0]
        .as_mut()
        .unwrap()
        .propose(now, b"a".to_vec())
        .unwrap();
    n.drive(0);
    n.deliver(&|_, f, t, _| !(f == 0 && t == 1));
    let cut = |_: &Net, f: usize, t: usize, m: &Message| {
        !(f == 0 && t == 2) && f != 2 && !matches!(m, Message::CatchUpRequest { .. })
    };
    for k in 0..3 {
        let now = n.now;
        let _ = n.nodes[0].as_mut().unwrap().propose(now, vec![k]);
        n.drive(0);
        n.deliver(&cut);
    }
    n.nodes[0] = None; // n1 is gone for good
    n.q.clear();
    n.adv(3000);
    // n3 wins with n2's promise, then everything n3 sends as leader is lost.
    let b = |net: &Net, f: usize, _: usize, _: &Message| !(f == 2 && is_master(net.r(2)));
    for _ in 0..40 {
        n.adv(100);
        n.tick(2);
        n.deliver(&b);
        if is_master(n.r(2)) {
            break;
        }
    }
    // n2 wins with n3's promise, then everything either leader sends is lost.
    let c = |net: &Net, f: usize, _: usize, _: &Message| {
        !((f == 1 && leads(net.r(1))) || (f == 2 && leads(net.r(2))))
    };
    for _ in 0..60 {
        n.adv(100);
        n.tick(2);
        n.tick(1);
        n.deliver(&c);
        if is_master(n.r(1)) {
            break;
        }
    }
    for _ in 0..40 {
        n.adv(50);
        n.tick(1);
        n.deliver(&c);
    }
    // Now n2 and n3 talk freely: they must elect a master and commit again.
    for _ in 0..200 {
        n.adv(50);
        n.tick(1);
        n.tick(2);
        n.deliver(&all);
    }
    assert!(
        is_master(n.r(1)) || is_master(n.r(2)),
        "no master: {:?} {:?}, malformed {} {}",
        n.r(1).role(),
        n.r(2).role(),
        n.r(1).counters().malformed,
        n.r(2).counters().malformed
    );
    assert!(n.r(1).commit() > Slot(1) && n.r(2).commit() > Slot(1));
}

#[test]
fn a_log_left_behind_a_snapshot_install_is_compacted_at_restart() {
    // The log holds an entry at slot 3 that was never chosen, and its commit index is 1; the
    // state machine installed a snapshot through 5, but the log's compaction was lost.
    let mut storage = MemStorage::new();
    let stale = conformance::sample_entry(3, 1, 7);
    storage
        .write(&Persist {
            hard_state: Some(HardState {
                promised: Ballot {
                    round: 1,
                    node: NodeId(1),
                },
                commit: Slot(1),
            }),
            entries: vec![conformance::sample_entry(1, 1, 1), stale],
            ..Persist::default()
        })
        .unwrap();
    storage.sync().unwrap();
    let config = Config::new(NodeId(2), ids());
    let mut r = Replica::new(config, storage, Time::ZERO, Slot(5)).unwrap();
    assert_eq!(r.commit(), Slot(5));
    // A lagging peer asking from slot 3 is sent to the snapshot, never given the stale entry.
    r.on_message(
        Time(Duration::from_millis(10)),
        NodeId(3),
        Message::CatchUpRequest { from: Slot(3) },
    )
    .unwrap();
    let ready = r.ready();
    assert_eq!(ready.persist.compact_through, Some(Slot(5)));
    assert_eq!(
        ready.messages,
        vec![Envelope {
            to: NodeId(3),
            msg: Message::SnapshotNeeded { slot: Slot(5) }
        }]
    );
}
