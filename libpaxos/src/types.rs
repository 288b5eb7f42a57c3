//! The small value types every part of the protocol speaks in.

use core::fmt;
use core::ops::Add;
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// A member of the cell. Node ids are chosen by the operator and must be below
/// [`NodeId::LIMIT`], so that a ballot can be packed into an [`Epoch`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

impl NodeId {
    /// Node ids are at most 16 bits wide (see [`Epoch`]).
    pub const LIMIT: u64 = 1 << 16;
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A position in the replicated log. The first real slot is 1; slot 0 means "nothing".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Slot(pub u64);

impl Slot {
    /// "Before the first slot": what an empty log has committed and applied.
    pub const ZERO: Slot = Slot(0);

    /// The slot after this one.
    pub fn next(self) -> Slot {
        Slot(self.0.saturating_add(1))
    }

    /// The slot before this one (`ZERO` stays `ZERO`).
    pub fn prev(self) -> Slot {
        Slot(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A Paxos ballot `(round, node)`, totally ordered by round and then by node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Raised by every new candidacy.
    pub round: u64,
    /// The node that owns the ballot; makes ballots of different nodes distinct.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot nobody owns; every real ballot is above it.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };

    /// Rounds stop below this, so that a round always fits an [`Epoch`] and `round + 1` never
    /// overflows; a message with a larger round is malformed.
    pub const MAX_ROUND: u64 = 1 << 47;

    /// Whether the round is within [`Ballot::MAX_ROUND`] and the node id within
    /// [`NodeId::LIMIT`].
    pub fn is_valid(self) -> bool {
        self.round < Ballot::MAX_ROUND && self.node.0 < NodeId::LIMIT
    }

    /// The epoch of the master term this ballot opens.
    pub fn epoch(self) -> Epoch {
        Epoch(self.round.saturating_mul(NodeId::LIMIT) | (self.node.0 & (NodeId::LIMIT - 1)))
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// A master term, derived from its ballot: every change of master raises it. Commands carry
/// the epoch they were proposed under, so the state machine can refuse work that straddled a
/// loss and regain of mastership (Paxos Made Live §5.3).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

/// Monotonic time as the driver sees it: a duration since an origin of the driver's choice.
/// Only differences matter; the core never reads a clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time(pub Duration);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// Time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(rhs))
    }
}

/// What a slot holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// Fills a slot without changing state: a new master's first proposal, and the filler for
    /// holes found during recovery.
    Noop,
    /// An opaque command for the state machine. Shared, not copied, by every message, log
    /// entry and Ready that carries it.
    Command(bytes::Bytes),
}

/// A value proposed for a slot: the payload and the epoch of the master that first proposed it.
/// A value re-proposed by a later master keeps its original epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Value {
    /// The epoch the value was proposed under.
    pub epoch: Epoch,
    /// What the value carries.
    pub payload: Payload,
}

impl Value {
    /// Bytes the value occupies in a message, roughly; used for batch limits.
    pub fn size_hint(&self) -> usize {
        16 + match &self.payload {
            Payload::Noop => 0,
            Payload::Command(bytes) => bytes.len(),
        }
    }
}

/// One accepted log entry: a value in a slot, accepted at a ballot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Where in the log.
    pub slot: Slot,
    /// The ballot at which this replica accepted the value.
    pub ballot: Ballot,
    /// The value.
    pub value: Value,
}
