//! libpaxos: a sans-IO Multi-Paxos replicated log with master election and master leases.
#![deny(missing_docs)]
pub mod config;
pub mod message;
pub mod ready;
pub mod storage;
pub mod types;
pub use config::{Config, ConfigError};
pub use message::{Envelope, Message};
pub use ready::{Committed, Event, Persist, Ready, Role};
pub use storage::{HardState, LogStore, Storage, StorageError};
pub use types::{Ballot, Entry, Epoch, NodeId, Payload, Slot, Time, Value};
/// Deliberately broken behaviours, for showing that the simulation catches bugs.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {}
