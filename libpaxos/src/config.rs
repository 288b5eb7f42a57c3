//! A replica's configuration, checked by [`Config::validate`].

use core::time::Duration;

use crate::types::NodeId;

/// How a replica behaves. Build one with [`Config::new`], adjust fields, then the core calls
/// [`validate`](Config::validate) when it is constructed.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// This replica.
    pub id: NodeId,
    /// Every voting member, this replica included. Between 1 and 64 members, no duplicates.
    pub members: Vec<NodeId>,
    /// How long a replica that heard from the master promises not to promise anyone else.
    /// Fail-over takes about this long. Default 400 ms (a LAN cell).
    pub lease: Duration,
    /// How often the master sends heartbeats. Default `lease / 4`.
    pub heartbeat_interval: Duration,
    /// A follower that has not heard from a master for a random time in
    /// `[election_timeout, 2 * election_timeout)` (and whose lease promise has run out) stands
    /// for election. Default `lease + lease / 4`.
    pub election_timeout: Duration,
    /// The bound on how much any clock's rate may differ from true time, as a fraction (0.01 is
    /// 1 %). The master shortens its lease so that it expires before any follower's promise.
    pub max_drift: f64,
    /// Seeds election jitter. Give each replica, and each restart of it, a different seed
    /// (for example the node id mixed with a boot counter), or a restarted replica repeats its
    /// previous jitter.
    pub seed: u64,
    /// At most this many entries in one Accept, Promise or CatchUp message.
    pub max_batch_entries: usize,
    /// At most about this many payload bytes in one Accept or CatchUp message.
    pub max_batch_bytes: usize,
    /// At most this many slots proposed but not yet committed; `propose` refuses more.
    pub max_inflight: u64,
    /// At most this many committed entries in one Ready.
    pub max_apply_batch: usize,
    /// Deliberately broken behaviour for mutation testing of the simulation; `None` in any real
    /// use. Exists only with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fault: Option<crate::Fault>,
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `members` is empty or has more than 64 entries.
    #[error("a cell needs between 1 and 64 members, this one has {0}")]
    MemberCount(usize),
    /// A node id appears twice in `members`.
    #[error("member {0} is listed twice")]
    DuplicateMember(NodeId),
    /// `id` is not in `members`.
    #[error("this replica's id {0} is not in the member list")]
    NotAMember(NodeId),
    /// A node id is too large to pack into an epoch.
    #[error("node id {0} is too large (ids must be below 65536)")]
    NodeIdTooLarge(NodeId),
    /// A duration is zero or the intervals contradict each other.
    #[error("timing is inconsistent: {0}")]
    Timing(&'static str),
    /// `max_drift` is not in `[0, 0.1]`.
    #[error("max_drift must be between 0 and 0.1, got {0}")]
    Drift(f64),
    /// A batch or window limit is zero.
    #[error("limit {0} must be at least 1")]
    ZeroLimit(&'static str),
}

impl Config {
    /// A configuration with the LAN defaults for replica `id` of the cell `members`.
    pub fn new(id: NodeId, members: Vec<NodeId>) -> Config {
        let lease = Duration::from_millis(400);
        Config {
            id,
            members,
            lease,
            heartbeat_interval: lease / 4,
            election_timeout: lease + lease / 4,
            max_drift: 0.01,
            seed: id.0,
            max_batch_entries: 256,
            max_batch_bytes: 256 * 1024,
            max_inflight: 1024,
            max_apply_batch: 1024,
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    /// Sets `lease` and derives the heartbeat interval and election timeout from it.
    pub fn with_lease(mut self, lease: Duration) -> Config {
        self.lease = lease;
        self.heartbeat_interval = lease / 4;
        self.election_timeout = lease + lease / 4;
        self
    }

    /// Checks every rule stated on the fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.members.is_empty() || self.members.len() > 64 {
            return Err(ConfigError::MemberCount(self.members.len()));
        }
        let mut sorted = self.members.clone();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateMember(pair[0]));
        }
        if let Some(big) = sorted.iter().find(|n| n.0 >= NodeId::LIMIT) {
            return Err(ConfigError::NodeIdTooLarge(*big));
        }
        if !self.members.contains(&self.id) {
            return Err(ConfigError::NotAMember(self.id));
        }
        let hour = Duration::from_secs(3600);
        if self.lease > hour || self.election_timeout > hour {
            return Err(ConfigError::Timing(
                "lease and election timeout must be at most an hour",
            ));
        }
        if self.max_inflight > 1 << 20 {
            return Err(ConfigError::Timing(
                "max_inflight must be at most 2^20 slots",
            ));
        }
        if self.lease.is_zero() || self.heartbeat_interval.is_zero() {
            return Err(ConfigError::Timing(
                "lease and heartbeat interval must be positive",
            ));
        }
        if self.heartbeat_interval * 2 > self.lease {
            return Err(ConfigError::Timing(
                "heartbeat interval must be at most half the lease, or leases lapse between beats",
            ));
        }
        if self.election_timeout < self.lease {
            return Err(ConfigError::Timing(
                "election timeout must be at least the lease, or healthy masters get deposed",
            ));
        }
        if !(0.0..=0.1).contains(&self.max_drift) || self.max_drift.is_nan() {
            return Err(ConfigError::Drift(self.max_drift));
        }
        for (name, value) in [
            ("max_batch_entries", self.max_batch_entries as u64),
            ("max_batch_bytes", self.max_batch_bytes as u64),
            ("max_inflight", self.max_inflight),
            ("max_apply_batch", self.max_apply_batch as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        Ok(())
    }

    /// How far above its own commit index an acceptor accepts entries: `4 * max_inflight`.
    /// An honest master never has more than `max_inflight` new slots in flight (plus, right
    /// after taking office, the previous terms' open slots, themselves within a window), so
    /// the margin only absorbs a follower's lag. It bounds what a promise must carry.
    pub fn accept_window(&self) -> u64 {
        self.max_inflight.saturating_mul(4)
    }

    /// How many members make a majority.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    /// How long the master may rely on a lease after sending the heartbeat that earned it.
    ///
    /// A follower promises for `lease` of its own clock, which is at least `lease / (1 + d)` of
    /// true time; the master measures with a clock that may run as slow as `1 - d`, so it must
    /// stop after `lease * (1 - d) / (1 + d)` of its own time. We use `lease * (1 - 2d)`, which
    /// is never larger: `(1 - 2d)(1 + d) = 1 - d - 2d² ≤ 1 - d`.
    pub fn master_lease(&self) -> Duration {
        #[cfg(feature = "fault-injection")]
        if self.fault == Some(crate::Fault::NoDriftMargin) {
            return self.lease;
        }
        self.lease.mul_f64(1.0 - 2.0 * self.max_drift)
    }
}
