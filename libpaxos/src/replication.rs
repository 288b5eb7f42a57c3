//! Phase 2: the master proposes, acceptors accept, the commit index advances.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::election::entries_sorted;
use crate::error::{Error, ProposeError};
use crate::lease::MasterLease;
use crate::message::Message;
use crate::replica::{Replica, RoleState, SelfMessage};
use crate::storage::Storage;
use crate::types::{Ballot, Entry, Epoch, NodeId, Payload, Slot, Time, Value};

/// A slot proposed and not yet known chosen.
struct InFlight {
    /// Bit `i` set: member `config.members[i]` durably accepted it at the master's ballot.
    acks: u64,
    /// When it was last sent to the followers that have not acknowledged it.
    sent_at: Time,
}

/// The master's state.
pub(crate) struct Master {
    pub(crate) ballot: Ballot,
    /// The next slot to propose into.
    next_slot: Slot,
    /// The take-office no-op; reads are served only once it is committed.
    pub(crate) noop_slot: Slot,
    /// The slots from `next_slot - inflight.len()` to `next_slot - 1`, in order: a master
    /// proposes into consecutive slots and they are committed in order, so the first one is
    /// always `commit + 1`.
    inflight: VecDeque<InFlight>,
    /// The first slot proposed since the last Ready: the entries from it on in the outbox are
    /// this master's proposals (it writes nothing else), to broadcast in one Accept per
    /// follower.
    unsent_from: Option<Slot>,
    pub(crate) lease: MasterLease,
    /// A hand-over under way (`Replica::hand_over`): no new proposals.
    pub(crate) handing_over: Option<crate::handover::HandOver>,
    /// Per follower, how far it is known to be: the highest slot of this term it acknowledged,
    /// or the commit index it reported in a heartbeat ack. Picks the hand-over target.
    pub(crate) progress: alloc::collections::BTreeMap<NodeId, Slot>,
}

impl Master {
    pub(crate) fn new(ballot: Ballot, first: Slot, noop_slot: Slot, lease: MasterLease) -> Master {
        Master {
            ballot,
            next_slot: first,
            noop_slot,
            inflight: VecDeque::new(),
            unsent_from: None,
            lease,
            handing_over: None,
            progress: alloc::collections::BTreeMap::new(),
        }
    }

    /// Whether every slot this master proposed is committed.
    pub(crate) fn all_committed(&self) -> bool {
        self.inflight.is_empty()
    }

    /// The slot of the first proposal in flight (`next_slot` if none is).
    fn first_inflight(&self) -> Slot {
        Slot(self.next_slot.0 - self.inflight.len() as u64)
    }

    /// The proposal in flight for `slot`, if any.
    fn inflight_mut(&mut self, slot: Slot) -> Option<&mut InFlight> {
        let index = slot.0.checked_sub(self.first_inflight().0)?;
        self.inflight.get_mut(usize::try_from(index).ok()?)
    }
}

impl<S: Storage> Replica<S> {
    pub(crate) fn propose_command(
        &mut self,
        now: Time,
        command: bytes::Bytes,
    ) -> Result<(Slot, Epoch), ProposeError> {
        let limit = self.config.max_batch_bytes;
        let max_inflight = self.config.max_inflight;
        let hint = self.master_hint();
        let RoleState::Master(master) = &self.role else {
            return Err(ProposeError::NotMaster { hint });
        };
        if let Some(handing_over) = &master.handing_over {
            return Err(ProposeError::HandingOver {
                to: handing_over.to,
            });
        }
        if command.len() > limit {
            return Err(ProposeError::TooLarge {
                size: command.len(),
                limit,
            });
        }
        let inflight = master.inflight.len() as u64;
        if inflight >= max_inflight {
            return Err(ProposeError::Busy { inflight });
        }
        let slot = master.next_slot;
        let epoch = self.term_epoch(master.ballot);
        self.append_as_master(
            now,
            Value {
                epoch,
                payload: Payload::Command(command),
            },
        );
        Ok((slot, epoch))
    }

    /// Proposes `value` in the next slot: write it, accept it ourselves once durable, and queue
    /// it for the followers.
    pub(crate) fn append_as_master(&mut self, now: Time, value: Value) {
        let RoleState::Master(master) = &mut self.role else {
            return;
        };
        let slot = master.next_slot;
        master.next_slot = slot.next();
        let entry = Entry {
            slot,
            ballot: master.ballot,
            value,
        };
        master.inflight.push_back(InFlight {
            acks: 0,
            sent_at: now,
        });
        master.unsent_from.get_or_insert(slot);
        let ballot = master.ballot;
        self.write_entry(entry);
        // One self-ack per Ready for all the slots proposed in it (they are consecutive).
        let number = self.ready_number + 1;
        match self.waiting_for_persist.back_mut() {
            Some((
                n,
                SelfMessage::Accepted {
                    ballot: held, last, ..
                },
            )) if *n == number && *held == ballot && last.next() == slot => *last = slot,
            _ => self.waiting_for_persist.push_back((
                number,
                SelfMessage::Accepted {
                    ballot,
                    first: slot,
                    last: slot,
                },
            )),
        }
    }

    /// Moves entries proposed since the last Ready into Accept messages, batched.
    pub(crate) fn flush_proposals(&mut self) {
        let commit = self.commit;
        let (max_entries, max_bytes) = (self.config.max_batch_entries, self.config.max_batch_bytes);
        let RoleState::Master(master) = &mut self.role else {
            return;
        };
        let Some(from) = master.unsent_from.take() else {
            return;
        };
        let ballot = master.ballot;
        let start = self.outbox.entries.partition_point(|e| e.slot < from);
        let unsent = self.outbox.entries[start..].to_vec();
        debug_assert!(unsent.iter().all(|e| e.ballot == ballot));
        let (peers, messages) = (&self.peer_ids, &mut self.outbox.messages);
        batches(unsent, max_entries, max_bytes, |batch| {
            // Entries share their payloads: a clone per follower copies no command bytes, and
            // the last follower gets the batch itself.
            if let Some((&last, others)) = peers.split_last() {
                for &peer in others {
                    messages.push(crate::message::Envelope {
                        to: peer,
                        msg: Message::Accept {
                            ballot,
                            commit,
                            entries: batch.clone(),
                        },
                    });
                }
                messages.push(crate::message::Envelope {
                    to: last,
                    msg: Message::Accept {
                        ballot,
                        commit,
                        entries: batch,
                    },
                });
            }
        });
    }

    pub(crate) fn on_accept(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        entries: Vec<Entry>,
    ) -> Result<(), Error> {
        self.note_ballot(ballot);
        if ballot.node != from
            || !entries_sorted(&entries)
            || entries.iter().any(|e| e.ballot != ballot)
        {
            self.counters.malformed += 1;
            return Ok(());
        }
        #[cfg(feature = "fault-injection")]
        let below_promise = self.config.fault == Some(crate::Fault::AcceptBelowPromise);
        #[cfg(not(feature = "fault-injection"))]
        let below_promise = false;
        if ballot < self.promised && below_promise {
            // The broken variant: accept without raising (or checking) the promise.
            let entries: Vec<Entry> = entries
                .into_iter()
                .filter(|e| e.slot > self.commit)
                .collect();
            let slots: Vec<Slot> = entries.iter().map(|e| e.slot).collect();
            for entry in entries {
                self.write_entry(entry);
            }
            if !slots.is_empty() {
                self.send_after_persist(from, Message::Accepted { ballot, slots });
            }
            return Ok(());
        }
        if self.reject_if_stale(from, ballot) {
            return Ok(());
        }
        self.follow(now, from, ballot);
        // An acceptor holds at most `accept_window` entries above its own commit index, which
        // bounds its promises. Entries beyond wait for a re-send once this replica's commit
        // index has caught up (through heartbeats or catch-up).
        let limit = Slot(self.commit.0.saturating_add(self.config.accept_window()));
        let before = entries.len();
        let mut entries = entries;
        entries.retain(|e| e.slot <= limit);
        if entries.len() < before {
            self.counters.beyond_accept_window += 1;
        }
        let slots: Vec<Slot> = entries.iter().map(|e| e.slot).collect();
        if self.outbox.entries.is_empty() && entries.first().is_some_and(|e| e.slot > self.commit) {
            // The common case: nothing else to write, so the batch is the write as it came.
            self.outbox.entries = entries;
        } else {
            for entry in entries {
                // Chosen slots are never rewritten; acknowledging them is still true.
                if entry.slot > self.commit {
                    self.write_entry(entry);
                }
            }
        }
        if !slots.is_empty() {
            self.send_after_persist(from, Message::Accepted { ballot, slots });
        }
        self.learn_commit(now, from, ballot, commit)
    }

    /// A message from the master of `ballot` (at least our promise) arrived: follow it.
    pub(crate) fn follow(&mut self, now: Time, from: NodeId, ballot: Ballot) {
        self.raise_promise(ballot);
        self.prevote = None;
        if self.released == Some(ballot) {
            // A late message of a master that handed over: it leads no more, so it is
            // neither followed nor granted a lease, and it does not hold elections back.
            // Its ballot is promised all the same, so a replica still leading at a lower
            // ballot (a stale master that never heard of it) leaves office: a master may not
            // go on proposing below its own promise, nor into slots it learned are chosen.
            if self.leading_ballot().is_some_and(|own| own < ballot) {
                self.master = None;
                self.set_role(RoleState::Follower);
            }
            return;
        }
        self.handed_to = None;
        // A master is known: a hand-over to this replica still waiting is moot.
        self.takeover = None;
        if self.leading_ballot() != Some(ballot) {
            if !matches!(self.role, RoleState::Follower) || self.master != Some((from, ballot)) {
                self.master = Some((from, ballot));
                self.set_role(RoleState::Follower);
            }
            self.grant_lease(now, ballot);
        }
        self.reset_election_timer(now);
    }

    pub(crate) fn on_accepted(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        slots: impl Iterator<Item = Slot>,
    ) -> Result<(), Error> {
        let Some(index) = self.config.members.iter().position(|&n| n == from) else {
            self.counters.unknown_sender += 1;
            return Ok(());
        };
        let RoleState::Master(master) = &mut self.role else {
            self.counters.unexpected += 1;
            return Ok(());
        };
        #[cfg(feature = "fault-injection")]
        let ballot = if self.config.fault == Some(crate::Fault::AcceptedOfAnyBallot) {
            master.ballot
        } else {
            ballot
        };
        if master.ballot != ballot {
            self.counters.stale_ballot += 1;
            return Ok(());
        }
        let mut highest = Slot::ZERO;
        for slot in slots {
            highest = highest.max(slot);
            if let Some(flight) = master.inflight_mut(slot) {
                flight.acks |= 1 << index;
            }
        }
        if from != self.config.id {
            let known = master.progress.entry(from).or_default();
            *known = (*known).max(highest);
        }
        let quorum = self.config.quorum();
        #[cfg(feature = "fault-injection")]
        let quorum = if self.config.fault == Some(crate::Fault::MinorityQuorum) {
            quorum - 1
        } else {
            quorum
        };
        let mut commit = self.commit;
        // The first slot in flight is `commit + 1`: a master's commit index moves only here.
        // Should a slot at or below it be left over, it needs no more votes.
        while !master.inflight.is_empty() && master.first_inflight() <= commit {
            master.inflight.pop_front();
        }
        while master.first_inflight() == commit.next()
            && let Some(flight) = master.inflight.front()
        {
            if (flight.acks.count_ones() as usize) < quorum.max(1) {
                break;
            }
            commit = commit.next();
            master.inflight.pop_front();
        }
        self.advance_commit(now, commit)?;
        self.maybe_release(now);
        Ok(())
    }

    /// Learns that the master of `ballot` has committed through `master_commit`. Slots this
    /// replica accepted at that same ballot hold the chosen value (a ballot proposes one value
    /// per slot); any other slot must be fetched.
    pub(crate) fn learn_commit(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        master_commit: Slot,
    ) -> Result<(), Error> {
        #[cfg(feature = "fault-injection")]
        let any_ballot = self.config.fault == Some(crate::Fault::LearnCommitAnyBallot);
        #[cfg(not(feature = "fault-injection"))]
        let any_ballot = false;
        let mut commit = self.commit;
        while commit < master_commit {
            let slot = commit.next();
            match self.read_ballot(slot)? {
                Some(held) if held == ballot || any_ballot => commit = slot,
                _ => break,
            }
        }
        self.advance_commit(now, commit)?;
        if self.commit < master_commit {
            self.request_catch_up(now, from, self.commit.next());
        }
        Ok(())
    }

    pub(crate) fn advance_commit(&mut self, now: Time, commit: Slot) -> Result<(), Error> {
        debug_assert!(commit >= self.commit, "the commit index never decreases");
        if commit > self.commit {
            self.commit = commit;
            self.write_hard_state();
            if self.catch_up_sent.is_some_and(|sent| sent.slot <= commit) {
                self.catch_up_sent = None;
            }
        }
        self.maybe_finish_recovery(now)?;
        self.maybe_take_over(now)
    }

    /// Master duties on a tick: heartbeats, and re-sending accepts nobody acknowledged.
    pub(crate) fn tick_master(&mut self, now: Time) -> Result<(), Error> {
        self.heartbeat_if_due(now);
        let resend_after = self.config.heartbeat_interval;
        let (max_entries, max_bytes) = (self.config.max_batch_entries, self.config.max_batch_bytes);
        let members = self.config.members.clone();
        let commit = self.commit;
        let RoleState::Master(master) = &mut self.role else {
            return Ok(());
        };
        let ballot = master.ballot;
        let mut stale: Vec<(Slot, u64)> = Vec::new();
        let first = master.first_inflight();
        for (i, flight) in master.inflight.iter_mut().enumerate() {
            if now.since(flight.sent_at) >= resend_after {
                flight.sent_at = now;
                stale.push((Slot(first.0 + i as u64), flight.acks));
            }
            if stale.len() >= max_entries {
                break;
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        for (index, &peer) in members.iter().enumerate() {
            if peer == self.config.id {
                continue;
            }
            let mut entries = Vec::new();
            for &(slot, acks) in &stale {
                if acks & (1 << index) == 0
                    && let Some(entry) = self.read_entry(slot)?
                {
                    entries.push(entry);
                }
            }
            if entries.is_empty() {
                continue;
            }
            let (counters, messages) = (&mut self.counters, &mut self.outbox.messages);
            batches(entries, max_entries, max_bytes, |batch| {
                counters.accepts_resent += 1;
                messages.push(crate::message::Envelope {
                    to: peer,
                    msg: Message::Accept {
                        ballot,
                        commit,
                        entries: batch,
                    },
                });
            });
        }
        Ok(())
    }
}

/// Splits entries into groups of at most `max_entries` and about `max_bytes`, and hands each
/// group to `each` in order.
fn batches(
    entries: Vec<Entry>,
    max_entries: usize,
    max_bytes: usize,
    mut each: impl FnMut(Vec<Entry>),
) {
    if entries.len() <= max_entries
        && entries.iter().map(|e| e.value.size_hint()).sum::<usize>() <= max_bytes
    {
        // One group: the vector itself, not a copy.
        if !entries.is_empty() {
            each(entries);
        }
        return;
    }
    let mut current = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.value.size_hint();
        if !current.is_empty() && (current.len() >= max_entries || bytes + size > max_bytes) {
            each(core::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        each(current);
    }
}
