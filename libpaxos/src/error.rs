//! The errors the core returns to its driver.

use crate::config::ConfigError;
use crate::storage::StorageError;
use crate::types::NodeId;

/// A call into the core failed. The core's state is unchanged by a failed call.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// The configuration was refused.
    #[error("invalid replica configuration: {0}")]
    Config(#[from] ConfigError),
    /// The driver's state machine is behind the log's snapshot: it must install that snapshot
    /// before the replica can start.
    #[error(
        "the state machine applied only through {applied} but the log is compacted through \
         {compacted}: install the snapshot first"
    )]
    AppliedBehindSnapshot {
        /// What the driver said it applied.
        applied: crate::types::Slot,
        /// What the log is compacted through.
        compacted: crate::types::Slot,
    },
    /// Reading the log failed.
    #[error("reading the log failed: {0}")]
    Storage(#[from] StorageError),
}

/// Why `propose` refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the master proposes; `hint` is the master this replica last heard from.
    #[error("this replica is not the master (last known master: {hint:?})")]
    NotMaster {
        /// The master this replica last heard from, if any.
        hint: Option<NodeId>,
    },
    /// Too many proposals are waiting to commit; retry once some have.
    #[error("{inflight} proposals are already in flight, the limit")]
    Busy {
        /// How many are in flight.
        inflight: u64,
    },
    /// The master is handing mastership over (`Replica::hand_over`) and takes no new
    /// commands; `to` is the member it hands over to, once chosen.
    #[error("this master is handing over (to {to:?}) and takes no new commands")]
    HandingOver {
        /// The member it hands over to, if chosen yet.
        to: Option<NodeId>,
    },
    /// The command is larger than one Accept message may carry.
    #[error("a command of {size} bytes exceeds the batch limit of {limit} bytes")]
    TooLarge {
        /// The command's size.
        size: usize,
        /// `Config::max_batch_bytes`.
        limit: usize,
    },
}

/// Why `Replica::hand_over` refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandOverError {
    /// Only a master (that has finished taking office) hands over.
    #[error("this replica is not the master (last known master: {hint:?})")]
    NotMaster {
        /// The master this replica last heard from, if any.
        hint: Option<NodeId>,
    },
    /// The cell has no other member to hand over to.
    #[error("the cell has no other member to hand over to")]
    NoOtherMember,
    /// The chosen target is this replica or not a member.
    #[error("{0} is not another member of the cell")]
    NotAnotherMember(NodeId),
}
