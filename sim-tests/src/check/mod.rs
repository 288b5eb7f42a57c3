//! The checkers: each reads a [`History`] and says pass, fail (with the violations) or
//! undecided. They judge only what the history shows; none looks inside a server.

mod convergence;
mod durability;
mod linearizability;
mod liveness;
mod locks;

use core::fmt;

use crate::history::{History, OpId, SimTime};

pub use convergence::check_convergence;
pub use durability::check_durability;
pub use linearizability::{RegisterState, check_linearizability};
pub use liveness::check_liveness;
pub use locks::{
    BeliefEnd, BeliefInterval, belief_intervals, check_lock_delay, check_lock_safety,
    check_sequencers,
};

/// The checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Each file behaves as one register with compare-and-set.
    Linearizability,
    /// Believed exclusive holds never overlap another hold of the same lock.
    LockSafety,
    /// A lock released by its holder's expiry waits `lock_delay` before the next grant.
    LockDelay,
    /// Exclusive sequencers strictly increase per lock; stale ones fail `check_sequencer`.
    Sequencers,
    /// Every acknowledged write is read back or overwritten.
    Durability,
    /// After healing, every member's namespace digest is the same.
    Convergence,
    /// After healing, every live client completes an operation within the bound.
    Liveness,
}

impl Check {
    /// Every check, in the order [`check_all`] runs them.
    pub const ALL: [Check; 7] = [
        Check::Linearizability,
        Check::LockSafety,
        Check::LockDelay,
        Check::Sequencers,
        Check::Durability,
        Check::Convergence,
        Check::Liveness,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::Linearizability => "linearizability",
            Check::LockSafety => "lock safety",
            Check::LockDelay => "lock delay",
            Check::Sequencers => "sequencers",
            Check::Durability => "durability",
            Check::Convergence => "convergence",
            Check::Liveness => "liveness",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which check found it.
    pub check: Check,
    /// When it shows (the timeline highlights the earliest).
    pub at: SimTime,
    /// The operations involved (highlighted in the timeline).
    pub ops: Vec<OpId>,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.check, self.at, self.message)?;
        if !self.ops.is_empty() {
            let ids: Vec<String> = self.ops.iter().map(|id| format!("#{}", id.0)).collect();
            write!(f, " (ops {})", ids.join(", "))?;
        }
        Ok(())
    }
}

/// A check's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The history keeps the rule.
    Pass,
    /// The history breaks it.
    Fail(Vec<Violation>),
    /// The search ran out of budget before deciding.
    Undecided(String),
    /// The history holds nothing this check judges (for example no digests recorded).
    Skipped(String),
}

impl Verdict {
    /// Pass or fail from a list of violations.
    pub fn from_violations(mut violations: Vec<Violation>) -> Verdict {
        if violations.is_empty() {
            Verdict::Pass
        } else {
            violations.sort_by_key(|v| v.at);
            Verdict::Fail(violations)
        }
    }

    /// True for [`Verdict::Fail`].
    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail(_))
    }
}

/// Parameters of the checks. [`CheckConfig::for_history`] takes them from the meta line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// The most search steps linearizability spends on one file before saying undecided.
    pub linearizability_steps: u64,
    /// The cell's lock-delay, in ns.
    pub lock_delay_ns: u64,
    /// How soon after the last heal each live client must complete an operation, in ns.
    pub liveness_bound_ns: u64,
    /// The clock-drift bound, in parts per million (lock-delay allows for it).
    pub clock_drift_ppm: u64,
}

impl Default for CheckConfig {
    fn default() -> CheckConfig {
        CheckConfig {
            linearizability_steps: 2_000_000,
            lock_delay_ns: 0,
            liveness_bound_ns: 10_000_000_000,
            clock_drift_ppm: crate::history::DEFAULT_DRIFT_PPM,
        }
    }
}

impl CheckConfig {
    /// The defaults, with the lock delay and liveness bound of the history's meta line.
    pub fn for_history(history: &History) -> CheckConfig {
        let mut config = CheckConfig::default();
        if let Some(meta) = history.meta() {
            config.lock_delay_ns = meta.lock_delay_ns;
            config.clock_drift_ppm = meta.clock_drift_ppm;
            if let Some(bound) = meta.liveness_bound_ns {
                config.liveness_bound_ns = bound;
            }
        }
        config
    }
}

/// Every check's verdict on one history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// One per check, in [`Check::ALL`] order.
    pub verdicts: Vec<(Check, Verdict)>,
}

impl Report {
    /// The verdict of one check.
    pub fn verdict(&self, check: Check) -> Option<&Verdict> {
        self.verdicts
            .iter()
            .find(|(c, _)| *c == check)
            .map(|(_, v)| v)
    }

    /// True when no check failed (undecided and skipped checks do not fail a run).
    pub fn passed(&self) -> bool {
        !self.verdicts.iter().any(|(_, v)| v.is_fail())
    }

    /// Every violation of every check, earliest first.
    pub fn violations(&self) -> Vec<&Violation> {
        let mut all: Vec<&Violation> = self
            .verdicts
            .iter()
            .filter_map(|(_, v)| match v {
                Verdict::Fail(violations) => Some(violations),
                _ => None,
            })
            .flatten()
            .collect();
        all.sort_by_key(|v| (v.at, v.check));
        all
    }

    /// The earliest violation.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.violations().into_iter().next()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (check, verdict) in &self.verdicts {
            match verdict {
                Verdict::Pass => writeln!(f, "{check}: pass")?,
                Verdict::Undecided(why) => writeln!(f, "{check}: undecided ({why})")?,
                Verdict::Skipped(why) => writeln!(f, "{check}: skipped ({why})")?,
                Verdict::Fail(violations) => {
                    writeln!(f, "{check}: FAIL, {} violation(s)", violations.len())?;
                    for violation in violations {
                        writeln!(f, "  {violation}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs every check.
pub fn check_all(history: &History, config: &CheckConfig) -> Report {
    let verdicts = Check::ALL
        .iter()
        .map(|&check| {
            let verdict = match check {
                Check::Linearizability => check_linearizability(history, config),
                Check::LockSafety => check_lock_safety(history),
                Check::LockDelay => check_lock_delay(history, config),
                Check::Sequencers => check_sequencers(history),
                Check::Durability => check_durability(history),
                Check::Convergence => check_convergence(history),
                Check::Liveness => check_liveness(history, config),
            };
            (check, verdict)
        })
        .collect();
    Report { verdicts }
}
