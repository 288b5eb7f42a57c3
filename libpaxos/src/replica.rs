//! The facade: one replica's state, its inputs, and the Ready batch it builds.
//!
//! The protocol itself is split by responsibility: `election.rs` (phase 1 and taking office),
//! `replication.rs` (phase 2 and the commit index), `lease.rs` (heartbeats and master leases),
//! `catchup.rs` (bringing a lagging replica up to date).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

use crate::config::Config;
use crate::counters::Counters;
use crate::election::{Candidate, Recovering};
use crate::error::{Error, ProposeError};
use crate::lease::MasterLease;
use crate::message::{Envelope, Message};
use crate::ready::{Committed, Event, Persist, Ready, Role};
use crate::replication::Master;
use crate::rng::SplitMix64;
use crate::storage::{HardState, Storage};
use crate::types::{Ballot, Entry, Epoch, NodeId, Slot, Time};

/// What an operator wants to see of one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The replica.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The highest ballot it promised.
    pub promised: Ballot,
    /// The master it believes in (itself when master).
    pub master: Option<NodeId>,
    /// Its master epoch, when master.
    pub epoch: Option<Epoch>,
    /// Its commit index.
    pub commit: Slot,
    /// What its state machine applied.
    pub applied: Slot,
    /// Its log is compacted through here.
    pub compacted: Slot,
    /// Whether it holds a master lease now.
    pub lease_valid: bool,
}

/// What the replica is doing, with the state each role needs.
pub(crate) enum RoleState {
    Follower,
    Candidate(Candidate),
    Recovering(Recovering),
    Master(Master),
}

/// Work produced by inputs and not yet handed out by [`Replica::ready`].
#[derive(Default)]
pub(crate) struct Outbox {
    pub(crate) compact_through: Option<Slot>,
    pub(crate) hard_state: Option<HardState>,
    /// Entries to write, sorted by slot, one per slot.
    pub(crate) entries: Vec<Entry>,
    pub(crate) after_persist: Vec<Envelope>,
    pub(crate) messages: Vec<Envelope>,
    pub(crate) events: Vec<Event>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.compact_through.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.after_persist.is_empty()
            && self.messages.is_empty()
            && self.events.is_empty()
    }
}

/// A message from this replica to itself that counts only once the Ready it belongs to is
/// durable.
pub(crate) enum SelfMessage {
    /// Any message, handled as if it came from a peer.
    Message(Message),
    /// The master's own `Accepted` of the slots `first..=last` it proposed in one Ready (a
    /// range, so proposing allocates nothing for it).
    Accepted {
        ballot: Ballot,
        first: Slot,
        last: Slot,
    },
}

/// One replica of the cell: feed it inputs, take [`Ready`] batches, perform them.
///
/// See the crate documentation for the driving loop and `docs/libpaxos.md` for the contract.
pub struct Replica<S: Storage> {
    pub(crate) config: Config,
    /// Every member but this replica, in member order.
    pub(crate) peer_ids: Vec<NodeId>,
    pub(crate) storage: S,
    pub(crate) rng: SplitMix64,
    pub(crate) counters: Counters,
    pub(crate) role: RoleState,
    /// The highest ballot promised (written, maybe not yet durable).
    pub(crate) promised: Ballot,
    /// The highest ballot heard of anywhere; new candidacies go above it.
    pub(crate) highest_seen: Ballot,
    /// Every slot up to here is chosen and this replica holds (or has compacted) its value.
    pub(crate) commit: Slot,
    /// The state machine has applied up to here (reported by the driver).
    pub(crate) applied: Slot,
    /// Committed entries handed out in a Ready up to here.
    pub(crate) delivered: Slot,
    /// The log is compacted through here (as written).
    pub(crate) compacted: Slot,
    /// The master this replica follows, and its ballot.
    pub(crate) master: Option<(NodeId, Ballot)>,
    /// This replica promised the holder of this ballot not to promise anyone else until then.
    pub(crate) lease_granted: Option<(Ballot, Time)>,
    /// After a restart, no promise before this time (grants made before the crash are unknown).
    pub(crate) quiet_until: Time,
    /// When this replica last heard from its master (or started, or promised a candidate).
    pub(crate) last_heard: Time,
    /// When a follower stands for election if nothing is heard.
    pub(crate) election_deadline: Time,
    /// A pre-vote in progress: the round asked about and who would grant it.
    pub(crate) prevote: Option<crate::election::PreVote>,
    /// Pre-vote attempts made, to tell their answers apart.
    pub(crate) prevote_attempts: u64,
    /// A catch-up request in flight: the slot asked for and when.
    pub(crate) catch_up_sent: Option<crate::catchup::CatchUpRequest>,
    /// A snapshot install asked of the driver and not yet done.
    pub(crate) snapshot_wanted: Option<(Slot, Time)>,
    pub(crate) outbox: Outbox,
    /// Self-messages waiting for the Ready they belong to to become durable, in Ready order,
    /// with that Ready's number (`ready_number + 1` for the Ready not yet taken).
    pub(crate) waiting_for_persist: VecDeque<(u64, SelfMessage)>,
    pub(crate) ready_number: u64,
    pub(crate) persisted_number: u64,
    /// The master lease as last reported in an event, to report changes once.
    pub(crate) lease_reported: bool,
    /// The ballot whose lease this replica last gave up (as a master handing over, or
    /// released by it): that ballot leads no more, so it is never followed or granted a
    /// lease again.
    pub(crate) released: Option<Ballot>,
    /// The member this replica handed mastership to, as a hint until it hears a master.
    pub(crate) handed_to: Option<NodeId>,
    /// A hand-over to this replica waiting for it to catch up before it stands.
    pub(crate) takeover: Option<crate::handover::TakeOver>,
}

impl<S: Storage> Replica<S> {
    /// Starts (or restarts) a replica over `storage`. `applied` is the slot the driver's state
    /// machine has durably applied (a snapshot counts); committed entries after it will be
    /// handed out again. A restarted replica promises nothing for one lease period, because it
    /// cannot know what leases it granted before it went down.
    pub fn new(config: Config, storage: S, now: Time, applied: Slot) -> Result<Replica<S>, Error> {
        config.validate()?;
        let hard_state = storage.hard_state()?;
        #[cfg(feature = "fault-injection")]
        let hard_state = if config.fault == Some(crate::Fault::ForgetPromiseOnRestart) {
            HardState::default()
        } else {
            hard_state
        };
        let compacted = storage.compacted_through()?;
        if applied < compacted {
            return Err(Error::AppliedBehindSnapshot { applied, compacted });
        }
        // Entries up to the durable commit index are chosen: hand them out again from
        // `applied` on (a state machine kept in memory restarts from its snapshot).
        let commit = applied.max(compacted).max(hard_state.commit);
        let quiet = config.lease;
        #[cfg(feature = "fault-injection")]
        let quiet = if config.fault == Some(crate::Fault::NoQuietAfterRestart) {
            Duration::ZERO
        } else {
            quiet
        };
        let peer_ids = config
            .members
            .iter()
            .copied()
            .filter(|&n| n != config.id)
            .collect();
        let mut replica = Replica {
            rng: SplitMix64::new(config.seed),
            peer_ids,
            config,
            storage,
            counters: Counters::default(),
            role: RoleState::Follower,
            promised: hard_state.promised,
            highest_seen: hard_state.promised,
            commit,
            applied,
            delivered: applied,
            compacted,
            master: None,
            lease_granted: None,
            quiet_until: now + quiet,
            last_heard: now,
            election_deadline: now,
            prevote: None,
            prevote_attempts: 0,
            catch_up_sent: None,
            snapshot_wanted: None,
            outbox: Outbox::default(),
            waiting_for_persist: VecDeque::new(),
            ready_number: 0,
            persisted_number: 0,
            lease_reported: false,
            released: None,
            handed_to: None,
            takeover: None,
        };
        if hard_state.commit < applied && applied > compacted {
            // The state machine is ahead of the log's own commit index: it installed a
            // snapshot whose log compaction did not become durable (a crash between the two
            // with a separate log store). The log at or below `applied` may hold values that
            // were never chosen; the snapshot covers those slots, so drop them.
            replica.set_compacted(applied);
        }
        replica.reset_election_timer(now);
        Ok(replica)
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The log storage, for reading.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The log storage, for the driver to perform `Ready::persist` on.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back (to crash it in a simulation, or to close it).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Counters of refused inputs and transitions.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::Follower => Role::Follower {
                master: self.master.map(|(node, _)| node),
            },
            RoleState::Candidate(c) => Role::Candidate { ballot: c.ballot },
            RoleState::Recovering(r) => Role::Recovering { ballot: r.ballot },
            RoleState::Master(m) => Role::Master { ballot: m.ballot },
        }
    }

    /// A snapshot of this replica's state for operators (the server's Status op).
    pub fn status(&self, now: Time) -> Status {
        Status {
            id: self.config.id,
            role: self.role(),
            promised: self.promised,
            master: self.master_hint(),
            epoch: self.epoch(),
            commit: self.commit,
            applied: self.applied,
            compacted: self.compacted,
            lease_valid: self.lease_valid(now),
        }
    }

    /// The highest ballot this replica has promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// Every slot up to this one is known chosen here.
    pub fn commit(&self) -> Slot {
        self.commit
    }

    /// What the driver last reported applied.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// The master this replica believes in: itself when master, else the last one it heard.
    pub fn master_hint(&self) -> Option<NodeId> {
        match &self.role {
            RoleState::Master(_) => Some(self.config.id),
            _ => self.master.map(|(node, _)| node).or(self.handed_to),
        }
    }

    /// The epoch of this replica's master term, if it is master.
    pub fn epoch(&self) -> Option<Epoch> {
        match &self.role {
            RoleState::Master(m) => Some(self.term_epoch(m.ballot)),
            _ => None,
        }
    }

    /// The epoch of the master term `ballot` opens.
    pub(crate) fn term_epoch(&self, ballot: Ballot) -> Epoch {
        #[cfg(feature = "fault-injection")]
        if self.config.fault == Some(crate::Fault::EpochWithoutNode) {
            return Epoch(ballot.round.saturating_mul(NodeId::LIMIT));
        }
        ballot.epoch()
    }

    /// Proposes a command. Returns the slot it was given and the epoch it carries: if the slot
    /// is later committed with a value of that epoch, it is this command; otherwise the command
    /// was lost with a change of master and may be proposed again.
    ///
    /// `command` is anything that converts into [`bytes::Bytes`] (a `Vec<u8>` without a copy);
    /// every message, log entry and Ready that carries it shares that one buffer.
    pub fn propose(
        &mut self,
        now: Time,
        command: impl Into<bytes::Bytes>,
    ) -> Result<(Slot, Epoch), ProposeError> {
        let result = self.propose_command(now, command.into());
        if result.is_err() {
            self.counters.proposals_refused += 1;
        }
        result
    }

    /// Handles a message from another member.
    pub fn on_message(&mut self, now: Time, from: NodeId, msg: Message) -> Result<(), Error> {
        if from == self.config.id || !self.config.members.contains(&from) {
            self.counters.unknown_sender += 1;
            return Ok(());
        }
        if !msg.ballots_valid() {
            self.counters.malformed += 1;
            return Ok(());
        }
        self.handle(now, from, msg)
    }

    /// Lets time pass: heartbeats, lease expiry, election timeouts, re-sends.
    pub fn on_tick(&mut self, now: Time) -> Result<(), Error> {
        match &self.role {
            RoleState::Master(_) | RoleState::Recovering(_) => {
                self.tick_lease(now);
                if self.is_leading() {
                    self.tick_master(now)?;
                    self.maybe_finish_recovery(now)?;
                    self.maybe_release(now);
                }
            }
            RoleState::Candidate(_) | RoleState::Follower => {
                self.expire_takeover(now);
                if now >= self.election_deadline && self.may_promise(now, self.config.id) {
                    self.start_prevote(now)?;
                }
            }
        }
        self.tick_catch_up(now);
        Ok(())
    }

    /// The driver has made every Ready up to `number` durable.
    pub fn on_persisted(&mut self, now: Time, number: u64) -> Result<(), Error> {
        if number <= self.persisted_number {
            return Ok(());
        }
        self.persisted_number = number.min(self.ready_number);
        // Waiting messages are in Ready order: the due ones are a prefix.
        let persisted = self.persisted_number;
        while self
            .waiting_for_persist
            .front()
            .is_some_and(|(n, _)| *n <= persisted)
        {
            match self.waiting_for_persist.pop_front() {
                Some((_, SelfMessage::Message(msg))) => self.handle(now, self.config.id, msg)?,
                Some((
                    _,
                    SelfMessage::Accepted {
                        ballot,
                        first,
                        last,
                    },
                )) => {
                    let slots = (first.0..=last.0).map(Slot);
                    self.on_accepted(now, self.config.id, ballot, slots)?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The driver's state machine has applied everything up to `slot`.
    pub fn on_applied(&mut self, slot: Slot) {
        self.applied = self.applied.max(slot.min(self.delivered));
    }

    /// The driver holds a durable snapshot through `upto`: the log below may go. `upto` is
    /// capped at what has been applied; the compaction comes out in a later Ready.
    pub fn compact(&mut self, upto: Slot) {
        let upto = upto.min(self.applied);
        if upto > self.compacted {
            self.set_compacted(upto);
        }
    }

    /// The driver installed a snapshot covering everything through `slot`: the log up to it is
    /// replaced by the snapshot and the state machine has applied it.
    pub fn on_snapshot_installed(&mut self, now: Time, slot: Slot) -> Result<(), Error> {
        if self
            .snapshot_wanted
            .is_some_and(|(wanted, _)| wanted <= slot)
        {
            self.snapshot_wanted = None;
        }
        if slot <= self.applied {
            // The driver should not install what it has already applied; nothing to do.
            return Ok(());
        }
        if matches!(self.role, RoleState::Master(_)) {
            // A master proposes; it does not learn from another replica's state.
            self.master = None;
            self.set_role(RoleState::Follower);
            self.reset_election_timer(now);
        }
        self.applied = slot;
        // Entries handed out before, above the snapshot, are the driver's to apply still.
        self.delivered = self.delivered.max(slot);
        if slot > self.compacted {
            self.set_compacted(slot);
        }
        self.catch_up_sent = None;
        if slot > self.commit {
            self.commit = slot;
            self.write_hard_state();
        }
        self.maybe_finish_recovery(now)
    }

    /// Linearizable reads may be served locally once the state machine has applied the
    /// returned slot, if this replica is master, holds its lease at `now`, and has committed
    /// its take-office no-op (so every earlier term's writes are in). `None` otherwise.
    pub fn read_fence(&self, now: Time) -> Option<Slot> {
        let RoleState::Master(m) = &self.role else {
            return None;
        };
        if self.commit < m.noop_slot {
            return None;
        }
        #[cfg(feature = "fault-injection")]
        if self.config.fault == Some(crate::Fault::ReadWithoutLease) {
            return Some(self.commit);
        }
        self.lease_valid(now).then_some(self.commit)
    }

    /// Takes the work produced since the last call. Perform it as [`Ready`] describes.
    pub fn ready(&mut self) -> Ready {
        self.flush_proposals();
        // Messages to self queued for the Ready not yet taken.
        let to_self = self
            .waiting_for_persist
            .back()
            .is_some_and(|(n, _)| *n > self.ready_number);
        if !to_self && self.outbox.is_empty() && self.delivered >= self.commit {
            // Nothing to hand out: the common answer to "anything more?" costs no moves.
            return Ready::default();
        }
        let out = core::mem::take(&mut self.outbox);
        let persist = Persist {
            compact_through: out.compact_through,
            hard_state: out.hard_state,
            entries: out.entries,
        };
        let mut ready = Ready {
            number: 0,
            persist,
            after_persist: out.after_persist,
            messages: out.messages,
            committed: Vec::new(),
            events: out.events,
        };
        // Hand out newly committed entries; reading can fail only on a broken storage, in
        // which case the rest are handed out by a later Ready.
        ready.committed = self.take_committed(&ready.persist);
        if !ready.is_empty() || to_self {
            self.ready_number += 1;
            ready.number = self.ready_number;
        }
        ready
    }

    /// Reads the entries in `from..=to` as written (outbox included), holes skipped, at most
    /// `max` of them.
    pub(crate) fn read_entries(
        &self,
        from: Slot,
        to: Slot,
        max: usize,
    ) -> Result<Vec<Entry>, Error> {
        let from = from.max(self.compacted.next());
        if from > to {
            return Ok(Vec::new());
        }
        let stored = self.storage.entries(from, to, max)?;
        let pending = self.outbox_range(from, to);
        if pending.is_empty() {
            return Ok(stored);
        }
        let mut merged: BTreeMap<Slot, Entry> = stored.into_iter().map(|e| (e.slot, e)).collect();
        for entry in pending {
            merged.insert(entry.slot, entry.clone());
        }
        Ok(merged.into_values().take(max).collect())
    }

    /// The entries waiting in the outbox with slots in `from..=to`.
    fn outbox_range(&self, from: Slot, to: Slot) -> &[Entry] {
        let entries = &self.outbox.entries;
        let start = entries.partition_point(|e| e.slot < from);
        let end = entries.partition_point(|e| e.slot <= to);
        &entries[start..end.max(start)]
    }

    /// Reads an entry as written, including entries still in the outbox.
    pub(crate) fn read_entry(&self, slot: Slot) -> Result<Option<Entry>, Error> {
        if slot <= self.compacted || slot == Slot::ZERO {
            return Ok(None);
        }
        if let Some(i) = find(&self.outbox.entries, slot) {
            return Ok(Some(self.outbox.entries[i].clone()));
        }
        Ok(self.storage.entry(slot)?)
    }

    /// The ballot of the entry at `slot` as written, including the outbox, without copying the
    /// entry.
    pub(crate) fn read_ballot(&self, slot: Slot) -> Result<Option<Ballot>, Error> {
        if slot <= self.compacted || slot == Slot::ZERO {
            return Ok(None);
        }
        if let Some(i) = find(&self.outbox.entries, slot) {
            return Ok(Some(self.outbox.entries[i].ballot));
        }
        Ok(self.storage.ballot_at(slot)?)
    }

    /// The highest slot written, including the outbox.
    pub(crate) fn last_slot(&self) -> Result<Slot, Error> {
        let stored = self.storage.last_slot()?;
        let pending = self.outbox.entries.last().map(|e| e.slot);
        Ok(stored
            .max(pending.unwrap_or(Slot::ZERO))
            .max(self.compacted))
    }

    /// Queues an entry for writing. Slots at or below the commit index are never rewritten.
    pub(crate) fn write_entry(&mut self, entry: Entry) {
        debug_assert!(entry.slot > self.compacted);
        let entries = &mut self.outbox.entries;
        match entries.last() {
            Some(last) if last.slot >= entry.slot => {
                match entries.binary_search_by_key(&entry.slot, |e| e.slot) {
                    Ok(i) => entries[i] = entry,
                    Err(i) => entries.insert(i, entry),
                }
            }
            _ => entries.push(entry),
        }
    }

    /// Promises `ballot` durably (the hard state goes out in the next Ready).
    pub(crate) fn raise_promise(&mut self, ballot: Ballot) {
        debug_assert!(ballot >= self.promised, "a promise never decreases");
        if ballot > self.promised {
            self.promised = ballot;
            self.write_hard_state();
        }
        self.note_ballot(ballot);
    }

    /// Queues the hard state (promise and commit index) for the next Ready.
    pub(crate) fn write_hard_state(&mut self) {
        self.outbox.hard_state = Some(HardState {
            promised: self.promised,
            commit: self.commit,
        });
    }

    /// Answers a message of a ballot below our promise with `Reject` (so its sender learns
    /// the higher ballot) and counts it; true if it was stale.
    pub(crate) fn reject_if_stale(&mut self, from: NodeId, ballot: Ballot) -> bool {
        if ballot >= self.promised {
            return false;
        }
        self.counters.stale_ballot += 1;
        let promised = self.promised;
        self.send(from, Message::Reject { ballot, promised });
        true
    }

    pub(crate) fn note_ballot(&mut self, ballot: Ballot) {
        self.highest_seen = self.highest_seen.max(ballot);
    }

    pub(crate) fn send(&mut self, to: NodeId, msg: Message) {
        self.outbox.messages.push(Envelope { to, msg });
    }

    pub(crate) fn send_after_persist(&mut self, to: NodeId, msg: Message) {
        if to == self.config.id {
            let number = self.ready_number + 1;
            self.waiting_for_persist
                .push_back((number, SelfMessage::Message(msg)));
        } else {
            self.outbox.after_persist.push(Envelope { to, msg });
        }
    }

    pub(crate) fn peers(&self) -> Vec<NodeId> {
        let me = self.config.id;
        self.config
            .members
            .iter()
            .copied()
            .filter(|&n| n != me)
            .collect()
    }

    pub(crate) fn set_role(&mut self, role: RoleState) {
        // Whatever pre-vote was under way belongs to the role being left.
        self.prevote = None;
        let was_leading = self.is_leading();
        self.role = role;
        if was_leading && !self.is_leading() && self.lease_reported {
            self.lease_reported = false;
            self.outbox.events.push(Event::LeaseLost);
        }
        let role = self.role();
        self.outbox.events.push(Event::RoleChanged(role));
    }

    /// Master or recovering: this replica holds a ballot a majority promised.
    pub(crate) fn is_leading(&self) -> bool {
        matches!(self.role, RoleState::Master(_) | RoleState::Recovering(_))
    }

    /// The ballot this replica leads with, if it leads.
    pub(crate) fn leading_ballot(&self) -> Option<Ballot> {
        match &self.role {
            RoleState::Master(m) => Some(m.ballot),
            RoleState::Recovering(r) => Some(r.ballot),
            _ => None,
        }
    }

    pub(crate) fn lease_state(&mut self) -> Option<&mut MasterLease> {
        match &mut self.role {
            RoleState::Master(m) => Some(&mut m.lease),
            RoleState::Recovering(r) => Some(&mut r.lease),
            _ => None,
        }
    }

    pub(crate) fn reset_election_timer(&mut self, now: Time) {
        let base = self.config.election_timeout;
        let jitter_range = u64::try_from(base.as_micros()).unwrap_or(u64::MAX).max(1);
        let jitter = Duration::from_micros(self.rng.below(jitter_range));
        self.last_heard = now;
        self.election_deadline = now + base + jitter;
    }

    fn set_compacted(&mut self, upto: Slot) {
        self.compacted = upto;
        self.outbox.compact_through = Some(upto);
        self.outbox.entries.retain(|e| e.slot > upto);
    }

    /// The committed entries not handed out yet, up to `max_apply_batch`. A storage that fails
    /// to read stops the batch there (what was read is handed out, the rest later), so no slot
    /// is marked delivered without its value going out.
    fn take_committed(&mut self, persist: &Persist) -> Vec<Committed> {
        if self.delivered >= self.commit {
            return Vec::new();
        }
        let max = self.config.max_apply_batch;
        let last = Slot(
            self.commit
                .0
                .min(self.delivered.0.saturating_add(max as u64)),
        );
        // One read for the slots the storage holds (a single one is read alone, without a
        // vector); the ones this Ready writes come from it.
        let first = self.delivered.next();
        let stored_to = match persist.entries.first() {
            Some(e) if e.slot <= last => e.slot.prev(),
            _ => last,
        };
        let stored = if first < stored_to {
            // On a read error, the slots are read one by one below (and stop at the failing one).
            self.storage
                .entries(first, stored_to, max)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut stored = stored.into_iter().peekable();
        let mut out = Vec::with_capacity((last.0 - self.delivered.0).min(4096) as usize);
        while self.delivered < self.commit && out.len() < max {
            let slot = self.delivered.next();
            let entry = match find(&persist.entries, slot) {
                Some(i) => Some(persist.entries[i].clone()),
                None => match stored.next_if(|e| e.slot == slot) {
                    Some(e) => Some(e),
                    None => match self.storage.entry(slot) {
                        Ok(entry) => entry,
                        Err(_) => break,
                    },
                },
            };
            let Some(entry) = entry else {
                // Invariant: every slot up to the commit index is held or compacted.
                debug_assert!(false, "committed slot {slot} is missing from the log");
                break;
            };
            out.push(Committed {
                slot,
                value: entry.value,
            });
            self.delivered = slot;
        }
        out
    }

    fn handle(&mut self, now: Time, from: NodeId, msg: Message) -> Result<(), Error> {
        match msg {
            Message::PreVote { attempt, round, .. } => {
                self.on_prevote(now, from, attempt, round);
                Ok(())
            }
            Message::PreVoteReply {
                attempt,
                round,
                granted,
                promised,
            } => self.on_prevote_reply(now, from, attempt, round, granted, promised),
            Message::Prepare { ballot, from: slot } => self.on_prepare(now, from, ballot, slot),
            Message::Promise {
                ballot,
                commit,
                entries,
            } => self.on_promise(now, from, ballot, commit, entries),
            Message::Reject { ballot, promised } => self.on_reject(now, ballot, promised),
            Message::Accept {
                ballot,
                commit,
                entries,
            } => self.on_accept(now, from, ballot, commit, entries),
            Message::Accepted { ballot, slots } => {
                self.on_accepted(now, from, ballot, slots.iter().copied())
            }
            Message::Heartbeat {
                ballot,
                seq,
                commit,
            } => self.on_heartbeat(now, from, ballot, seq, commit),
            Message::HeartbeatAck {
                ballot,
                seq,
                commit,
            } => {
                self.on_heartbeat_ack(now, from, ballot, seq, commit);
                Ok(())
            }
            Message::CatchUpRequest { from: slot } => self.on_catch_up_request(from, slot),
            Message::CatchUp { commit, entries } => self.on_catch_up(now, from, commit, entries),
            Message::SnapshotNeeded { slot } => {
                self.on_snapshot_needed(now, from, slot);
                Ok(())
            }
            Message::LeaseRelease { ballot } => {
                self.on_lease_release(from, ballot);
                Ok(())
            }
            Message::TimeoutNow { ballot, commit } => {
                self.on_timeout_now(now, from, ballot, commit)
            }
        }
    }
}

/// Where `slot` is in `entries` (sorted by slot, one per slot): O(1) outside their range or
/// when they are consecutive, a binary search otherwise.
fn find(entries: &[Entry], slot: Slot) -> Option<usize> {
    let (first, last) = (entries.first()?.slot, entries.last()?.slot);
    if slot < first || slot > last {
        return None;
    }
    let guess = usize::try_from(slot.0 - first.0).ok()?;
    if entries.get(guess).is_some_and(|e| e.slot == slot) {
        return Some(guess);
    }
    entries.binary_search_by_key(&slot, |e| e.slot).ok()
}
