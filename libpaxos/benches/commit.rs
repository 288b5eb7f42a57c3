//! Commands per second committed by a 3-replica in-memory cell driven in one thread, with no
//! I/O: the cost of the Paxos core itself. One iteration proposes `batch` commands at the
//! master and pumps messages until the master has committed them all (one Ready, so one fsync,
//! per step on each replica).
//!
//! Run: `cargo bench -p libpaxos --bench commit`

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use libpaxos::{Config, LogStore, MemStorage, Message, NodeId, Replica, Role, Slot, Time};

struct Cell {
    replicas: Vec<Replica<MemStorage>>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    now: Time,
    applied: Vec<Slot>,
}

impl Cell {
    fn new() -> Cell {
        let members = vec![NodeId(1), NodeId(2), NodeId(3)];
        let replicas = members
            .iter()
            .map(|&id| {
                let config = Config::new(id, members.clone());
                Replica::new(config, MemStorage::new(), Time::ZERO, Slot::ZERO).expect("config")
            })
            .collect();
        let mut cell = Cell {
            replicas,
            queue: VecDeque::new(),
            now: Time::ZERO,
            applied: vec![Slot::ZERO; 3],
        };
        // Only n1's timer fires: far past every deadline.
        cell.now = Time(Duration::from_secs(5));
        cell.replicas[0].on_tick(cell.now).expect("tick");
        cell.pump();
        assert!(matches!(cell.replicas[0].role(), Role::Master { .. }));
        cell
    }

    fn process(&mut self, i: usize) {
        let now = self.now;
        let r = &mut self.replicas[i];
        let ready = r.ready();
        if ready.is_empty() && ready.number == 0 {
            return;
        }
        r.storage_mut().write(&ready.persist).expect("write");
        r.storage_mut().sync().expect("sync");
        let from = r.id();
        for e in ready.messages.into_iter().chain(ready.after_persist) {
            self.queue.push_back((from, e.to, e.msg));
        }
        if let Some(last) = ready.committed.last() {
            self.applied[i] = last.slot;
            r.on_applied(last.slot);
            if last.slot.0 % 8192 == 0 {
                r.compact(Slot(last.slot.0 - 1024));
            }
        }
        r.on_persisted(now, ready.number).expect("persisted");
        // on_persisted may have produced more work (our own accept counted).
        let again = r.ready();
        if !again.is_empty() || again.number != 0 {
            r.storage_mut().write(&again.persist).expect("write");
            for e in again.messages.into_iter().chain(again.after_persist) {
                self.queue.push_back((from, e.to, e.msg));
            }
            if let Some(last) = again.committed.last() {
                self.applied[i] = last.slot;
                r.on_applied(last.slot);
            }
            r.on_persisted(now, again.number).expect("persisted");
        }
    }

    fn pump(&mut self) {
        for i in 0..3 {
            self.process(i);
        }
        while let Some((from, to, msg)) = self.queue.pop_front() {
            let i = (to.0 - 1) as usize;
            self.replicas[i]
                .on_message(self.now, from, msg)
                .expect("message");
            self.process(i);
        }
    }

    fn commit_batch(&mut self, batch: usize, payload: &[u8]) {
        let target = Slot(self.replicas[0].commit().0 + batch as u64);
        for _ in 0..batch {
            self.replicas[0]
                .propose(self.now, payload.to_vec())
                .expect("master accepts proposals");
        }
        self.process(0);
        self.pump();
        assert!(self.replicas[0].commit() >= target, "batch committed");
    }
}

fn bench_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_3_replicas");
    let payload = vec![7u8; 64];
    for batch in [1usize, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            let mut cell = Cell::new();
            b.iter(|| cell.commit_batch(black_box(batch), &payload));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_commit);
criterion_main!(benches);
