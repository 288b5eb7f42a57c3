//! cld-server: the `cld` daemon, one member of a CLD cell.
//!
//! What exists (see `docs/operations.md`): the `cld` binary and its `cell.toml`
//! ([`config`]); the data dir's identity and the empty-data-dir rule ([`datadir`]); the
//! replica loop that owns the [`libpaxos_db::DbReplica`] with group commit
//! ([`replica_loop`]); the authenticated, encrypted peer transport over TCP ([`peer`]);
//! counters and the Prometheus listener ([`metrics`]); the client front end ([`frontend`]):
//! wire protocol v2 over UDP, a sans-IO core driven by the replica loop, so reads see the
//! namespace synchronously and applied commands route their replies and events to it; the
//! cell key file ([`keys`]).
//!
//! [`ServerHandle`] is the tests' and tools' way into the loop: [`ServerHandle::submit`]
//! proposes a command and returns its [`libpaxos_db::Applied`]; [`ServerHandle::read`] runs a
//! closure over the namespace when `DbReplica::can_read` holds; [`ServerHandle::roles`]
//! watches role, epoch and lease.
//!
//! Time and randomness come only through [`env::Clock`] and [`env::Entropy`], sockets through
//! [`peer::Net`] and [`env::Datagrams`], storage through the `LogStore` parameter of the loop: the whole-cell
//! simulation can run this code on turmoil.
#![deny(missing_docs)]

pub mod config;
pub mod datadir;
pub mod env;
pub mod frontend;
pub mod keys;
pub mod metrics;
pub mod peer;
pub mod replica_loop;
pub mod server;

pub use config::{CellConfig, ConfigError, TimingOverrides};
pub use replica_loop::{RoleView, ServerHandle, StatusView, SubmitError};
pub use server::{Bugs, Server, ServerOptions, StartError, start, start_on_kv, start_with};
