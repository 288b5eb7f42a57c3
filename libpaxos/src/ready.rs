//! The batch of work the core hands to its driver.

use crate::message::Envelope;
use crate::storage::HardState;
use crate::types::{Ballot, Entry, NodeId, Slot, Value};

/// What must be written to the log, as one batch and one fsync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// Drop every entry at or below this slot (a snapshot now covers them). Must be durable no
    /// later than any state that claims the snapshot was installed.
    pub compact_through: Option<Slot>,
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to write; each replaces what its slot held. Sorted by slot.
    pub entries: Vec<Entry>,
}

impl Persist {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.compact_through.is_none() && self.hard_state.is_none() && self.entries.is_empty()
    }
}

/// A chosen value, ready to apply to the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Its slot; committed values come out in slot order without gaps.
    pub slot: Slot,
    /// The value.
    pub value: Value,
}

/// What this replica is doing in the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Following the master named, if any is known.
    Follower {
        /// The master this replica last heard from, if any.
        master: Option<NodeId>,
    },
    /// Running phase 1 with this ballot.
    Candidate {
        /// The ballot being prepared.
        ballot: Ballot,
    },
    /// Won phase 1; catching up and re-proposing the previous terms' open slots.
    Recovering {
        /// The ballot that won.
        ballot: Ballot,
    },
    /// Master: proposes new commands with this ballot.
    Master {
        /// The master's ballot (its epoch is `ballot.epoch()`).
        ballot: Ballot,
    },
}

/// A change the driver should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The role changed.
    RoleChanged(Role),
    /// This master's lease became valid (reads may be served once `read_fence` allows).
    LeaseAcquired,
    /// This master's lease ran out or was given up.
    LeaseLost,
    /// This master handed over: it stepped down (its lease was given up before anything was
    /// sent), released the followers' lease promises and asked `to` to stand for election.
    HandedOver {
        /// The member asked to take over.
        to: NodeId,
    },
    /// The log this replica needs was compacted at `from`: fetch `from`'s snapshot at or above
    /// `slot`, install it, then call `Replica::on_snapshot_installed`.
    SnapshotNeeded {
        /// Who to fetch it from.
        from: NodeId,
        /// The snapshot must cover at least this slot.
        slot: Slot,
    },
}

/// One batch of work. Perform it in field order:
/// 1. write `persist` to storage (before calling the core again), and sync it;
/// 2. send `after_persist`, only once this Ready's sync *and every earlier Ready's* has
///    completed (even when this Ready's own `persist` is empty);
/// 3. `messages` may be sent at once, even before the sync;
/// 4. apply `committed`, once this Ready is durable (a state machine must never durably claim
///    a slot the log does not durably hold);
/// 5. act on `events`;
/// 6. call `Replica::on_persisted(number)` once the sync is done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Identifies this batch for `on_persisted`; increases by one per non-empty Ready (0 for an
    /// empty one).
    pub number: u64,
    /// What to write, in one fsync.
    pub persist: Persist,
    /// Messages that may leave only once `persist` is durable.
    pub after_persist: Vec<Envelope>,
    /// Messages that may leave now.
    pub messages: Vec<Envelope>,
    /// Newly chosen values, in slot order.
    pub committed: Vec<Committed>,
    /// Role and lease changes, snapshot requests.
    pub events: Vec<Event>,
}

impl Ready {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.after_persist.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.events.is_empty()
    }
}
