//! How to reach a cell and how to behave on the way.

use std::net::SocketAddr;
use std::time::Duration;

use super::Error;
use crate::proto::{CellPublicKey, DEFAULT_MAX_DATAGRAM, Secret, UserName};

/// Where the cell is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// A fixed list of members' client addresses, tried in order.
    Members(Vec<SocketAddr>),
    /// Look up `_cld._udp.<domain>` SRV records (feature `dns`).
    #[cfg(feature = "dns")]
    Srv(crate::dns::SrvQuery),
}

impl From<Vec<SocketAddr>> for Cell {
    fn from(members: Vec<SocketAddr>) -> Cell {
        Cell::Members(members)
    }
}

impl From<SocketAddr> for Cell {
    fn from(member: SocketAddr) -> Cell {
        Cell::Members(vec![member])
    }
}

/// A user name and its secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub(crate) user: UserName,
    pub(crate) secret: Secret,
}

impl Credentials {
    /// Checks the name (1-32 bytes, no NUL) and the secret (32-128 bytes).
    pub fn new(user: &str, secret: &[u8]) -> Result<Credentials, Error> {
        Ok(Credentials {
            user: UserName::new(user).map_err(|_| Error::InvalidUser)?,
            secret: Secret::new(secret)?,
        })
    }
}

/// Tunables of a session; [`SessionOptions::default`] follows `docs/protocol.md` §10.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// The cell's public key (one line of base64, [`CellPublicKey::from_base64`]; printed
    /// by `cld keygen`). Required: [`super::Session::open`] fails with
    /// [`Error::MissingCellKey`] without it.
    pub cell_key: Option<CellPublicKey>,
    /// Local address to bind; `None` picks the wildcard of the first member's family.
    pub bind: Option<SocketAddr>,
    /// Largest datagram.
    pub max_datagram: usize,
    /// First retransmission timeout.
    pub initial_rto: Duration,
    /// Largest retransmission timeout.
    pub max_rto: Duration,
    /// Unanswered sends to one member before trying the next.
    pub sends_before_rotate: u32,
    /// Per-call timeout.
    pub call_timeout: Duration,
    /// Grace period after the local lease runs out.
    pub grace: Duration,
    /// Safety margin subtracted from each lease grant.
    pub lease_margin: Duration,
    /// Events buffered for [`super::Events`]; taken as 1 to 2^20. When it is full the
    /// session stops acknowledging server events (the master re-sends them later), so a
    /// slow application slows delivery and never loses an event.
    pub event_buffer: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            cell_key: None,
            bind: None,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            initial_rto: Duration::from_millis(100),
            max_rto: Duration::from_secs(2),
            sends_before_rotate: 2,
            call_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(45),
            lease_margin: Duration::from_millis(250),
            event_buffer: 1024,
        }
    }
}
