//! Session configuration and its validation.

use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::proto::{
    CellPublicKey, DEFAULT_MAX_DATAGRAM, MIN_DATAGRAM, ReassemblerLimits, Secret, UserName,
};

/// Everything a [`super::Session`] needs to know up front.
#[derive(Clone, Debug)]
pub struct Config {
    /// The user the session belongs to.
    pub user: UserName,
    /// That user's secret (the handshake's pre-shared key is derived from it).
    pub secret: Secret,
    /// The cell's public key: the handshake proves the cell holds its private half.
    pub cell_key: CellPublicKey,
    /// The cell's members' client addresses, in the order to try them.
    pub members: Vec<SocketAddr>,
    /// Largest datagram sent; datagrams up to this or the protocol default (1400),
    /// whichever is larger, are accepted.
    pub max_datagram: usize,
    /// First retransmission timeout.
    pub initial_rto: Duration,
    /// Largest retransmission timeout (the backoff stops doubling here).
    pub max_rto: Duration,
    /// Unanswered sends to one member before trying the next one.
    pub sends_before_rotate: u32,
    /// A call not answered within this time fails with `Timeout`.
    pub call_timeout: Duration,
    /// How long after the local lease runs out the session may still be saved.
    pub grace: Duration,
    /// Subtracted from every lease grant, for clock drift and scheduling delays.
    pub lease_margin: Duration,
    /// Calls waiting behind the one in flight.
    pub max_queued: usize,
    /// Out-of-order events held while waiting for a gap to fill.
    pub max_buffered_events: usize,
    /// Reassembly bounds for server messages.
    pub reassembly: ReassemblerLimits,
}

/// Why a [`Config`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// At least one member address is needed.
    #[error("no cell members given")]
    NoMembers,
    /// `max_datagram` is below the protocol minimum.
    #[error("max_datagram below the protocol minimum")]
    DatagramTooSmall,
    /// `initial_rto` must be non-zero and not above `max_rto`.
    #[error("retransmission timeouts must satisfy 0 < initial_rto <= max_rto")]
    BadRto,
    /// `max_queued` and `sends_before_rotate` must be at least 1.
    #[error("queue and rotation limits must be at least 1")]
    ZeroLimit,
    /// The handshake could not be set up (never happens with this library's parameters).
    #[error("handshake could not be set up")]
    Handshake,
}

impl Config {
    /// A configuration with the protocol's defaults (`docs/protocol.md` §10).
    pub fn new(
        user: UserName,
        secret: Secret,
        cell_key: CellPublicKey,
        members: Vec<SocketAddr>,
    ) -> Self {
        Config {
            user,
            secret,
            cell_key,
            members,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            initial_rto: Duration::from_millis(100),
            max_rto: Duration::from_secs(2),
            sends_before_rotate: 2,
            call_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(45),
            lease_margin: Duration::from_millis(250),
            max_queued: 256,
            max_buffered_events: 64,
            reassembly: ReassemblerLimits::default(),
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.members.is_empty() {
            return Err(ConfigError::NoMembers);
        }
        if self.max_datagram < MIN_DATAGRAM {
            return Err(ConfigError::DatagramTooSmall);
        }
        if self.initial_rto.is_zero() || self.initial_rto > self.max_rto {
            return Err(ConfigError::BadRto);
        }
        if self.max_queued == 0 || self.sends_before_rotate == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(())
    }
}
