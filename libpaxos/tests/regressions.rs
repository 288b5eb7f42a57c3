//! Regression tests for bugs found by a hostile review of the core (each failed before its
//! fix): a deposed master adopting another term's entries through catch-up, a slot near
//! `u64::MAX` hanging the replica, and a ballot round that overflows.

use core::time::Duration;
use libpaxos::*;

type Q = Vec<(NodeId, NodeId, Message)>;

struct H {
    r: Vec<Replica<MemStorage>>,
    q: Q,
    applied: Vec<Vec<(Slot, Value)>>,
    now: Time,
}

fn ms(x: u64) -> Time {
    Time(Duration::from_millis(x))
}

impl H {
    fn new(n: u64, batch: usize) -> H {
        let members: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let r = members
            .iter()
            .map(|&id| {
                let mut c = Config::new(id, members.clone());
                c.max_batch_entries = batch;
                Replica::new(c, MemStorage::new(), ms(0), Slot::ZERO).unwrap()
            })
            .collect();
        H {
            r,
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
    /// deliver messages passing `f` until none; drop those failing `drop`; keep the rest
    fn deliver(&mut self, f: impl Fn(u64, u64, &Message) -> bool) {
        loop {
            let pos = self.q.iter().position(|(a, b, m)| f(a.0, b.0, m));
            let Some(p) = pos else { break };
            let (from, to, m) = self.q.remove(p);
            let i = (to.0 - 1) as usize;
            let now = self.now;
            self.r[i].on_message(now, from, m).unwrap();
            self.pump(i);
        }
    }
    fn drop_all(&mut self) {
        self.q.clear();
    }
    fn take(&mut self, f: impl Fn(u64, u64, &Message) -> bool) -> Vec<(NodeId, NodeId, Message)> {
        let (t, k): (Q, Q) = core::mem::take(&mut self.q)
            .into_iter()
            .partition(|(a, b, m)| f(a.0, b.0, m));
        self.q = k;
        t
    }
}

fn cmd(x: u8) -> Vec<u8> {
    vec![x]
}

#[test]
fn a_deposed_master_ignores_catch_up_so_its_followers_never_commit_an_unchosen_value() {
    // n1 = M, n2 = A, n3, n4, n5 = F
    let mut h = H::new(5, 2);
    h.now = ms(1100);
    h.tick(1); // A stands
    h.deliver(|_, _, _| true);
    assert!(
        matches!(h.r[1].role(), Role::Master { .. }),
        "{:?}",
        h.r[1].role()
    );
    h.now = ms(1110);
    h.tick(1);
    h.deliver(|_, _, _| true);
    // slots 2..6 everywhere
    for x in 2..=6 {
        h.r[1].propose(h.now, cmd(x)).unwrap();
    }
    h.pump(1);
    h.deliver(|_, _, _| true);
    h.now = ms(1220);
    h.tick(1);
    h.deliver(|_, _, _| true);
    for i in 0..5 {
        assert_eq!(h.r[i].commit(), Slot(6), "node {}", i + 1);
    }
    // slots 7..10 accepted only by A, n3, n4
    for x in 7..=10 {
        h.r[1].propose(h.now, cmd(x)).unwrap();
    }
    h.pump(1);
    h.deliver(|a, b, _| (a == 2 && (b == 3 || b == 4)) || ((a == 3 || a == 4) && b == 2));
    h.drop_all();
    assert_eq!(h.r[1].commit(), Slot(10));
    // heartbeat (commit 10) only to M; M asks A to catch up; A's reply is held back
    h.now = ms(1330);
    h.tick(1);
    h.deliver(|a, b, m| a == 2 && b == 1 && matches!(m, Message::Heartbeat { .. }));
    h.deliver(|a, b, m| a == 1 && b == 2 && matches!(m, Message::CatchUpRequest { .. }));
    let held = h.take(|a, b, m| a == 2 && b == 1 && matches!(m, Message::CatchUp { .. }));
    assert_eq!(held.len(), 1, "{held:?}");
    println!("held: {:?}", held[0].2);
    h.drop_all();
    // A goes quiet. M stands after leases expire.
    h.now = ms(1330 + 1100);
    h.tick(0);
    h.deliver(|a, b, m| {
        a != 2
            && b != 2
            && (matches!(
                m,
                Message::PreVote { .. }
                    | Message::PreVoteReply { .. }
                    | Message::Prepare { .. }
                    | Message::Promise { .. }
            ) || a == 5
                || b == 5)
    });
    h.drop_all();
    println!("M role {:?} commit {}", h.r[0].role(), h.r[0].commit());
    assert!(matches!(h.r[0].role(), Role::Master { .. }));
    // M proposes v at 12; only F (n5) hears any accept
    let (slot_v, _) = h.r[0].propose(h.now, cmd(99)).unwrap();
    h.pump(0);
    h.deliver(|a, b, _| (a == 1 && b == 5) || (a == 5 && b == 1));
    h.drop_all();
    println!(
        "M proposed v at {slot_v}; M commit {} F commit {}",
        h.r[0].commit(),
        h.r[4].commit()
    );
    // A: steps down (no lease for ET), then stands with a higher ballot, quorum A, n3, n4
    h.now = ms(1330 + 1100 + 1000);
    h.tick(1);
    h.drop_all();
    h.now = ms(1330 + 1100 + 2100);
    h.tick(1);
    println!("A role {:?}", h.r[1].role());
    h.deliver(|a, b, _| [2, 3, 4].contains(&a) && [2, 3, 4].contains(&b));
    println!("A role {:?} commit {}", h.r[1].role(), h.r[1].commit());
    // A proposes w at slot 12 (after its noop at 11)
    let (slot_w, _) = h.r[1].propose(h.now, cmd(77)).unwrap();
    h.pump(1);
    h.deliver(|a, b, _| [2, 3, 4].contains(&a) && [2, 3, 4].contains(&b));
    h.drop_all();
    println!("A proposed w at {slot_w}; A commit {}", h.r[1].commit());
    // the old reply reaches M, still master of B; M chains catch-up requests to A
    assert!(matches!(h.r[0].role(), Role::Master { .. }));
    let (f, t, m) = held.into_iter().next().unwrap();
    h.q.push((f, t, m));
    h.deliver(|a, b, m| {
        (a == 2 && b == 1 && matches!(m, Message::CatchUp { .. }))
            || (a == 1 && b == 2 && matches!(m, Message::CatchUpRequest { .. }))
    });
    h.drop_all();
    println!("M role {:?} commit {}", h.r[0].role(), h.r[0].commit());
    // M heartbeats F
    // (no tick: a tick here would see M's lease lapsed for > ET in this compressed timeline)
    h.r[0].propose(h.now, cmd(55)).unwrap();
    h.pump(0);
    h.deliver(|a, b, m| a == 1 && b == 5 && matches!(m, Message::Accept { .. }));
    println!("F commit {}", h.r[4].commit());
    let at = |i: usize, s: Slot| h.applied[i].iter().find(|x| x.0 == s).map(|x| x.1.clone());
    for s in 11..=12 {
        let s = Slot(s);
        println!(
            "slot {s}: A {:?} | F {:?} | M {:?}",
            at(1, s),
            at(4, s),
            at(0, s)
        );
    }
    let (a, f) = (at(1, slot_w), at(4, slot_w));
    assert!(
        f.is_none() || a == f,
        "two values chosen for one slot: {a:?} vs {f:?}"
    );
}

#[test]
fn an_absurd_ballot_round_is_refused_and_elections_still_work() {
    let mut h = H::new(3, 256);
    // a member's Reject carrying an absurd promised ballot poisons highest_seen
    let bad = Ballot {
        round: u64::MAX,
        node: NodeId(3),
    };
    h.r[0]
        .on_message(
            ms(0),
            NodeId(3),
            Message::Reject {
                ballot: Ballot::ZERO,
                promised: bad,
            },
        )
        .unwrap();
    h.now = ms(1100);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.r[0].on_tick(ms(1100))));
    println!(
        "tick after poisoned reject: {:?}",
        r.as_ref().map(|_| ()).map_err(|_| "panicked")
    );
    assert!(r.is_ok(), "tick panicked on round overflow");
}

#[test]
fn an_accept_at_a_huge_slot_is_refused_and_a_prepare_still_returns() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut h = H::new(3, 256);
        let b = Ballot {
            round: 1,
            node: NodeId(1),
        };
        let e = Entry {
            slot: Slot(u64::MAX),
            ballot: b,
            value: Value {
                epoch: b.epoch(),
                payload: Payload::Noop,
            },
        };
        h.now = ms(500);
        h.r[1]
            .on_message(
                ms(500),
                NodeId(1),
                Message::Accept {
                    ballot: b,
                    commit: Slot::ZERO,
                    entries: vec![e],
                },
            )
            .unwrap();
        h.pump(1);
        let b3 = Ballot {
            round: 2,
            node: NodeId(3),
        };
        h.now = ms(1000);
        h.r[1]
            .on_message(
                ms(1000),
                NodeId(3),
                Message::Prepare {
                    ballot: b3,
                    from: Slot(1),
                },
            )
            .unwrap();
        tx.send(()).unwrap();
    });
    let r = rx.recv_timeout(Duration::from_secs(3));
    assert!(
        r.is_ok(),
        "on_message(Prepare) did not return within 3 s after an Accept at slot u64::MAX"
    );
}
