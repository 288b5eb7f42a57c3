//! Heartbeats and master leases.
//!
//! A replica that hears the master (an accept or a heartbeat) promises not to promise any other
//! node's ballot for `lease` of its own time. The master counts its lease from the *send* time
//! of the newest heartbeat a majority (itself included) acknowledged, shortened by the drift
//! margin (`Config::master_lease`). Heartbeats never wait for the disk.

use alloc::collections::{BTreeMap, VecDeque};

use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::ready::Event;
use crate::replica::{Replica, RoleState};
use crate::storage::Storage;
use crate::types::{Ballot, NodeId, Slot, Time};

/// How many heartbeat send times the master remembers; acks to older ones are ignored.
const SENT_WINDOW: usize = 64;

/// The master side of the lease.
pub(crate) struct MasterLease {
    seq: u64,
    sent: VecDeque<(u64, Time)>,
    acked: BTreeMap<NodeId, u64>,
    until: Option<Time>,
    next_heartbeat: Time,
    /// When leadership started or the lease last ran out; with no lease for an election
    /// timeout after that, the master steps down (it is cut off from a majority).
    lapsed_since: Option<Time>,
}

impl MasterLease {
    pub(crate) fn new(_config: &Config) -> MasterLease {
        MasterLease {
            seq: 0,
            sent: VecDeque::new(),
            acked: BTreeMap::new(),
            until: None,
            next_heartbeat: Time::ZERO,
            lapsed_since: None,
        }
    }

    fn valid(&self, now: Time) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}

impl<S: Storage> Replica<S> {
    /// Whether this replica is master or recovering and holds a lease at `now`.
    pub fn lease_valid(&self, now: Time) -> bool {
        match &self.role {
            RoleState::Master(m) => m.lease.valid(now),
            RoleState::Recovering(r) => r.lease.valid(now),
            _ => false,
        }
    }

    pub(crate) fn grant_lease(&mut self, now: Time, ballot: Ballot) {
        let until = now + self.config.lease;
        match self.lease_granted {
            Some((held, held_until)) if held == ballot && held_until >= until => {}
            _ => self.lease_granted = Some((ballot, until)),
        }
    }

    /// Reports lease changes, and steps down a leader that has been without a lease too long.
    pub(crate) fn tick_lease(&mut self, now: Time) {
        let election_timeout = self.config.election_timeout;
        let Some(lease) = self.lease_state() else {
            return;
        };
        let valid = lease.valid(now);
        if valid {
            lease.lapsed_since = None;
        } else if lease.lapsed_since.is_none() {
            lease.lapsed_since = Some(lease.until.unwrap_or(now).min(now));
        }
        let cut_off = lease
            .lapsed_since
            .is_some_and(|since| now.since(since) >= election_timeout);
        if valid != self.lease_reported {
            self.lease_reported = valid;
            self.outbox.events.push(if valid {
                Event::LeaseAcquired
            } else {
                Event::LeaseLost
            });
        }
        if cut_off {
            self.master = None;
            self.set_role(RoleState::Follower);
            self.reset_election_timer(now);
        }
    }

    pub(crate) fn heartbeat_if_due(&mut self, now: Time) {
        let interval = self.config.heartbeat_interval;
        let lease_length = self.config.lease;
        let commit = self.commit;
        let Some(ballot) = self.leading_ballot() else {
            return;
        };
        let Some(lease) = self.lease_state() else {
            return;
        };
        if now < lease.next_heartbeat {
            return;
        }
        lease.next_heartbeat = now + interval;
        lease.seq += 1;
        let seq = lease.seq;
        lease.sent.push_back((seq, now));
        if lease.sent.len() > SENT_WINDOW {
            lease.sent.pop_front();
        }
        // The master binds itself too: it will not promise another node's ballot meanwhile.
        self.lease_granted = Some((ballot, now + lease_length));
        for peer in self.peers() {
            self.send(
                peer,
                Message::Heartbeat {
                    ballot,
                    seq,
                    commit,
                },
            );
        }
        self.recompute_lease(now);
    }

    pub(crate) fn on_heartbeat(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        seq: u64,
        commit: Slot,
    ) -> Result<(), Error> {
        self.note_ballot(ballot);
        if ballot.node != from {
            self.counters.malformed += 1;
            return Ok(());
        }
        if self.reject_if_stale(from, ballot) {
            return Ok(());
        }
        if self.released == Some(ballot) {
            // Sent before its master handed over: acknowledging it would promise a lease
            // again to a ballot that leads no more.
            self.counters.stale_releases += 1;
            return Ok(());
        }
        self.follow(now, from, ballot);
        let own_commit = self.commit;
        self.send(
            from,
            Message::HeartbeatAck {
                ballot,
                seq,
                commit: own_commit,
            },
        );
        self.learn_commit(now, from, ballot, commit)
    }

    pub(crate) fn on_heartbeat_ack(
        &mut self,
        now: Time,
        from: NodeId,
        ballot: Ballot,
        seq: u64,
        commit: Slot,
    ) {
        #[cfg(feature = "fault-injection")]
        let ballot = match self.leading_ballot() {
            Some(leading) if self.config.fault == Some(crate::Fault::HeartbeatAckOfAnyBallot) => {
                leading
            }
            _ => ballot,
        };
        if self.leading_ballot() != Some(ballot) {
            self.counters.stale_ballot += 1;
            return;
        }
        let Some(lease) = self.lease_state() else {
            return;
        };
        if seq > lease.seq {
            self.counters.malformed += 1;
            return;
        }
        if let RoleState::Master(master) = &mut self.role {
            let known = master.progress.entry(from).or_default();
            *known = (*known).max(commit);
        }
        let Some(lease) = self.lease_state() else {
            return;
        };
        let acked = lease.acked.entry(from).or_insert(0);
        *acked = (*acked).max(seq);
        self.recompute_lease(now);
    }

    /// The lease runs from the send time of the newest heartbeat a majority acknowledged.
    fn recompute_lease(&mut self, now: Time) {
        let me = self.config.id;
        let quorum = self.config.quorum();
        let master_lease = self.config.master_lease();
        let members = self.config.members.clone();
        #[cfg(feature = "fault-injection")]
        let from_ack_time = self.config.fault == Some(crate::Fault::LeaseFromAckTime);
        let Some(lease) = self.lease_state() else {
            return;
        };
        let mut seqs: alloc::vec::Vec<u64> = members
            .iter()
            .map(|n| {
                if *n == me {
                    lease.seq
                } else {
                    lease.acked.get(n).copied().unwrap_or(0)
                }
            })
            .collect();
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&seq) = seqs.get(quorum - 1) else {
            return;
        };
        let Some(&(_, sent_at)) = lease.sent.iter().find(|(s, _)| *s == seq) else {
            return;
        };
        #[cfg(feature = "fault-injection")]
        let sent_at = if from_ack_time { now } else { sent_at };
        let _ = now;
        let until = sent_at + master_lease;
        if lease.until.is_none_or(|held| until > held) {
            lease.until = Some(until);
        }
    }
}
