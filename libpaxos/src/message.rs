//! Messages between replicas. The transport (and its encoding) is the driver's; these types
//! derive serde so a driver can use postcard or anything else.

use serde::{Deserialize, Serialize};

use crate::types::{Ballot, Entry, NodeId, Slot};

/// A message with its destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The member to deliver it to.
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}

/// Everything replicas say to each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Before a follower raises its ballot it asks: "would you promise me `round`?" Nothing is
    /// persisted on either side, so a replica cut off from the cell cannot raise its ballot by
    /// standing alone and disrupt a healthy master when it returns.
    PreVote {
        /// Numbers the sender's pre-vote attempts, so late answers to an old one are ignored.
        attempt: u64,
        /// The round the sender would stand with.
        round: u64,
        /// The sender's commit index (informational).
        commit: Slot,
    },
    /// The answer to a [`Message::PreVote`].
    PreVoteReply {
        /// The attempt answered.
        attempt: u64,
        /// The round asked about.
        round: u64,
        /// Whether the sender would promise it now (it owes no master a lease and has
        /// promised nothing higher).
        granted: bool,
        /// The highest ballot the sender has promised, so a refused asker can go above it.
        promised: Ballot,
    },
    /// Phase 1a: "promise me `ballot` for every slot from `from` on".
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The candidate's first uncommitted slot.
        from: Slot,
    },
    /// Phase 1b: the promise, with every entry this acceptor accepted above
    /// `max(from - 1, commit)`.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The acceptor's commit index; slots up to it are chosen and must be learned, not
        /// re-proposed.
        commit: Slot,
        /// Accepted entries above `max(from - 1, commit)`, in slot order.
        entries: Vec<Entry>,
    },
    /// "Your ballot is too low" (or "I am bound by a lease"): the sender has promised `promised`.
    Reject {
        /// The ballot being refused.
        ballot: Ballot,
        /// The highest ballot the sender has promised.
        promised: Ballot,
    },
    /// Phase 2a: accept these entries (all at `ballot`); slots up to `commit` are chosen.
    Accept {
        /// The master's ballot.
        ballot: Ballot,
        /// The master's commit index.
        commit: Slot,
        /// Entries to accept, in slot order, each with `entry.ballot == ballot`.
        entries: Vec<Entry>,
    },
    /// Phase 2b: these slots are durably accepted at `ballot`.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The slots, in increasing order.
        slots: Vec<Slot>,
    },
    /// The master's heartbeat: renews the lease, carries the commit index.
    Heartbeat {
        /// The master's ballot.
        ballot: Ballot,
        /// Numbers heartbeats, so acks can be matched to their send time.
        seq: u64,
        /// The master's commit index.
        commit: Slot,
    },
    /// The answer to a heartbeat: the sender promises not to promise another master for a lease.
    HeartbeatAck {
        /// The master's ballot.
        ballot: Ballot,
        /// The heartbeat answered.
        seq: u64,
        /// The sender's commit index (lets the master notice a lagging replica).
        commit: Slot,
    },
    /// "Send me the chosen entries from `from` on."
    CatchUpRequest {
        /// First slot the sender lacks.
        from: Slot,
    },
    /// Chosen entries, in slot order without gaps, starting at the requested slot.
    CatchUp {
        /// The sender's commit index.
        commit: Slot,
        /// Chosen entries.
        entries: Vec<Entry>,
    },
    /// "What you asked for is compacted here: install my snapshot (which covers `slot`)."
    SnapshotNeeded {
        /// The slot the sender's log is compacted through.
        slot: Slot,
    },
    // New variants go last: postcard numbers variants in declaration order, so appending
    // leaves every earlier message's encoding unchanged (docs/libpaxos.md, "Hand-over").
    /// The master of `ballot` hands over mastership: it has already stopped serving from its
    /// lease and proposing, and gives up the lease promise the receiver made to `ballot`.
    /// Only that exact ballot's promise is given up, so a stale or replayed release cannot
    /// cancel a promise made to a later master (or to a later term of the same node).
    LeaseRelease {
        /// The ballot whose lease is given up.
        ballot: Ballot,
    },
    /// The master of `ballot` hands over to the receiver: a [`Message::LeaseRelease`] that
    /// also asks it to stand for election at once (without waiting for its election timeout
    /// or asking for pre-votes), as soon as it has committed through `commit`.
    TimeoutNow {
        /// The ballot whose lease is given up.
        ballot: Ballot,
        /// The master's commit index when it stepped down: everything it proposed.
        commit: Slot,
    },
}

impl Message {
    /// The message's own ballots and the entries whose ballots it carries.
    fn ballot_parts(&self) -> (Option<Ballot>, Option<Ballot>, &[Entry]) {
        match self {
            Message::Prepare { ballot, .. }
            | Message::Accepted { ballot, .. }
            | Message::Heartbeat { ballot, .. }
            | Message::HeartbeatAck { ballot, .. }
            | Message::LeaseRelease { ballot }
            | Message::TimeoutNow { ballot, .. } => (Some(*ballot), None, &[]),
            Message::Promise {
                ballot, entries, ..
            }
            | Message::Accept {
                ballot, entries, ..
            } => (Some(*ballot), None, entries),
            Message::Reject { ballot, promised } => (Some(*ballot), Some(*promised), &[]),
            Message::PreVoteReply { promised, .. } => (Some(*promised), None, &[]),
            Message::CatchUp { entries, .. } => (None, None, entries),
            Message::CatchUpRequest { .. }
            | Message::SnapshotNeeded { .. }
            | Message::PreVote { .. } => (None, None, &[]),
        }
    }

    /// Every ballot the message carries, entries' included, for validation.
    pub fn ballots(&self) -> impl Iterator<Item = Ballot> + '_ {
        let (own, second, entries) = self.ballot_parts();
        own.into_iter()
            .chain(second)
            .chain(entries.iter().map(|e| e.ballot))
    }

    /// Whether every ballot the message carries (entries' included) is valid: what
    /// `ballots().all(Ballot::is_valid)` says, without the iterator chain on the hot path.
    pub fn ballots_valid(&self) -> bool {
        let (own, second, entries) = self.ballot_parts();
        own.is_none_or(Ballot::is_valid)
            && second.is_none_or(Ballot::is_valid)
            && entries.iter().all(|e| e.ballot.is_valid())
    }

    /// A short name for counters and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::PreVote { .. } => "pre_vote",
            Message::PreVoteReply { .. } => "pre_vote_reply",
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Reject { .. } => "reject",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Heartbeat { .. } => "heartbeat",
            Message::HeartbeatAck { .. } => "heartbeat_ack",
            Message::CatchUpRequest { .. } => "catch_up_request",
            Message::CatchUp { .. } => "catch_up",
            Message::SnapshotNeeded { .. } => "snapshot_needed",
            Message::LeaseRelease { .. } => "lease_release",
            Message::TimeoutNow { .. } => "timeout_now",
        }
    }
}
