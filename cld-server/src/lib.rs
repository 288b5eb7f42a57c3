//! cld-server: the `cld` daemon, one member of a CLD cell.
//!
//! What exists (see `docs/operations.md`): the `cld` binary and its `cell.toml`
//! ([`config`]); the data dir's identity and the empty-data-dir rule ([`datadir`]); the
//! replica loop that owns the [`libpaxos_db::DbReplica`] with group commit
//! ([`replica_loop`]); the authenticated, encrypted peer transport over TCP ([`peer`]);
//! counters and the Prometheus listener ([`metrics`]). Not yet: the client front end (UDP,
//! wire protocol v2), which plugs into [`ServerHandle`].
//!
//! # The front end's interface
//!
//! The session front end will be a sans-IO core owned by the UDP task. What it needs from the
//! replica loop is on [`ServerHandle`]:
//!
//! * [`ServerHandle::submit`] proposes a [`libpaxos_db::Command`] (client requests stamped
//!   with the master's wall time, `ExpireSession`) and returns its
//!   [`libpaxos_db::Applied`] — reply and notices — once its slot is applied, or
//!   [`SubmitError::NotMaster`] with a hint, [`SubmitError::Lost`] when a change of master
//!   chose another value for the slot (propose again: `(session, seq)` deduplicates).
//! * [`ServerHandle::read`] runs a closure over the namespace only when
//!   `DbReplica::can_read` holds (master, lease, applied through the fence).
//! * [`ServerHandle::roles`] is a watch of [`RoleView`] (role, epoch, master hint, lease,
//!   voting state): a new epoch on this member means "send every session `MasterFailover`
//!   and a fresh lease".
//! * [`ServerHandle::sessions`] lists the committed session records.
//!
//! Time and randomness come only through [`env::Clock`] and [`env::Entropy`], sockets through
//! [`peer::Net`], storage through the `LogStore` parameter of the loop: the whole-cell
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
pub use server::{Server, ServerOptions, StartError, start};
