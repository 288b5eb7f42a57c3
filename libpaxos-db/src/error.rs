//! The crate's error type for storage, snapshot and recovery failures. Command failures are
//! not errors of this kind: they are replies ([`CmdError`](crate::CmdError)).

use std::path::PathBuf;

use libpaxos::{Slot, StorageError};

use crate::codec::DecodeError;
use crate::config::ConfigError;

/// A failure of the database itself. After any of these from `apply` or `install`, drop the
/// [`Namespace`](crate::Namespace) and reopen it: its in-memory state may be ahead of disk.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The key-value store failed: sled in `cld`, or the simulation's `MemKv` (the message
    /// names no engine, since both come here).
    #[error("storage failed while {doing}: {reason}")]
    Sled {
        /// What we were doing.
        doing: &'static str,
        /// The engine's message.
        reason: String,
    },
    /// A namespace record does not decode or fails its checksum.
    #[error("namespace record in tree {tree} at key {key} is corrupt: {reason}")]
    CorruptRecord {
        /// The sled tree.
        tree: String,
        /// The key, printed.
        key: String,
        /// What is wrong.
        reason: DecodeError,
    },
    /// The store was written in another on-disk format than this build's (version 1 is a
    /// store without a version record). Nothing was read or changed; the data is not
    /// converted: move the data directory aside and rebuild the member from its peers
    /// (docs/database.md).
    #[error(
        "the database has on-disk format version {found}, this build reads only version {expected}"
    )]
    FormatVersion {
        /// The version found in the store.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The namespace failed to persist a command earlier and refuses further work.
    #[error("the namespace failed to persist an earlier command; reopen it")]
    Poisoned,
    /// Committed entries must be applied in slot order without gaps.
    #[error("apply out of order: expected slot {expected}, got {got}")]
    ApplyOutOfOrder {
        /// The next slot to apply.
        expected: Slot,
        /// The slot offered.
        got: Slot,
    },
    /// The log has no entry for a slot that must be replayed.
    #[error("log has no entry for slot {0}, which recovery must replay")]
    ReplayHole(Slot),
    /// The log store failed.
    #[error("log storage: {0}")]
    Log(#[from] StorageError),
    /// A snapshot file could not be read or written.
    #[error("snapshot file {file}: I/O failed: {reason}")]
    SnapshotIo {
        /// The file.
        file: PathBuf,
        /// The OS's message.
        reason: String,
    },
    /// A snapshot file does not start with the snapshot magic.
    #[error("snapshot file {file} is not a snapshot (bad magic)")]
    SnapshotMagic {
        /// The file.
        file: PathBuf,
    },
    /// A snapshot file has a format version this build cannot read.
    #[error("snapshot file {file} has unsupported version {version}")]
    SnapshotVersion {
        /// The file.
        file: PathBuf,
        /// The version found.
        version: u32,
    },
    /// A snapshot file ends before its trailer.
    #[error("snapshot file {file} is truncated at byte {offset}")]
    SnapshotTruncated {
        /// The file.
        file: PathBuf,
        /// Where the data ran out.
        offset: u64,
    },
    /// A snapshot file's SHA-256 trailer does not match its contents.
    #[error("snapshot file {file} fails its SHA-256 check (at applied index {index})")]
    SnapshotChecksum {
        /// The file.
        file: PathBuf,
        /// The applied index its header claims.
        index: Slot,
    },
    /// A snapshot record is malformed.
    #[error("snapshot file {file} has a bad record at byte {offset}: {reason}")]
    SnapshotRecord {
        /// The file.
        file: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A namespace record is larger than a snapshot record may be, so no reader would accept
    /// the snapshot; the write is abandoned.
    #[error(
        "namespace record in tree {tree} at key {key} is {len} bytes, above the snapshot record limit"
    )]
    SnapshotRecordTooLarge {
        /// The sled tree.
        tree: String,
        /// The key, printed.
        key: String,
        /// The encoded record's length.
        len: usize,
    },
    /// A transfer chunk arrived out of order or does not belong to this transfer.
    #[error("snapshot chunk at offset {got} does not follow offset {expected}")]
    ChunkOutOfOrder {
        /// The offset expected next.
        expected: u64,
        /// The offset received.
        got: u64,
    },
    /// A transfer chunk is for another snapshot than the one being received.
    #[error("snapshot chunk is for index {got}, the transfer is for {expected}")]
    ChunkWrongSnapshot {
        /// The snapshot being received.
        expected: Slot,
        /// The chunk's.
        got: Slot,
    },
    /// A transfer chunk announces another total length than the transfer's first chunk.
    #[error("snapshot chunk announces {got} bytes in all, the transfer announced {expected}")]
    ChunkTotalMismatch {
        /// The transfer's announced length.
        expected: u64,
        /// The chunk's.
        got: u64,
    },
    /// A transfer ended before all bytes arrived, or more bytes arrived than announced.
    #[error("snapshot transfer has {received} bytes of {total}")]
    ChunkLength {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        total: u64,
    },
    /// A transfer announces a snapshot larger than `DbConfig::max_snapshot_size`.
    #[error("snapshot transfer announces {total} bytes, above the limit of {max}")]
    SnapshotTooLarge {
        /// Bytes announced.
        total: u64,
        /// The configured limit.
        max: u64,
    },
    /// Installing a snapshot that is not ahead of the namespace.
    #[error("snapshot at {snapshot} is not ahead of the namespace (applied {applied})")]
    SnapshotBehind {
        /// The snapshot's index.
        snapshot: Slot,
        /// The namespace's applied index.
        applied: Slot,
    },
    /// A snapshot is being written from the namespace trees; installing now would pull them
    /// from under it. Retry the transfer once it has finished.
    #[error("a snapshot is being written; install refused until it finishes")]
    SnapshotInProgress,
    /// A snapshot install is being staged off the replica loop; another transfer is refused
    /// until it has finished.
    #[error("a snapshot install is in progress; another transfer is refused until it finishes")]
    InstallInProgress,
    /// The namespace generation counter read from `db.meta` is at its maximum, so no new
    /// generation can be staged for an install.
    #[error("namespace generation {0} cannot be incremented; the install is refused")]
    GenerationExhausted(u64),
    /// sled refused to open its files (damaged by a failing disk, or another process holds
    /// them). The message names the directory; `docs/database.md` ("Rebuilding a member")
    /// says how to rebuild the member from its peers.
    #[error(
        "cannot open the database in {dir}: sled refused its files: {reason}; if the files are damaged, rebuild this member from its peers (docs/database.md, \"Rebuilding a member\")"
    )]
    OpenFailed {
        /// The sled directory.
        dir: PathBuf,
        /// sled's message.
        reason: String,
    },
    /// A flush or fsync failed. Fatal: the database refuses every later flush with the same
    /// error without trying again (a retried fsync can succeed after the kernel dropped the
    /// pages it failed to write); stop the process and recover from disk at restart.
    #[error("{0}")]
    SyncFailed(#[from] crate::durable::SyncError),
    /// No snapshot has been taken yet.
    #[error("no snapshot exists yet")]
    NoSnapshot,
}

impl DbError {
    pub(crate) fn sled(doing: &'static str, err: impl core::fmt::Display) -> DbError {
        DbError::Sled {
            doing,
            reason: err.to_string(),
        }
    }

    pub(crate) fn snapshot_io(file: &std::path::Path, err: impl core::fmt::Display) -> DbError {
        DbError::SnapshotIo {
            file: file.to_path_buf(),
            reason: err.to_string(),
        }
    }
}
