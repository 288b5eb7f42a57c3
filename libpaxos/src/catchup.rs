//! Bringing a lagging replica up to date: chosen entries from a peer's log, or, when the peer
//! has compacted them away, a snapshot installed by the driver.

use alloc::vec::Vec;

use crate::election::entries_sorted;
use crate::error::Error;
use crate::message::Message;
use crate::ready::Event;
use crate::replica::Replica;
use crate::storage::Storage;
use crate::types::{Entry, NodeId, Slot, Time};

impl<S: Storage> Replica<S> {
    /// Asks `from` for the chosen entries from `slot` on, unless the same request is in flight.
    pub(crate) fn request_catch_up(&mut self, now: Time, from: NodeId, slot: Slot) {
        if from == self.config.id || self.snapshot_wanted.is_some() {
            return;
        }
        let retry_after = self.config.election_timeout;
        if let Some((asked, at)) = self.catch_up_sent
            && asked == slot
            && now.since(at) < retry_after
        {
            return;
        }
        self.catch_up_sent = Some((slot, now));
        self.counters.catch_up_requests += 1;
        self.send(from, Message::CatchUpRequest { from: slot });
    }

    /// Forgets a catch-up request that went unanswered, so the next hint sends another.
    pub(crate) fn tick_catch_up(&mut self, now: Time) {
        // A snapshot the driver could not fetch is asked for again after a while.
        if let Some((_, at)) = self.snapshot_wanted
            && now.since(at) >= self.config.election_timeout * 4
        {
            self.snapshot_wanted = None;
        }
        if let Some((_, at)) = self.catch_up_sent
            && now.since(at) >= self.config.election_timeout
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
        let mut bytes = 0;
        let mut next = slot;
        while next <= self.commit
            && entries.len() < self.config.max_batch_entries
            && bytes < self.config.max_batch_bytes
        {
            let Some(entry) = self.read_entry(next)? else {
                // Invariant: every slot up to the commit index is held or compacted.
                debug_assert!(false, "committed slot {next} is missing");
                break;
            };
            bytes += entry.value.size_hint();
            entries.push(entry);
            next = next.next();
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
        if progressed && self.commit < their_commit {
            self.catch_up_sent = None;
            self.request_catch_up(now, from, self.commit.next());
        }
        Ok(())
    }

    pub(crate) fn on_snapshot_needed(&mut self, now: Time, from: NodeId, slot: Slot) {
        if slot <= self.commit || self.snapshot_wanted.is_some() {
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
