//! One node's lock: granted holders, the FIFO wait queue, and promotion.
//!
//! Rules (and the CLD bugs they avoid, reference §6): exclusive conflicts with any holder,
//! shared with an exclusive holder; a request also waits if anyone is already queued, so
//! writers are not starved; every release runs [`LockState::promote`], which grants the head
//! of the queue and, if it is shared, every consecutive shared waiter, never past an exclusive
//! and never past the shared holder limit (which bounds a lock record's size).
//!
//! Lock-delay (Chubby §2.4): a node created with a lock-delay keeps it in its lock record
//! (`delay`). When a holder's session *expires*, `blocked_until` is set to the expiry
//! command's time plus the delay; until a command's time reaches it, nothing is granted
//! (promotion and new requests wait). A clean release never blocks.

use core::time::Duration;
use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::mode::LockMode;
use crate::node::HandleRef;
use crate::types::WallTime;

/// A queued request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// Who waits.
    pub who: HandleRef,
    /// For what.
    pub mode: LockMode,
}

/// The lock of one node. Absent from the store when nobody holds or waits and the node has no
/// lock-delay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockState {
    /// The exclusive holder, if any (then `shared` is empty).
    pub exclusive: Option<HandleRef>,
    /// The shared holders.
    pub shared: BTreeSet<HandleRef>,
    /// Waiters in arrival order.
    pub waiters: VecDeque<Waiter>,
    /// The node's lock-delay, set when it was created (at most
    /// [`MAX_LOCK_DELAY`](crate::command::MAX_LOCK_DELAY)).
    pub delay: Duration,
    /// After a holder's session expired: no grant before this time.
    pub blocked_until: Option<WallTime>,
}

impl LockState {
    /// Nobody holds or waits.
    pub fn is_empty(&self) -> bool {
        self.exclusive.is_none()
            && self.shared.is_empty()
            && self.waiters.is_empty()
            && self.delay.is_zero()
            && self.blocked_until.is_none()
    }

    /// Whether a lock-delay keeps the lock from everyone at `now`.
    pub fn blocked_at(&self, now: WallTime) -> bool {
        self.blocked_until.is_some_and(|until| now < until)
    }

    /// Starts the lock-delay after a holder's session expired at `at` (no effect without a
    /// delay; an earlier block is extended, never shortened).
    pub fn block_after_expiry(&mut self, at: WallTime) {
        if self.delay.is_zero() {
            return;
        }
        let ms = u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX);
        let until = WallTime(at.0.saturating_add(ms));
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// The mode `who` holds, if it holds.
    pub fn held_by(&self, who: HandleRef) -> Option<LockMode> {
        if self.exclusive == Some(who) {
            Some(LockMode::Exclusive)
        } else if self.shared.contains(&who) {
            Some(LockMode::Shared)
        } else {
            None
        }
    }

    /// Whether `who` is queued.
    pub fn is_waiting(&self, who: HandleRef) -> bool {
        self.waiters.iter().any(|w| w.who == who)
    }

    /// Every holder, in handle order.
    pub fn holders(&self) -> Vec<HandleRef> {
        self.exclusive
            .iter()
            .copied()
            .chain(self.shared.iter().copied())
            .collect()
    }

    fn compatible(&self, mode: LockMode) -> bool {
        match mode {
            LockMode::Exclusive => self.exclusive.is_none() && self.shared.is_empty(),
            LockMode::Shared => self.exclusive.is_none(),
        }
    }

    /// Whether a new request in `mode` may be granted at once.
    pub fn grantable(&self, mode: LockMode) -> bool {
        self.waiters.is_empty() && self.compatible(mode)
    }

    /// Records a grant (the caller checked [`grantable`](Self::grantable)).
    pub fn grant(&mut self, who: HandleRef, mode: LockMode) {
        match mode {
            LockMode::Exclusive => self.exclusive = Some(who),
            LockMode::Shared => {
                self.shared.insert(who);
            }
        }
    }

    /// Drops `who`'s hold or queued request. Returns whether there was one. The caller must
    /// then [`promote`](Self::promote).
    pub fn release(&mut self, who: HandleRef) -> bool {
        if self.exclusive == Some(who) {
            self.exclusive = None;
            return true;
        }
        if self.shared.remove(&who) {
            return true;
        }
        let before = self.waiters.len();
        self.waiters.retain(|w| w.who != who);
        self.waiters.len() != before
    }

    /// Grants waiters from the head of the queue while they are compatible: the head, and if it
    /// is shared every consecutive shared waiter, while fewer than `max_shared` hold it; never
    /// past an exclusive one, and nothing while a lock-delay blocks the lock at `now` (a block
    /// that has ended is cleared). Returns the grants in order.
    pub fn promote(&mut self, max_shared: u64, now: WallTime) -> Vec<Waiter> {
        let mut granted = Vec::new();
        if self.blocked_at(now) {
            return granted;
        }
        self.blocked_until = None;
        while let Some(head) = self.waiters.front().copied() {
            let full = head.mode == LockMode::Shared && self.shared.len() as u64 >= max_shared;
            if full || !self.compatible(head.mode) {
                break;
            }
            self.waiters.pop_front();
            self.grant(head.who, head.mode);
            granted.push(head);
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{HandleId, SessionId};

    fn h(n: u64) -> HandleRef {
        HandleRef {
            session: SessionId(n),
            handle: HandleId(1),
        }
    }

    fn queued(modes: &[LockMode]) -> LockState {
        let mut lock = LockState::default();
        lock.grant(h(0), LockMode::Exclusive);
        for (i, &mode) in modes.iter().enumerate() {
            lock.waiters.push_back(Waiter {
                who: h(i as u64 + 1),
                mode,
            });
        }
        lock
    }

    #[test]
    fn promote_grants_consecutive_shared_waiters_and_stops_at_exclusive() {
        use LockMode::*;
        let mut lock = queued(&[Shared, Shared, Exclusive, Shared]);
        lock.release(h(0));
        let granted: Vec<_> = lock
            .promote(u64::MAX, WallTime(0))
            .iter()
            .map(|w| w.who)
            .collect();
        assert_eq!(granted, vec![h(1), h(2)]);
        assert_eq!(lock.waiters.len(), 2);
    }

    #[test]
    fn promote_grants_a_single_exclusive_head() {
        use LockMode::*;
        let mut lock = queued(&[Exclusive, Shared]);
        lock.release(h(0));
        let granted: Vec<_> = lock
            .promote(u64::MAX, WallTime(0))
            .iter()
            .map(|w| w.who)
            .collect();
        assert_eq!(granted, vec![h(1)]);
        assert_eq!(lock.exclusive, Some(h(1)));
    }

    #[test]
    fn the_largest_lock_the_limits_allow_fits_one_snapshot_record() {
        let ceiling = crate::config::LOCK_PARTIES_CEILING;
        // Ids as large as they come: every varint at its longest.
        let far = |n: u64| HandleRef {
            session: SessionId(u64::MAX - n),
            handle: HandleId(u64::MAX - n),
        };
        let mut lock = LockState::default();
        for n in 0..ceiling {
            lock.shared.insert(far(n));
            lock.waiters.push_back(Waiter {
                who: far(ceiling + n),
                mode: LockMode::Exclusive,
            });
        }
        let value = crate::codec::encode(&lock);
        // Framing: tree tag, two length varints, and a key of at most 256 bytes.
        let record = value.len() + crate::path::MAX_PATH_LEN + 16;
        assert!(
            record <= crate::snapshot::MAX_RECORD as usize,
            "{record} bytes"
        );
    }

    #[test]
    fn a_new_shared_request_waits_behind_a_queued_exclusive() {
        let mut lock = LockState::default();
        lock.grant(h(0), LockMode::Shared);
        lock.waiters.push_back(Waiter {
            who: h(1),
            mode: LockMode::Exclusive,
        });
        assert!(!lock.grantable(LockMode::Shared));
    }
}
