//! TEMPORARY SHIM (delete after `git merge main` brings libpaxos-db's v2 additions,
//! /work/team/DB-API.md): the front end's only calls into the parts of libpaxos-db that
//! branch `db` adds (session keys in the record, tombstones, barriers, per-user counts,
//! lock-delay deadlines). Until then keys and tombstones live in this member's memory, so
//! a new master cannot serve old sessions and barriers are no-ops.

use std::collections::HashMap;
use std::time::Duration;

use cldc::proto::SessionKeys;
use libpaxos_db::{ClientOp, Command, Namespace, SessionId, WallTime};

/// The calls the front end makes on the replicated state's v2 parts.
#[derive(Default)]
pub struct Db {
    keys: HashMap<SessionId, SessionKeys>,
    tombstones: HashMap<SessionId, (SessionKeys, WallTime)>,
}

impl Db {
    /// The keys of a live session.
    pub fn session_keys(&self, ns: &Namespace, id: SessionId) -> Option<SessionKeys> {
        ns.session(id)?;
        self.keys.get(&id).cloned()
    }

    /// The keys of an ended session whose tombstone is still held.
    pub fn tombstone_keys(&self, ns: &Namespace, id: SessionId) -> Option<SessionKeys> {
        if ns.session(id).is_some() {
            return None;
        }
        self.tombstones.get(&id).map(|(k, _)| k.clone())
    }

    /// Whether `id` is live or tombstoned.
    pub fn known(&self, ns: &Namespace, id: SessionId) -> bool {
        ns.session(id).is_some() || self.tombstones.contains_key(&id)
    }

    /// The op that creates a session with these keys.
    pub fn new_session(
        &mut self,
        id: SessionId,
        user: &str,
        lease: Duration,
        keys: &SessionKeys,
    ) -> ClientOp {
        self.keys.insert(id, keys.clone());
        ClientOp::NewSession {
            user: user.to_string(),
            lease,
        }
    }

    /// A session ended (its record is gone): keep its keys as a tombstone.
    pub fn ended(&mut self, id: SessionId, wall: WallTime) {
        if let Some(k) = self.keys.remove(&id) {
            self.tombstones.insert(id, (k, wall));
        }
    }

    /// The barrier op for `seq` (a no-op until libpaxos-db has `ClientOp::Barrier`).
    pub fn barrier(&self) -> Option<ClientOp> {
        None
    }

    /// Live sessions of `user`.
    pub fn sessions_of(&self, ns: &Namespace, user: &str) -> usize {
        ns.sessions().filter(|(_, s)| s.user == user).count()
    }

    /// The earliest end of a lock-delay that blocks a lock.
    pub fn next_lock_delay_end(&self, _ns: &Namespace) -> Option<WallTime> {
        None
    }

    /// The oldest tombstone's end time.
    pub fn oldest_tombstone(&self, _ns: &Namespace) -> Option<WallTime> {
        self.tombstones.values().map(|(_, t)| *t).min()
    }

    /// The command that purges tombstones older than `before`.
    pub fn purge(&mut self, before: WallTime) -> Option<Command> {
        self.tombstones.retain(|_, (_, t)| *t >= before);
        None
    }
}
