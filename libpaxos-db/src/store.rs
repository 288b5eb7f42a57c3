//! The namespace's trees in a [`KvStore`]: layout, loading, and writing one command's changes
//! atomically with the applied index.
//!
//! Trees are named `ns<generation>.<name>`; the generation in use is recorded in the
//! `db.meta` tree. Installing a snapshot fills a fresh generation and then flips the pointer,
//! so a crash mid-install leaves the old namespace in force.

use std::collections::BTreeMap;

use std::ops::Bound;

use crate::codec::{self, DecodeError};
use crate::error::DbError;
use crate::kv::{KvError, KvStore, WriteBatch};
use crate::lock::LockState;
use crate::node::{Handle, HandleRef, Node, Session, Tombstone};
use crate::state::{Dirty, Meta, State};
use crate::types::{HandleId, SessionId};

/// The tree holding the namespace generation pointer (and nothing else of ours).
pub(crate) const DB_META_TREE: &str = "db.meta";
/// The key of the generation pointer.
pub(crate) const GENERATION_KEY: &[u8] = b"ns_generation";
/// The key of the store's format version in `db.meta`.
pub(crate) const FORMAT_KEY: &[u8] = b"format_version";
/// The on-disk format this build reads and writes. Version 1 had no version record (it is
/// what a store without one is taken to be); version 2 added the session keys, the
/// tombstones tree and the lock-delay fields of lock records; version 3 tags every value sled
/// stores and keeps values above 2 KiB in chunk trees (decision 0202: sled must never write a
/// blob file).
pub const FORMAT_VERSION: u32 = 3;
/// The version of a store that carries no format version record.
pub(crate) const UNVERSIONED_FORMAT: u32 = 1;
/// The key of the one record in the meta tree.
pub(crate) const META_KEY: &[u8] = b"meta";

/// The namespace trees, in their canonical order (digest and snapshot order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TreeTag {
    Meta = 0,
    Nodes = 1,
    Data = 2,
    Sessions = 3,
    Handles = 4,
    Locks = 5,
    Tombstones = 6,
}

impl TreeTag {
    pub const ALL: [TreeTag; 7] = [
        TreeTag::Meta,
        TreeTag::Nodes,
        TreeTag::Data,
        TreeTag::Sessions,
        TreeTag::Handles,
        TreeTag::Locks,
        TreeTag::Tombstones,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TreeTag::Meta => "meta",
            TreeTag::Nodes => "nodes",
            TreeTag::Data => "data",
            TreeTag::Sessions => "sessions",
            TreeTag::Handles => "handles",
            TreeTag::Locks => "locks",
            TreeTag::Tombstones => "tombstones",
        }
    }

    pub fn from_u8(tag: u8) -> Option<TreeTag> {
        TreeTag::ALL.get(tag as usize).copied()
    }
}

pub(crate) fn tree_name(generation: u64, tag: TreeTag) -> String {
    format!("ns{generation}.{}", tag.name())
}

pub(crate) fn session_key(id: SessionId) -> [u8; 8] {
    id.0.to_be_bytes()
}

pub(crate) fn handle_key(who: HandleRef) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&who.session.0.to_be_bytes());
    key[8..].copy_from_slice(&who.handle.0.to_be_bytes());
    key
}

fn u64_at(bytes: &[u8]) -> Option<u64> {
    let array: [u8; 8] = bytes.try_into().ok()?;
    Some(u64::from_be_bytes(array))
}

fn path_key(key: &[u8]) -> Result<String, DecodeError> {
    let path = std::str::from_utf8(key).map_err(|_| DecodeError::BadKey("path is not UTF-8"))?;
    crate::path::validate(path).map_err(|_| DecodeError::BadKey("not a valid path"))?;
    Ok(path.to_string())
}

fn handle_ref(key: &[u8]) -> Result<HandleRef, DecodeError> {
    if key.len() != 16 {
        return Err(DecodeError::BadKey("handle key is not 16 bytes"));
    }
    let session = u64_at(&key[..8]).ok_or(DecodeError::BadKey("handle key"))?;
    let handle = u64_at(&key[8..]).ok_or(DecodeError::BadKey("handle key"))?;
    Ok(HandleRef {
        session: SessionId(session),
        handle: HandleId(handle),
    })
}

fn session_id(key: &[u8]) -> Result<SessionId, DecodeError> {
    u64_at(key)
        .map(SessionId)
        .ok_or(DecodeError::BadKey("session key is not 8 bytes"))
}

/// Checks that a raw record decodes as its tree's type (used when installing snapshots).
fn counter(name: &'static str, value: u64) -> Result<(), DecodeError> {
    if value >= codec::COUNTER_LIMIT {
        return Err(DecodeError::CounterExhausted(name));
    }
    Ok(())
}

pub(crate) fn validate_record(tag: TreeTag, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
    match tag {
        TreeTag::Meta => {
            if key != META_KEY {
                return Err(DecodeError::BadKey("unknown meta key"));
            }
            let meta = codec::decode::<Meta>(value)?;
            counter("next_instance", meta.next_instance)
        }
        TreeTag::Nodes => {
            path_key(key)?;
            let node = codec::decode::<Node>(value)?;
            counter("content_generation", node.content_generation.0)?;
            counter("lock_generation", node.lock_generation.0)
        }
        TreeTag::Data => path_key(key).and_then(|_| codec::decode::<Vec<u8>>(value).map(drop)),
        TreeTag::Sessions => {
            session_id(key)?;
            let session = codec::decode::<Session>(value)?;
            counter("next_handle", session.next_handle.0)
        }
        TreeTag::Handles => handle_ref(key).and_then(|_| codec::decode::<Handle>(value).map(drop)),
        TreeTag::Locks => path_key(key).and_then(|_| codec::decode::<LockState>(value).map(drop)),
        TreeTag::Tombstones => {
            session_id(key).and_then(|_| codec::decode::<Tombstone>(value).map(drop))
        }
    }
}

/// Printable form of a key for error messages.
pub(crate) fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.is_empty() && text.chars().all(|c| !c.is_control()) => text.to_string(),
        _ => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A storage failure while `doing`, as the crate's error.
pub(crate) fn kv_error(doing: &'static str) -> impl Fn(KvError) -> DbError {
    move |e| DbError::sled(doing, e.reason)
}

/// The generation pointer: which namespace trees are in force (0 for a new database).
pub(crate) fn current_generation<K: KvStore>(store: &K) -> Result<u64, DbError> {
    match store
        .get(DB_META_TREE, GENERATION_KEY)
        .map_err(kv_error("reading the namespace generation"))?
    {
        None => Ok(0),
        Some(bytes) => codec::decode::<u64>(&bytes).map_err(|reason| DbError::CorruptRecord {
            tree: DB_META_TREE.to_string(),
            key: show_key(GENERATION_KEY),
            reason,
        }),
    }
}

/// Checks the store's format version before anything reads or changes the namespace or the
/// log: a store of another version (a version record that differs, or data without one, which
/// is version 1) is refused with [`DbError::FormatVersion`]; an empty store is stamped with
/// [`FORMAT_VERSION`].
pub(crate) fn check_format<K: KvStore>(store: &K) -> Result<(), DbError> {
    let found = store
        .get(DB_META_TREE, FORMAT_KEY)
        .map_err(kv_error("reading the store's format version"))?;
    if let Some(bytes) = found {
        let found = codec::decode::<u32>(&bytes).map_err(|reason| DbError::CorruptRecord {
            tree: DB_META_TREE.to_string(),
            key: show_key(FORMAT_KEY),
            reason,
        })?;
        if found != FORMAT_VERSION {
            return Err(DbError::FormatVersion {
                found,
                expected: FORMAT_VERSION,
            });
        }
        return Ok(());
    }
    // No version record: a new store, or one written before versions were recorded.
    let holds_data = !store
        .tree_names()
        .map_err(kv_error("listing trees to check the format"))?
        .is_empty();
    if holds_data {
        return Err(DbError::FormatVersion {
            found: UNVERSIONED_FORMAT,
            expected: FORMAT_VERSION,
        });
    }
    let mut batch = WriteBatch::new();
    batch.insert(DB_META_TREE, FORMAT_KEY, codec::encode(&FORMAT_VERSION));
    store
        .commit(&batch)
        .map_err(kv_error("recording the store's format version"))
}

/// Pairs read per call when scanning a whole tree.
const SCAN_CHUNK: usize = 1024;

/// Calls `each` on every pair of `tree` in key order, reading it in chunks.
pub(crate) fn scan_tree<K: KvStore>(
    store: &K,
    tree: &str,
    doing: &'static str,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), DbError>,
) -> Result<(), DbError> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let from = match &after {
            Some(key) => Bound::Excluded(key.as_slice()),
            None => Bound::Unbounded,
        };
        let chunk = store
            .range(tree, from, Bound::Unbounded, SCAN_CHUNK)
            .map_err(kv_error(doing))?;
        for (key, value) in &chunk {
            each(key, value)?;
        }
        if chunk.len() < SCAN_CHUNK {
            return Ok(());
        }
        after = chunk.last().map(|(key, _)| key.clone());
    }
}

/// One generation's trees.
#[derive(Clone)]
pub(crate) struct NsTrees<K: KvStore> {
    pub generation: u64,
    pub store: K,
}

impl<K: KvStore> NsTrees<K> {
    pub fn open(store: &K, generation: u64) -> NsTrees<K> {
        NsTrees {
            generation,
            store: store.clone(),
        }
    }

    /// The store's name of this generation's tree `tag`.
    pub fn name(&self, tag: TreeTag) -> String {
        tree_name(self.generation, tag)
    }

    /// Calls `each` on every record of tree `tag`, in key order.
    pub fn for_each(
        &self,
        tag: TreeTag,
        doing: &'static str,
        each: impl FnMut(&[u8], &[u8]) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        scan_tree(&self.store, &self.name(tag), doing, each)
    }

    fn corrupt(&self, tag: TreeTag, key: &[u8], reason: DecodeError) -> DbError {
        DbError::CorruptRecord {
            tree: tree_name(self.generation, tag),
            key: show_key(key),
            reason,
        }
    }

    fn scan<T>(
        &self,
        tag: TreeTag,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DbError> {
        let mut out = Vec::new();
        self.for_each(tag, "scanning the namespace", |key, value| {
            out.push(each(key, value).map_err(|reason| self.corrupt(tag, key, reason))?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Loads the working copy; `None` if these trees were never written.
    pub fn load(&self) -> Result<Option<State>, DbError> {
        let Some(meta_bytes) = self
            .store
            .get(&self.name(TreeTag::Meta), META_KEY)
            .map_err(kv_error("reading namespace meta"))?
        else {
            return Ok(None);
        };
        let meta: Meta = codec::decode(&meta_bytes)
            .map_err(|reason| self.corrupt(TreeTag::Meta, META_KEY, reason))?;
        let nodes = self.scan(TreeTag::Nodes, |k, v| Ok((path_key(k)?, codec::decode(v)?)))?;
        let sessions = self.scan(TreeTag::Sessions, |k, v| {
            Ok((session_id(k)?, codec::decode(v)?))
        })?;
        let handles = self.scan(TreeTag::Handles, |k, v| {
            Ok((handle_ref(k)?, codec::decode(v)?))
        })?;
        let locks = self.scan(TreeTag::Locks, |k, v| Ok((path_key(k)?, codec::decode(v)?)))?;
        let tombstones = self.scan(TreeTag::Tombstones, |k, v| {
            Ok((session_id(k)?, codec::decode(v)?))
        })?;
        let mut state = State {
            meta,
            nodes: nodes.into_iter().collect(),
            sessions: sessions.into_iter().collect(),
            handles: handles.into_iter().collect(),
            locks: locks.into_iter().collect(),
            tombstones: tombstones.into_iter().collect(),
            on_path: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            per_user: BTreeMap::new(),
            delay_ends: std::collections::BTreeSet::new(),
            tombstone_ends: std::collections::BTreeSet::new(),
        };
        state.rebuild_indexes();
        Ok(Some(state))
    }

    /// A file's contents (empty if it has none stored).
    pub fn data(&self, path: &str) -> Result<Vec<u8>, DbError> {
        match self
            .store
            .get(&self.name(TreeTag::Data), path.as_bytes())
            .map_err(kv_error("reading file contents"))?
        {
            None => Ok(Vec::new()),
            Some(bytes) => codec::decode(&bytes)
                .map_err(|reason| self.corrupt(TreeTag::Data, path.as_bytes(), reason)),
        }
    }

    /// Writes every record `dirty` names, from `state`, plus the meta record, in one atomic
    /// batch across the trees.
    pub fn commit(&self, state: &State, dirty: &Dirty) -> Result<(), DbError> {
        let mut batch = WriteBatch::new();
        let name = |tag| self.name(tag);
        let (meta, nodes, data, sessions, handles, locks, tombstones) = (
            name(TreeTag::Meta),
            name(TreeTag::Nodes),
            name(TreeTag::Data),
            name(TreeTag::Sessions),
            name(TreeTag::Handles),
            name(TreeTag::Locks),
            name(TreeTag::Tombstones),
        );
        batch.insert(&meta, META_KEY, codec::encode(&state.meta));
        for path in &dirty.nodes {
            match state.nodes.get(path) {
                Some(node) => batch.insert(&nodes, path.as_bytes(), codec::encode(node)),
                None => batch.remove(&nodes, path.as_bytes()),
            }
        }
        for (path, contents) in &dirty.data {
            match contents {
                Some(bytes) => batch.insert(&data, path.as_bytes(), codec::encode(bytes)),
                None => batch.remove(&data, path.as_bytes()),
            }
        }
        for id in &dirty.sessions {
            match state.sessions.get(id) {
                Some(session) => batch.insert(&sessions, session_key(*id), codec::encode(session)),
                None => batch.remove(&sessions, session_key(*id)),
            }
        }
        for who in &dirty.handles {
            match state.handles.get(who) {
                Some(handle) => batch.insert(&handles, handle_key(*who), codec::encode(handle)),
                None => batch.remove(&handles, handle_key(*who)),
            }
        }
        for path in &dirty.locks {
            match state.locks.get(path) {
                Some(lock) => batch.insert(&locks, path.as_bytes(), codec::encode(lock)),
                None => batch.remove(&locks, path.as_bytes()),
            }
        }
        for id in &dirty.tombstones {
            match state.tombstones.get(id) {
                Some(tombstone) => {
                    batch.insert(&tombstones, session_key(*id), codec::encode(tombstone))
                }
                None => batch.remove(&tombstones, session_key(*id)),
            }
        }
        self.store
            .commit(&batch)
            .map_err(kv_error("committing a command"))
    }

    /// Writes a whole state (used to initialise a fresh namespace).
    pub fn commit_all(&self, state: &State) -> Result<(), DbError> {
        let dirty = Dirty {
            nodes: state.nodes.keys().cloned().collect(),
            data: BTreeMap::new(),
            sessions: state.sessions.keys().copied().collect(),
            handles: state.handles.keys().copied().collect(),
            locks: state.locks.keys().cloned().collect(),
            tombstones: state.tombstones.keys().copied().collect(),
        };
        self.commit(state, &dirty)
    }

    /// Removes this generation's trees.
    pub fn drop_trees(store: &K, generation: u64) -> Result<(), DbError> {
        let names: Vec<String> = TreeTag::ALL
            .iter()
            .map(|tag| tree_name(generation, *tag))
            .collect();
        store
            .drop_trees(&names)
            .map_err(kv_error("dropping an old namespace tree"))
    }
}
