//! libpaxos-db: the CLD namespace as a replicated state machine on sled, with snapshots, log
//! trimming and catch-up, and the glue that drives a `libpaxos` replica with it.
//!
//! What it is for: applying committed Paxos slots to the namespace (files, directories,
//! sessions, handles, locks) deterministically and atomically with the applied index; storing
//! the Paxos log in the same sled database; snapshotting, transferring and installing the
//! namespace. What it is not for: sockets, clocks, client authentication, session leases and
//! keep-alives (the server's). Lock-delay is replicated state here (`docs/database.md`); the
//! master decides when to propose `Command::EndLockDelays`.
#![deny(missing_docs)]

mod apply;
mod apply_lock;
mod apply_node;
pub mod codec;
pub mod command;
pub mod config;
mod database;
mod durable;
mod error;
pub mod glue;
pub mod kv;
pub mod kv_conformance;
mod kv_log_store;
pub mod lock;
pub mod log_store;
mod mem_kv;
pub mod mode;
mod namespace;
pub mod node;
pub mod path;
mod sled_kv;
pub mod snapshot;
mod state;
mod store;
mod transfer;
pub mod types;

pub use command::{
    Applied, ClientOp, ClientRequest, CmdError, Command, EventKind, ModeRule, Notice, Permission,
    Reply, Response, SESSION_KEYS_LEN, Sequencer,
};
pub use config::{ConfigError, DbConfig, Limits};
pub use database::{Database, DbCounters, InstallJob, StagedInstall, open_sled};
pub use durable::{SyncCounters, SyncError};
pub use error::DbError;
pub use glue::{DbReplica, GlueCounters, GlueError, Output};
pub use kv::{DynKv, KvError, KvStore, KvWrite, WriteBatch};
pub use kv_log_store::KvLogStore;
pub use lock::LockState;
pub use log_store::SledLogStore;
pub use mem_kv::{MemKv, MemKvCounters};
pub use mode::{EventMask, LockMode, OpenMode};
pub use namespace::{Dump, Namespace, NamespaceCounters, ReadError};
pub use node::{DirEntry, Handle, HandleRef, Node, NodeKind, Session, Tombstone};
pub use path::PathError;
pub use sled_kv::SledKv;
pub use snapshot::{SnapshotInfo, SnapshotJob};
pub use store::FORMAT_VERSION;
pub use transfer::{SnapshotChunk, SnapshotInstaller, SnapshotReader};
pub use types::{
    Checksum, ContentGeneration, HandleId, Instance, LockGeneration, RequestSeq, SessionId,
    WallTime,
};
