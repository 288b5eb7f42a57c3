//! The namespace's working copy in memory (everything but file contents, which stay in sled),
//! and the transaction context commands mutate it through, which records what changed.

use std::collections::{BTreeMap, BTreeSet};

use libpaxos::{Epoch, Slot};
use serde::{Deserialize, Serialize};

use crate::command::{EventKind, Notice};
use crate::config::Limits;
use crate::lock::LockState;
use crate::mode::EventMask;
use crate::node::{Handle, HandleRef, Node, NodeKind, Session, Tombstone};
use crate::types::{Checksum, ContentGeneration, Instance, LockGeneration, SessionId, WallTime};

/// Replicated counters and positions, stored under one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// The last slot applied.
    pub applied: Slot,
    /// The highest epoch seen in a no-op.
    pub epoch: Epoch,
    /// The next instance number to give a created node.
    pub next_instance: u64,
}

/// The root's instance; created nodes count up from the one after.
pub(crate) const ROOT_INSTANCE: Instance = Instance(1);

/// The whole namespace but file contents.
#[derive(Clone, Debug)]
pub(crate) struct State {
    pub meta: Meta,
    pub nodes: BTreeMap<String, Node>,
    pub sessions: BTreeMap<SessionId, Session>,
    pub handles: BTreeMap<HandleRef, Handle>,
    pub locks: BTreeMap<String, LockState>,
    pub tombstones: BTreeMap<SessionId, Tombstone>,
    /// Derived: the handles open on each path.
    pub on_path: BTreeMap<String, BTreeSet<HandleRef>>,
    /// Derived: each session's ephemeral nodes.
    pub ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    /// Derived: how many live sessions each user has (users with none are absent).
    pub per_user: BTreeMap<String, usize>,
    /// Derived: every lock-delay block, as (end, path), so the earliest is the first.
    pub delay_ends: BTreeSet<(WallTime, String)>,
    /// Derived: every tombstone as (ended at, session), so the oldest is the first.
    pub tombstone_ends: BTreeSet<(WallTime, SessionId)>,
}

impl State {
    /// A namespace holding only the root.
    pub fn fresh() -> State {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), root_node());
        State {
            meta: Meta {
                applied: Slot::ZERO,
                epoch: Epoch(0),
                next_instance: ROOT_INSTANCE.0 + 1,
            },
            nodes,
            sessions: BTreeMap::new(),
            handles: BTreeMap::new(),
            locks: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            on_path: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            per_user: BTreeMap::new(),
            delay_ends: BTreeSet::new(),
            tombstone_ends: BTreeSet::new(),
        }
    }

    /// Recomputes the derived indexes from the stored maps.
    pub fn rebuild_indexes(&mut self) {
        self.on_path.clear();
        self.ephemerals.clear();
        self.per_user.clear();
        self.delay_ends.clear();
        self.tombstone_ends.clear();
        for (id, tombstone) in &self.tombstones {
            self.tombstone_ends.insert((tombstone.ended_at, *id));
        }
        for session in self.sessions.values() {
            *self.per_user.entry(session.user.clone()).or_default() += 1;
        }
        for (path, lock) in &self.locks {
            if let Some(until) = lock.blocked_until {
                self.delay_ends.insert((until, path.clone()));
            }
        }
        for (who, handle) in &self.handles {
            self.on_path
                .entry(handle.path.clone())
                .or_default()
                .insert(*who);
        }
        for (path, node) in &self.nodes {
            if let Some(owner) = node.ephemeral_owner {
                self.ephemerals
                    .entry(owner)
                    .or_default()
                    .insert(path.clone());
            }
        }
    }

    /// The handles of `session`, in order.
    pub fn session_handles(&self, session: SessionId) -> Vec<HandleRef> {
        let from = HandleRef {
            session,
            handle: crate::types::HandleId(0),
        };
        self.handles
            .range(from..)
            .take_while(|(who, _)| who.session == session)
            .map(|(who, _)| *who)
            .collect()
    }

    /// Whether any node lies below `dir`.
    pub fn has_children(&self, dir: &str) -> bool {
        let prefix = crate::path::child_prefix(dir);
        self.nodes
            .range(prefix.clone()..)
            .map(|(path, _)| path)
            .find(|path| path.as_str() != dir)
            .is_some_and(|path| path.starts_with(&prefix))
    }
}

fn root_node() -> Node {
    Node {
        kind: NodeKind::Directory,
        instance: ROOT_INSTANCE,
        content_generation: ContentGeneration(0),
        lock_generation: LockGeneration(0),
        created: WallTime(0),
        modified: WallTime(0),
        size: 0,
        checksum: Checksum::of(&[]),
        ephemeral_owner: None,
    }
}

/// The keys a command changed, to be written to sled with the new applied index.
#[derive(Debug, Default)]
pub(crate) struct Dirty {
    pub nodes: BTreeSet<String>,
    /// New contents (`None`: delete the record).
    pub data: BTreeMap<String, Option<Vec<u8>>>,
    pub sessions: BTreeSet<SessionId>,
    pub handles: BTreeSet<HandleRef>,
    pub locks: BTreeSet<String>,
    pub tombstones: BTreeSet<SessionId>,
}

impl Dirty {
    /// Adds a later command's changes (its contents win where both wrote).
    pub fn merge(&mut self, later: Dirty) {
        self.nodes.extend(later.nodes);
        self.data.extend(later.data);
        self.sessions.extend(later.sessions);
        self.handles.extend(later.handles);
        self.locks.extend(later.locks);
        self.tombstones.extend(later.tombstones);
    }
}

/// One command's view of the state: mutations go through here so every change is recorded in
/// [`Dirty`] and the derived indexes stay right.
pub(crate) struct Tx<'a> {
    pub st: &'a mut State,
    pub limits: &'a Limits,
    pub dirty: Dirty,
    pub events: Vec<Notice>,
}

impl<'a> Tx<'a> {
    pub fn new(st: &'a mut State, limits: &'a Limits) -> Tx<'a> {
        Tx {
            st,
            limits,
            dirty: Dirty::default(),
            events: Vec::new(),
        }
    }

    pub fn set_node(&mut self, path: &str, node: Node) {
        if let Some(owner) = node.ephemeral_owner {
            self.st
                .ephemerals
                .entry(owner)
                .or_default()
                .insert(path.to_string());
        }
        self.st.nodes.insert(path.to_string(), node);
        self.dirty.nodes.insert(path.to_string());
    }

    pub fn remove_node(&mut self, path: &str) -> Option<Node> {
        let node = self.st.nodes.remove(path)?;
        if let Some(owner) = node.ephemeral_owner
            && let Some(set) = self.st.ephemerals.get_mut(&owner)
        {
            set.remove(path);
            if set.is_empty() {
                self.st.ephemerals.remove(&owner);
            }
        }
        self.dirty.nodes.insert(path.to_string());
        self.dirty.data.insert(path.to_string(), None);
        Some(node)
    }

    pub fn set_data(&mut self, path: &str, data: Vec<u8>) {
        let value = if data.is_empty() { None } else { Some(data) };
        self.dirty.data.insert(path.to_string(), value);
    }

    /// Creates or updates a session (an update never changes its user).
    pub fn set_session(&mut self, id: SessionId, session: Session) {
        let user = session.user.clone();
        let old = self.st.sessions.insert(id, session);
        if let Some(old) = &old {
            self.forget_user(&old.user);
        }
        *self.st.per_user.entry(user).or_default() += 1;
        self.dirty.sessions.insert(id);
    }

    pub fn remove_session(&mut self, id: SessionId) -> Option<Session> {
        let old = self.st.sessions.remove(&id);
        if let Some(old) = &old {
            self.forget_user(&old.user);
        }
        self.dirty.sessions.insert(id);
        old
    }

    fn forget_user(&mut self, user: &str) {
        if let Some(count) = self.st.per_user.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.st.per_user.remove(user);
            }
        }
    }

    pub fn set_tombstone(&mut self, id: SessionId, tombstone: Tombstone) {
        self.st.tombstone_ends.insert((tombstone.ended_at, id));
        if let Some(old) = self.st.tombstones.insert(id, tombstone) {
            self.st.tombstone_ends.remove(&(old.ended_at, id));
        }
        self.dirty.tombstones.insert(id);
    }

    pub fn remove_tombstone(&mut self, id: SessionId) {
        if let Some(old) = self.st.tombstones.remove(&id) {
            self.st.tombstone_ends.remove(&(old.ended_at, id));
            self.dirty.tombstones.insert(id);
        }
    }

    pub fn add_handle(&mut self, who: HandleRef, handle: Handle) {
        self.st
            .on_path
            .entry(handle.path.clone())
            .or_default()
            .insert(who);
        self.st.handles.insert(who, handle);
        self.dirty.handles.insert(who);
    }

    pub fn remove_handle(&mut self, who: HandleRef) -> Option<Handle> {
        let handle = self.st.handles.remove(&who)?;
        if let Some(set) = self.st.on_path.get_mut(&handle.path) {
            set.remove(&who);
            if set.is_empty() {
                self.st.on_path.remove(&handle.path);
            }
        }
        self.dirty.handles.insert(who);
        Some(handle)
    }

    pub fn set_lock(&mut self, path: &str, lock: LockState) {
        if let Some(until) = self.st.locks.get(path).and_then(|old| old.blocked_until) {
            self.st.delay_ends.remove(&(until, path.to_string()));
        }
        if let Some(until) = lock.blocked_until {
            self.st.delay_ends.insert((until, path.to_string()));
        }
        if lock.is_empty() {
            self.st.locks.remove(path);
        } else {
            self.st.locks.insert(path.to_string(), lock);
        }
        self.dirty.locks.insert(path.to_string());
    }

    pub fn notify(&mut self, to: HandleRef, event: EventKind) {
        self.events.push(Notice { to, event });
    }

    /// Tells every handle on `path` whose mask selects `mask`, except those of `skip`.
    pub fn notify_watchers(
        &mut self,
        path: &str,
        mask: EventMask,
        event: &EventKind,
        skip: Option<SessionId>,
    ) {
        let Some(refs) = self.st.on_path.get(path) else {
            return;
        };
        let targets: Vec<HandleRef> = refs
            .iter()
            .filter(|who| Some(who.session) != skip)
            .filter(|who| {
                self.st
                    .handles
                    .get(who)
                    .is_some_and(|h| h.events.contains(mask))
            })
            .copied()
            .collect();
        for to in targets {
            self.notify(to, event.clone());
        }
    }
}
