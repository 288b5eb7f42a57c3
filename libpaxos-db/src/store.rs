//! The namespace's sled trees: layout, loading, and writing one command's changes atomically
//! with the applied index.
//!
//! Trees are named `ns<generation>.<name>`; the generation in use is recorded in the
//! `db.meta` tree. Installing a snapshot fills a fresh generation and then flips the pointer,
//! so a crash mid-install leaves the old namespace in force.

use std::collections::BTreeMap;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Batch, Db, Tree};

use crate::codec::{self, DecodeError};
use crate::error::DbError;
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
/// tombstones tree and the lock-delay fields of lock records.
pub const FORMAT_VERSION: u32 = 2;
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

/// The generation pointer: which namespace trees are in force (0 for a new database).
pub(crate) fn current_generation(db: &Db) -> Result<u64, DbError> {
    let meta = db
        .open_tree(DB_META_TREE)
        .map_err(|e| DbError::sled("opening db.meta", e))?;
    match meta
        .get(GENERATION_KEY)
        .map_err(|e| DbError::sled("reading the namespace generation", e))?
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
pub(crate) fn check_format(db: &Db) -> Result<(), DbError> {
    let meta = db
        .open_tree(DB_META_TREE)
        .map_err(|e| DbError::sled("opening db.meta", e))?;
    let found = meta
        .get(FORMAT_KEY)
        .map_err(|e| DbError::sled("reading the store's format version", e))?;
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
    let mut holds_data = !meta.is_empty();
    for name in db.tree_names() {
        if holds_data {
            break;
        }
        if name.as_ref() == DB_META_TREE.as_bytes() || name.as_ref() == b"__sled__default" {
            continue;
        }
        let tree = db
            .open_tree(&name)
            .map_err(|e| DbError::sled("opening a tree to check the format", e))?;
        holds_data = !tree.is_empty();
    }
    if holds_data {
        return Err(DbError::FormatVersion {
            found: UNVERSIONED_FORMAT,
            expected: FORMAT_VERSION,
        });
    }
    meta.insert(FORMAT_KEY, codec::encode(&FORMAT_VERSION))
        .map_err(|e| DbError::sled("recording the store's format version", e))?;
    Ok(())
}

/// One generation's trees.
#[derive(Clone)]
pub(crate) struct NsTrees {
    pub generation: u64,
    pub trees: Vec<Tree>,
}

impl NsTrees {
    pub fn open(db: &Db, generation: u64) -> Result<NsTrees, DbError> {
        let mut trees = Vec::with_capacity(TreeTag::ALL.len());
        for tag in TreeTag::ALL {
            trees.push(
                db.open_tree(tree_name(generation, tag))
                    .map_err(|e| DbError::sled("opening a namespace tree", e))?,
            );
        }
        Ok(NsTrees { generation, trees })
    }

    pub fn tree(&self, tag: TreeTag) -> &Tree {
        &self.trees[tag as usize]
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
        for item in self.tree(tag).iter() {
            let (key, value) = item.map_err(|e| DbError::sled("scanning the namespace", e))?;
            out.push(each(&key, &value).map_err(|reason| self.corrupt(tag, &key, reason))?);
        }
        Ok(out)
    }

    /// Loads the working copy; `None` if these trees were never written.
    pub fn load(&self) -> Result<Option<State>, DbError> {
        let Some(meta_bytes) = self
            .tree(TreeTag::Meta)
            .get(META_KEY)
            .map_err(|e| DbError::sled("reading namespace meta", e))?
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
            .tree(TreeTag::Data)
            .get(path.as_bytes())
            .map_err(|e| DbError::sled("reading file contents", e))?
        {
            None => Ok(Vec::new()),
            Some(bytes) => codec::decode(&bytes)
                .map_err(|reason| self.corrupt(TreeTag::Data, path.as_bytes(), reason)),
        }
    }

    /// Writes every record `dirty` names, from `state`, plus the meta record, in one sled
    /// transaction across the trees.
    pub fn commit(&self, state: &State, dirty: &Dirty) -> Result<(), DbError> {
        let mut batches: Vec<Batch> = TreeTag::ALL.iter().map(|_| Batch::default()).collect();
        batches[TreeTag::Meta as usize].insert(META_KEY, codec::encode(&state.meta));
        for path in &dirty.nodes {
            let batch = &mut batches[TreeTag::Nodes as usize];
            match state.nodes.get(path) {
                Some(node) => batch.insert(path.as_bytes(), codec::encode(node)),
                None => batch.remove(path.as_bytes()),
            }
        }
        for (path, data) in &dirty.data {
            let batch = &mut batches[TreeTag::Data as usize];
            match data {
                Some(bytes) => batch.insert(path.as_bytes(), codec::encode(bytes)),
                None => batch.remove(path.as_bytes()),
            }
        }
        for id in &dirty.sessions {
            let batch = &mut batches[TreeTag::Sessions as usize];
            match state.sessions.get(id) {
                Some(session) => batch.insert(&session_key(*id), codec::encode(session)),
                None => batch.remove(&session_key(*id)),
            }
        }
        for who in &dirty.handles {
            let batch = &mut batches[TreeTag::Handles as usize];
            match state.handles.get(who) {
                Some(handle) => batch.insert(&handle_key(*who), codec::encode(handle)),
                None => batch.remove(&handle_key(*who)),
            }
        }
        for path in &dirty.locks {
            let batch = &mut batches[TreeTag::Locks as usize];
            match state.locks.get(path) {
                Some(lock) => batch.insert(path.as_bytes(), codec::encode(lock)),
                None => batch.remove(path.as_bytes()),
            }
        }
        for id in &dirty.tombstones {
            let batch = &mut batches[TreeTag::Tombstones as usize];
            match state.tombstones.get(id) {
                Some(tombstone) => batch.insert(&session_key(*id), codec::encode(tombstone)),
                None => batch.remove(&session_key(*id)),
            }
        }
        self.trees
            .as_slice()
            .transaction(|trees| {
                for (tree, batch) in trees.iter().zip(&batches) {
                    tree.apply_batch(batch)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| match e {
                TransactionError::Storage(e) => DbError::sled("committing a command", e),
                TransactionError::Abort(()) => DbError::Sled {
                    doing: "committing a command",
                    reason: "transaction aborted".to_string(),
                },
            })
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
    pub fn drop_trees(db: &Db, generation: u64) -> Result<(), DbError> {
        for tag in TreeTag::ALL {
            db.drop_tree(tree_name(generation, tag))
                .map_err(|e| DbError::sled("dropping an old namespace tree", e))?;
        }
        Ok(())
    }
}
