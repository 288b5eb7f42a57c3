//! Fault schedules drawn from a seed (issue 12, item 2), as data: the harness executes them.
//!
//! A [`FaultPlan`] lists what to break and when, for one [`Scenario`]; `Target::Master` is
//! resolved by the harness when the fault fires (whoever is master then). Every plan ends with
//! [`Action::Heal`] at `heal_at`, after which the liveness bound runs. Plans use their own
//! generator ([`SplitMix64`]), so a seed means the same plan on every machine and with every
//! version of the `rand` crate.

use crate::history::{ClientId, FaultKind, MemberId, SimTime};

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `low..high` (`low` if the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }
}

/// The fault scenarios of issue 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// A minority of members cut off, repeatedly.
    MinorityPartition,
    /// A majority cut off from the rest (no quorum on the small side; the cell may stall).
    MajorityPartition,
    /// The master alone cut off.
    MasterIsolated,
    /// One-way link failures.
    OneWay,
    /// Partitions that come and go every few hundred milliseconds.
    Flapping,
    /// Members crash and restart, a minority at a time.
    CrashRestart,
    /// The master crashes and restarts.
    MasterCrash,
    /// The whole cell crashes and restarts.
    CellRestart,
    /// A member wiped and brought back (catches up from a snapshot).
    Wipe,
    /// Packet loss, duplication and latency spikes.
    Network,
    /// A client paused past its lease.
    ClientPause,
    /// The master's clock runs at the drift bound.
    MasterClockDrift,
    /// A member process, usually the master, stops for a while (a long GC pause, a VM
    /// migration, SIGSTOP): its clock stands still and nothing goes in or out, then it
    /// resumes with its clock jumped forward and the messages of the pause delivered.
    MemberPause,
    /// A mix of all of the above that keeps a majority up.
    Mixed,
}

impl Scenario {
    /// Every scenario, in CI order.
    pub const ALL: [Scenario; 14] = [
        Scenario::MinorityPartition,
        Scenario::MajorityPartition,
        Scenario::MasterIsolated,
        Scenario::OneWay,
        Scenario::Flapping,
        Scenario::CrashRestart,
        Scenario::MasterCrash,
        Scenario::CellRestart,
        Scenario::Wipe,
        Scenario::Network,
        Scenario::ClientPause,
        Scenario::MasterClockDrift,
        Scenario::Mixed,
        Scenario::MemberPause,
    ];

    /// Its name in histories and replay commands.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::MinorityPartition => "minority-partition",
            Scenario::MajorityPartition => "majority-partition",
            Scenario::MasterIsolated => "master-isolated",
            Scenario::OneWay => "one-way",
            Scenario::Flapping => "flapping",
            Scenario::CrashRestart => "crash-restart",
            Scenario::MasterCrash => "master-crash",
            Scenario::CellRestart => "cell-restart",
            Scenario::Wipe => "wipe",
            Scenario::Network => "network",
            Scenario::ClientPause => "client-pause",
            Scenario::MasterClockDrift => "master-clock-drift",
            Scenario::MemberPause => "member-pause",
            Scenario::Mixed => "mixed",
        }
    }

    /// The scenario named `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the scenario may leave fewer than a majority of members up and connected.
    pub fn may_lose_quorum(self) -> bool {
        matches!(self, Scenario::MajorityPartition | Scenario::CellRestart)
    }
}

/// Whom a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This member.
    Member(MemberId),
    /// Whoever is master when the fault fires (a random member if none is).
    Master,
}

/// One thing the harness does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Cut these members off from the others, both ways (adds to any cut already there).
    Isolate(Vec<Target>),
    /// Lose every message from `from` to `to`; the other way still works.
    CutOneWay {
        /// Sender whose messages are lost.
        from: Target,
        /// Receiver.
        to: Target,
    },
    /// Restore every link.
    HealNetwork,
    /// Crash a member: it loses what it had not synced (the store's `crash`).
    Crash(Target),
    /// Crash a member and wipe its data: it restarts empty and catches up from its peers.
    Wipe(Target),
    /// Crash every member at once.
    CellCrash,
    /// Restart every crashed or wiped member.
    RestartAll,
    /// Set packet loss and duplication (parts per million) and extra latency on every link.
    Network {
        /// Loss, ppm.
        loss_ppm: u64,
        /// Duplication, ppm.
        dup_ppm: u64,
        /// Added delay, up to this many ms per packet.
        latency_ms: u64,
    },
    /// Run a member's clock fast (positive) or slow (negative) by this many ppm.
    ClockRate {
        /// Whose clock.
        member: Target,
        /// Rate error, ppm.
        ppm: i64,
    },
    /// Freeze a client process for `ms` milliseconds (its clock runs on).
    PauseClient {
        /// Which client.
        client: ClientId,
        /// For how long.
        ms: u64,
    },
    /// Freeze a member process for `ms` milliseconds: its clock stands still and its links
    /// hold their messages; then it resumes (the clock jumps, the messages arrive).
    PauseMember {
        /// Whose.
        member: Target,
        /// For how long.
        ms: u64,
    },
    /// Everything back to normal: links, loss, clocks; crashed members restarted.
    Heal,
}

impl Action {
    /// The kind its history line records.
    pub fn kind(&self) -> FaultKind {
        match self {
            Action::Isolate(_) => FaultKind::Partition,
            Action::CutOneWay { .. } => FaultKind::OneWay,
            Action::HealNetwork | Action::Heal => FaultKind::Heal,
            Action::Crash(_) => FaultKind::Crash,
            Action::Wipe(_) => FaultKind::Wipe,
            Action::CellCrash => FaultKind::CellCrash,
            Action::RestartAll => FaultKind::Restart,
            Action::Network { .. } => FaultKind::Network,
            Action::ClockRate { .. } => FaultKind::Clock,
            Action::PauseClient { .. } => FaultKind::ClientPause,
            Action::PauseMember { .. } => FaultKind::MemberPause,
        }
    }
}

/// A fault at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFault {
    /// When, in simulated time since the start.
    pub at: SimTime,
    /// What.
    pub action: Action,
}

/// What the plan needs to know of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    /// Cell size (3 or 5).
    pub members: u64,
    /// Workload clients.
    pub clients: u32,
    /// How long the faulty phase lasts, in ms; the plan heals at its end.
    pub faulty_ms: u64,
    /// The session lease, in ms (a paused client is paused past it).
    pub lease_ms: u64,
    /// The drift bound, in ppm (a drifting clock runs at it).
    pub drift_ppm: u64,
}

impl Default for PlanConfig {
    fn default() -> PlanConfig {
        PlanConfig {
            members: 3,
            clients: 4,
            faulty_ms: 20_000,
            lease_ms: 12_000,
            drift_ppm: 10_000,
        }
    }
}

/// A seeded fault schedule for one scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// The faults in time order; the last is `Heal` at `heal_at`.
    pub faults: Vec<PlannedFault>,
    /// When everything heals.
    pub heal_at: SimTime,
}

fn ms(t: u64) -> SimTime {
    SimTime(t.saturating_mul(1_000_000))
}

struct Builder {
    rng: SplitMix64,
    config: PlanConfig,
    faults: Vec<PlannedFault>,
}

impl Builder {
    fn at(&mut self, t_ms: u64, action: Action) {
        self.faults.push(PlannedFault {
            at: ms(t_ms),
            action,
        });
    }

    fn member(&mut self) -> Target {
        Target::Member(MemberId(self.rng.range(1, self.config.members + 1)))
    }

    /// `count` distinct members, in id order.
    fn members(&mut self, count: u64) -> Vec<Target> {
        let mut ids: Vec<u64> = (1..=self.config.members).collect();
        for i in 0..ids.len() {
            let j = self.rng.range(i as u64, ids.len() as u64) as usize;
            ids.swap(i, j);
        }
        let mut chosen: Vec<u64> = ids.into_iter().take(count as usize).collect();
        chosen.sort_unstable();
        chosen
            .into_iter()
            .map(|id| Target::Member(MemberId(id)))
            .collect()
    }

    fn minority(&self) -> u64 {
        (self.config.members - 1) / 2
    }

    /// Episodes of `fault` then `heal`, back to back through the faulty phase: each lasts
    /// `lasting` ms (a range) after a quiet gap of `gap` ms.
    fn episodes(
        &mut self,
        gap: (u64, u64),
        lasting: (u64, u64),
        mut fault: impl FnMut(&mut Builder) -> Vec<Action>,
        heal: Action,
    ) {
        let end = self.config.faulty_ms;
        let mut t = self.rng.range(gap.0, gap.1);
        while t < end {
            for action in fault(self) {
                self.at(t, action);
            }
            let until = (t + self.rng.range(lasting.0, lasting.1)).min(end);
            self.at(until, heal.clone());
            t = until + self.rng.range(gap.0, gap.1);
        }
    }
}

impl FaultPlan {
    /// The plan for `scenario` drawn from `seed`.
    pub fn generate(scenario: Scenario, seed: u64, config: PlanConfig) -> FaultPlan {
        let mut b = Builder {
            rng: SplitMix64::new(seed ^ (scenario as u64).wrapping_mul(0x9e37_79b9)),
            config,
            faults: Vec::new(),
        };
        let minority = b.minority().max(1);
        let majority = config.members / 2 + 1;
        match scenario {
            Scenario::MinorityPartition => b.episodes(
                (200, 2_000),
                (500, 5_000),
                |b| {
                    let n = b.rng.range(1, minority + 1);
                    vec![Action::Isolate(b.members(n))]
                },
                Action::HealNetwork,
            ),
            Scenario::MajorityPartition => b.episodes(
                (500, 3_000),
                (1_000, 6_000),
                |b| vec![Action::Isolate(b.members(majority))],
                Action::HealNetwork,
            ),
            Scenario::MasterIsolated => b.episodes(
                (500, 3_000),
                (500, 5_000),
                |_| vec![Action::Isolate(vec![Target::Master])],
                Action::HealNetwork,
            ),
            Scenario::OneWay => b.episodes(
                (200, 2_000),
                (500, 5_000),
                |b| {
                    let from = if b.rng.percent(50) {
                        Target::Master
                    } else {
                        b.member()
                    };
                    let to = b.member();
                    vec![Action::CutOneWay { from, to }]
                },
                Action::HealNetwork,
            ),
            Scenario::Flapping => b.episodes(
                (50, 400),
                (50, 400),
                |b| {
                    let side = if b.rng.percent(30) {
                        vec![Target::Master]
                    } else {
                        let n = b.rng.range(1, minority + 1);
                        b.members(n)
                    };
                    vec![Action::Isolate(side)]
                },
                Action::HealNetwork,
            ),
            Scenario::CrashRestart => b.episodes(
                (300, 3_000),
                (10, 4_000),
                |b| {
                    let n = b.rng.range(1, minority + 1);
                    b.members(n).into_iter().map(Action::Crash).collect()
                },
                Action::RestartAll,
            ),
            Scenario::MasterCrash => b.episodes(
                (500, 3_000),
                (10, 4_000),
                |_| vec![Action::Crash(Target::Master)],
                Action::RestartAll,
            ),
            Scenario::CellRestart => b.episodes(
                (1_000, 5_000),
                (10, 2_000),
                |_| vec![Action::CellCrash],
                Action::RestartAll,
            ),
            Scenario::Wipe => b.episodes(
                (1_000, 5_000),
                (100, 3_000),
                |b| {
                    let target = if b.rng.percent(25) {
                        Target::Master
                    } else {
                        b.member()
                    };
                    vec![Action::Wipe(target)]
                },
                Action::RestartAll,
            ),
            Scenario::Network => b.episodes(
                (200, 2_000),
                (500, 5_000),
                |b| {
                    vec![Action::Network {
                        loss_ppm: b.rng.range(0, 300_000),
                        dup_ppm: b.rng.range(0, 50_000),
                        latency_ms: b.rng.range(0, 500),
                    }]
                },
                Action::Network {
                    loss_ppm: 0,
                    dup_ppm: 0,
                    latency_ms: 0,
                },
            ),
            Scenario::ClientPause => {
                let lease = config.lease_ms;
                let mut t = b.rng.range(500, 2_000);
                while t < config.faulty_ms {
                    let client = ClientId(b.rng.range(1, u64::from(config.clients) + 1) as u32);
                    // Past the lease, and past the server's expiry margin too, half the time.
                    let pause = lease + b.rng.range(1, lease / 2 + 2);
                    b.at(t, Action::PauseClient { client, ms: pause });
                    t += b.rng.range(1_000, 5_000);
                }
            }
            Scenario::MasterClockDrift => {
                let drift = config.drift_ppm as i64;
                let mut t = b.rng.range(100, 1_000);
                while t < config.faulty_ms {
                    let ppm = if b.rng.percent(50) { drift } else { -drift };
                    b.at(
                        t,
                        Action::ClockRate {
                            member: Target::Master,
                            ppm,
                        },
                    );
                    t += b.rng.range(1_000, 6_000);
                }
            }
            Scenario::MemberPause => {
                // One pause at a time, each over before the next: at most one member away.
                let mut t = b.rng.range(300, 1_500);
                while t < config.faulty_ms {
                    let member = if b.rng.percent(70) {
                        Target::Master
                    } else {
                        b.member()
                    };
                    // From shorter than a Paxos lease to past a session lease.
                    let pause = b.rng.range(100, config.lease_ms * 3 / 2 + 1);
                    b.at(t, Action::PauseMember { member, ms: pause });
                    t += pause + b.rng.range(500, 3_000);
                }
            }
            Scenario::Mixed => {
                let mut t = b.rng.range(100, 1_000);
                while t < config.faulty_ms {
                    let action = match b.rng.range(0, 6) {
                        0 => {
                            let n = b.rng.range(1, minority + 1);
                            Action::Isolate(b.members(n))
                        }
                        1 => Action::Crash(b.member()),
                        2 => Action::Network {
                            loss_ppm: b.rng.range(0, 100_000),
                            dup_ppm: b.rng.range(0, 20_000),
                            latency_ms: b.rng.range(0, 200),
                        },
                        3 => Action::ClockRate {
                            member: b.member(),
                            ppm: b.rng.range(0, 2 * config.drift_ppm + 1) as i64
                                - config.drift_ppm as i64,
                        },
                        4 => Action::PauseClient {
                            client: ClientId(b.rng.range(1, u64::from(config.clients) + 1) as u32),
                            ms: b.rng.range(10, 2 * config.lease_ms),
                        },
                        _ => Action::CutOneWay {
                            from: Target::Master,
                            to: b.member(),
                        },
                    };
                    // Only one fault at a time: it heals before the next, so a majority stays.
                    let heal = match &action {
                        Action::Crash(_) => Action::RestartAll,
                        Action::Network { .. } | Action::ClockRate { .. } => Action::Heal,
                        Action::PauseClient { .. } => Action::Heal,
                        _ => Action::HealNetwork,
                    };
                    b.at(t, action);
                    let until = (t + b.rng.range(100, 3_000)).min(config.faulty_ms);
                    b.at(until, heal);
                    t = until + b.rng.range(100, 2_000);
                }
            }
        }
        let heal_at = ms(config.faulty_ms);
        b.faults.retain(|f| f.at < heal_at);
        b.faults.sort_by_key(|f| f.at);
        b.faults.push(PlannedFault {
            at: heal_at,
            action: Action::Heal,
        });
        FaultPlan {
            scenario,
            seed,
            faults: b.faults,
            heal_at,
        }
    }
}
