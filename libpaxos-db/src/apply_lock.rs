//! Lock, unlock, promotion and sequencers.

use crate::apply_node::handle_of;
use crate::command::{CmdError, EventKind, Permission, Reply, Response, Sequencer};
use crate::lock::{LockState, Waiter};
use crate::mode::{EventMask, LockMode, OpenMode};
use crate::node::HandleRef;
use crate::state::{State, Tx};
use crate::types::{HandleId, LockGeneration, SessionId, WallTime};

fn sequencer(tx: &Tx<'_>, path: &str, mode: LockMode) -> Option<Sequencer> {
    let node = tx.st.nodes.get(path)?;
    Some(Sequencer {
        path: path.to_string(),
        instance: node.instance,
        mode,
        generation: node.lock_generation,
    })
}

fn bump_generation(tx: &mut Tx<'_>, path: &str) {
    if let Some(mut node) = tx.st.nodes.get(path).cloned() {
        node.lock_generation = LockGeneration(node.lock_generation.0.saturating_add(1));
        tx.set_node(path, node);
    }
}

pub(crate) fn lock(
    tx: &mut Tx<'_>,
    session: SessionId,
    time: WallTime,
    handle: HandleId,
    mode: LockMode,
    wait: bool,
) -> Reply {
    let (who, found) = handle_of(tx, session, handle)?;
    if !found.mode.contains(OpenMode::LOCK) {
        return Err(CmdError::ModeForbids(Permission::Lock));
    }
    let path = found.path;
    // A lock-delay that has ended is lifted first, granting the queue in order, so waiters
    // keep their place ahead of this request.
    if tx
        .st
        .locks
        .get(&path)
        .is_some_and(|l| l.blocked_until.is_some() && !l.blocked_at(time))
    {
        promote(tx, &path, time);
    }
    let mut lock = tx.st.locks.get(&path).cloned().unwrap_or_default();
    let blocked = lock.blocked_at(time);
    if lock.held_by(who).is_some() {
        return Err(CmdError::AlreadyHeld);
    }
    if lock.is_waiting(who) {
        return Err(CmdError::AlreadyWaiting);
    }
    if !blocked && lock.grantable(mode) {
        if mode == LockMode::Shared && lock.shared.len() as u64 >= tx.limits.max_holders_per_lock {
            return Err(CmdError::TooManyHolders(tx.limits.max_holders_per_lock));
        }
        lock.grant(who, mode);
        if mode == LockMode::Exclusive {
            bump_generation(tx, &path);
        }
        tx.set_lock(&path, lock);
        let sequencer = sequencer(tx, &path, mode).ok_or(CmdError::NoSuchNode)?;
        return Ok(Response::Locked { sequencer });
    }
    if wait && lock.waiters.len() as u64 >= tx.limits.max_waiters_per_lock {
        return Err(CmdError::TooManyWaiters(tx.limits.max_waiters_per_lock));
    }
    // Only holders the request conflicts with hear of it: a shared request that waits
    // merely behind the queue does not conflict with shared holders.
    let conflicting = match mode {
        LockMode::Exclusive => lock.holders(),
        LockMode::Shared => lock.exclusive.into_iter().collect(),
    };
    for holder in conflicting {
        let wants = tx
            .st
            .handles
            .get(&holder)
            .is_some_and(|h| h.events.contains(EventMask::LOCK_CONFLICT));
        if wants {
            tx.notify(holder, EventKind::LockConflict);
        }
    }
    if !wait {
        return Err(CmdError::LockConflict);
    }
    lock.waiters.push_back(Waiter { who, mode });
    tx.set_lock(&path, lock);
    Ok(Response::LockQueued)
}

pub(crate) fn unlock(
    tx: &mut Tx<'_>,
    session: SessionId,
    time: WallTime,
    handle: HandleId,
) -> Reply {
    let (who, found) = handle_of(tx, session, handle)?;
    if !found.mode.contains(OpenMode::LOCK) {
        return Err(CmdError::ModeForbids(Permission::Lock));
    }
    if !release(tx, &found.path, who) {
        return Err(CmdError::NotLocked);
    }
    promote(tx, &found.path, time);
    Ok(Response::Unlocked)
}

/// Drops `who`'s hold or queued request on `path`; the caller promotes afterwards.
pub(crate) fn release(tx: &mut Tx<'_>, path: &str, who: HandleRef) -> bool {
    let Some(mut lock) = tx.st.locks.get(path).cloned() else {
        return false;
    };
    if !lock.release(who) {
        return false;
    }
    tx.set_lock(path, lock);
    true
}

/// Grants whatever the queue head allows at `time` (nothing while a lock-delay blocks it;
/// an ended one is lifted) and tells each grantee.
pub(crate) fn promote(tx: &mut Tx<'_>, path: &str, time: WallTime) {
    let Some(mut lock) = tx.st.locks.get(path).cloned() else {
        return;
    };
    let was_blocked = lock.blocked_until.is_some();
    let granted = lock.promote(tx.limits.max_holders_per_lock, time);
    if granted.is_empty() {
        if was_blocked && lock.blocked_until.is_none() {
            tx.set_lock(path, lock);
        }
        return;
    }
    for waiter in &granted {
        if waiter.mode == LockMode::Exclusive {
            bump_generation(tx, path);
        }
    }
    tx.set_lock(path, lock);
    for waiter in granted {
        if let Some(sequencer) = sequencer(tx, path, waiter.mode) {
            tx.notify(waiter.who, EventKind::LockAcquired { sequencer });
        }
    }
}

/// Restarts every running lock-delay from `time` (a new master's takeover): each blocked
/// lock stays blocked until `max(end, time + delay)`.
pub(crate) fn restart_delays(tx: &mut Tx<'_>, time: WallTime) {
    let blocked: Vec<(String, LockState)> = tx
        .st
        .locks
        .iter()
        .filter(|(_, l)| l.blocked_until.is_some())
        .map(|(path, l)| (path.clone(), l.clone()))
        .collect();
    for (path, mut lock) in blocked {
        lock.block_after_expiry(time);
        tx.set_lock(&path, lock);
    }
}

/// Lifts every lock-delay that ended at or before `time`, promoting each lock's waiters.
pub(crate) fn end_delays(tx: &mut Tx<'_>, time: WallTime) {
    let ended: Vec<String> = tx
        .st
        .locks
        .iter()
        .filter(|(_, l)| l.blocked_until.is_some_and(|until| until <= time))
        .map(|(path, _)| path.clone())
        .collect();
    for path in ended {
        promote(tx, &path, time);
    }
}

/// Whether `sequencer` still describes a current hold: same incarnation, same lock generation
/// (no exclusive grant since), and the lock still held in that mode.
pub(crate) fn check_sequencer(st: &State, sequencer: &Sequencer) -> Result<(), CmdError> {
    let node = st
        .nodes
        .get(&sequencer.path)
        .filter(|n| n.instance == sequencer.instance)
        .ok_or(CmdError::StaleSequencer)?;
    if node.lock_generation != sequencer.generation {
        return Err(CmdError::StaleSequencer);
    }
    let held = st
        .locks
        .get(&sequencer.path)
        .is_some_and(|lock| match sequencer.mode {
            LockMode::Exclusive => lock.exclusive.is_some(),
            LockMode::Shared => !lock.shared.is_empty(),
        });
    if held {
        Ok(())
    } else {
        Err(CmdError::StaleSequencer)
    }
}
