//! The invariants of DESIGN §3, checked after every simulation step.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use core::time::Duration;

use crate::types::{Ballot, NodeId, Slot, Value};

/// What the checker has seen so far, and the first violation.
#[derive(Debug, Default)]
pub struct Checker {
    /// The value every replica applied at each slot (they must agree).
    pub chosen: BTreeMap<Slot, Value>,
    /// Per node: the highest promise made durable, which no later state may go below.
    durable_promise: BTreeMap<NodeId, Ballot>,
    /// Per node and incarnation: the last commit index seen.
    last_commit: BTreeMap<NodeId, Slot>,
    /// The highest slot of a write acknowledged to a client, and when.
    pub acked_through: Slot,
    /// Reads checked.
    pub reads: u64,
    /// Every value ever seen durably chosen, by slot: a later sample may not contradict it.
    durably_chosen: BTreeMap<Slot, Value>,
    /// Every epoch a replica took office with, and the (node, ballot) that took it.
    epochs: BTreeMap<u64, (NodeId, Ballot)>,
    /// Per node: the highest ballot it acknowledged durably (an accept ack, sent after its
    /// fsync), kept across its crashes.
    acked_ballot: BTreeMap<NodeId, Ballot>,
    /// Per node and incarnation: the highest ballot it acknowledged at all (heartbeat acks
    /// too, whose implied promise is not durable).
    acked_volatile: BTreeMap<NodeId, Ballot>,
    /// Ballots whose master sent a lease release: promises to them are owed no more.
    released: alloc::collections::BTreeSet<Ballot>,
    /// Lease releases checked at the moment they left.
    pub releases: u64,
    /// Slots checked for a durably chosen value, one at a time as they became durable.
    pub durable_checks: u64,
    /// Lease checks: instants at which a replica believed it held a lease.
    pub lease_checks: u64,
    /// Messages checked for claiming only what was durable when they left.
    pub send_checks: u64,
    /// The first violation found, with the true time.
    pub violation: Option<String>,
}

impl Checker {
    /// Records a violation found by the harness itself.
    pub fn fail_at(&mut self, now: Duration, what: String) {
        self.fail(now, what);
    }

    fn fail(&mut self, now: Duration, what: String) {
        if self.violation.is_none() {
            self.violation = Some(format!("at t={:.3}s: {what}", now.as_secs_f64()));
        }
    }

    /// A replica applied `value` at `slot`: every replica must apply the same value there.
    pub fn on_apply(&mut self, now: Duration, node: NodeId, slot: Slot, value: &Value) {
        match self.chosen.get(&slot) {
            Some(held) if held != value => {
                let what = format!(
                    "two values chosen for slot {slot}: {held:?} before, {value:?} at {node}"
                );
                self.fail(now, what);
            }
            Some(_) => {}
            None => {
                if let Some(durable) = self.durably_chosen.get(&slot).filter(|d| *d != value) {
                    let what = format!(
                        "{node} applied {value:?} at slot {slot} but {durable:?} is durably chosen"
                    );
                    self.fail(now, what);
                }
                self.chosen.insert(slot, value.clone());
            }
        }
    }

    /// A replica's durable hard state now promises `ballot`.
    pub fn on_durable_promise(&mut self, node: NodeId, ballot: Ballot) {
        let held = self.durable_promise.entry(node).or_default();
        *held = (*held).max(ballot);
    }

    /// A replica restarted: its volatile commit index starts afresh.
    pub fn on_restart(&mut self, node: NodeId) {
        self.last_commit.remove(&node);
        self.acked_volatile.remove(&node);
    }

    /// Checks a live replica's promise, commit and applied indexes.
    pub fn check_replica(
        &mut self,
        now: Duration,
        node: NodeId,
        promised: Ballot,
        commit: Slot,
        applied: Slot,
    ) {
        if let Some(&durable) = self.durable_promise.get(&node)
            && promised < durable
        {
            let what = format!("{node} promises {promised} after durably promising {durable}");
            self.fail(now, what);
        }
        let last = self.last_commit.entry(node).or_default();
        if commit < *last {
            let what = format!("{node}'s commit index went back from {last} to {commit}");
            self.fail(now, what);
        } else {
            *last = commit;
        }
        if applied > commit {
            let what = format!("{node} applied {applied} beyond its commit index {commit}");
            self.fail(now, what);
        }
    }

    /// `holders` of the live replicas hold `slot`'s committed value (or compacted it); at least
    /// a majority of the cell must, or the commit index passed what a majority accepted.
    pub fn check_majority(
        &mut self,
        now: Duration,
        node: NodeId,
        slot: Slot,
        holders: usize,
        quorum: usize,
    ) {
        if holders < quorum {
            let what = format!(
                "{node} committed slot {slot} but only {holders} replicas hold it (quorum {quorum})"
            );
            self.fail(now, what);
        }
    }

    /// The replicas in `masters` each believe they hold a master lease at this true instant.
    pub fn check_leases(&mut self, now: Duration, masters: &[NodeId]) {
        if masters.len() > 1 {
            let what = format!("several masters hold a valid lease at once: {masters:?}");
            self.fail(now, what);
        }
    }

    /// `master` believes at this true instant that it holds a lease for `ballot`, and
    /// `backers` of the cell's members hold an unexpired lease promise to that ballot, each
    /// measured in its own clock (the master's own promise included). Fewer than a majority
    /// means the master could serve a read while another master is elected.
    pub fn check_lease_backing(
        &mut self,
        now: Duration,
        master: NodeId,
        ballot: Ballot,
        backers: &[NodeId],
        quorum: usize,
    ) {
        self.lease_checks += 1;
        if backers.len() < quorum {
            let what = format!(
                "{master} believes it holds a lease for {ballot}, but only {backers:?} still promise it (quorum {quorum})"
            );
            self.fail(now, what);
        }
    }

    /// `node` took office with `ballot` and `epoch`: no other term, on any replica and across
    /// crashes, may ever use the same epoch.
    pub fn on_master(&mut self, now: Duration, node: NodeId, ballot: Ballot, epoch: u64) {
        match self.epochs.get(&epoch) {
            Some(&(held_node, held_ballot)) => {
                let what = format!(
                    "epoch {epoch} reused: {held_node} took office with it at {held_ballot}, now {node} at {ballot}"
                );
                self.fail(now, what);
            }
            None => {
                self.epochs.insert(epoch, (node, ballot));
            }
        }
    }

    /// `node` produced an acknowledgement (as an acceptor, an accept ack or a heartbeat ack)
    /// for the master of `ballot`. The masters a replica follows have increasing ballots,
    /// hence epochs: never below one it acknowledged since it last started, nor below one it
    /// sent an accept ack for (after that ack's fsync), even across its crashes.
    pub fn on_acceptor_ack(&mut self, now: Duration, node: NodeId, ballot: Ballot) {
        let held = self.acked_ballot.get(&node).copied().unwrap_or_default();
        let volatile = self.acked_volatile.get(&node).copied().unwrap_or_default();
        let highest = held.max(volatile);
        if ballot < highest {
            let what = format!("{node} acknowledged {ballot} after acknowledging {highest}");
            self.fail(now, what);
            return;
        }
        self.acked_volatile.insert(node, ballot);
    }

    /// `node` sent an accept ack for `ballot`, after its fsync.
    pub fn on_durable_ack(&mut self, node: NodeId, ballot: Ballot) {
        let held = self.acked_ballot.entry(node).or_default();
        *held = (*held).max(ballot);
    }

    /// A message left `node` claiming something it had not made durable.
    pub fn on_undurable_claim(&mut self, now: Duration, node: NodeId, what: String) {
        let what = format!("{node} sent {what}");
        self.fail(now, what);
    }

    /// Counts a message checked at the moment it left its sender.
    pub fn on_send_checked(&mut self) {
        self.send_checks += 1;
    }

    /// The durable accepts of `slot` on every replica (its ballot and value), just after one of
    /// them synced it: if a majority hold one ballot's value, that value is chosen, and it
    /// must be the only one ever chosen there and the one applied.
    pub fn check_slot_durably_chosen(
        &mut self,
        now: Duration,
        slot: Slot,
        durable: &[(Ballot, &Value)],
        quorum: usize,
    ) {
        self.durable_checks += 1;
        let mut failure = None;
        for (i, (ballot, value)) in durable.iter().enumerate() {
            let same: alloc::vec::Vec<&Value> = durable[i..]
                .iter()
                .filter(|(b, _)| b == ballot)
                .map(|(_, v)| *v)
                .collect();
            if durable[..i].iter().any(|(b, _)| b == ballot) || same.len() < quorum {
                continue;
            }
            if same.iter().any(|v| *v != *value) {
                failure = Some(format!(
                    "ballot {ballot} proposed two values for slot {slot}"
                ));
                break;
            }
            if let Some(held) = self
                .durably_chosen
                .get(&slot)
                .filter(|held| *held != *value)
            {
                failure = Some(format!(
                    "slot {slot} has two durably chosen values: {held:?} and {value:?}"
                ));
                break;
            }
            if let Some(applied) = self.chosen.get(&slot).filter(|applied| *applied != *value) {
                failure = Some(format!(
                    "slot {slot} applied {applied:?} but {value:?} is durably chosen"
                ));
                break;
            }
            self.durably_chosen.insert(slot, (*value).clone());
        }
        if let Some(what) = failure {
            self.fail(now, what);
        }
    }

    /// `node` sent a release of `ballot`'s lease; `still_holds`: it believed it held that lease
    /// at that instant. A master must stop serving from its lease *before* it releases it.
    pub fn on_release(&mut self, now: Duration, node: NodeId, ballot: Ballot, still_holds: bool) {
        self.releases += 1;
        if still_holds {
            let what = format!("{node} released the lease of {ballot} while still holding it");
            self.fail(now, what);
        }
        self.released.insert(ballot);
    }

    /// Whether `ballot`'s master has released its lease (so promises to it are void).
    pub fn is_released(&self, ballot: Ballot) -> bool {
        self.released.contains(&ballot)
    }

    /// `node` believes it holds the lease of `ballot`: it must never have released it.
    pub fn check_not_released(&mut self, now: Duration, node: NodeId, ballot: Ballot) {
        if self.released.contains(&ballot) {
            let what = format!("{node} holds the lease of {ballot} after releasing it");
            self.fail(now, what);
        }
    }

    /// A write in `slot` was acknowledged to its client.
    pub fn on_ack(&mut self, slot: Slot) {
        self.acked_through = self.acked_through.max(slot);
    }

    /// Paxos' own definition: a value is chosen in a slot once a majority has *durably* accepted
    /// it at one ballot. `durable` lists, per replica, its durable entries; no slot may have two
    /// chosen values, and a chosen value must be the one replicas applied.
    pub fn check_durably_chosen(
        &mut self,
        now: Duration,
        durable: &[alloc::vec::Vec<crate::types::Entry>],
        quorum: usize,
    ) {
        let mut votes: BTreeMap<(Slot, crate::types::Ballot), alloc::vec::Vec<&Value>> =
            BTreeMap::new();
        for log in durable {
            for entry in log {
                votes
                    .entry((entry.slot, entry.ballot))
                    .or_default()
                    .push(&entry.value);
            }
        }
        let mut failure = None;
        for ((slot, ballot), values) in &votes {
            if values.len() < quorum {
                continue;
            }
            if values.iter().any(|v| *v != values[0]) {
                failure = Some(format!(
                    "ballot {ballot} proposed two values for slot {slot}"
                ));
                break;
            }
            let value = values[0].clone();
            if let Some(held) = self.durably_chosen.get(slot).filter(|held| **held != value) {
                failure = Some(format!(
                    "slot {slot} has two durably chosen values: {held:?} and {value:?}"
                ));
                break;
            }
            if let Some(applied) = self.chosen.get(slot).filter(|applied| **applied != value) {
                failure = Some(format!(
                    "slot {slot} applied {applied:?} but {value:?} is durably chosen"
                ));
                break;
            }
            self.durably_chosen.insert(*slot, value);
        }
        if let Some(what) = failure {
            self.fail(now, what);
        }
    }

    /// `node` served a linearizable read from state applied through `applied`: it must include
    /// every write acknowledged before the read.
    pub fn check_read(&mut self, now: Duration, node: NodeId, applied: Slot) {
        self.reads += 1;
        if applied < self.acked_through {
            let what = format!(
                "stale read at {node}: it has applied through {applied} but slot {} was already acknowledged",
                self.acked_through
            );
            self.fail(now, what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Epoch, Payload};

    fn value(tag: u8) -> Value {
        Value {
            epoch: Epoch(1),
            payload: Payload::Command(alloc::vec![tag].into()),
        }
    }

    fn ballot(round: u64) -> Ballot {
        Ballot {
            round,
            node: NodeId(1),
        }
    }

    #[test]
    fn a_second_durably_chosen_value_in_a_slot_is_a_violation() {
        let mut checker = Checker::default();
        let (a, b) = (value(1), value(2));
        let now = Duration::ZERO;
        checker.check_slot_durably_chosen(now, Slot(5), &[(ballot(1), &a), (ballot(1), &a)], 2);
        assert_eq!(checker.violation, None);
        // A minority at a higher ballot chooses nothing.
        checker.check_slot_durably_chosen(now, Slot(5), &[(ballot(2), &b), (ballot(1), &a)], 2);
        assert_eq!(checker.violation, None);
        checker.check_slot_durably_chosen(now, Slot(5), &[(ballot(2), &b), (ballot(2), &b)], 2);
        assert!(
            checker
                .violation
                .as_deref()
                .is_some_and(|v| v.contains("two durably chosen values")),
            "{:?}",
            checker.violation
        );
    }

    #[test]
    fn applying_other_than_the_durably_chosen_value_is_a_violation() {
        let mut checker = Checker::default();
        let (a, b) = (value(1), value(2));
        let now = Duration::ZERO;
        checker.check_slot_durably_chosen(now, Slot(3), &[(ballot(1), &a), (ballot(1), &a)], 2);
        checker.on_apply(now, NodeId(2), Slot(3), &b);
        assert!(checker.violation.is_some());
    }
}
