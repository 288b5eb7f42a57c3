//! libpaxos: a sans-IO Multi-Paxos replicated log with master election and master leases.
//!
//! It is for replicating an ordered log of opaque commands among a fixed cell of 3 or 5
//! members, electing a master that holds a lease (so it can serve reads locally), and telling a
//! lagging member to catch up or to install a snapshot. It is not a transport, a disk format or
//! a clock: those belong to the driver, which feeds [`Replica`] its inputs (`propose`,
//! `on_message`, `on_tick`, `on_persisted`, `on_applied`, `compact`) with the current time and
//! performs the [`Ready`] batches it hands back. Given the same inputs the core does the same
//! thing, so every failure can be replayed.
//!
//! ```text
//! loop {
//!     feed one input (a message, a tick, a proposal, a persisted notice) with `now`;
//!     let ready = replica.ready();
//!     storage.write(&ready.persist); storage.sync();     // one fsync per Ready
//!     send(ready.after_persist); send(ready.messages);    // `messages` may go before the sync
//!     apply(ready.committed); act_on(ready.events);
//!     replica.on_persisted(now, ready.number);
//! }
//! ```
//!
//! `docs/libpaxos.md` describes the contract in full; [`conformance`] checks a storage
//! against it and [`MemStorage`] is the reference in-memory implementation.
#![deny(missing_docs)]

extern crate alloc;

mod catchup;
pub mod config;
pub mod conformance;
mod counters;
mod election;
mod error;
mod handover;
mod lease;
pub mod mem_storage;
pub mod message;
pub mod ready;
mod replica;
mod replication;
mod rng;
pub mod sim;
pub mod storage;
pub mod types;

pub use config::{Config, ConfigError};
pub use counters::Counters;
pub use error::{Error, HandOverError, ProposeError};
pub use mem_storage::MemStorage;
pub use message::{Envelope, Message};
pub use ready::{Committed, Event, Persist, Ready, Role};
pub use replica::{Replica, Status};
pub use storage::{HardState, LogStore, Storage, StorageError};
pub use types::{Ballot, Entry, Epoch, NodeId, Payload, Slot, Time, Value};

/// Deliberately broken behaviours, to show that the simulation catches real bugs. Set one in
/// `Config::fault`; only with the `fault-injection` feature, never in a product build.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A restarted replica forgets the ballot it promised (hard state not read back).
    ForgetPromiseOnRestart,
    /// A restarted replica promises at once instead of waiting out one lease.
    NoQuietAfterRestart,
    /// The master serves reads whenever it is master, lease or not.
    ReadWithoutLease,
    /// The master counts its lease from when the ack arrived, not when the heartbeat left.
    LeaseFromAckTime,
    /// Phase 1 and phase 2 count one vote short of a majority.
    MinorityQuorum,
    /// The master relies on its lease for the full `lease` of its own clock, without the
    /// margin for clock drift.
    NoDriftMargin,
    /// An acceptor sends its Promise at once, before the promise is durable.
    PromiseBeforeDurable,
    /// The master counts an `Accepted` of any ballot as a vote for its own.
    AcceptedOfAnyBallot,
    /// A follower marks a slot committed whatever ballot it accepted it at (not only the
    /// master's, which alone is known to propose the chosen value).
    LearnCommitAnyBallot,
    /// An acceptor takes an Accept of a ballot below its promise.
    AcceptBelowPromise,
    /// The master counts a heartbeat ack of any ballot toward its lease.
    HeartbeatAckOfAnyBallot,
    /// A master term's epoch is its round only, without the node id (two nodes standing with
    /// the same round share an epoch).
    EpochWithoutNode,
    /// A follower gives up whatever lease promise it holds on any `LeaseRelease` or
    /// `TimeoutNow`, not only the promise to the ballot the release names; a `TimeoutNow` of
    /// an older ballot than its promise makes it stand all the same.
    ReleaseOfAnyBallot,
}
