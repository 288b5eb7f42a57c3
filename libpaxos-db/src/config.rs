//! Limits of the namespace and settings of the database, checked by `validate`.

use std::path::PathBuf;

/// The largest file size the limit may be raised to.
pub const MAX_FILE_SIZE_CEILING: u64 = 256 * 1024;

/// The largest `max_waiters_per_lock` and `max_holders_per_lock` may be raised to: with both at
/// the ceiling, a lock record (its holders and its queue) still fits one snapshot record
/// ([`MAX_RECORD`](crate::snapshot::MAX_RECORD)), so every snapshot can be read back.
pub const LOCK_PARTIES_CEILING: u64 = 15_000;

/// Limits every replica must agree on (they decide replies, so they are part of the replicated
/// state machine's definition: change them only on every member at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest file, in bytes. Default 128 KiB (CLD's), at most 256 KiB.
    pub max_file_size: u64,
    /// Most sessions at once. Default 100 000.
    pub max_sessions: u64,
    /// Most open handles per session. Default 10 000.
    pub max_handles_per_session: u64,
    /// Most queued lock requests per node. Default 10 000, at most 15 000.
    pub max_waiters_per_lock: u64,
    /// Most shared holders of one node's lock: a request beyond it is refused, a queued one
    /// waits for a holder to leave. Default 10 000, at most 15 000.
    pub max_holders_per_lock: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_file_size: 128 * 1024,
            max_sessions: 100_000,
            max_handles_per_session: 10_000,
            max_waiters_per_lock: 10_000,
            max_holders_per_lock: 10_000,
        }
    }
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_file_size` is above 256 KiB.
    #[error("max_file_size {0} is above the ceiling of 262144 bytes")]
    FileSizeCeiling(u64),
    /// A lock limit is above [`LOCK_PARTIES_CEILING`].
    #[error(
        "{name} {value} is above the ceiling of 15000 (a lock record must fit a snapshot record)"
    )]
    LockPartiesCeiling {
        /// The limit.
        name: &'static str,
        /// Its configured value.
        value: u64,
    },
    /// A limit or interval is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The kept tail is not below the snapshot interval.
    #[error("keep_tail {keep_tail} must be below snapshot_every {snapshot_every}")]
    TailTooLong {
        /// The configured tail.
        keep_tail: u64,
        /// The configured interval.
        snapshot_every: u64,
    },
}

impl Limits {
    /// Checks every rule stated on the fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_file_size > MAX_FILE_SIZE_CEILING {
            return Err(ConfigError::FileSizeCeiling(self.max_file_size));
        }
        for (name, value) in [
            ("max_sessions", self.max_sessions),
            ("max_handles_per_session", self.max_handles_per_session),
            ("max_waiters_per_lock", self.max_waiters_per_lock),
            ("max_holders_per_lock", self.max_holders_per_lock),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (name, value) in [
            ("max_waiters_per_lock", self.max_waiters_per_lock),
            ("max_holders_per_lock", self.max_holders_per_lock),
        ] {
            if value > LOCK_PARTIES_CEILING {
                return Err(ConfigError::LockPartiesCeiling { name, value });
            }
        }
        Ok(())
    }
}

/// How a [`Database`](crate::Database) runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbConfig {
    /// Directory holding `sled/` and `snapshots/`.
    pub dir: PathBuf,
    /// Namespace limits.
    pub limits: Limits,
    /// Take a snapshot after this many applied entries. Default 10 000.
    pub snapshot_every: u64,
    /// Entries kept in the log below the newest snapshot, so slightly lagging peers catch up
    /// from entries. Default 1 000.
    pub keep_tail: u64,
    /// Bytes per snapshot transfer chunk. Default 256 KiB.
    pub chunk_size: usize,
    /// Snapshot files kept on disk. Default 2.
    pub keep_snapshots: usize,
    /// sled's page cache, in bytes. Default 64 MiB.
    pub cache_bytes: u64,
    /// The largest snapshot accepted from a peer, in bytes: a transfer announcing more is
    /// refused before anything is written. Default 4 GiB; at least 1.
    pub max_snapshot_size: u64,
}

impl DbConfig {
    /// Defaults for a database in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> DbConfig {
        DbConfig {
            dir: dir.into(),
            limits: Limits::default(),
            snapshot_every: 10_000,
            keep_tail: 1_000,
            chunk_size: 256 * 1024,
            keep_snapshots: 2,
            cache_bytes: 64 * 1024 * 1024,
            max_snapshot_size: 4 << 30,
        }
    }

    /// Checks every rule stated on the fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.validate()?;
        if self.snapshot_every == 0 {
            return Err(ConfigError::Zero("snapshot_every"));
        }
        if self.chunk_size == 0 {
            return Err(ConfigError::Zero("chunk_size"));
        }
        if self.keep_snapshots == 0 {
            return Err(ConfigError::Zero("keep_snapshots"));
        }
        if self.max_snapshot_size == 0 {
            return Err(ConfigError::Zero("max_snapshot_size"));
        }
        if self.keep_tail >= self.snapshot_every {
            return Err(ConfigError::TailTooLong {
                keep_tail: self.keep_tail,
                snapshot_every: self.snapshot_every,
            });
        }
        Ok(())
    }
}
