//! The client's conservative view of its session lease, and keepalive bookkeeping.

use alloc::vec::Vec;
use core::time::Duration;

use super::Time;

/// Keepalives remembered while awaiting their reply.
const MAX_OUTSTANDING: usize = 8;

/// The local lease: counted from when the *client sent* the keepalive that the server
/// answered (the server counts from receipt, which is later), minus a margin.
#[derive(Debug)]
pub(crate) struct Lease {
    /// The lease length last granted.
    pub(crate) length: Duration,
    /// When the local lease runs out.
    pub(crate) deadline: Time,
    /// When the next keepalive should be sent.
    pub(crate) next_keepalive: Time,
    next_nonce: u64,
    outstanding: Vec<(u64, Time)>,
    /// When the last keepalive was sent.
    last_sent: Option<Time>,
}

impl Lease {
    /// The lease granted in reply to a request first sent at `sent`.
    pub(crate) fn granted(sent: Time, length: Duration, margin: Duration) -> Self {
        let mut l = Lease {
            length,
            deadline: sent,
            next_keepalive: sent,
            next_nonce: 1,
            outstanding: Vec::new(),
            last_sent: None,
        };
        l.extend(sent, length, margin);
        l
    }

    fn extend(&mut self, sent: Time, length: Duration, margin: Duration) {
        self.length = length;
        let deadline = sent.plus(length.saturating_sub(margin));
        if deadline > self.deadline {
            self.deadline = deadline;
        }
        self.next_keepalive = sent.plus(length / 3);
    }

    /// Picks the nonce for a keepalive sent at `now`.
    pub(crate) fn keepalive_sent(&mut self, now: Time) -> u64 {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.outstanding.remove(0);
        }
        self.outstanding.push((nonce, now));
        self.last_sent = Some(now);
        nonce
    }

    /// The earliest time the next keepalive may go out: `spacing` after the last one, so that
    /// a lease too short to be useful (or a reply that renews nothing) cannot make the
    /// client send a keepalive per round trip.
    pub(crate) fn earliest_next(&self, spacing: core::time::Duration) -> Time {
        self.last_sent.map_or(Time::default(), |t| t.plus(spacing))
    }

    /// True if a keepalive is awaiting its reply.
    pub(crate) fn awaiting_reply(&self) -> bool {
        !self.outstanding.is_empty()
    }

    /// True if the keepalive with `nonce` is awaiting its reply.
    pub(crate) fn is_outstanding(&self, nonce: u64) -> bool {
        self.outstanding.iter().any(|(n, _)| *n == nonce)
    }

    /// A keepalive reply for `nonce` granting `length`; false if the nonce is unknown.
    pub(crate) fn reply(&mut self, nonce: u64, length: Duration, margin: Duration) -> bool {
        let Some(i) = self.outstanding.iter().position(|(n, _)| *n == nonce) else {
            return false;
        };
        let sent = self.outstanding[i].1;
        // Older keepalives can no longer extend the lease further than this one.
        self.outstanding.drain(..=i);
        self.extend(sent, length, margin);
        true
    }
}
