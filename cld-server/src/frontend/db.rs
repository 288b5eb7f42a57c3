//! The front end's calls into the replicated state's v2 parts (libpaxos-db,
//! docs/database.md): session keys in the record and in tombstones, barriers, per-user
//! counts, lock-delay deadlines and tombstone purges. libpaxos-db keeps the keys opaque
//! (64 bytes, the postcard of cldc's `SessionKeys`).

use std::time::Duration;

use cldc::proto::SessionKeys;
use libpaxos_db::{ClientOp, Command, DynKv, Namespace, SessionId, WallTime};

fn decode(bytes: &[u8]) -> Option<SessionKeys> {
    postcard::from_bytes(bytes).ok()
}

/// The keys of a live session (`None` if it is not live or its record holds no keys).
pub fn session_keys(ns: &Namespace<DynKv>, id: SessionId) -> Option<SessionKeys> {
    decode(&ns.session(id)?.keys)
}

/// The keys of an ended session whose tombstone is still held.
pub fn tombstone_keys(ns: &Namespace<DynKv>, id: SessionId) -> Option<SessionKeys> {
    decode(&ns.tombstone(id)?.keys)
}

/// Whether `id` is live or tombstoned (never to be given out again).
pub fn known(ns: &Namespace<DynKv>, id: SessionId) -> bool {
    ns.session(id).is_some() || ns.tombstone(id).is_some()
}

/// The op that creates a session with these keys.
pub fn new_session(user: &str, lease: Duration, keys: &SessionKeys) -> ClientOp {
    ClientOp::NewSession {
        user: user.to_string(),
        lease,
        // A 64-byte record of plain bytes always encodes.
        keys: postcard::to_allocvec(keys).unwrap_or_default(),
    }
}

/// The barrier op (sent as the `ClientRequest` of the seq to bar).
pub fn barrier() -> ClientOp {
    ClientOp::Barrier
}

/// Live sessions of `user`.
pub fn sessions_of(ns: &Namespace<DynKv>, user: &str) -> usize {
    ns.sessions_of(user)
}

/// The earliest end of a lock-delay that blocks a lock.
pub fn next_lock_delay_end(ns: &Namespace<DynKv>) -> Option<WallTime> {
    ns.next_lock_delay_end()
}

/// The oldest tombstone's end time.
pub fn oldest_tombstone(ns: &Namespace<DynKv>) -> Option<WallTime> {
    ns.oldest_tombstone()
}

/// The command that purges tombstones older than `before`.
pub fn purge(before: WallTime) -> Command {
    Command::PurgeTombstones { before }
}
