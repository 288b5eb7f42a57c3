//! A whole cell of replicas over [`MemStorage`], a simulated network and skewed clocks, driven
//! one millisecond of true time per step, with the invariants checked after every step.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::time::Duration;

use super::checker::Checker;
use super::network::{Network, NetworkConfig, chance};
use crate::Persist;
use crate::config::Config;
use crate::mem_storage::MemStorage;
use crate::message::{Envelope, Message};
use crate::ready::{Committed, Event, Role};
use crate::replica::Replica;
use crate::rng::SplitMix64;
use crate::storage::{LogStore, Storage};
use crate::types::{NodeId, Payload, Slot, Time};

/// One simulated millisecond per step.
pub const STEP: Duration = Duration::from_millis(1);

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Cell size (3 or 5 in the tests).
    pub nodes: usize,
    /// Everything random in the run is drawn from this seed.
    pub seed: u64,
    /// The replicas' lease.
    pub lease: Duration,
    /// Clock rates are drawn from `[1 - max_drift, 1 + max_drift]`; replicas are configured with
    /// the same bound.
    pub max_drift: f64,
    /// Delay, loss and duplication.
    pub network: NetworkConfig,
    /// Per live replica, crashes per simulated second (only with random faults on).
    pub crash_rate: f64,
    /// Partition changes per simulated second (only with random faults on).
    pub partition_rate: f64,
    /// Per replica and step, the chance that pending writes get synced.
    pub sync_chance: f64,
    /// Commands proposed per simulated second.
    pub propose_rate: f64,
    /// Compact when this many applied slots are above the last compaction.
    pub compact_every: u64,
    /// Keep this many slots below the applied index when compacting.
    pub keep_tail: u64,
    /// `Config::max_inflight` of every replica; small values exercise the accept window.
    pub max_inflight: u64,
    /// Chance that a restarted replica's state machine comes back from its snapshot only (as
    /// one kept in memory would), so committed entries above it are handed out again.
    pub restart_from_snapshot: f64,
    /// Keep the full text of the trace (for determinism checks and printing), not only its hash.
    pub record_trace: bool,
    /// A deliberately broken behaviour for every replica.
    #[cfg(feature = "fault-injection")]
    pub fault: Option<crate::Fault>,
}

impl SimConfig {
    /// A hostile default: loss, duplication, reordering, crashes and partitions.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            lease: Duration::from_millis(200),
            max_drift: 0.01,
            network: NetworkConfig {
                min_delay: Duration::from_micros(200),
                max_delay: Duration::from_millis(8),
                loss: 0.05,
                duplicate: 0.02,
                slow: 0.01,
                slow_delay: Duration::from_millis(1500),
            },
            crash_rate: 0.3,
            partition_rate: 1.0,
            sync_chance: 0.4,
            propose_rate: 150.0,
            compact_every: 64,
            keep_tail: 16,
            max_inflight: 256,
            restart_from_snapshot: 0.3,
            record_trace: false,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }
}

/// Work a replica produced that waits for its sync.
struct Held {
    number: u64,
    after_persist: Vec<Envelope>,
    committed: Vec<Committed>,
}

/// One simulated server.
pub struct SimNode {
    /// Its id.
    pub id: NodeId,
    replica: Option<Replica<MemStorage>>,
    /// The storage of a replica that is down (it survives the crash).
    parked: Option<MemStorage>,
    clock_offset: Duration,
    clock_rate: f64,
    held: Vec<Held>,
    /// The state machine: applied through here (volatile).
    pub applied: Slot,
    /// Applied and flushed through here (what survives a crash).
    pub durable_applied: Slot,
    incarnation: u64,
    down_until: Option<Duration>,
    /// Role last reported, for the trace and the leadership history.
    pub role: Role,
    /// Lease promises this replica made, as the outside world saw them (its heartbeat acks):
    /// per master, until when in this replica's clock. Kept across its crashes, which is the
    /// point: the replica forgets them, the checker does not.
    grants: BTreeMap<NodeId, (crate::types::Ballot, Time)>,
}

/// A client proposal waiting to be applied by the replica it was sent to.
struct Proposal {
    id: u64,
}

/// The simulated cell.
pub struct Cluster {
    config: SimConfig,
    rng: SplitMix64,
    /// True time.
    pub now: Duration,
    /// The replicas.
    pub nodes: Vec<SimNode>,
    /// The network.
    pub net: Network,
    /// The invariant checker.
    pub checker: Checker,
    random_faults: bool,
    proposals: BTreeMap<(usize, Slot), Proposal>,
    next_command: u64,
    /// Writes acknowledged to the client, and the true time of the last one.
    pub acked: u64,
    /// When the last acknowledgement happened, with the command id.
    pub last_ack: Option<(Duration, u64)>,
    /// Who became master when: `(true time, node, ballot round)`.
    pub leadership: Vec<(Duration, NodeId, u64)>,
    trace_hash: u64,
    trace_text: String,
}

impl Cluster {
    /// Builds the cell with every replica up.
    pub fn new(config: SimConfig) -> Cluster {
        let mut rng = SplitMix64::new(config.seed);
        let members: Vec<NodeId> = (1..=config.nodes as u64).map(NodeId).collect();
        let mut nodes = Vec::new();
        for &id in &members {
            let offset = Duration::from_micros(rng.below(3_600_000_000));
            let spread = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let rate = 1.0 - config.max_drift + 2.0 * config.max_drift * spread;
            nodes.push(SimNode {
                id,
                replica: None,
                parked: Some(MemStorage::new()),
                clock_offset: offset,
                clock_rate: rate,
                held: Vec::new(),
                applied: Slot::ZERO,
                durable_applied: Slot::ZERO,
                incarnation: 0,
                down_until: None,
                role: Role::Follower { master: None },
                grants: BTreeMap::new(),
            });
        }
        let mut cluster = Cluster {
            net: Network::new(config.network.clone()),
            config,
            rng,
            now: Duration::ZERO,
            nodes,
            checker: Checker::default(),
            random_faults: false,
            proposals: BTreeMap::new(),
            next_command: 1,
            acked: 0,
            last_ack: None,
            leadership: Vec::new(),
            trace_hash: 0xcbf2_9ce4_8422_2325,
            trace_text: String::new(),
        };
        for i in 0..cluster.nodes.len() {
            cluster.start(i);
        }
        cluster
    }

    /// Turns crashes and partitions on or off.
    pub fn set_random_faults(&mut self, on: bool) {
        self.random_faults = on;
    }

    /// The FNV-1a hash of the trace so far.
    pub fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    /// The trace text (empty unless `record_trace`).
    pub fn trace_text(&self) -> &str {
        &self.trace_text
    }

    /// The first invariant violation, if any.
    pub fn violation(&self) -> Option<&str> {
        self.checker.violation.as_deref()
    }

    /// The replica of node index `i`, if it is up.
    pub fn replica(&self, i: usize) -> Option<&Replica<MemStorage>> {
        self.nodes[i].replica.as_ref()
    }

    /// The quorum of the cell.
    pub fn quorum(&self) -> usize {
        self.config.nodes / 2 + 1
    }

    fn trace(&mut self, line: core::fmt::Arguments<'_>) {
        let mut text = String::new();
        let _ = writeln!(text, "{:>9.3} {}", self.now.as_secs_f64(), line);
        for byte in text.as_bytes() {
            self.trace_hash ^= u64::from(*byte);
            self.trace_hash = self.trace_hash.wrapping_mul(0x0100_0000_01b3);
        }
        if self.config.record_trace {
            self.trace_text.push_str(&text);
        }
    }

    fn local_time(&self, i: usize) -> Time {
        let node = &self.nodes[i];
        Time(node.clock_offset + self.now.mul_f64(node.clock_rate))
    }

    fn replica_config(&self, i: usize) -> Config {
        let members: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let node = &self.nodes[i];
        let mut config = Config::new(node.id, members).with_lease(self.config.lease);
        config.max_drift = self.config.max_drift;
        config.seed = self.config.seed ^ (node.id.0 << 32) ^ node.incarnation;
        config.max_inflight = self.config.max_inflight;
        #[cfg(feature = "fault-injection")]
        {
            config.fault = self.config.fault;
        }
        config
    }

    fn start(&mut self, i: usize) {
        let config = self.replica_config(i);
        let now = self.local_time(i);
        let Some(storage) = self.nodes[i].parked.take() else {
            return;
        };
        let compacted = storage.compacted_through().unwrap_or(Slot::ZERO);
        if self.nodes[i].incarnation > 0 && chance(&mut self.rng, self.config.restart_from_snapshot)
        {
            // The state machine lost what it applied after its snapshot.
            self.nodes[i].durable_applied = compacted;
        }
        let applied = self.nodes[i].durable_applied.max(compacted);
        match Replica::new(config, storage, now, applied) {
            Ok(replica) => {
                let node = &mut self.nodes[i];
                node.replica = Some(replica);
                node.applied = applied;
                node.down_until = None;
                node.role = Role::Follower { master: None };
                let id = node.id;
                self.checker.on_restart(id);
                self.trace(format_args!("{id} up (applied {applied})"));
            }
            Err(err) => {
                let what = format!("{} failed to start: {err}", self.nodes[i].id);
                self.checker.violation.get_or_insert(what);
            }
        }
    }

    /// Crashes node `i`: unsynced writes and unsent after-persist messages are lost.
    pub fn crash(&mut self, i: usize, down_for: Duration) {
        let node = &mut self.nodes[i];
        let Some(replica) = node.replica.take() else {
            return;
        };
        let mut storage = replica_storage(replica);
        storage.crash();
        node.parked = Some(storage);
        node.held.clear();
        node.applied = node.durable_applied;
        node.incarnation += 1;
        node.down_until = Some(self.now + down_for);
        node.role = Role::Follower { master: None };
        let id = node.id;
        self.proposals.retain(|(n, _), _| *n != i);
        self.trace(format_args!("{id} crashed"));
    }

    /// Restarts node `i` if it is down.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].replica.is_none() {
            self.start(i);
        }
    }

    /// Cuts the cell in two.
    pub fn partition(&mut self, side_a: &[usize], side_b: &[usize]) {
        let a: Vec<NodeId> = side_a.iter().map(|&i| self.nodes[i].id).collect();
        let b: Vec<NodeId> = side_b.iter().map(|&i| self.nodes[i].id).collect();
        self.net.partition(&a, &b);
        self.trace(format_args!("partition {a:?} | {b:?}"));
    }

    /// Ends every fault: restarts every replica, heals the network, stops loss and duplication.
    pub fn heal_all(&mut self) {
        self.random_faults = false;
        for i in 0..self.nodes.len() {
            self.restart(i);
        }
        self.net.heal();
        self.net.set_faults(0.0, 0.0);
        self.trace(format_args!("healed"));
    }

    /// Heals the network only.
    pub fn heal_network(&mut self) {
        self.net.heal();
        self.trace(format_args!("network healed"));
    }

    /// The index of a replica that is master now, if any.
    pub fn master(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| matches!(n.role, Role::Master { .. }) && n.replica.is_some())
    }

    /// Proposes one command at the current master, if there is one. Returns its id.
    pub fn propose(&mut self) -> Option<u64> {
        let masters: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i].role, Role::Master { .. }))
            .collect();
        if masters.is_empty() {
            return None;
        }
        let i = masters[self.rng.below(masters.len() as u64) as usize];
        let id = self.next_command;
        let now = self.local_time(i);
        let replica = self.nodes[i].replica.as_mut()?;
        let (slot, _) = replica.propose(now, id.to_le_bytes().to_vec()).ok()?;
        self.next_command += 1;
        self.proposals.insert((i, slot), Proposal { id });
        self.process(i);
        Some(id)
    }

    /// Runs for `duration` of true time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end && self.violation().is_none() {
            self.step();
        }
    }

    /// One millisecond of true time.
    pub fn step(&mut self) {
        self.now += STEP;
        if self.random_faults {
            self.inject_faults();
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].down_until.is_some_and(|t| t <= self.now) && self.random_faults {
                self.start(i);
            }
        }
        while let Some(message) = self.net.pop_due(self.now) {
            let Some(i) = self.index_of(message.to) else {
                continue;
            };
            let now = self.local_time(i);
            let Some(replica) = self.nodes[i].replica.as_mut() else {
                continue;
            };
            let kind = message.msg.kind();
            if let Err(err) = replica.on_message(now, message.from, message.msg) {
                self.checker
                    .violation
                    .get_or_insert(format!("storage error: {err}"));
            }
            self.trace(format_args!("{} -> {} {kind}", message.from, message.to));
            self.process(i);
        }
        for i in 0..self.nodes.len() {
            let now = self.local_time(i);
            if let Some(replica) = self.nodes[i].replica.as_mut() {
                if let Err(err) = replica.on_tick(now) {
                    self.checker
                        .violation
                        .get_or_insert(format!("storage error: {err}"));
                }
                self.process(i);
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].replica.is_some() && chance(&mut self.rng, self.config.sync_chance) {
                self.sync(i);
            }
        }
        let per_step = self.config.propose_rate * STEP.as_secs_f64();
        if chance(&mut self.rng, per_step) {
            self.propose();
        }
        self.check();
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn inject_faults(&mut self) {
        let dt = STEP.as_secs_f64();
        let down = self.nodes.iter().filter(|n| n.replica.is_none()).count();
        let minority = (self.config.nodes - 1) / 2;
        for i in 0..self.nodes.len() {
            let up = self.nodes[i].replica.is_some();
            if up && down < minority && chance(&mut self.rng, self.config.crash_rate * dt) {
                // Half the crashes are quick restarts (a supervisor bringing the process
                // back within a lease), the rest long outages that need catch-up.
                let down_for = if chance(&mut self.rng, 0.5) {
                    Duration::from_millis(5 + self.rng.below(250))
                } else {
                    Duration::from_millis(50 + self.rng.below(1500))
                };
                self.crash(i, down_for);
                // Correlated failure: what took the replica down (a switch, a rack) often cuts
                // it off from the master too, so it comes back unable to hear the master.
                if chance(&mut self.rng, 0.5)
                    && let Some(master) = self.master()
                {
                    self.partition(&[i], &[master]);
                }
                return;
            }
        }
        if chance(&mut self.rng, self.config.partition_rate * dt) {
            // Half the time the new cut adds to what is already cut: failures compound.
            if chance(&mut self.rng, 0.5) {
                self.net.heal();
            }
            if chance(&mut self.rng, 0.3) {
                // A partial partition: one link down, everything else up (not transitive).
                let n = self.nodes.len() as u64;
                let a = self.rng.below(n) as usize;
                let b = (a + 1 + self.rng.below(n - 1) as usize) % self.nodes.len();
                self.partition(&[a], &[b]);
            } else if chance(&mut self.rng, 0.6) {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for i in 0..self.nodes.len() {
                    if chance(&mut self.rng, 0.5) {
                        a.push(i);
                    } else {
                        b.push(i);
                    }
                }
                self.partition(&a, &b);
            } else {
                self.trace(format_args!("network healed"));
            }
        }
    }

    /// Takes and performs every Ready of node `i` (except the sync, which comes later).
    fn process(&mut self, i: usize) {
        loop {
            let Some(replica) = self.nodes[i].replica.as_mut() else {
                return;
            };
            let ready = replica.ready();
            if ready.is_empty() && ready.number == 0 {
                return;
            }
            if let Err(err) = replica.storage_mut().write(&ready.persist) {
                self.checker
                    .violation
                    .get_or_insert(format!("storage error: {err}"));
                return;
            }
            let id = self.nodes[i].id;
            let local = self.local_time(i);
            let lease = self.config.lease;
            // Following a ballot (acking its heartbeat or accepts) proves it won phase 1, which
            // a majority granted only after every older master's lease had run out: older
            // grants are void from then on. Acking a heartbeat grants its master a lease.
            for envelope in ready.messages.iter().chain(&ready.after_persist) {
                if let Message::HeartbeatAck { ballot, .. } | Message::Accepted { ballot, .. } =
                    envelope.msg
                {
                    let grants = &mut self.nodes[i].grants;
                    grants.retain(|_, (granted, _)| *granted >= ballot);
                    if matches!(envelope.msg, Message::HeartbeatAck { .. }) {
                        let entry = grants.entry(ballot.node).or_insert((ballot, local));
                        *entry = (ballot, entry.1.max(local + lease));
                    }
                }
            }
            for envelope in ready.after_persist.iter() {
                if let Message::Promise { ballot, .. } = envelope.msg {
                    self.check_promise(i, ballot, local);
                }
            }
            for envelope in ready.messages {
                self.net
                    .send(&mut self.rng, self.now, id, envelope.to, envelope.msg);
            }
            for committed in &ready.committed {
                self.check_commit_majority(i, committed);
            }
            self.nodes[i].held.push(Held {
                number: ready.number,
                after_persist: ready.after_persist,
                committed: ready.committed,
            });
            let mut more = false;
            for event in ready.events {
                more |= self.on_event(i, event);
            }
            if !more {
                return;
            }
        }
    }

    /// A replica promises `ballot` at its local time `local`: it must not owe a lease to any
    /// other master then (DESIGN §3: a replica that heard a master promises not to promise any
    /// other ballot for a lease, even across a restart).
    fn check_promise(&mut self, i: usize, ballot: crate::types::Ballot, local: Time) {
        let node = &self.nodes[i];
        let owed = node
            .grants
            .iter()
            .find(|(master, (_, until))| **master != ballot.node && local < *until)
            .map(|(master, _)| *master);
        if let Some(master) = owed {
            let what = format!(
                "{} promised ballot {ballot} while it owed {master} a lease",
                node.id
            );
            let now = self.now;
            self.checker.fail_at(now, what);
        }
    }

    fn on_event(&mut self, i: usize, event: Event) -> bool {
        let id = self.nodes[i].id;
        if let Event::RoleChanged(Role::Candidate { ballot }) = event {
            let local = self.local_time(i);
            self.check_promise(i, ballot, local);
        }
        match event {
            Event::RoleChanged(role) => {
                self.nodes[i].role = role;
                if let Role::Master { ballot } = role {
                    self.leadership.push((self.now, id, ballot.round));
                }
                self.trace(format_args!("{id} is now {role:?}"));
                false
            }
            Event::LeaseAcquired | Event::LeaseLost => {
                self.trace(format_args!("{id} {event:?}"));
                false
            }
            Event::SnapshotNeeded { from, slot } => self.install_snapshot(i, from, slot),
        }
    }

    /// Installs `from`'s state as a snapshot on node `i`, if `from` is up and far enough.
    fn install_snapshot(&mut self, i: usize, from: NodeId, slot: Slot) -> bool {
        let Some(source) = self.index_of(from) else {
            return false;
        };
        let upto = self.nodes[source].durable_applied;
        if self.nodes[source].replica.is_none() || upto < slot {
            let id = self.nodes[i].id;
            self.trace(format_args!("{id} cannot get a snapshot from {from}"));
            return false;
        }
        let now = self.local_time(i);
        let node = &mut self.nodes[i];
        let Some(replica) = node.replica.as_mut() else {
            return false;
        };
        if upto <= replica.commit() {
            return false;
        }
        // The database installs the snapshot and compacts the log in one durable step.
        let compaction = Persist {
            compact_through: Some(upto),
            ..Persist::default()
        };
        if replica.storage_mut().write(&compaction).is_err()
            || replica.storage_mut().sync().is_err()
        {
            return false;
        }
        node.applied = upto;
        node.durable_applied = upto;
        if let Err(err) = replica.on_snapshot_installed(now, upto) {
            self.checker
                .violation
                .get_or_insert(format!("storage error: {err}"));
        }
        let id = node.id;
        self.trace(format_args!(
            "{id} installed a snapshot through {upto} from {from}"
        ));
        true
    }

    /// Syncs node `i`: the held messages go out, the held entries are applied.
    fn sync(&mut self, i: usize) {
        let now = self.local_time(i);
        let node = &mut self.nodes[i];
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        if node.held.is_empty() && !replica.storage().has_unsynced() {
            return;
        }
        if replica.storage_mut().sync().is_err() {
            return;
        }
        let promised = replica.storage().durable_hard_state().promised;
        let id = node.id;
        self.checker.on_durable_promise(id, promised);
        let held = core::mem::take(&mut self.nodes[i].held);
        let mut number = 0;
        for batch in held {
            number = number.max(batch.number);
            for envelope in batch.after_persist {
                self.net
                    .send(&mut self.rng, self.now, id, envelope.to, envelope.msg);
            }
            for committed in batch.committed {
                self.apply(i, committed);
            }
        }
        let node = &mut self.nodes[i];
        node.durable_applied = node.applied;
        let applied = node.applied;
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        replica.on_applied(applied);
        if let Err(err) = replica.on_persisted(now, number) {
            self.checker
                .violation
                .get_or_insert(format!("storage error: {err}"));
        }
        let compacted = replica.storage().compacted_through().unwrap_or(Slot::ZERO);
        if applied.0 > compacted.0 + self.config.compact_every {
            replica.compact(Slot(applied.0 - self.config.keep_tail));
        }
        self.process(i);
    }

    fn apply(&mut self, i: usize, committed: Committed) {
        let now = self.now;
        let id = self.nodes[i].id;
        if committed.slot <= self.nodes[i].applied {
            return;
        }
        self.checker
            .on_apply(now, id, committed.slot, &committed.value);
        self.nodes[i].applied = committed.slot;
        if let Some(proposal) = self.proposals.remove(&(i, committed.slot))
            && committed.value.payload == Payload::Command(proposal.id.to_le_bytes().to_vec())
        {
            self.checker.on_ack(committed.slot);
            self.acked += 1;
            self.last_ack = Some((now, proposal.id));
        }
    }

    /// A committed slot must be durably held by a majority (or compacted by it, which it does
    /// only for applied slots): a master counts an accept only after its sender's fsync.
    fn check_commit_majority(&mut self, i: usize, committed: &Committed) {
        let holders = self
            .nodes
            .iter()
            .filter(|n| {
                let storage = match (&n.replica, &n.parked) {
                    (Some(r), _) => r.storage(),
                    (None, Some(s)) => s,
                    (None, None) => return false,
                };
                storage
                    .compacted_through()
                    .is_ok_and(|c| c >= committed.slot)
                    || storage
                        .durable_entry(committed.slot)
                        .is_some_and(|e| e.value == committed.value)
            })
            .count();
        let (now, id, quorum) = (self.now, self.nodes[i].id, self.quorum());
        self.checker
            .check_majority(now, id, committed.slot, holders, quorum);
    }

    fn check(&mut self) {
        let now = self.now;
        if self.now.as_millis().is_multiple_of(250) {
            self.check_durably_chosen();
        }
        let mut lease_holders = Vec::new();
        for i in 0..self.nodes.len() {
            let local = self.local_time(i);
            let node = &self.nodes[i];
            let Some(replica) = node.replica.as_ref() else {
                continue;
            };
            let (id, promised, commit, applied) =
                (node.id, replica.promised(), replica.commit(), node.applied);
            let holds_lease = replica.lease_valid(local);
            let fence = replica.read_fence(local);
            self.checker
                .check_replica(now, id, promised, commit, applied);
            if holds_lease {
                lease_holders.push(id);
            }
            if fence.is_some_and(|f| applied >= f) {
                self.checker.check_read(now, id, applied);
            }
        }
        self.checker.check_leases(now, &lease_holders);
    }

    /// Checks what the replicas' durable logs say was chosen (see
    /// [`Checker::check_durably_chosen`]).
    pub fn check_durably_chosen(&mut self) {
        let logs: Vec<Vec<crate::types::Entry>> = self
            .nodes
            .iter()
            .filter_map(|n| match (&n.replica, &n.parked) {
                (Some(r), _) => Some(r.storage().durable_entries()),
                (None, Some(s)) => Some(s.durable_entries()),
                (None, None) => None,
            })
            .collect();
        let (now, quorum) = (self.now, self.quorum());
        self.checker.check_durably_chosen(now, &logs, quorum);
    }

    /// Whether every replica is up and has committed through `slot`.
    pub fn converged(&self, slot: Slot) -> bool {
        self.nodes
            .iter()
            .all(|n| n.replica.as_ref().is_some_and(|r| r.commit() >= slot))
    }

    /// A one-line summary for reports.
    pub fn summary(&self) -> String {
        format!(
            "t={:.1}s chosen={} acked={} reads={} terms={} delivered={} dropped={}",
            self.now.as_secs_f64(),
            self.checker.chosen.len(),
            self.acked,
            self.checker.reads,
            self.leadership.len(),
            self.net.delivered,
            self.net.dropped
        )
    }
}

fn replica_storage(replica: Replica<MemStorage>) -> MemStorage {
    replica.into_storage()
}
