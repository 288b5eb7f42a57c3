//! [`KvStore`]: the storage seam under the namespace and the log — named ordered trees of
//! byte keys, written in atomic batches, made durable by `sync`.
//!
//! The namespace and the Paxos log live in one store so that one sync makes both durable and
//! one batch can switch a namespace generation and compact the log together. Two engines
//! implement it: [`SledKv`](crate::SledKv) (sled, durable against power loss through
//! `SledSync`) and [`MemKv`](crate::MemKv) (memory, for deterministic
//! simulation: a crash keeps what was synced and, if asked, a prefix of the later batches).
//! [`kv_conformance`](crate::kv_conformance) is the suite both pass.
//!
//! The namespace ([`Namespace`](crate::Namespace)), the log ([`KvLogStore`](crate::KvLogStore))
//! and the [`Database`](crate::Database) run on any engine: `Database::open` is sled's
//! production path, `Database::open_on` any store's; [`DynKv`] hides which behind one type
//! (docs/testing.md, "The storage seam").

use std::ops::Bound;

/// A storage failure: what we were doing and the engine's message. After a failed `commit`
/// nothing of the batch is visible; after a failed `sync` the store is fatal (DESIGN §6: a
/// failed fsync stops the process, it is never retried).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("storage failed while {doing}: {reason}")]
pub struct KvError {
    /// What we were doing.
    pub doing: &'static str,
    /// The engine's message.
    pub reason: String,
}

impl KvError {
    /// An error while `doing`.
    pub fn new(doing: &'static str, reason: impl core::fmt::Display) -> KvError {
        KvError {
            doing,
            reason: reason.to_string(),
        }
    }
}

/// One write of a batch; `tree` indexes [`WriteBatch::trees`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvWrite {
    /// Set `key` in `tree` to `value`.
    Insert {
        /// The tree's index in the batch.
        tree: usize,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` from `tree` (nothing if absent).
    Remove {
        /// The tree's index in the batch.
        tree: usize,
        /// The key.
        key: Vec<u8>,
    },
    /// Remove every key of `tree`.
    DropTree {
        /// The tree's index in the batch.
        tree: usize,
    },
}

impl KvWrite {
    /// The index of the tree it writes.
    pub fn tree(&self) -> usize {
        match self {
            KvWrite::Insert { tree, .. }
            | KvWrite::Remove { tree, .. }
            | KvWrite::DropTree { tree } => *tree,
        }
    }
}

/// Writes applied in order, all or nothing. Tree names are stored once per batch (a batch
/// names a handful of trees and may hold thousands of writes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The trees the writes name, each once.
    pub trees: Vec<String>,
    /// The writes, in order.
    pub writes: Vec<KvWrite>,
    /// Whether any write is a `DropTree`.
    pub drops: bool,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    fn tree(&mut self, name: &str) -> usize {
        match self.trees.iter().position(|t| t == name) {
            Some(index) => index,
            None => {
                self.trees.push(name.to_owned());
                self.trees.len() - 1
            }
        }
    }

    /// Adds an insert.
    pub fn insert(&mut self, tree: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let tree = self.tree(tree);
        self.writes.push(KvWrite::Insert {
            tree,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a removal.
    pub fn remove(&mut self, tree: &str, key: impl Into<Vec<u8>>) {
        let tree = self.tree(tree);
        self.writes.push(KvWrite::Remove {
            tree,
            key: key.into(),
        });
    }

    /// Adds the removal of a whole tree.
    pub fn drop_tree(&mut self, tree: &str) {
        let tree = self.tree(tree);
        self.drops = true;
        self.writes.push(KvWrite::DropTree { tree });
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// Named ordered trees of byte keys. Handles are cheap clones of one store (the snapshot
/// install runs on another thread), so every method takes `&self`.
pub trait KvStore: Clone + Send + Sync + 'static {
    /// The value of `key` in `tree`. Sees every committed batch, synced or not.
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// The pairs of `tree` with keys within the bounds, in ascending key order, at most
    /// `limit` of them. Sees every committed batch.
    fn range(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, KvError>;

    /// The keys of `tree` within the bounds, in ascending order, at most `limit` of them: what
    /// [`range`](KvStore::range) returns without the values (an engine may skip reading them).
    fn range_keys(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        Ok(self
            .range(tree, from, to, limit)?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// The pair with the highest key in `tree`.
    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError>;

    /// The names of the trees holding at least one key, in ascending order.
    fn tree_names(&self) -> Result<Vec<String>, KvError>;

    /// Applies `batch` in order, atomically: a crash at any time leaves all of it or none of
    /// it, and batches survive a crash only in commit order (a later one never without an
    /// earlier one). Durable only after the next [`sync`](KvStore::sync).
    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError>;

    /// Removes whole trees outside any batch (each drop atomic on its own; durable after the
    /// next sync). On sled this is far cheaper than a batch's `DropTree` for a large tree:
    /// it is how old namespace generations go.
    fn drop_trees(&self, names: &[String]) -> Result<(), KvError>;

    /// Makes every batch committed before the call durable when it returns. After a failure
    /// every later call fails too.
    fn sync(&self) -> Result<(), KvError>;
}

/// The object-safe half of [`KvStore`], for [`DynKv`].
trait ObjectKv: Send + Sync + 'static {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    fn range(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, KvError>;
    fn range_keys(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError>;
    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError>;
    fn tree_names(&self) -> Result<Vec<String>, KvError>;
    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError>;
    fn drop_trees(&self, names: &[String]) -> Result<(), KvError>;
    fn sync(&self) -> Result<(), KvError>;
}

impl<K: KvStore> ObjectKv for K {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        KvStore::get(self, tree, key)
    }
    fn range(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        KvStore::range(self, tree, from, to, limit)
    }
    fn range_keys(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        KvStore::range_keys(self, tree, from, to, limit)
    }
    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError> {
        KvStore::last(self, tree)
    }
    fn tree_names(&self) -> Result<Vec<String>, KvError> {
        KvStore::tree_names(self)
    }
    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError> {
        KvStore::commit(self, batch)
    }
    fn drop_trees(&self, names: &[String]) -> Result<(), KvError> {
        KvStore::drop_trees(self, names)
    }
    fn sync(&self) -> Result<(), KvError> {
        KvStore::sync(self)
    }
}

/// Any [`KvStore`] behind one type: lets a program hold either engine (sled in production,
/// [`MemKv`](crate::MemKv) in the simulation) without being generic over it, e.g. the server's
/// replica loop and the namespace its client front end reads. Every call is one dynamic call
/// to the engine's own method (its `range_keys` included). Clones share one store.
#[derive(Clone)]
pub struct DynKv(std::sync::Arc<dyn ObjectKv>);

impl DynKv {
    /// `store` behind the erased type.
    pub fn new<K: KvStore>(store: K) -> DynKv {
        DynKv(std::sync::Arc::new(store))
    }
}

impl core::fmt::Debug for DynKv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DynKv")
    }
}

impl KvStore for DynKv {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(tree, key)
    }

    fn range(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        self.0.range(tree, from, to, limit)
    }

    fn range_keys(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        self.0.range_keys(tree, from, to, limit)
    }

    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError> {
        self.0.last(tree)
    }

    fn tree_names(&self) -> Result<Vec<String>, KvError> {
        self.0.tree_names()
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError> {
        self.0.commit(batch)
    }

    fn drop_trees(&self, names: &[String]) -> Result<(), KvError> {
        self.0.drop_trees(names)
    }

    fn sync(&self) -> Result<(), KvError> {
        self.0.sync()
    }
}
