//! Phase 1 and taking office: standing for election, promising, and recovering the previous
//! terms' open slots before proposing anything new.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::error::Error;
use crate::lease::MasterLease;
use crate::message::Message;
use crate::replica::{Replica, RoleState};
use crate::replication::Master;
use crate::storage::Storage;
use crate::types::{Ballot, Entry, Epoch, NodeId, Payload, Slot, Time, Value};

/// How far beyond the accept window a promise's entries may reach (see `on_promise`).
const RECOVERY_SLACK: u64 = 1 << 16;

/// A pre-vote under way.
pub(crate) struct PreVote {
    attempt: u64,
    round: u64,
    granted: BTreeSet<NodeId>,
}

/// A replica running phase 1.
pub(crate) struct Candidate {
    pub(crate) ballot: Ballot,
    /// Promises received: each acceptor's commit index and its accepted entries above it.
    promises: BTreeMap<NodeId, (Slot, Vec<Entry>)>,
}

/// A replica that won phase 1 and is learning the chosen prefix it lacks before it re-proposes.
pub(crate) struct Recovering {
    pub(crate) ballot: Ballot,
    /// The highest commit index any promiser reported; this replica must reach it first.
    target: Slot,
    /// Who reported it.
    source: NodeId,
    /// For every slot above `target`, the entry with the highest ballot among the promises.
    values: BTreeMap<Slot, Entry>,
    /// When phase 1 was won; recovery that takes too long starts over with a new ballot.
    since: Time,
    pub(crate) lease: MasterLease,
}

impl<S: Storage> Replica<S> {
    /// Whether this replica may promise a ballot owned by `owner` at `now`.
    pub(crate) fn may_promise(&mut self, now: Time, owner: NodeId) -> bool {
        if now < self.quiet_until {
            self.counters.refused_while_quiet += 1;
            return false;
        }
        if let Some((ballot, until)) = self.lease_granted
            && now < until
            && ballot.node != owner
        {
            self.counters.refused_by_lease += 1;
            return false;
        }
        true
    }

    /// The round a new candidacy would use: above every ballot promised or seen.
    fn next_round(&self) -> u64 {
        // Rounds are validated below MAX_ROUND on arrival, so this cannot overflow.
        self.promised
            .round
            .max(self.highest_seen.round)
            .saturating_add(1)
    }

    /// Asks the cell whether it would promise us, before raising any ballot.
    pub(crate) fn start_prevote(&mut self, now: Time) -> Result<(), Error> {
        let round = self.next_round();
        self.counters.prevotes_started += 1;
        self.prevote_attempts += 1;
        let attempt = self.prevote_attempts;
        self.reset_election_timer(now);
        let mut granted = BTreeSet::new();
        granted.insert(self.config.id);
        self.prevote = Some(PreVote {
            attempt,
            round,
            granted,
        });
        let commit = self.commit;
        for peer in self.peers() {
            self.send(
                peer,
                Message::PreVote {
                    attempt,
                    round,
                    commit,
                },
            );
        }
        self.maybe_win_prevote(now)
    }

    fn maybe_win_prevote(&mut self, now: Time) -> Result<(), Error> {
        let won = self
            .prevote
            .as_ref()
            .is_some_and(|p| p.granted.len() >= self.config.quorum());
        // Only a replica that does not lead stands; a pre-vote that outlived its role is void.
        if won && matches!(self.role, RoleState::Follower | RoleState::Candidate(_)) {
            self.prevote = None;
            self.start_election(now)?;
        }
        Ok(())
    }

    pub(crate) fn on_prevote(&mut self, now: Time, from: NodeId, attempt: u64, round: u64) {
        if round >= Ballot::MAX_ROUND {
            self.counters.malformed += 1;
            return;
        }
        let ballot = Ballot { round, node: from };
        let leased_elsewhere = self
            .lease_granted
            .is_some_and(|(held, until)| now < until && held.node != from);
        let granted = ballot > self.promised && now >= self.quiet_until && !leased_elsewhere;
        if !granted {
            self.counters.prevotes_refused += 1;
        }
        let promised = self.promised;
        self.send(
            from,
            Message::PreVoteReply {
                attempt,
                round,
                granted,
                promised,
            },
        );
    }

    pub(crate) fn on_prevote_reply(
        &mut self,
        now: Time,
        from: NodeId,
        attempt: u64,
        round: u64,
        granted: bool,
        promised: Ballot,
    ) -> Result<(), Error> {
        self.note_ballot(promised);
        match &mut self.prevote {
            Some(p) if p.attempt == attempt && p.round == round => {
                if granted {
                    p.granted.insert(from);
                }
            }
            _ => {
                self.counters.unexpected += 1;
                return Ok(());
            }
        }
        self.maybe_win_prevote(now)
    }

    /// Stands for election with a ballot above every ballot seen.
    pub(crate) fn start_election(&mut self, now: Time) -> Result<(), Error> {
        let round = self.next_round();
        let ballot = Ballot {
            round,
            node: self.config.id,
        };
        let from = self.commit.next();
        // Read the log before changing anything, so a storage error leaves no trace.
        let own = self.promise_message(ballot, from)?;
        self.counters.elections_started += 1;
        self.raise_promise(ballot);
        self.master = None;
        self.reset_election_timer(now);
        self.set_role(RoleState::Candidate(Candidate {
            ballot,
            promises: BTreeMap::new(),
        }));
        self.send_after_persist(self.config.id, own);
        for peer in self.peers() {
            self.send_after_persist(peer, Message::Prepare { ballot, from });
        }
        Ok(())
    }

    /// The promise this replica gives for `ballot`: its commit index and every entry it holds
    /// above `max(from - 1, commit)`.
    fn promise_message(&self, ballot: Ballot, from: Slot) -> Result<Message, Error> {
        let lowest = from.max(self.commit.next());
        let last = self.last_slot()?;
        // Every accepted entry above the commit index, never fewer: a promise that left one
        // out could let the new master overwrite a chosen value. The accept window bounds how
        // many there are.
        let entries = self.read_entries(lowest, last, usize::MAX)?;
        Ok(Message::Promise {
            ballot,
            commit: self.commit,
            entries,
        })
    }

    pub(crate) fn on_prepare(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
    ) -> Result<(), Error> {
        self.note_ballot(ballot);
        if ballot.node != from || slot == Slot::ZERO {
            self.counters.malformed += 1;
            return Ok(());
        }
        if self.reject_if_stale(from, ballot) {
            return Ok(());
        }
        if ballot > self.promised && !self.may_promise(now, from) {
            return Ok(());
        }
        // Read the log before changing anything, so a storage error leaves no trace.
        let promise = self.promise_message(ballot, slot)?;
        self.raise_promise(ballot);
        self.prevote = None;
        if !matches!(self.role, RoleState::Follower) {
            self.master = None;
            self.set_role(RoleState::Follower);
        }
        // A candidate we promised gets its chance before we stand ourselves.
        self.reset_election_timer(now);
        #[cfg(feature = "fault-injection")]
        if self.config.fault == Some(crate::Fault::PromiseBeforeDurable) {
            self.send(from, promise);
            return Ok(());
        }
        self.send_after_persist(from, promise);
        Ok(())
    }

    pub(crate) fn on_promise(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        entries: Vec<Entry>,
    ) -> Result<(), Error> {
        // An acceptor takes nothing beyond its commit index plus the accept window, but a
        // master that won phase 1 and then committed nothing leaves its take-office no-op one
        // slot beyond what it recovered, and a chain of such failed terms pushes the last
        // entry further each time. Refusing those promises would wedge the cell, so the bound
        // only stops absurd slots (a term needs an election, so the slack is hours of failed
        // terms in a row).
        let limit = Slot(
            commit
                .0
                .saturating_add(self.config.accept_window())
                .saturating_add(RECOVERY_SLACK),
        );
        if !entries_sorted(&entries)
            || entries
                .iter()
                .any(|e| e.slot <= commit || e.slot > limit || e.ballot >= ballot)
        {
            self.counters.malformed += 1;
            return Ok(());
        }
        let quorum = self.config.quorum();
        let RoleState::Candidate(candidate) = &mut self.role else {
            self.counters.unexpected += 1;
            return Ok(());
        };
        if candidate.ballot != ballot {
            self.counters.stale_ballot += 1;
            return Ok(());
        }
        candidate.promises.insert(from, (commit, entries));
        #[cfg(feature = "fault-injection")]
        let quorum = if self.config.fault == Some(crate::Fault::MinorityQuorum) {
            quorum - 1
        } else {
            quorum
        };
        if candidate.promises.len() < quorum.max(1) {
            return Ok(());
        }
        let promises = core::mem::take(&mut candidate.promises);
        self.take_office(now, ballot, promises)
    }

    /// Phase 1 succeeded: learn what the promises say, then catch up or re-propose.
    fn take_office(
        &mut self,
        now: Time,
        ballot: Ballot,
        promises: BTreeMap<NodeId, (Slot, Vec<Entry>)>,
    ) -> Result<(), Error> {
        let (source, target) = promises
            .iter()
            .map(|(node, (commit, _))| (*node, *commit))
            .max_by_key(|(node, commit)| (*commit, *node == self.config.id))
            .unwrap_or((self.config.id, self.commit));
        let mut values: BTreeMap<Slot, Entry> = BTreeMap::new();
        for (_, entries) in promises.into_values() {
            for entry in entries {
                if entry.slot <= target {
                    continue;
                }
                match values.get(&entry.slot) {
                    Some(held) if held.ballot >= entry.ballot => {}
                    _ => {
                        values.insert(entry.slot, entry);
                    }
                }
            }
        }
        self.counters.terms_won += 1;
        self.master = None;
        self.set_role(RoleState::Recovering(Recovering {
            ballot,
            target,
            source,
            values,
            since: now,
            lease: MasterLease::new(&self.config),
        }));
        self.tick_lease(now);
        if self.commit < target {
            self.request_catch_up(now, source, self.commit.next());
            return Ok(());
        }
        self.finish_recovery(now)
    }

    /// Called whenever the commit index may have reached the recovery target.
    pub(crate) fn maybe_finish_recovery(&mut self, now: Time) -> Result<(), Error> {
        match &self.role {
            RoleState::Recovering(r) if self.commit >= r.target => self.finish_recovery(now),
            RoleState::Recovering(r)
                if now.since(r.since) >= self.config.election_timeout.saturating_mul(2) =>
            {
                // The replica that knows the chosen prefix does not answer: ask a new majority.
                self.start_election(now)
            }
            RoleState::Recovering(r) => {
                let source = r.source;
                self.request_catch_up(now, source, self.commit.next());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Re-proposes every open slot of earlier terms (no-ops for holes), then the take-office
    /// no-op, and becomes master.
    fn finish_recovery(&mut self, now: Time) -> Result<(), Error> {
        let RoleState::Recovering(recovering) =
            core::mem::replace(&mut self.role, RoleState::Follower)
        else {
            return Ok(());
        };
        let ballot = recovering.ballot;
        let epoch = self.term_epoch(ballot);
        let first = self.commit.next();
        let last_reported = recovering
            .values
            .keys()
            .next_back()
            .copied()
            .unwrap_or(Slot::ZERO);
        let mut proposals = Vec::new();
        let mut slot = first;
        while slot <= last_reported {
            // A hole no majority member accepted anything in: fill it with a no-op of the zero
            // epoch, which never raises the state machine's epoch (the take-office no-op
            // after every re-proposed value does that).
            let value = match recovering.values.get(&slot) {
                Some(entry) => entry.value.clone(),
                None => Value {
                    epoch: Epoch::default(),
                    payload: Payload::Noop,
                },
            };
            proposals.push(value);
            slot = slot.next();
        }
        let noop_slot = slot;
        proposals.push(Value {
            epoch,
            payload: Payload::Noop,
        });
        self.role = RoleState::Master(Master::new(ballot, first, noop_slot, recovering.lease));
        let role = self.role();
        self.outbox
            .events
            .push(crate::ready::Event::RoleChanged(role));
        for value in proposals {
            self.append_as_master(now, value);
        }
        Ok(())
    }

    pub(crate) fn on_reject(
        &mut self,
        now: Time,
        ballot: Ballot,
        promised: Ballot,
    ) -> Result<(), Error> {
        self.note_ballot(promised);
        if promised <= ballot {
            self.counters.malformed += 1;
            return Ok(());
        }
        match &self.role {
            RoleState::Candidate(c) if c.ballot == ballot => {
                // Someone promised higher: wait out a fresh timeout, then try above it.
                self.set_role(RoleState::Follower);
                self.reset_election_timer(now);
            }
            RoleState::Master(_) | RoleState::Recovering(_)
                if self.leading_ballot() == Some(ballot) =>
            {
                // A replica promised a higher ballot (say, one that was cut off and stood for
                // election alone). Re-run phase 1 above it at once; followers bound to our
                // lease still promise us, because the lease is ours.
                self.start_election(now)?;
            }
            _ => self.counters.stale_ballot += 1,
        }
        Ok(())
    }
}

/// Slots strictly increasing and never zero.
pub(crate) fn entries_sorted(entries: &[Entry]) -> bool {
    entries.first().is_none_or(|e| e.slot > Slot::ZERO)
        && entries.windows(2).all(|w| w[0].slot < w[1].slot)
}
