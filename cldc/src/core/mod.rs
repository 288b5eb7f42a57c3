//! The sans-IO session state machine: calls and datagrams in; datagrams, replies and events
//! out. No sockets, no clock, no randomness: the driver passes the time ([`Time`]) and the
//! random session id in, sends what [`Session::poll_output`] returns, and calls
//! [`Session::poll_timeout`] when the time it asked for has come. `no_std` + `alloc`.
//!
//! Rules implemented here are specified in `docs/protocol.md` §7-9: one request in flight per
//! session, retransmission with exponential backoff, keepalives every lease/3, a conservative
//! local lease, jeopardy and grace, `NotMaster` redirects and rotation when the master is
//! silent.

mod config;
mod counters;
mod events;
mod lease;
mod members;
mod retransmit;
mod session;

pub use config::{Config, ConfigError};
pub use counters::Counters;
pub use members::MAX_MEMBERS;
pub use session::{CallError, CallId, Output, Session, SessionEvent, State};

use core::time::Duration;

/// A point on the driver's monotonic clock, as a duration since an origin the driver picks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub Duration);

impl Time {
    /// This time plus `d` (saturating).
    pub fn plus(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }

    /// How long after `earlier` this time is (zero if it is not later).
    pub fn since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}
