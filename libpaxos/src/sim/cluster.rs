//! A whole cell of replicas over [`MemStorage`], a simulated network and drifting clocks,
//! driven one millisecond of true time per step, with the invariants checked after every step
//! (and, for what a message claims, at the moment it leaves its sender).

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
    /// Cell size (1, 3, 5 or 7 in the tests).
    pub nodes: usize,
    /// Everything random in the run is drawn from this seed.
    pub seed: u64,
    /// The replicas' lease.
    pub lease: Duration,
    /// Clock rates are drawn from `[1 - max_drift, 1 + max_drift]`; replicas are configured with
    /// the same bound.
    pub max_drift: f64,
    /// Per replica, changes of its clock rate per simulated second (a new rate within the
    /// drift bound each time).
    pub clock_change_rate: f64,
    /// Per live replica, process pauses per simulated second (only with random faults on): the
    /// replica is frozen (no input, no tick, no sync) while its clock runs on, so it sees time
    /// jump when it wakes.
    pub pause_rate: f64,
    /// Longest pause.
    pub max_pause: Duration,
    /// Per replica, disk failures per simulated second (only with random faults on): for a few
    /// milliseconds every read, write and sync fails. A failed write or sync crashes the
    /// replica (fail-stop, as a server must); a failed read leaves the call without a trace.
    pub disk_error_rate: f64,
    /// Per replica, disk stalls per simulated second (only with random faults on): no sync
    /// completes for up to `max_slow_sync`.
    pub slow_sync_rate: f64,
    /// Longest disk stall.
    pub max_slow_sync: Duration,
    /// Chance that a replica crashes right after it acknowledges a heartbeat (only with random
    /// faults on); half of those crashes also cut the master off from everyone, so the others
    /// elect a new master while the restarted replica is in its quiet period.
    pub crash_after_ack: f64,
    /// Chance that a replica taking office is sent, over the next eight leases, copies of
    /// replies addressed to it earlier (only with random faults on): old-term accept acks,
    /// heartbeat acks, promises and rejections arriving in a later term.
    pub redeliver_on_office: f64,
    /// Per simulated second, the chance that the master is asked to hand over (only with
    /// random faults on): to a random member, or with `None` to the most up-to-date one.
    pub handover_rate: f64,
    /// Chance that the old master or the member it handed over to crashes right after the
    /// hand-over (only with random faults on).
    pub crash_after_handover: f64,
    /// Chance that each lease release (and `TimeoutNow`) is delivered once more 0.2–3 s
    /// later, typically after a newer master took office (only with random faults on).
    pub replay_release: f64,
    /// A broken driver, for showing what the time contract is for: the `now` handed to the
    /// core with a message is up to this much *earlier* than the message's arrival (as a driver
    /// that read its clock before a long fsync would do). Zero in every honest run.
    pub early_clock: Duration,
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
    /// Compact when this many applied slots are above the last compaction (and, at any sync,
    /// with a small chance); the point is drawn between the last compaction and the applied
    /// index.
    pub compact_every: u64,
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
            clock_change_rate: 1.0,
            pause_rate: 0.1,
            max_pause: Duration::from_millis(600),
            disk_error_rate: 0.05,
            slow_sync_rate: 0.2,
            max_slow_sync: Duration::from_millis(300),
            crash_after_ack: 0.004,
            redeliver_on_office: 0.5,
            handover_rate: 0.0,
            crash_after_handover: 0.2,
            replay_release: 0.2,
            early_clock: Duration::ZERO,
            network: NetworkConfig {
                min_delay: Duration::from_micros(200),
                max_delay: Duration::from_millis(8),
                loss: 0.05,
                duplicate: 0.02,
                slow: 0.01,
                slow_delay: Duration::from_millis(1500),
                replay: 0.003,
                replay_delay: Duration::from_secs(3),
            },
            crash_rate: 0.3,
            partition_rate: 1.0,
            sync_chance: 0.4,
            propose_rate: 150.0,
            compact_every: 64,
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
    /// Its clock's reading (it runs while the replica is down or paused).
    clock: Time,
    clock_rate: f64,
    /// Frozen until then; messages that arrive meanwhile wait in `backlog`.
    paused_until: Option<Duration>,
    backlog: Vec<super::network::InFlight>,
    /// No sync completes before then.
    sync_stalled_until: Duration,
    /// The disk fails every operation until then.
    disk_fails_until: Option<Duration>,
    /// Crash at the end of this step (right after a heartbeat ack).
    crash_pending: bool,
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
    /// Storage errors met (calls that failed, writes and syncs that crashed a replica).
    pub storage_errors: u64,
    /// Process pauses begun.
    pub pauses: u64,
    /// Hand-overs completed (old master stepped down and released its lease).
    pub handovers: u64,
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
            let rate = draw_rate(&mut rng, config.max_drift);
            nodes.push(SimNode {
                id,
                replica: None,
                parked: Some(MemStorage::new()),
                clock: Time(offset),
                clock_rate: rate,
                paused_until: None,
                backlog: Vec::new(),
                sync_stalled_until: Duration::ZERO,
                disk_fails_until: None,
                crash_pending: false,
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
            storage_errors: 0,
            pauses: 0,
            handovers: 0,
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
        self.nodes[i].clock
    }

    /// Advances every clock by one step at its current rate, and changes some rates.
    fn advance_clocks(&mut self) {
        let change = self.config.clock_change_rate * STEP.as_secs_f64();
        for i in 0..self.nodes.len() {
            let rate = self.nodes[i].clock_rate;
            self.nodes[i].clock = self.nodes[i].clock + STEP.mul_f64(rate);
            if chance(&mut self.rng, change) {
                self.nodes[i].clock_rate = draw_rate(&mut self.rng, self.config.max_drift);
            }
        }
    }

    fn storage_mut(&mut self, i: usize) -> Option<&mut MemStorage> {
        let node = &mut self.nodes[i];
        match (&mut node.replica, &mut node.parked) {
            (Some(r), _) => Some(r.storage_mut()),
            (None, Some(s)) => Some(s),
            (None, None) => None,
        }
    }

    fn storage_of(&self, i: usize) -> Option<&MemStorage> {
        let node = &self.nodes[i];
        match (&node.replica, &node.parked) {
            (Some(r), _) => Some(r.storage()),
            (None, Some(s)) => Some(s),
            (None, None) => None,
        }
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
        if self.nodes[i].disk_fails_until.is_some() {
            // Its disk is failing, so it could not read its log: it stays down and tries again
            // at the next step.
            return;
        }
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
        node.paused_until = None;
        node.backlog.clear();
        node.crash_pending = false;
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
            self.nodes[i].sync_stalled_until = Duration::ZERO;
            if self.nodes[i].disk_fails_until.take().is_some()
                && let Some(storage) = self.storage_mut(i)
            {
                storage.set_failing(None);
            }
            self.wake(i);
            self.restart(i);
        }
        self.net.heal();
        self.net.set_faults(0.0, 0.0);
        self.trace(format_args!("healed"));
    }

    /// Cuts the links from `senders` to `receivers` in that direction only.
    pub fn cut_one_way(&mut self, senders: &[usize], receivers: &[usize]) {
        let a: Vec<NodeId> = senders.iter().map(|&i| self.nodes[i].id).collect();
        let b: Vec<NodeId> = receivers.iter().map(|&i| self.nodes[i].id).collect();
        self.net.cut_one_way(&a, &b);
        self.trace(format_args!("one way {a:?} -/-> {b:?}"));
    }

    fn random_split(&mut self) -> (Vec<usize>, Vec<usize>) {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..self.nodes.len() {
            if chance(&mut self.rng, 0.5) {
                a.push(i);
            } else {
                b.push(i);
            }
        }
        (a, b)
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
            .filter(|&i| {
                matches!(self.nodes[i].role, Role::Master { .. })
                    && self.nodes[i].paused_until.is_none()
            })
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

    /// Asks master `i` to hand over to `to` (`None`: the most up-to-date member); returns
    /// whether it took the request.
    pub fn hand_over(&mut self, i: usize, to: Option<NodeId>) -> bool {
        let now = self.local_time(i);
        let id = self.nodes[i].id;
        let Some(replica) = self.nodes[i].replica.as_mut() else {
            return false;
        };
        let result = replica.hand_over(now, to);
        self.trace(format_args!(
            "{id} asked to hand over to {to:?}: {result:?}"
        ));
        self.process(i);
        result.is_ok()
    }

    /// A hand-over at a random moment, to a random member (up or not, caught up or not) or
    /// to the most up-to-date one.
    fn random_hand_over(&mut self) {
        let Some(i) = self.master() else {
            return;
        };
        if self.nodes[i].paused_until.is_some() || self.nodes.len() < 2 {
            return;
        }
        let to = if chance(&mut self.rng, 0.5) {
            None
        } else {
            let n = self.nodes.len() as u64;
            let j = (i + 1 + self.rng.below(n - 1) as usize) % self.nodes.len();
            Some(self.nodes[j].id)
        };
        self.hand_over(i, to);
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
        self.advance_clocks();
        if self.random_faults {
            self.inject_faults();
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i]
                .disk_fails_until
                .is_some_and(|t| t <= self.now)
            {
                self.nodes[i].disk_fails_until = None;
                if let Some(storage) = self.storage_mut(i) {
                    storage.set_failing(None);
                }
            }
            if self.nodes[i].down_until.is_some_and(|t| t <= self.now) && self.random_faults {
                self.start(i);
            }
            if self.nodes[i].paused_until.is_some_and(|t| t <= self.now) {
                self.wake(i);
            }
        }
        while let Some(message) = self.net.pop_due(self.now) {
            let Some(i) = self.index_of(message.to) else {
                continue;
            };
            if self.nodes[i].replica.is_none() {
                continue;
            }
            if self.nodes[i].paused_until.is_some() {
                // It arrived; the frozen process reads it when it wakes.
                self.nodes[i].backlog.push(message);
                continue;
            }
            self.deliver(i, message);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused_until.is_some() {
                continue;
            }
            let now = self.local_time(i);
            if let Some(replica) = self.nodes[i].replica.as_mut() {
                let result = replica.on_tick(now);
                self.on_core_result(i, result);
                self.process(i);
            }
        }
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            if node.replica.is_some()
                && node.paused_until.is_none()
                && node.sync_stalled_until <= self.now
                && chance(&mut self.rng, self.config.sync_chance)
            {
                self.sync(i);
            }
        }
        let per_step = self.config.propose_rate * STEP.as_secs_f64();
        if chance(&mut self.rng, per_step) {
            self.propose();
        }
        if self.random_faults
            && chance(
                &mut self.rng,
                self.config.handover_rate * STEP.as_secs_f64(),
            )
        {
            self.random_hand_over();
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].crash_pending {
                self.nodes[i].crash_pending = false;
                self.crash_after_ack(i);
            }
        }
        self.check();
    }

    /// Hands one arrived message to node `i` (up and not paused), with the time of now.
    fn deliver(&mut self, i: usize, message: super::network::InFlight) {
        let mut now = self.local_time(i);
        if !self.config.early_clock.is_zero() {
            let early = u64::try_from(self.config.early_clock.as_micros()).unwrap_or(0);
            now = Time(
                now.0
                    .saturating_sub(Duration::from_micros(self.rng.below(early + 1))),
            );
        }
        let Some(replica) = self.nodes[i].replica.as_mut() else {
            return;
        };
        let kind = message.msg.kind();
        let result = replica.on_message(now, message.from, message.msg);
        self.on_core_result(i, result);
        self.trace(format_args!("{} -> {} {kind}", message.from, message.to));
        self.process(i);
    }

    /// Wakes node `i` from a pause: what arrived meanwhile is read now, at its current time.
    fn wake(&mut self, i: usize) {
        if self.nodes[i].paused_until.take().is_none() {
            return;
        }
        let id = self.nodes[i].id;
        self.trace(format_args!("{id} wakes"));
        for message in core::mem::take(&mut self.nodes[i].backlog) {
            self.deliver(i, message);
        }
    }

    /// A call into the core failed. Only a storage error may (the disk is failing); the call
    /// left no trace, so the driver carries on.
    fn on_core_result(&mut self, i: usize, result: Result<(), crate::Error>) {
        match result {
            Ok(()) => {}
            Err(crate::Error::Storage(_)) if self.nodes[i].disk_fails_until.is_some() => {
                self.storage_errors += 1;
            }
            Err(err) => {
                let what = format!("{}: unexpected error: {err}", self.nodes[i].id);
                self.checker.violation.get_or_insert(what);
            }
        }
    }

    /// The disk of node `i` failed a write or a sync: it stops (fail-stop) and comes back soon.
    fn crash_on_disk_error(&mut self, i: usize) {
        self.storage_errors += 1;
        let down_for = Duration::from_millis(5 + self.rng.below(100));
        self.crash(i, down_for);
    }

    /// Node `i` just acknowledged a heartbeat: crash it and bring it back quickly; half the
    /// time also cut the master off, so a candidate asks while it is in its quiet period.
    fn crash_after_ack(&mut self, i: usize) {
        let down = self.nodes.iter().filter(|n| n.replica.is_none()).count();
        if self.nodes[i].replica.is_none() || down >= (self.config.nodes - 1) / 2 {
            return;
        }
        let master = self.master();
        let down_for = Duration::from_millis(1 + self.rng.below(40));
        self.crash(i, down_for);
        if chance(&mut self.rng, 0.5)
            && let Some(master) = master
        {
            let others: Vec<usize> = (0..self.nodes.len()).filter(|&j| j != master).collect();
            self.partition(&[master], &others);
        }
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn inject_faults(&mut self) {
        let dt = STEP.as_secs_f64();
        for i in 0..self.nodes.len() {
            if self.nodes[i].replica.is_some()
                && self.nodes[i].paused_until.is_none()
                && chance(&mut self.rng, self.config.pause_rate * dt)
            {
                let longest = u64::try_from(self.config.max_pause.as_micros()).unwrap_or(0);
                let pause = Duration::from_micros(1000 + self.rng.below(longest + 1));
                self.nodes[i].paused_until = Some(self.now + pause);
                self.pauses += 1;
                let id = self.nodes[i].id;
                self.trace(format_args!("{id} paused for {pause:?}"));
            }
            if self.nodes[i].disk_fails_until.is_none()
                && chance(&mut self.rng, self.config.disk_error_rate * dt)
            {
                let until = self.now + Duration::from_millis(1 + self.rng.below(30));
                self.nodes[i].disk_fails_until = Some(until);
                if let Some(storage) = self.storage_mut(i) {
                    storage.set_failing(Some("simulated disk failure"));
                }
                let id = self.nodes[i].id;
                self.trace(format_args!("{id} disk failing"));
            }
            if chance(&mut self.rng, self.config.slow_sync_rate * dt) {
                let longest = u64::try_from(self.config.max_slow_sync.as_micros()).unwrap_or(0);
                let stall = Duration::from_micros(self.rng.below(longest + 1));
                self.nodes[i].sync_stalled_until = self.now + stall;
            }
        }
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
            let n = self.nodes.len() as u64;
            if n < 2 {
                return;
            }
            let roll = self.rng.below(100);
            if roll < 20 {
                // A partial partition: one link down, everything else up (not transitive).
                let a = self.rng.below(n) as usize;
                let b = (a + 1 + self.rng.below(n - 1) as usize) % self.nodes.len();
                self.partition(&[a], &[b]);
            } else if roll < 35 {
                // A one-way link: `a` no longer reaches `b`, but hears it.
                let a = self.rng.below(n) as usize;
                let b = (a + 1 + self.rng.below(n - 1) as usize) % self.nodes.len();
                self.cut_one_way(&[a], &[b]);
            } else if roll < 75 {
                let (a, b) = self.random_split();
                if roll < 55 {
                    self.partition(&a, &b);
                } else {
                    // Asymmetric: one side's messages are lost, the other side's arrive.
                    self.cut_one_way(&a, &b);
                }
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
            if replica.storage_mut().write(&ready.persist).is_err() {
                // The driver cannot know what reached the disk: it stops.
                self.crash_on_disk_error(i);
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
                    let now = self.now;
                    self.checker.on_acceptor_ack(now, id, ballot);
                    let grants = &mut self.nodes[i].grants;
                    grants.retain(|_, (granted, _)| *granted >= ballot);
                    if matches!(envelope.msg, Message::HeartbeatAck { .. }) {
                        let entry = grants.entry(ballot.node).or_insert((ballot, local));
                        *entry = (ballot, entry.1.max(local + lease));
                        if self.random_faults && chance(&mut self.rng, self.config.crash_after_ack)
                        {
                            self.nodes[i].crash_pending = true;
                        }
                    }
                }
            }
            for envelope in ready.after_persist.iter() {
                if let Message::Promise { ballot, .. } = envelope.msg {
                    self.check_promise(i, ballot, local);
                }
            }
            for envelope in &ready.messages {
                if let Message::LeaseRelease { ballot } | Message::TimeoutNow { ballot, .. } =
                    envelope.msg
                {
                    self.on_release_sent(i, ballot, local, envelope);
                }
            }
            for envelope in ready.messages {
                self.check_claims(i, &envelope);
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

    /// Node `i` sends a release of `ballot`'s lease: from this moment the checker counts no
    /// promise to that ballot as owed, which is sound only if the sender no longer believes
    /// in that lease, now or ever after (checked here and at every step). Some releases are
    /// delivered again much later, when a newer master may hold the receiver's promise.
    fn on_release_sent(
        &mut self,
        i: usize,
        ballot: crate::types::Ballot,
        local: Time,
        envelope: &Envelope,
    ) {
        let Some(replica) = self.nodes[i].replica.as_ref() else {
            return;
        };
        let holds = replica.lease_valid(local) && replica.leading_ballot() == Some(ballot);
        let (now, id) = (self.now, self.nodes[i].id);
        self.checker.on_release(now, id, ballot, holds);
        if self.random_faults && chance(&mut self.rng, self.config.replay_release) {
            let delay = Duration::from_millis(200 + self.rng.below(2800));
            self.net
                .send_late(now, delay, id, envelope.to, envelope.msg.clone());
        }
    }

    /// At the moment `envelope` leaves node `i`: whatever it claims is durable there. A
    /// promise (the ballot, and every entry it reports, or a later accept of that slot), an
    /// accept ack (each slot durably accepted at that ballot or a later one, or durably known
    /// chosen), a prepare (the candidate's own promise).
    fn check_claims(&mut self, i: usize, envelope: &crate::Envelope) {
        let Some(storage) = self.storage_of(i) else {
            return;
        };
        let durable = storage.durable_hard_state();
        let compacted = storage.durable_compacted();
        let mut claim = None;
        match &envelope.msg {
            Message::Promise {
                ballot, entries, ..
            } => {
                if durable.promised < *ballot {
                    claim = Some(format!(
                        "a promise of {ballot} while its durable promise is {}",
                        durable.promised
                    ));
                }
                for entry in entries {
                    let held = storage.durable_entry(entry.slot);
                    if entry.slot > compacted
                        && entry.slot > durable.commit
                        && held.is_none_or(|h| h.ballot < entry.ballot)
                    {
                        claim = Some(format!(
                            "a promise reporting slot {} at {} which is not durable",
                            entry.slot, entry.ballot
                        ));
                    }
                }
            }
            Message::Accepted { ballot, slots } => {
                for slot in slots {
                    let held = storage.durable_entry(*slot);
                    if *slot > compacted
                        && *slot > durable.commit
                        && held.is_none_or(|h| h.ballot < *ballot)
                    {
                        claim = Some(format!(
                            "an accept ack of slot {slot} at {ballot} which is not durable"
                        ));
                    }
                }
            }
            Message::Prepare { ballot, .. } if durable.promised < *ballot => {
                claim = Some(format!(
                    "a prepare of {ballot} while its durable promise is {}",
                    durable.promised
                ));
            }
            _ => {}
        }
        if let Message::Accepted { ballot, .. } = envelope.msg {
            let id = self.nodes[i].id;
            self.checker.on_durable_ack(id, ballot);
        }
        self.checker.on_send_checked();
        if let Some(what) = claim {
            let (now, id) = (self.now, self.nodes[i].id);
            self.checker.on_undurable_claim(now, id, what);
        }
    }

    /// A replica promises `ballot` at its local time `local`: it must not owe a lease to any
    /// other master then (DESIGN §3: a replica that heard a master promises not to promise any
    /// other ballot for a lease, even across a restart).
    fn check_promise(&mut self, i: usize, ballot: crate::types::Ballot, local: Time) {
        let node = &self.nodes[i];
        let checker = &self.checker;
        let owed = node
            .grants
            .iter()
            .find(|(master, (granted, until))| {
                **master != ballot.node && local < *until && !checker.is_released(*granted)
            })
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
                    if let Some(replica) = self.nodes[i].replica.as_ref() {
                        let epoch = replica.term_epoch(ballot).0;
                        let now = self.now;
                        self.checker.on_master(now, id, ballot, epoch);
                    }
                    if self.random_faults && chance(&mut self.rng, self.config.redeliver_on_office)
                    {
                        // Replies from its earlier terms, stuck somewhere, arrive in this one.
                        let now = self.now;
                        let within = self.config.lease * 8;
                        self.net.redeliver_old(&mut self.rng, now, id, 16, within);
                    }
                }
                self.trace(format_args!("{id} is now {role:?}"));
                false
            }
            Event::LeaseAcquired | Event::LeaseLost => {
                self.trace(format_args!("{id} {event:?}"));
                false
            }
            Event::SnapshotNeeded { from, slot } => self.install_snapshot(i, from, slot),
            Event::HandedOver { to } => {
                self.trace(format_args!("{id} handed over to {to}"));
                self.handovers += 1;
                if self.random_faults && chance(&mut self.rng, self.config.crash_after_handover) {
                    // The old master, or the member it handed over to, dies right after.
                    let victim = if chance(&mut self.rng, 0.5) {
                        Some(i)
                    } else {
                        self.index_of(to)
                    };
                    if let Some(v) = victim {
                        self.nodes[v].crash_pending = true;
                    }
                }
                false
            }
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
        let synced = replica.storage().unsynced_slots();
        if replica.storage_mut().sync().is_err() {
            self.crash_on_disk_error(i);
            return;
        }
        let promised = replica.storage().durable_hard_state().promised;
        let id = node.id;
        self.checker.on_durable_promise(id, promised);
        self.check_slots_durably_chosen(&synced);
        let held = core::mem::take(&mut self.nodes[i].held);
        let mut number = 0;
        for batch in held {
            number = number.max(batch.number);
            for envelope in batch.after_persist {
                self.check_claims(i, &envelope);
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
        if replica.on_persisted(now, number).is_err() {
            self.crash_on_disk_error(i);
            return;
        }
        let compacted = replica.storage().compacted_through().unwrap_or(Slot::ZERO);
        if applied > compacted
            && (applied.0 > compacted.0 + self.config.compact_every || chance(&mut self.rng, 0.02))
        {
            // Anywhere between what is already trimmed and what is applied.
            let point = compacted.0 + 1 + self.rng.below(applied.0 - compacted.0);
            if let Some(replica) = self.nodes[i].replica.as_mut() {
                replica.compact(Slot(point));
            }
        }
        self.process(i);
    }

    /// Checks each of `slots` just after a replica made it durable: see
    /// [`Checker::check_slot_durably_chosen`]. Durable logs change only at a sync, so this is
    /// the check after every step, done where it can change.
    fn check_slots_durably_chosen(&mut self, slots: &[Slot]) {
        let mut seen = alloc::collections::BTreeSet::new();
        for &slot in slots {
            if !seen.insert(slot) {
                continue;
            }
            let entries: Vec<crate::types::Entry> = (0..self.nodes.len())
                .filter_map(|j| self.storage_of(j)?.durable_entry(slot).cloned())
                .collect();
            let votes: Vec<(crate::types::Ballot, &crate::types::Value)> =
                entries.iter().map(|e| (e.ballot, &e.value)).collect();
            let (now, quorum) = (self.now, self.quorum());
            self.checker
                .check_slot_durably_chosen(now, slot, &votes, quorum);
        }
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
            && committed.value.payload
                == Payload::Command(bytes::Bytes::copy_from_slice(&proposal.id.to_le_bytes()))
        {
            self.checker.on_ack(committed.slot);
            self.acked += 1;
            self.last_ack = Some((now, proposal.id));
        }
    }

    /// A committed slot must be durably held by a majority (or compacted by it, which it does
    /// only for applied slots): a master counts an accept only after its sender's fsync.
    ///
    /// Held *at the committing replica's own ballot for the slot or a later one*: a replica
    /// commits an entry it holds at ballot `b` only once a majority durably accepted it at `b`
    /// (a master counting acks of its ballot, a follower learning the commit of the ballot it
    /// accepted at, a catch-up copying an entry committed that way), and an acceptor's entry
    /// can only be replaced at a higher ballot — with the same value, the value being chosen.
    /// A replica holding the same value at an *older* ballot counts only if it durably knows
    /// the slot chosen (its durable commit index covers it: it acknowledges such a slot at any
    /// later ballot without rewriting it). Otherwise it does not: that is what a master
    /// counting an `Accepted` of an earlier term of its own (the value it re-proposes is often
    /// the same) gets wrong, and a later term could then choose another value
    /// (`Fault::AcceptedOfAnyBallot`).
    fn check_commit_majority(&mut self, i: usize, committed: &Committed) {
        let floor = self
            .storage_of(i)
            .and_then(|s| s.entry(committed.slot).ok().flatten())
            .filter(|e| e.value == committed.value)
            .map(|e| e.ballot);
        let holders = (0..self.nodes.len())
            .filter(|&j| {
                let Some(storage) = self.storage_of(j) else {
                    return false;
                };
                storage.durable_compacted() >= committed.slot
                    || storage.durable_entry(committed.slot).is_some_and(|e| {
                        e.value == committed.value
                            && (floor.is_none_or(|b| e.ballot >= b)
                                || storage.durable_hard_state().commit >= committed.slot)
                    })
            })
            .count();
        let (now, id, quorum) = (self.now, self.nodes[i].id, self.quorum());
        self.checker
            .check_majority(now, id, committed.slot, holders, quorum);
    }

    fn check(&mut self) {
        let now = self.now;
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
                if let Some(ballot) = replica.leading_ballot() {
                    self.checker.check_not_released(now, id, ballot);
                }
                self.check_lease_backing(i, local);
            }
            if fence.is_some_and(|f| applied >= f) {
                self.checker.check_read(now, id, applied);
            }
        }
        self.checker.check_leases(now, &lease_holders);
    }

    /// Node `i` believes it holds a master lease at its time `local`: a majority must still
    /// promise it, each in its own clock at this true instant.
    fn check_lease_backing(&mut self, i: usize, local: Time) {
        let Some(replica) = self.nodes[i].replica.as_ref() else {
            return;
        };
        let Some(ballot) = replica.leading_ballot() else {
            return;
        };
        let master = self.nodes[i].id;
        let mut backers = Vec::new();
        // Its own promise, which it keeps itself.
        if replica
            .lease_granted
            .is_some_and(|(b, until)| b == ballot && local < until)
        {
            backers.push(master);
        }
        for j in 0..self.nodes.len() {
            if j == i {
                continue;
            }
            let their_time = self.local_time(j);
            let node = &self.nodes[j];
            if node
                .grants
                .get(&master)
                .is_some_and(|&(b, until)| b == ballot && their_time < until)
            {
                backers.push(node.id);
            }
        }
        let (now, quorum) = (self.now, self.quorum());
        self.checker
            .check_lease_backing(now, master, ballot, &backers, quorum);
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

/// A clock rate within `[1 - max_drift, 1 + max_drift]`.
fn draw_rate(rng: &mut SplitMix64, max_drift: f64) -> f64 {
    let spread = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    1.0 - max_drift + 2.0 * max_drift * spread
}
