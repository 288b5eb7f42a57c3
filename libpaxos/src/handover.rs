//! Handing mastership over: a planned change of master that costs no fail-over wait.
//!
//! The master stops taking new commands, lets what it proposed commit, then *first* stops
//! serving from its lease (it steps down: no reads, no proposals, no heartbeats) and only then
//! sends every follower a `LeaseRelease` naming its ballot, and the target a `TimeoutNow`
//! (a release that also says "stand now"). A follower gives up its lease promise only for the
//! exact ballot a release names, so a stale or replayed release cannot cancel a promise made to
//! a later master. The target stands at once, without pre-votes, but only once it has committed
//! everything the old master did; a follower that never got the release still owes the old
//! lease and waits it out, as in a fail-over.

use crate::error::{Error, HandOverError};
use crate::message::Message;
use crate::ready::Event;
use crate::replica::{Replica, RoleState};
use crate::storage::Storage;
use crate::types::{Ballot, NodeId, Slot, Time};

/// A master's hand-over under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandOver {
    /// The member asked for, or `None` for the most up-to-date one.
    pub(crate) to: Option<NodeId>,
    /// When it began; after an election timeout the master releases even with proposals
    /// still open (the next master's phase 1 settles them).
    since: Time,
}

/// A `TimeoutNow` this replica received, waiting for it to commit through `commit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TakeOver {
    commit: Slot,
    /// Past this, the hand-over is abandoned and the ordinary election timer rules.
    until: Time,
}

impl<S: Storage> Replica<S> {
    /// Hands mastership over to `to` (or, with `None`, to the follower known to be the most
    /// up to date). From now on `propose` refuses with [`crate::ProposeError::HandingOver`];
    /// reads are still served while the lease holds. Once every slot this master proposed is
    /// committed (or an election timeout has passed), it steps down, giving up its lease
    /// *before* it sends anything, then sends `LeaseRelease` to the followers and
    /// `TimeoutNow` to the target, and reports [`Event::HandedOver`]. The target stands for
    /// election at once once it has caught up. Calling it again while a hand-over is under
    /// way changes nothing.
    pub fn hand_over(&mut self, now: Time, to: Option<NodeId>) -> Result<(), HandOverError> {
        if let Some(target) = to
            && (target == self.config.id || !self.config.members.contains(&target))
        {
            return Err(HandOverError::NotAnotherMember(target));
        }
        if self.peer_ids.is_empty() {
            return Err(HandOverError::NoOtherMember);
        }
        let hint = self.master_hint();
        let RoleState::Master(master) = &mut self.role else {
            return Err(HandOverError::NotMaster { hint });
        };
        if master.handing_over.is_none() {
            master.handing_over = Some(HandOver { to, since: now });
            self.counters.handovers_started += 1;
        }
        self.maybe_release(now);
        Ok(())
    }

    /// Whether this master is handing over (and so takes no new commands).
    pub fn handing_over(&self) -> bool {
        matches!(&self.role, RoleState::Master(m) if m.handing_over.is_some())
    }

    /// Steps down and releases the lease once everything proposed is committed, or the
    /// hand-over has waited an election timeout.
    pub(crate) fn maybe_release(&mut self, now: Time) {
        let RoleState::Master(master) = &self.role else {
            return;
        };
        let Some(handing_over) = master.handing_over else {
            return;
        };
        let waited_enough = now.since(handing_over.since) >= self.config.election_timeout;
        if !master.all_committed() && !waited_enough {
            return;
        }
        let ballot = master.ballot;
        // The most up-to-date follower: the highest known progress, the lowest id on a tie.
        let target = handing_over.to.or_else(|| {
            self.peer_ids.iter().copied().max_by_key(|p| {
                let progress = master.progress.get(p).copied().unwrap_or(Slot::ZERO);
                (progress, core::cmp::Reverse(*p))
            })
        });
        let Some(target) = target else {
            return;
        };
        let commit = self.commit;
        // 1. Stop serving from the lease *before* anything leaves: stepping down ends the
        //    master's lease, reads and proposals, and its own promise not to promise others.
        self.master = None;
        self.set_role(RoleState::Follower);
        debug_assert!(!self.lease_valid(now), "a released master holds no lease");
        if self.lease_granted.is_some_and(|(held, _)| held == ballot) {
            self.lease_granted = None;
        }
        self.released = Some(ballot);
        self.handed_to = Some(target);
        self.reset_election_timer(now);
        self.counters.handovers_released += 1;
        // 2. Then release the followers' promises to this ballot, and ask the target to stand.
        for peer in self.peers() {
            let msg = if peer == target {
                Message::TimeoutNow { ballot, commit }
            } else {
                Message::LeaseRelease { ballot }
            };
            self.send(peer, msg);
        }
        self.outbox.events.push(Event::HandedOver { to: target });
    }

    /// Gives up the lease promise to `ballot`, if that is the one held (see the module
    /// documentation for why only that one); true if it was.
    fn take_release(&mut self, from: NodeId, ballot: Ballot) -> bool {
        let held = self.lease_granted.map(|(held, _)| held);
        let matches = held == Some(ballot);
        #[cfg(feature = "fault-injection")]
        let matches = matches
            || (held.is_some()
                && matches!(self.role, RoleState::Follower)
                && self.config.fault == Some(crate::Fault::ReleaseOfAnyBallot));
        if !matches {
            self.counters.stale_releases += 1;
            return false;
        }
        self.lease_granted = None;
        self.released = Some(ballot);
        self.counters.leases_released += 1;
        if self
            .master
            .is_some_and(|(node, b)| node == from && b == ballot)
        {
            self.master = None;
            if matches!(self.role, RoleState::Follower) {
                self.set_role(RoleState::Follower);
            }
        }
        true
    }

    pub(crate) fn on_lease_release(&mut self, from: NodeId, ballot: Ballot) {
        if ballot.node != from {
            self.counters.malformed += 1;
            return;
        }
        self.take_release(from, ballot);
    }

    pub(crate) fn on_timeout_now(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
    ) -> Result<(), Error> {
        if ballot.node != from {
            self.counters.malformed += 1;
            return Ok(());
        }
        #[cfg(feature = "fault-injection")]
        let any_ballot = self.config.fault == Some(crate::Fault::ReleaseOfAnyBallot);
        #[cfg(not(feature = "fault-injection"))]
        let any_ballot = false;
        if ballot < self.promised && !any_ballot {
            // A later ballot was promised since: this hand-over is over.
            self.counters.stale_ballot += 1;
            return Ok(());
        }
        // A `TimeoutNow` releases like a `LeaseRelease`. One this replica holds no promise
        // for (it never followed that term, or it restarted) still starts the election: the
        // sender is that ballot's master and leads no more.
        if !self.take_release(from, ballot) {
            self.released = Some(ballot);
        }
        if !matches!(self.role, RoleState::Follower) {
            self.counters.unexpected += 1;
            return Ok(());
        }
        self.takeover = Some(TakeOver {
            commit,
            until: now + self.config.election_timeout,
        });
        // Learn what the old master committed (slots accepted at its ballot are chosen), and
        // ask it for the rest: `advance_commit` stands once this replica has caught up.
        self.learn_commit(now, from, ballot, commit)?;
        self.maybe_take_over(now)
    }

    /// Stands for election if a hand-over to this replica waits and it has caught up.
    pub(crate) fn maybe_take_over(&mut self, now: Time) -> Result<(), Error> {
        let Some(takeover) = self.takeover else {
            return Ok(());
        };
        if self.commit < takeover.commit || now >= takeover.until {
            return Ok(());
        }
        self.takeover = None;
        if !matches!(self.role, RoleState::Follower) || !self.may_promise(now, self.config.id) {
            return Ok(());
        }
        self.counters.elections_on_handover += 1;
        self.start_election(now)
    }

    /// Forgets a hand-over to this replica that it could not catch up for in time.
    pub(crate) fn expire_takeover(&mut self, now: Time) {
        if self.takeover.is_some_and(|t| now >= t.until) {
            self.takeover = None;
        }
    }
}
