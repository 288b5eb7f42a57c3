//! The whole-cell harness (issue 12): real `cld-server` members and real `cldc` clients on
//! turmoil hosts, faults from a seeded plan, and the history judged by the checkers.
//!
//! One run: a cell of 3 or 5 members (hosts `m1`..), each a real member started through
//! `cld_server::server` on turmoil TCP (peers) and UDP (clients), a crash-faithful in-memory
//! store ([`libpaxos_db::MemKv`]) and a clock of its own ([`env::ClockControl`]); `clients`
//! workload clients (hosts `c1`..), each a real `cldc::Session` on a turmoil UDP socket. The
//! fault plan ([`crate::faults::FaultPlan`]) runs during the faulty phase, then everything
//! heals, the clients read every file back, and the members' namespace digests are compared.
//! See docs/testing.md for what differs from real hosts.

pub mod client;
pub mod env;
mod member;
pub mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::check::{CheckConfig, Report, check_all};
use crate::faults::{Action, FaultPlan, PlanConfig, Scenario, SplitMix64, Target};
use crate::history::{
    ClientId, DigestRecord, FaultRecord, History, MasterRecord, MemberId, Meta, SimTime,
};
use crate::recorder::Recorder;
use crate::workload::{Workload, WorkloadConfig};

pub use member::MemberSlot;

/// The session lease the simulated cell grants.
pub const SESSION_LEASE: Duration = Duration::from_secs(2);
/// The lock-delay on every workload lock.
pub const LOCK_DELAY: Duration = Duration::from_millis(1_000);
/// The drift bound the cell is configured for (ppm).
pub const DRIFT_PPM: u64 = 10_000;

/// Test-only ways to break the system, to show the checkers catch them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Switches {
    /// Clients ignore their lease: they never go into jeopardy, so they keep believing in
    /// their locks after the cell expired their session.
    pub client_ignores_lease: bool,
    /// The members' stores return from `sync` without making anything durable, so replies
    /// and votes go out before the data is safe.
    pub ack_before_sync: bool,
    /// The server's own test-only bugs.
    pub server: cld_server::Bugs,
}

impl Switches {
    /// The names [`named`](Self::named) knows.
    pub const NAMES: [&'static str; 5] = [
        "client_ignores_lease",
        "ack_before_sync",
        "read_without_lease",
        "keepalive_without_lease",
        "early_expiry",
    ];

    /// The switches with the one called `name` on.
    pub fn named(name: &str) -> Option<Switches> {
        let mut s = Switches::default();
        match name {
            "client_ignores_lease" => s.client_ignores_lease = true,
            "ack_before_sync" => s.ack_before_sync = true,
            "read_without_lease" => s.server.read_without_lease = true,
            "keepalive_without_lease" => s.server.keepalive_without_lease = true,
            "early_expiry" => s.server.early_expiry = true,
            _ => return None,
        }
        Some(s)
    }
}

/// One run's parameters.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The fault scenario.
    pub scenario: Scenario,
    /// The seed everything is drawn from.
    pub seed: u64,
    /// Cell size.
    pub members: u64,
    /// Workload clients.
    pub clients: u32,
    /// Length of the faulty phase, ms.
    pub faulty_ms: u64,
    /// After the heal: how long clients carry on before the final reads, ms.
    pub settle_ms: u64,
    /// The workload's shape.
    pub workload: WorkloadConfig,
    /// Bugs switched on.
    pub switches: Switches,
}

impl RunConfig {
    /// The CI shape of a run of `scenario` from `seed`.
    pub fn new(scenario: Scenario, seed: u64) -> RunConfig {
        RunConfig {
            scenario,
            seed,
            members: 3,
            clients: 4,
            faulty_ms: 12_000,
            settle_ms: 6_000,
            workload: WorkloadConfig::default(),
            switches: Switches::default(),
        }
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let bug = Switches::NAMES
            .iter()
            .find(|n| Switches::named(n) == Some(self.switches))
            .map(|n| format!("SIM_BUG={n} "))
            .unwrap_or_default();
        format!(
            "{bug}SIM_SCENARIO={} SIM_SEED={} SIM_MEMBERS={} cargo test -p sim-tests --test cell -- replay --nocapture",
            self.scenario.name(),
            self.seed,
            self.members
        )
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The history.
    pub history: History,
    /// The checkers' verdicts.
    pub report: Report,
    /// Simulated time the run covered.
    pub simulated: Duration,
    /// Members that stopped with an error (and the error), in order.
    pub member_errors: Vec<(u64, String)>,
    /// Client-side failures no checker judges: corrupt or malformed replies, final reads
    /// without an answer, clients that never finished.
    pub client_errors: Vec<String>,
}

impl Outcome {
    /// Whether every checker passed and no member failed.
    pub fn passed(&self) -> bool {
        self.report.passed() && self.member_errors.is_empty() && self.client_errors.is_empty()
    }
}

/// State shared by the harness and the hosts.
pub(crate) struct Shared {
    pub(crate) recorder: Mutex<Recorder>,
    pub(crate) workload: Mutex<Workload>,
    /// Clients stop starting operations once this is set and run their final reads.
    pub(crate) stop: std::sync::atomic::AtomicBool,
    /// Clients paused until this true time.
    pub(crate) paused_until: Mutex<BTreeMap<ClientId, Duration>>,
    pub(crate) member_errors: Mutex<Vec<(u64, String)>>,
    /// What clients saw that no correct cell does (corrupt contents, protocol errors), and
    /// final reads that got no answer.
    pub(crate) client_errors: Mutex<Vec<String>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn sim_time(d: Duration) -> SimTime {
    SimTime(d.as_nanos() as u64)
}

fn run_dir(config: &RunConfig) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!(
        "cell-{}-{}-{:08}-{n:08}",
        config.scenario.name(),
        config.seed,
        std::process::id()
    ))
}

/// Runs one simulation and judges its history.
pub fn run(config: &RunConfig) -> Outcome {
    let dir = run_dir(config);
    let _ = std::fs::remove_dir_all(&dir);
    let outcome = run_in(config, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn run_in(config: &RunConfig, dir: &std::path::Path) -> Outcome {
    let mut rng = SplitMix64::new(config.seed ^ 0x5151_cafe_f00d_0001);
    let mut sim = turmoil::Builder::new()
        // A fixed wall-clock start (turmoil's default is the real time now): wall times
        // are stamped into commands, so they must not differ between two runs of a seed.
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .simulation_duration(Duration::from_secs(3_600))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(3))
        .rng_seed(config.seed)
        .build();

    let meta = Meta {
        version: crate::history::SCHEMA_VERSION,
        seed: config.seed,
        scenario: config.scenario.name().to_owned(),
        members: config.members as u32,
        lock_delay_ns: LOCK_DELAY.as_nanos() as u64,
        liveness_bound_ns: None,
        clock_drift_ppm: DRIFT_PPM,
    };
    let shared = Arc::new(Shared {
        recorder: Mutex::new(Recorder::new(meta)),
        workload: Mutex::new(Workload::new(config.seed, config.workload)),
        stop: std::sync::atomic::AtomicBool::new(false),
        paused_until: Mutex::new(BTreeMap::new()),
        member_errors: Mutex::new(Vec::new()),
        client_errors: Mutex::new(Vec::new()),
    });
    let net = env::NetFaults::new(config.seed ^ 0xd0d0);

    // Hosts first (turmoil hands out addresses), then the config naming them.
    let cell = Arc::new(std::sync::OnceLock::new());
    let mut members: Vec<MemberSlot> = Vec::new();
    for id in 1..=config.members {
        let offset_ms = rng.range(0, 200) as i64 - 100;
        let clock = env::ClockControl::new(offset_ms);
        // Every clock runs off by up to half the drift bound from the start.
        let half = (DRIFT_PPM / 2) as i64;
        clock.set_rate(Duration::ZERO, rng.range(0, DRIFT_PPM) as i64 - half);
        let slot = MemberSlot::new(id, clock, config.seed, config.switches);
        slot.register(
            &mut sim,
            cell.clone(),
            dir.to_path_buf(),
            net.clone(),
            shared.clone(),
        );
        members.push(slot);
    }
    let client_ips: Vec<std::net::IpAddr> = (1..=config.clients)
        .map(|c| {
            let name = format!("c{c}");
            client::register(
                &mut sim,
                &name,
                ClientId(c),
                cell.clone(),
                net.clone(),
                shared.clone(),
                config.switches,
                config.seed,
            );
            sim.lookup(name.as_str())
        })
        .collect();
    let member_ips: Vec<std::net::IpAddr> = (1..=config.members)
        .map(|id| sim.lookup(format!("m{id}").as_str()))
        .collect();
    let built = member::write_cell(dir, &member_ips).expect("the run's cell config is written");
    let _ = cell.set(built);

    let plan = FaultPlan::generate(
        config.scenario,
        config.seed,
        PlanConfig {
            members: config.members,
            clients: config.clients,
            faulty_ms: config.faulty_ms,
            lease_ms: SESSION_LEASE.as_millis() as u64,
            drift_ppm: DRIFT_PPM,
        },
    );
    let stop_at = plan.heal_at.0 / 1_000_000 + config.settle_ms;
    let mut faults = plan.faults.iter().peekable();
    let mut master: Option<(u64, u64)> = None;
    let mut down: Vec<bool> = vec![false; members.len()];
    let mut links = Links::default();
    // SIM_TRACE=1 prints every member's role changes as the run goes.
    let trace = std::env::var_os("SIM_TRACE").is_some();
    let mut last_views = vec![String::new(); members.len()];
    loop {
        let now = sim.elapsed();
        let now_ns = sim_time(now);
        // Paused members whose pause is over resume: their clock jumps, their messages go.
        while let Some(k) = links.paused.iter().position(|(_, until)| *until <= now) {
            let (i, _) = links.paused.remove(k);
            resume(&mut sim, &members[i], member_ips[i], &mut links, now);
        }
        while let Some(k) = links
            .paused_clients
            .iter()
            .position(|(_, until)| *until <= now)
        {
            let (c, _) = links.paused_clients.remove(k);
            let ip = client_ips[c];
            for m in &member_ips {
                // A paused member keeps its own links held.
                if !links.paused.iter().any(|(p, _)| member_ips[*p] == *m) {
                    sim.release(ip, *m);
                    links.held.remove(&pair(ip, *m));
                }
            }
        }
        while let Some(f) = faults.next_if(|f| f.at <= now_ns) {
            let mut h = Harness {
                links: &mut links,
                sim: &mut sim,
                members: &members,
                client_ips: &client_ips,
                member_ips: &member_ips,
                down: &mut down,
                net: &net,
                master,
                rng: &mut rng,
                shared: &shared,
                now,
            };
            let (fault, hit, detail) = h.apply(&f.action);
            let clients = match &f.action {
                Action::PauseClient { client, .. } => vec![*client],
                _ => Vec::new(),
            };
            lock(&shared.recorder).fault(FaultRecord {
                at_ns: now_ns,
                fault,
                members: hit.iter().map(|i| MemberId(*i as u64 + 1)).collect(),
                clients,
                detail,
            });
        }
        if trace {
            for m in &members {
                let view = m.view();
                if view != last_views[m.id as usize - 1] {
                    eprintln!("{:>8} ms m{}: {}", now.as_millis(), m.id, view);
                    last_views[m.id as usize - 1] = view;
                }
            }
        }
        // Master changes, as the members see them.
        // The newest: a paused old master still believes in its lease (its clock stands
        // still) until it resumes and sees the time.
        let current = members
            .iter()
            .filter_map(|m| m.leased_master())
            .max_by_key(|(_, epoch)| *epoch);
        if let Some((id, epoch)) = current
            && master != Some((id, epoch))
        {
            master = Some((id, epoch));
            lock(&shared.recorder).master(MasterRecord {
                at_ns: now_ns,
                member: MemberId(id),
                epoch,
            });
        }
        if now.as_millis() as u64 >= stop_at {
            shared.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if now.as_millis() as u64 >= stop_at + 60_000 {
            lock(&shared.client_errors)
                .push("clients still running a minute after the stop".to_owned());
            break;
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(err) => {
                lock(&shared.member_errors).push((0, format!("simulation: {err}")));
                break;
            }
        }
    }
    // Let the members apply everything committed (the same applied index on every running
    // member, twice 100 ms apart, or 10 s at most), then take their digests.
    let mut last: Option<Vec<u64>> = None;
    for _ in 0..100 {
        for _ in 0..100 {
            let _ = sim.step();
        }
        let applied: Vec<u64> = members
            .iter()
            .filter_map(|m| m.digest().map(|(a, _)| a))
            .collect();
        let settled = applied.windows(2).all(|w| w[0] == w[1]);
        if settled && last.as_ref() == Some(&applied) {
            break;
        }
        last = Some(applied);
    }
    let at = sim_time(sim.elapsed());
    for m in &members {
        if let Some((applied, digest)) = m.digest() {
            lock(&shared.recorder).digest(DigestRecord {
                at_ns: at,
                member: MemberId(m.id),
                applied,
                digest,
            });
        }
    }
    let simulated = sim.elapsed();
    drop(sim);
    let member_errors = lock(&shared.member_errors).clone();
    let client_errors = lock(&shared.client_errors).clone();
    let history = lock(&shared.recorder).history().clone();
    let report = check_all(&history, &CheckConfig::for_history(&history));
    Outcome {
        history,
        report,
        simulated,
        member_errors,
        client_errors,
    }
}

/// The links the harness has cut or held, so a crash can silence a host and put them back.
#[derive(Default)]
struct Links {
    held: std::collections::BTreeSet<(std::net::IpAddr, std::net::IpAddr)>,
    oneway: std::collections::BTreeSet<(std::net::IpAddr, std::net::IpAddr)>,
    /// Paused members (index) and when they resume.
    paused: Vec<(usize, Duration)>,
    /// Paused clients (index) and when they resume.
    paused_clients: Vec<(usize, Duration)>,
}

struct Harness<'s, 'a> {
    links: &'s mut Links,
    sim: &'s mut turmoil::Sim<'a>,
    members: &'s [MemberSlot],
    client_ips: &'s [std::net::IpAddr],
    member_ips: &'s [std::net::IpAddr],
    down: &'s mut Vec<bool>,
    net: &'s env::NetFaults,
    master: Option<(u64, u64)>,
    rng: &'s mut SplitMix64,
    shared: &'s Shared,
    now: Duration,
}

impl Harness<'_, '_> {
    fn resolve(&mut self, target: Target) -> usize {
        match target {
            Target::Member(MemberId(id)) => (id as usize - 1).min(self.members.len() - 1),
            Target::Master => match self.master {
                Some((id, _)) if !self.down[id as usize - 1] => id as usize - 1,
                _ => self.rng.range(0, self.members.len() as u64) as usize,
            },
        }
    }

    fn crash(&mut self, i: usize, wipe: bool) {
        if !self.down[i] {
            // A host losing power sends nothing: its links are cut while turmoil drops its
            // tasks (each dropped connection would otherwise send a FIN or RST, in an order
            // set by tokio's process-wide task ids, and draw a latency from the seed: the
            // run would depend on what other threads did), then put back as they were.
            let me = self.member_ips[i];
            let others: Vec<std::net::IpAddr> = self
                .member_ips
                .iter()
                .chain(self.client_ips.iter())
                .copied()
                .filter(|ip| *ip != me)
                .collect();
            for o in &others {
                self.sim.partition(me, *o);
            }
            self.sim.crash(format!("m{}", i + 1).as_str());
            for o in &others {
                self.sim.repair(me, *o);
                if self.links.held.contains(&pair(me, *o)) {
                    self.sim.hold(me, *o);
                }
                if self.links.oneway.contains(&(me, *o)) {
                    self.sim.partition_oneway(me, *o);
                }
                if self.links.oneway.contains(&(*o, me)) {
                    self.sim.partition_oneway(*o, me);
                }
            }
            self.down[i] = true;
        }
        let kept = self.rng.range(0, 4) as usize;
        self.members[i].power_cut(kept, wipe);
    }

    fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.down[i] {
                self.sim.bounce(format!("m{}", i + 1).as_str());
                self.down[i] = false;
            }
        }
    }

    fn heal_network(&mut self) {
        let all: Vec<std::net::IpAddr> = self
            .member_ips
            .iter()
            .chain(self.client_ips.iter())
            .copied()
            .collect();
        for (n, a) in all.iter().enumerate() {
            for b in &all[n + 1..] {
                self.sim.repair(*a, *b);
                self.sim.release(*a, *b);
            }
        }
        self.links.held.clear();
        self.links.oneway.clear();
    }

    /// Does `action`: its kind, the members it hit (indexes) and a description.
    fn apply(&mut self, action: &Action) -> (crate::history::FaultKind, Vec<usize>, String) {
        let kind = action.kind();
        let mut hit = Vec::new();
        let detail = match action {
            Action::Isolate(targets) => {
                let cut: Vec<usize> = targets.iter().map(|t| self.resolve(*t)).collect();
                for &i in &cut {
                    for j in 0..self.members.len() {
                        if !cut.contains(&j) {
                            // Held, not dropped: members talk over TCP, which retransmits
                            // what a cut link lost once it heals; turmoil's TCP does not, so
                            // a dropped segment would corrupt the stream (docs/testing.md).
                            self.sim.hold(self.member_ips[i], self.member_ips[j]);
                            self.links
                                .held
                                .insert(pair(self.member_ips[i], self.member_ips[j]));
                        }
                    }
                }
                hit = cut.clone();
                format!("isolate {}", names(&cut))
            }
            Action::CutOneWay { from, to } => {
                let f = self.resolve(*from);
                let mut t = self.resolve(*to);
                if t == f {
                    // A member cannot be cut from itself: the next one instead.
                    t = (f + 1) % self.members.len();
                }
                {
                    self.sim
                        .partition_oneway(self.member_ips[f], self.member_ips[t]);
                    self.links
                        .oneway
                        .insert((self.member_ips[f], self.member_ips[t]));
                }
                hit = vec![f, t];
                format!("cut m{} -> m{}", f + 1, t + 1)
            }
            Action::HealNetwork => {
                self.heal_network();
                "heal network".to_owned()
            }
            Action::Crash(t) => {
                let i = self.resolve(*t);
                self.crash(i, false);
                hit = vec![i];
                format!("crash m{}", i + 1)
            }
            Action::Wipe(t) => {
                let i = self.resolve(*t);
                hit = vec![i];
                // A wiped member votes again only once it has caught up; wiping another
                // before that takes a majority's data away for good, which no cell
                // survives (and no operator is told to do: docs/operations.md).
                let rejoining: Vec<usize> = (0..self.members.len())
                    .filter(|&j| j != i && (self.down[j] || !self.members[j].voter()))
                    .collect();
                if rejoining.is_empty() {
                    self.crash(i, true);
                    format!("wipe m{}", i + 1)
                } else {
                    format!(
                        "wipe m{} skipped: {} not a voter yet",
                        i + 1,
                        names(&rejoining)
                    )
                }
            }
            Action::CellCrash => {
                for i in 0..self.members.len() {
                    self.crash(i, false);
                }
                "crash every member".to_owned()
            }
            Action::RestartAll => {
                self.restart_all();
                "restart crashed members".to_owned()
            }
            Action::Network {
                loss_ppm,
                dup_ppm,
                latency_ms,
            } => {
                self.net.set(*loss_ppm, *dup_ppm);
                self.sim
                    .set_max_message_latency(Duration::from_millis((*latency_ms).max(3)));
                format!("loss {loss_ppm} ppm, dup {dup_ppm} ppm, latency up to {latency_ms} ms")
            }
            Action::ClockRate { member, ppm } => {
                let i = self.resolve(*member);
                self.members[i].clock.set_rate(self.now, *ppm);
                hit = vec![i];
                format!("clock of m{} at {ppm:+} ppm", i + 1)
            }
            Action::PauseClient { client, ms } => {
                let until = self.now + Duration::from_millis(*ms);
                lock(&self.shared.paused_until).insert(*client, until);
                self.links
                    .paused_clients
                    .push((client.0 as usize - 1, until));
                if let Some(ip) = self.client_ips.get(client.0 as usize - 1) {
                    for m in self.member_ips {
                        self.sim.hold(*ip, *m);
                        self.links.held.insert(pair(*ip, *m));
                    }
                }
                format!("pause c{} for {ms} ms", client.0)
            }
            Action::PauseMember { member, ms } => {
                let i = self.resolve(*member);
                hit = vec![i];
                let skip = self.down[i] || self.links.paused.iter().any(|(p, _)| *p == i);
                if !skip {
                    let me = self.member_ips[i];
                    self.members[i].clock.set_paused(self.now, true);
                    for o in self.member_ips.iter().chain(self.client_ips.iter()) {
                        if *o != me {
                            self.sim.hold(me, *o);
                            self.links.held.insert(pair(me, *o));
                        }
                    }
                    self.links
                        .paused
                        .push((i, self.now + Duration::from_millis(*ms)));
                }
                if skip {
                    format!("pause m{} skipped: down or paused already", i + 1)
                } else {
                    format!("pause m{} for {ms} ms", i + 1)
                }
            }
            Action::Heal => {
                for (i, _) in std::mem::take(&mut self.links.paused) {
                    self.members[i].clock.set_paused(self.now, false);
                }
                self.links.paused_clients.clear();
                self.heal_network();
                self.net.set(0, 0);
                self.sim.set_max_message_latency(Duration::from_millis(3));
                for m in self.members {
                    m.clock.set_rate(self.now, m.initial_rate_ppm);
                }
                lock(&self.shared.paused_until).clear();
                self.restart_all();
                "heal everything".to_owned()
            }
        };
        (kind, hit, detail)
    }
}

/// Member `slot` at `ip` resumes from a pause.
fn resume(
    sim: &mut turmoil::Sim<'_>,
    slot: &MemberSlot,
    ip: std::net::IpAddr,
    links: &mut Links,
    now: Duration,
) {
    slot.clock.set_paused(now, false);
    let ends: Vec<(std::net::IpAddr, std::net::IpAddr)> = links
        .held
        .iter()
        .filter(|(a, b)| *a == ip || *b == ip)
        .copied()
        .collect();
    for (a, b) in ends {
        sim.release(a, b);
        links.held.remove(&(a, b));
    }
}

/// A link's two ends in a fixed order.
fn pair(a: std::net::IpAddr, b: std::net::IpAddr) -> (std::net::IpAddr, std::net::IpAddr) {
    if a < b { (a, b) } else { (b, a) }
}

fn names(members: &[usize]) -> String {
    let v: Vec<String> = members.iter().map(|i| format!("m{}", i + 1)).collect();
    v.join(",")
}

/// The member addresses a run's cell uses.
pub(crate) fn addrs(ips: &[std::net::IpAddr]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let peers = ips.iter().map(|ip| SocketAddr::new(*ip, 7000)).collect();
    let clients = ips.iter().map(|ip| SocketAddr::new(*ip, 7001)).collect();
    (peers, clients)
}
