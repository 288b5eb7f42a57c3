//! `cldc` is the client library of CLD, the replicated lock service: it speaks the UDP
//! protocol of `docs/protocol.md` to a cell of `cld` servers, keeps a session alive, and gives
//! programs handles, whole-file reads and writes, shared and exclusive locks, sequencers and
//! events. It is not a server and holds no replicated state; `cld-server` reuses its
//! [`proto`] wire types with default features off.
//!
//! Layers:
//! - [`proto`]: wire types, postcard encoding, fragmentation, the Noise handshake and the
//!   sealing of datagrams, for both ends (`no_std` + `alloc`).
//! - [`core`]: the sans-IO session state machine (`no_std` + `alloc`): datagrams and calls in,
//!   datagrams, replies and events out; time comes in as an argument.
//! - feature `tokio` (default): [`Session`], an async API that owns the socket and the timers.
//! - feature `dns`: [`dns`], cell discovery from `_cld._udp.<domain>` SRV records.
//! - feature `std`: [`keyfile`], the cell's key file and users' secret files.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn demo() -> Result<(), cldc::Error> {
//! use cldc::proto::{CellPublicKey, LockMode, OpenMode};
//! use cldc::{Credentials, Session, SessionOptions};
//!
//! let members = vec!["10.0.0.1:8081".parse().unwrap(), "10.0.0.2:8081".parse().unwrap()];
//! let options = SessionOptions {
//!     // The cell's public key, as `cld keygen` printed it.
//!     cell_key: Some(CellPublicKey::from_base64("1R2sOe2e6mmYq6cjMYCVswnEC9v8R/cTYJGvKZfG+R4=").unwrap()),
//!     ..SessionOptions::default()
//! };
//! let secret = b"Yx3m0PqzV6cXW1bq8f2nT5rJ9kLhA4sDgE7uZoNiRtc"; // `cld gen-secret`
//! let session = Session::open(members, Credentials::new("alice", secret)?, options).await?;
//! let leader = session.open_node("/svc/leader", OpenMode::READ | OpenMode::WRITE | OpenMode::LOCK | OpenMode::CREATE).await?;
//! let sequencer = leader.lock(LockMode::Exclusive).await?; // waits in the queue
//! leader.put(b"host-a:9000").await?;
//! // Hand `sequencer` to downstream services; they fence stale leaders with CheckSequencer.
//! # let _ = sequencer;
//! let mut events = session.events().expect("first call");
//! while let Some(event) = events.next().await {
//!     println!("{event:?}"); // Jeopardy, Safe, Expired and the server's events
//! }
//! session.close().await
//! # }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

extern crate alloc;

pub mod core;
pub mod proto;

#[cfg(feature = "tokio")]
mod client;
#[cfg(feature = "tokio")]
pub use client::{
    Cell, ClientSocket, Contents, Credentials, Error, Events, Handle, Session, SessionOptions,
    Stats,
};

#[cfg(feature = "dns")]
pub mod dns;

#[cfg(feature = "std")]
pub mod keyfile;
