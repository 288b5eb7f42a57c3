//! Bringing a lagging replica up to date: chosen entries from a peer's log, or, when the peer
//! has compacted them away, a snapshot installed by the driver.
//!
//! Only a replica that does not propose (a follower, or a master-elect still recovering the
//! chosen prefix) learns this way. A master never does: a catch-up answer that reaches a master
//! means another master has been chosen since, and adopting its entries would make this
//! master's followers commit values of its own term that were never chosen.

use alloc::vec::Vec;

use crate::election::entries_sorted;
use crate::error::Error;
use crate::message::Message;
use crate::ready::Event;
use crate::replica::{Replica, RoleState};
use crate::storage::Storage;
use crate::types::{Entry, NodeId, Slot, Time};

/// A catch-up request in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CatchUpRequest {
    pub(crate) peer: NodeId,
    pub(crate) slot: Slot,
    pub(crate) at: Time,
}

impl<S: Storage> Replica<S> {
    /// Asks `peer` for the chosen entries from `slot` on, unless the same request is in flight.
    pub(crate) fn request_catch_up(&mut self, now: Time, peer: NodeId, slot: Slot) {
        if peer == self.config.id
            || self.snapshot_wanted.is_some()
            || matches!(self.role, RoleState::Master(_))
        {
            return;
        }
        let retry_after = self.config.election_timeout;
        if let Some(sent) = self.catch_up_sent
            && sent.peer == peer
            && sent.slot == slot
            && now.since(sent.at) < retry_after
        {
            return;
        }
        self.catch_up_sent = Some(CatchUpRequest {
            peer,
            slot,
            at: now,
        });
        self.counters.catch_up_requests += 1;
        self.send(peer, Message::CatchUpRequest { from: slot });
    }

    /// Forgets requests that went unanswered, so the next hint sends another.
    pub(crate) fn tick_catch_up(&mut self, now: Time) {
        // A snapshot the driver could not fetch is asked for again after a while.
        if let Some((_, at)) = self.snapshot_wanted
            && now.since(at) >= self.config.election_timeout.saturating_mul(4)
        {
            self.snapshot_wanted = None;
        }
        if let Some(sent) = self.catch_up_sent
            && now.since(sent.at) >= self.config.election_timeout
        {
            self.catch_up_sent = None;
        }
    }

    pub(crate) fn on_catch_up_request(&mut self, from: NodeId, slot: Slot) -> Result<(), Error> {
        if slot == Slot::ZERO {
            self.counters.malformed += 1;
            return Ok(());
        }
        if slot <= self.compacted {
            let compacted = self.compacted;
            self.send(from, Message::SnapshotNeeded { slot: compacted });
            return Ok(());
        }
        let mut entries: Vec<Entry> = Vec::new();
        if slot <= self.commit {
            let max = self.config.max_batch_entries;
            entries = self.read_entries(slot, self.commit, max)?;
            let mut bytes = 0;
            let cut = entries
                .iter()
                .position(|e| {
                    bytes += e.value.size_hint();
                    bytes > self.config.max_batch_bytes
                })
                .unwrap_or(entries.len())
                .max(1);
            entries.truncate(cut);
            // Invariant: every slot up to the commit index is held or compacted, so the
            // answer is gap-free. Send only the gap-free prefix if the log says otherwise.
            let gap = entries
                .iter()
                .enumerate()
                .position(|(i, e)| e.slot.0 != slot.0 + i as u64)
                .unwrap_or(entries.len());
            entries.truncate(gap);
        }
        let commit = self.commit;
        self.send(from, Message::CatchUp { commit, entries });
        Ok(())
    }

    pub(crate) fn on_catch_up(
        &mut self,
        now: Time,
        from: NodeId,
        their_commit: Slot,
        entries: Vec<Entry>,
    ) -> Result<(), Error> {
        if !entries_sorted(&entries) || entries.last().is_some_and(|e| e.slot > their_commit) {
            self.counters.malformed += 1;
            return Ok(());
        }
        if matches!(self.role, RoleState::Master(_)) {
            self.counters.unexpected += 1;
            return Ok(());
        }
        let mut commit = self.commit;
        for entry in entries {
            if entry.slot != commit.next() {
                continue;
            }
            commit = entry.slot;
            self.write_entry(entry);
        }
        let progressed = commit > self.commit;
        self.advance_commit(now, commit)?;
        // advance_commit may have finished a recovery: a master asks nobody.
        if progressed && self.commit < their_commit {
            self.catch_up_sent = None;
            self.request_catch_up(now, from, self.commit.next());
        }
        Ok(())
    }

    pub(crate) fn on_snapshot_needed(&mut self, now: Time, from: NodeId, slot: Slot) {
        // Only the peer we asked may send us to a snapshot, and only while we are not master.
        let asked = self.catch_up_sent.is_some_and(|sent| sent.peer == from);
        if !asked
            || slot <= self.commit
            || self.snapshot_wanted.is_some()
            || matches!(self.role, RoleState::Master(_))
        {
            self.counters.unexpected += 1;
            return;
        }
        self.snapshot_wanted = Some((slot, now));
        self.catch_up_sent = None;
        self.counters.snapshots_needed += 1;
        self.outbox
            .events
            .push(Event::SnapshotNeeded { from, slot });
    }
}
