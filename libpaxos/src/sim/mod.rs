//! A deterministic simulation of a whole cell, for tests, examples and the curious.
//!
//! Everything (message delays, loss, duplication, crashes, partitions, clock skew, when disks
//! sync, what clients propose) is drawn from one seed, so a failing run replays exactly. The
//! invariants of DESIGN §3 are checked after every simulated millisecond by [`Checker`].
//! This module uses no clock, thread or socket: it is as sans-IO as the core it drives.

mod checker;
mod cluster;
mod network;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

pub use checker::Checker;
pub use cluster::{Cluster, STEP, SimConfig, SimNode};
pub use network::{InFlight, Network, NetworkConfig};

/// What one seeded run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The trace's hash (equal for equal seeds).
    pub trace_hash: u64,
    /// Slots chosen.
    pub chosen: usize,
    /// Writes acknowledged.
    pub acked: u64,
    /// Master terms begun.
    pub terms: usize,
    /// How long after the heal the first new write was acknowledged.
    pub recovery: Duration,
    /// Hand-overs completed (the old master stepped down and released its lease).
    pub handovers: u64,
}

/// The standard run: `faulty` of random faults, then heal everything and require that a new
/// write commits within `liveness_bound`. Returns the first violation as an error.
pub fn run(
    config: SimConfig,
    faulty: Duration,
    liveness_bound: Duration,
) -> Result<Outcome, String> {
    let seed = config.seed;
    let mut cluster = Cluster::new(config);
    cluster.set_random_faults(true);
    cluster.run_for(faulty);
    if let Some(violation) = cluster.violation() {
        return Err(format!("safety: {violation} ({})", cluster.summary()));
    }
    cluster.heal_all();
    let healed_at = cluster.now;
    let first_new = cluster.acked;
    let deadline = healed_at + liveness_bound;
    let mut recovery = None;
    while cluster.now < deadline {
        cluster.step();
        if let Some(violation) = cluster.violation() {
            return Err(format!(
                "safety after heal: {violation} ({})",
                cluster.summary()
            ));
        }
        if recovery.is_none()
            && cluster.acked > first_new
            && let Some((at, _)) = cluster.last_ack
        {
            recovery = Some(at - healed_at);
        }
        // Done when a new write committed and every replica has caught up with it.
        if recovery.is_some() && cluster.converged(cluster.checker.acked_through) {
            break;
        }
    }
    cluster.check_durably_chosen();
    if let Some(violation) = cluster.violation() {
        return Err(format!(
            "safety at the end: {violation} ({})",
            cluster.summary()
        ));
    }
    let recovery = recovery.filter(|_| cluster.converged(cluster.checker.acked_through));
    let Some(recovery) = recovery else {
        return Err(format!(
            "liveness: no write committed within {:?} of healing, or a replica never caught up ({})",
            liveness_bound,
            cluster.summary()
        ));
    };
    Ok(Outcome {
        seed,
        trace_hash: cluster.trace_hash(),
        chosen: cluster.checker.chosen.len(),
        acked: cluster.acked,
        terms: cluster.leadership.len(),
        recovery,
        handovers: cluster.handovers,
    })
}
