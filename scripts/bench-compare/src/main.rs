//! Side-by-side throughput of three consensus libraries, each driven the same way: three
//! replicas in one thread, in memory, each library's own in-memory store, 16-byte commands,
//! proposed in batches of 1 or 64 at the leader; a batch is done when the leader has committed
//! and applied it; the run is done when every replica has applied every command. Messages are
//! delivered in FIFO order with no loss. Reports the median of RUNS runs, in commands/s: of
//! elapsed time, and of the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which leaves out the
//! time the thread waited for a core on a loaded machine.
//!
//! Usage: bench-compare [TOTAL_COMMANDS] [RUNS] [LIBRARY] [BATCH]
//!
//! LIBRARY (`libpaxos`, `raft`, `omnipaxos`) and BATCH (`1`, `64`) run only that library or
//! batch size, for profiling one side under callgrind.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Elapsed time and this thread's CPU time since `start`.
struct Timer {
    wall: Instant,
    cpu: Duration,
}

impl Timer {
    fn start() -> Timer {
        Timer {
            wall: Instant::now(),
            cpu: thread_cpu_time(),
        }
    }

    fn elapsed(&self) -> (Duration, Duration) {
        (
            self.wall.elapsed(),
            thread_cpu_time().saturating_sub(self.cpu),
        )
    }
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

const PAYLOAD: [u8; 16] = [7; 16];

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let only_library = args.next();
    let only_batch: Option<usize> = args.next().and_then(|a| a.parse().ok());
    println!("{total} commands of 16 bytes, 3 replicas in one thread, median of {runs} runs");
    type Runner = fn(usize, usize) -> (Duration, Duration);
    let libraries: [(&str, Runner); 3] = [
        ("libpaxos", libpaxos_run),
        ("raft-rs 0.7", raft_run),
        ("omnipaxos 0.2", omnipaxos_run),
    ];
    // Runs interleave the libraries, so a busy machine slows them alike.
    let chosen = |name: &str| only_library.as_deref().is_none_or(|l| name.starts_with(l));
    let batch_chosen = |batch: usize| only_batch.is_none_or(|b| b == batch);
    let mut rates = vec![Vec::new(); libraries.len() * 2];
    let mut cpu_rates = vec![Vec::new(); libraries.len() * 2];
    for _ in 0..runs {
        for (l, (name, run)) in libraries.iter().enumerate() {
            for (b, batch) in [1usize, 64].into_iter().enumerate() {
                if chosen(name) && batch_chosen(batch) {
                    let (wall, cpu) = run(batch, total);
                    rates[l * 2 + b].push(total as f64 / wall.as_secs_f64());
                    cpu_rates[l * 2 + b].push(total as f64 / cpu.as_secs_f64());
                }
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        if v.is_empty() {
            return "-".to_string();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        format!("{:.0} k cmds/s", v[v.len() / 2] / 1000.0)
    };
    for (title, rates) in [("elapsed time", &rates), ("thread CPU time", &cpu_rates)] {
        println!();
        println!("| library ({title}) | batch 1 | batch 64 |");
        println!("|---|---|---|");
        for (l, (name, _)) in libraries.iter().enumerate() {
            if chosen(name) {
                let one = median(rates[l * 2].clone());
                let sixty_four = median(rates[l * 2 + 1].clone());
                println!("| {name} | {one} | {sixty_four} |");
            }
        }
    }
}

// ---------------------------------------------------------------- libpaxos

mod lp {
    use super::*;
    use libpaxos::{
        Config, LogStore, MemStorage, Message, NodeId, Payload, Replica, Role, Slot, Time,
    };

    pub struct Cell {
        pub replicas: Vec<Replica<MemStorage>>,
        queue: VecDeque<(NodeId, NodeId, Message)>,
        pub now: Time,
        pub applied: [usize; 3],
    }

    impl Cell {
        pub fn new() -> Cell {
            let members = vec![NodeId(1), NodeId(2), NodeId(3)];
            let replicas = members
                .iter()
                .map(|&id| {
                    let mut config = Config::new(id, members.clone());
                    config.max_inflight = 4096;
                    Replica::new(config, MemStorage::new(), Time::ZERO, Slot::ZERO).unwrap()
                })
                .collect();
            let mut cell = Cell {
                replicas,
                queue: VecDeque::new(),
                now: Time(Duration::from_secs(5)),
                applied: [0; 3],
            };
            cell.replicas[0].on_tick(cell.now).unwrap();
            cell.pump();
            assert!(matches!(cell.replicas[0].role(), Role::Master { .. }));
            cell
        }

        fn process(&mut self, i: usize) {
            let now = self.now;
            loop {
                let r = &mut self.replicas[i];
                let ready = r.ready();
                if ready.is_empty() && ready.number == 0 {
                    return;
                }
                r.storage_mut().write(&ready.persist).unwrap();
                r.storage_mut().sync().unwrap();
                let from = r.id();
                for e in ready.messages.into_iter().chain(ready.after_persist) {
                    self.queue.push_back((from, e.to, e.msg));
                }
                if let Some(last) = ready.committed.last() {
                    let commands = ready
                        .committed
                        .iter()
                        .filter(|c| matches!(c.value.payload, Payload::Command(_)))
                        .count();
                    self.applied[i] += commands;
                    r.on_applied(last.slot);
                }
                r.on_persisted(now, ready.number).unwrap();
            }
        }

        pub fn pump(&mut self) {
            for i in 0..3 {
                self.process(i);
            }
            while let Some((from, to, msg)) = self.queue.pop_front() {
                let i = (to.0 - 1) as usize;
                self.replicas[i].on_message(self.now, from, msg).unwrap();
                self.process(i);
            }
        }
    }
}

fn libpaxos_run(batch: usize, total: usize) -> (Duration, Duration) {
    let mut cell = lp::Cell::new();
    let start = Timer::start();
    let mut proposed = 0;
    while proposed < total {
        for _ in 0..batch {
            cell.replicas[0]
                .propose(cell.now, PAYLOAD.to_vec())
                .expect("propose");
        }
        proposed += batch;
        cell.pump();
        assert!(cell.applied[0] >= proposed, "leader applied the batch");
    }
    // Followers learn the last commit index from the next heartbeat.
    while cell.applied.iter().any(|&a| a < total) {
        cell.now = cell.now + Duration::from_millis(100);
        cell.replicas[0].on_tick(cell.now).unwrap();
        cell.pump();
    }
    start.elapsed()
}

// ---------------------------------------------------------------- raft-rs

mod rr {
    use super::*;
    use raft::prelude::*;
    use raft::storage::MemStorage;
    use slog::o;

    pub struct Cell {
        pub nodes: Vec<RawNode<MemStorage>>,
        queue: VecDeque<Message>,
        pub applied: [usize; 3],
    }

    impl Cell {
        pub fn new() -> Cell {
            let logger = slog::Logger::root(slog::Discard, o!());
            let nodes = (1..=3u64)
                .map(|id| {
                    // The documented settings for throughput: batched appends, large messages,
                    // a deep pipeline.
                    let config = raft::Config {
                        id,
                        election_tick: 10,
                        heartbeat_tick: 3,
                        max_size_per_msg: 1024 * 1024,
                        max_inflight_msgs: 256,
                        batch_append: true,
                        ..Default::default()
                    };
                    let storage =
                        MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
                    RawNode::new(&config, storage, &logger).unwrap()
                })
                .collect();
            let mut cell = Cell {
                nodes,
                queue: VecDeque::new(),
                applied: [0; 3],
            };
            cell.nodes[0].campaign().unwrap();
            cell.pump();
            assert_eq!(cell.nodes[0].raft.state, raft::StateRole::Leader);
            cell
        }

        fn apply(&mut self, i: usize, entries: Vec<Entry>) {
            self.applied[i] += entries.iter().filter(|e| !e.data.is_empty()).count();
        }

        fn process(&mut self, i: usize) {
            while self.nodes[i].has_ready() {
                let node = &mut self.nodes[i];
                let store = node.store().clone();
                let mut ready = node.ready();
                self.queue.extend(ready.take_messages());
                if !ready.snapshot().is_empty() {
                    store.wl().apply_snapshot(ready.snapshot().clone()).unwrap();
                }
                let committed = ready.take_committed_entries();
                if !ready.entries().is_empty() {
                    store.wl().append(ready.entries()).unwrap();
                }
                if let Some(hs) = ready.hs() {
                    store.wl().set_hardstate(hs.clone());
                }
                self.queue.extend(ready.take_persisted_messages());
                let mut light = node.advance(ready);
                if let Some(commit) = light.commit_index() {
                    store.wl().mut_hard_state().set_commit(commit);
                }
                self.queue.extend(light.take_messages());
                let later = light.take_committed_entries();
                node.advance_apply();
                self.apply(i, committed);
                self.apply(i, later);
            }
        }

        pub fn pump(&mut self) {
            for i in 0..3 {
                self.process(i);
            }
            while let Some(m) = self.queue.pop_front() {
                let i = (m.to - 1) as usize;
                self.nodes[i].step(m).unwrap();
                self.process(i);
            }
        }
    }
}

fn raft_run(batch: usize, total: usize) -> (Duration, Duration) {
    let mut cell = rr::Cell::new();
    let start = Timer::start();
    let mut proposed = 0;
    while proposed < total {
        for _ in 0..batch {
            cell.nodes[0]
                .propose(vec![], PAYLOAD.to_vec())
                .expect("propose");
        }
        proposed += batch;
        cell.pump();
        assert!(cell.applied[0] >= proposed, "leader applied the batch");
    }
    while cell.applied.iter().any(|&a| a < total) {
        for _ in 0..3 {
            cell.nodes[0].tick();
        }
        cell.pump();
    }
    start.elapsed()
}

// ---------------------------------------------------------------- omnipaxos

mod op {
    use super::*;
    use omnipaxos::messages::Message;
    use omnipaxos::util::LogEntry;
    use omnipaxos::{ClusterConfig, OmniPaxos, OmniPaxosConfig, ServerConfig};
    use omnipaxos_storage::memory_storage::MemoryStorage;

    #[derive(Clone, Debug)]
    pub struct Cmd(#[allow(dead_code)] pub Vec<u8>);

    impl omnipaxos::storage::Entry for Cmd {
        type Snapshot = omnipaxos::storage::NoSnapshot;
    }

    pub struct Cell {
        pub nodes: Vec<OmniPaxos<Cmd, MemoryStorage<Cmd>>>,
        buffer: Vec<Message<Cmd>>,
        queue: VecDeque<Message<Cmd>>,
        pub applied: [usize; 3],
        pub leader: usize,
    }

    impl Cell {
        pub fn new() -> Cell {
            let nodes = (1..=3u64)
                .map(|pid| {
                    let config = OmniPaxosConfig {
                        cluster_config: ClusterConfig {
                            configuration_id: 1,
                            nodes: vec![1, 2, 3],
                            ..Default::default()
                        },
                        server_config: ServerConfig {
                            pid,
                            ..Default::default()
                        },
                    };
                    config.build(MemoryStorage::default()).unwrap()
                })
                .collect();
            let mut cell = Cell {
                nodes,
                buffer: Vec::new(),
                queue: VecDeque::new(),
                applied: [0; 3],
                leader: 0,
            };
            for _ in 0..1000 {
                for node in cell.nodes.iter_mut() {
                    node.tick();
                }
                cell.pump();
                let leaders: Vec<_> = cell
                    .nodes
                    .iter()
                    .filter_map(|n| n.get_current_leader())
                    .collect();
                if leaders.len() == 3 && leaders.iter().all(|l| *l == leaders[0] && l.1) {
                    cell.leader = (leaders[0].0 - 1) as usize;
                    return cell;
                }
            }
            panic!("omnipaxos elected no leader");
        }

        pub fn pump(&mut self) {
            loop {
                for node in self.nodes.iter_mut() {
                    node.take_outgoing_messages(&mut self.buffer);
                    self.queue.extend(self.buffer.drain(..));
                }
                if self.queue.is_empty() {
                    break;
                }
                while let Some(m) = self.queue.pop_front() {
                    let i = (m.get_receiver() - 1) as usize;
                    self.nodes[i].handle_incoming(m);
                }
            }
            for i in 0..3 {
                let decided = self.nodes[i].get_decided_idx();
                if decided > self.applied[i] {
                    let entries = self.nodes[i]
                        .read_decided_suffix(self.applied[i])
                        .unwrap_or_default();
                    let commands = entries
                        .iter()
                        .filter(|e| matches!(e, LogEntry::Decided(_)))
                        .count();
                    self.applied[i] += commands;
                }
            }
        }
    }
}

fn omnipaxos_run(batch: usize, total: usize) -> (Duration, Duration) {
    let mut cell = op::Cell::new();
    let leader = cell.leader;
    let start = Timer::start();
    let mut proposed = 0;
    while proposed < total {
        for _ in 0..batch {
            cell.nodes[leader]
                .append(op::Cmd(PAYLOAD.to_vec()))
                .expect("append");
        }
        proposed += batch;
        cell.pump();
        assert!(cell.applied[leader] >= proposed, "leader applied the batch");
    }
    while cell.applied.iter().any(|&a| a < total) {
        for node in cell.nodes.iter_mut() {
            node.tick();
        }
        cell.pump();
    }
    start.elapsed()
}
