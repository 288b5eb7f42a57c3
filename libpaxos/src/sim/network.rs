//! The simulated network: delay, loss, duplication, reordering and partitions, all drawn from
//! the simulation's seeded generator.

use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use core::cmp::Reverse;
use core::time::Duration;

use crate::message::Message;
use crate::rng::SplitMix64;
use crate::types::NodeId;

/// How unreliable the network is.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Shortest one-way delay.
    pub min_delay: Duration,
    /// Longest one-way delay (delays are uniform in between, which reorders messages).
    pub max_delay: Duration,
    /// Chance that a message is lost.
    pub loss: f64,
    /// Chance that a message is delivered twice.
    pub duplicate: f64,
    /// Chance that a message takes the slow path (a retransmission deep in some queue).
    pub slow: f64,
    /// Longest delay on the slow path.
    pub slow_delay: Duration,
    /// Chance that a message is also delivered once more much later (a copy stuck in some
    /// queue), typically in a later term: between `replay_delay / 4` and `replay_delay`.
    pub replay: f64,
    /// Longest delay of a late copy.
    pub replay_delay: Duration,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            min_delay: Duration::from_micros(200),
            max_delay: Duration::from_millis(5),
            loss: 0.0,
            duplicate: 0.0,
            slow: 0.0,
            slow_delay: Duration::ZERO,
            replay: 0.0,
            replay_delay: Duration::ZERO,
        }
    }
}

/// A message on its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// True time at which it arrives.
    pub deliver_at: Duration,
    /// Send order, to break ties deterministically.
    pub seq: u64,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.deliver_at, self.seq).cmp(&(other.deliver_at, other.seq))
    }
}

/// Messages in flight and the links that are cut.
#[derive(Debug, Default)]
pub struct Network {
    pub(crate) config: NetworkConfig,
    queue: BinaryHeap<Reverse<InFlight>>,
    cut: BTreeSet<(NodeId, NodeId)>,
    next_seq: u64,
    /// Messages dropped by loss or a cut link.
    pub dropped: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Late copies scheduled.
    pub replayed: u64,
    /// Per receiver, the last replies sent to it (accept acks, heartbeat acks, promises,
    /// rejections, pre-vote answers), which [`Network::redeliver_old`] can deliver again.
    history: BTreeMap<NodeId, VecDeque<(NodeId, Message)>>,
}

/// How many old replies per receiver the network remembers for re-delivery.
const HISTORY: usize = 128;

/// How many of the newest remembered replies count as the end of the previous term.
const RECENT: usize = 16;

impl Network {
    /// A network with `config`.
    pub fn new(config: NetworkConfig) -> Network {
        Network {
            config,
            ..Network::default()
        }
    }

    /// Sends `msg`, subject to loss, duplication and delay.
    pub(crate) fn send(
        &mut self,
        rng: &mut SplitMix64,
        now: Duration,
        from: NodeId,
        to: NodeId,
        msg: Message,
    ) {
        if matches!(
            msg,
            Message::Accepted { .. }
                | Message::HeartbeatAck { .. }
                | Message::Promise { .. }
                | Message::Reject { .. }
                | Message::PreVoteReply { .. }
        ) {
            let old = self.history.entry(to).or_default();
            if old.len() >= HISTORY {
                old.pop_front();
            }
            old.push_back((from, msg.clone()));
        }
        if chance(rng, self.config.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if chance(rng, self.config.duplicate) {
            2
        } else {
            1
        };
        if chance(rng, self.config.replay) {
            let longest = u64::try_from(self.config.replay_delay.as_micros()).unwrap_or(0);
            let delay = Duration::from_micros(longest / 4 + rng.below(longest - longest / 4 + 1));
            self.next_seq += 1;
            self.replayed += 1;
            self.queue.push(Reverse(InFlight {
                deliver_at: now + delay,
                seq: self.next_seq,
                from,
                to,
                msg: msg.clone(),
            }));
        }
        for _ in 0..copies {
            let span = self.config.max_delay.saturating_sub(self.config.min_delay);
            let span_us = u64::try_from(span.as_micros()).unwrap_or(u64::MAX);
            let mut delay = self.config.min_delay + Duration::from_micros(rng.below(span_us + 1));
            if chance(rng, self.config.slow) {
                let slow_us = u64::try_from(self.config.slow_delay.as_micros()).unwrap_or(0);
                delay += Duration::from_micros(rng.below(slow_us + 1));
            }
            self.next_seq += 1;
            self.queue.push(Reverse(InFlight {
                deliver_at: now + delay,
                seq: self.next_seq,
                from,
                to,
                msg: msg.clone(),
            }));
        }
    }

    /// Delivers `msg` after `delay`, whatever the loss rate: a copy stuck in some queue.
    pub(crate) fn send_late(
        &mut self,
        now: Duration,
        delay: Duration,
        from: NodeId,
        to: NodeId,
        msg: Message,
    ) {
        self.next_seq += 1;
        self.replayed += 1;
        self.queue.push(Reverse(InFlight {
            deliver_at: now + delay,
            seq: self.next_seq,
            from,
            to,
            msg,
        }));
    }

    /// Delivers again up to `count` replies sent to `to` earlier (typically in an earlier
    /// term of it), each after a delay of up to `within`: copies stuck in some queue.
    pub(crate) fn redeliver_old(
        &mut self,
        rng: &mut SplitMix64,
        now: Duration,
        to: NodeId,
        count: usize,
        within: Duration,
    ) {
        let Some(old) = self.history.get(&to) else {
            return;
        };
        if old.is_empty() {
            return;
        }
        let within_us = u64::try_from(within.as_micros()).unwrap_or(0);
        let mut picked = alloc::vec::Vec::new();
        for _ in 0..count {
            // Half of them are the last replies of its previous term (acks of the slots it
            // left uncommitted, which it now proposes anew), arriving at once: in the first
            // milliseconds of the term, while those slots are in flight again. The others are
            // any old reply, at any time within `within`.
            let (index, delay_us) = if chance(rng, 0.5) {
                let recent = old.len().min(RECENT) as u64;
                (
                    old.len() - 1 - rng.below(recent) as usize,
                    1000 + rng.below(20_000),
                )
            } else {
                (
                    rng.below(old.len() as u64) as usize,
                    1000 + rng.below(within_us + 1),
                )
            };
            let (from, msg) = &old[index];
            picked.push((now + Duration::from_micros(delay_us), *from, msg.clone()));
        }
        for (deliver_at, from, msg) in picked {
            self.next_seq += 1;
            self.replayed += 1;
            self.queue.push(Reverse(InFlight {
                deliver_at,
                seq: self.next_seq,
                from,
                to,
                msg,
            }));
        }
    }

    /// The next message due at or before `now` whose link is up; messages on cut links are
    /// dropped when they arrive.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<InFlight> {
        while let Some(Reverse(head)) = self.queue.peek() {
            if head.deliver_at > now {
                return None;
            }
            let Reverse(message) = self.queue.pop()?;
            if self.cut.contains(&(message.from, message.to)) {
                self.dropped += 1;
                continue;
            }
            self.delivered += 1;
            return Some(message);
        }
        None
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&mut self, side_a: &[NodeId], side_b: &[NodeId]) {
        for &a in side_a {
            for &b in side_b {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }

    /// Cuts every link from `senders` to `receivers`, one way only: the receivers can still
    /// reach the senders.
    pub fn cut_one_way(&mut self, senders: &[NodeId], receivers: &[NodeId]) {
        for &a in senders {
            for &b in receivers {
                if a != b {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Sets loss and duplication, and turns the slow path off.
    pub fn set_faults(&mut self, loss: f64, duplicate: f64) {
        self.config.loss = loss;
        self.config.duplicate = duplicate;
        self.config.slow = 0.0;
        self.config.replay = 0.0;
    }
}

/// True with probability `p`.
pub(crate) fn chance(rng: &mut SplitMix64, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
}
