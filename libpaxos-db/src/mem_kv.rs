//! [`MemKv`]: the in-memory [`KvStore`] for deterministic simulation, with an explicit
//! durability model.
//!
//! The store keeps the durable trees (as of the last `sync`) and the batches committed since,
//! in order. Reads see both. [`MemKv::crash`] is a power cut: it returns the store as a
//! restarted process finds it — the durable trees plus the first `kept` unsynced batches
//! (sled's log is written in order, so what survives a cut is a prefix of whole batches) —
//! and kills every old handle (a dead process writes nothing). Faults are injected with
//! [`MemKv::set_failing`]: while set, every call fails, and a failed sync is fatal as on disk.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::kv::{KvError, KvPair, KvStore, KvWrite, WriteBatch};

type Trees = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
struct Inner {
    durable: Trees,
    /// Durable plus every unsynced batch: what reads see.
    visible: Trees,
    unsynced: Vec<WriteBatch>,
    dead: bool,
    failing: bool,
    sync_failed: bool,
    counters: MemKvCounters,
}

/// What a [`MemKv`] did, failures included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemKvCounters {
    /// Batches committed.
    pub commits: u64,
    /// Syncs that made something durable or found nothing to do.
    pub syncs: u64,
    /// Calls refused: injected failures, a handle used after its crash, or after a failed sync.
    pub failures: u64,
}

/// The in-memory store. Clones share one store.
#[derive(Clone, Debug, Default)]
pub struct MemKv {
    inner: Arc<Mutex<Inner>>,
}

fn apply(trees: &mut Trees, batch: &WriteBatch) {
    for write in &batch.writes {
        match write {
            KvWrite::Insert { tree, key, value } => {
                trees
                    .entry(tree.clone())
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
            KvWrite::Remove { tree, key } => {
                if let Some(t) = trees.get_mut(tree) {
                    t.remove(key);
                }
            }
            KvWrite::DropTree { tree } => {
                trees.remove(tree);
            }
        }
    }
    trees.retain(|_, t| !t.is_empty());
}

impl MemKv {
    /// An empty store.
    pub fn new() -> MemKv {
        MemKv::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is plain maps and flags: usable after a panic elsewhere.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The guard, or the reason this call must fail (counted).
    fn usable(&self, doing: &'static str) -> Result<MutexGuard<'_, Inner>, KvError> {
        let mut inner = self.lock();
        let reason = if inner.dead {
            Some("the store crashed; use the handle crash() returned")
        } else if inner.sync_failed {
            Some("an earlier sync failed; the store is fatal")
        } else if inner.failing {
            Some("injected disk failure")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                inner.counters.failures += 1;
                Err(KvError::new(doing, reason))
            }
            None => Ok(inner),
        }
    }

    /// While `failing`, every call fails (a failing disk). A sync that fails this way makes
    /// the store fatal, as a failed fsync does.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// How many committed batches are not yet durable.
    pub fn unsynced(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// The counters.
    pub fn counters(&self) -> MemKvCounters {
        self.lock().counters.clone()
    }

    /// A power cut: every handle to this store dies; the returned store holds what was synced
    /// plus the first `kept` unsynced batches (all of them if `kept` is larger).
    pub fn crash(&self, kept: usize) -> MemKv {
        let mut inner = self.lock();
        inner.dead = true;
        let mut trees = inner.durable.clone();
        for batch in inner.unsynced.iter().take(kept) {
            apply(&mut trees, batch);
        }
        MemKv {
            inner: Arc::new(Mutex::new(Inner {
                durable: trees.clone(),
                visible: trees,
                ..Inner::default()
            })),
        }
    }
}

impl KvStore for MemKv {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let inner = self.usable("reading a key")?;
        Ok(inner.visible.get(tree).and_then(|t| t.get(key)).cloned())
    }

    fn range(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        let inner = self.usable("scanning a tree")?;
        let Some(t) = inner.visible.get(tree) else {
            return Ok(Vec::new());
        };
        // BTreeMap::range panics on an empty or inverted range: filter instead.
        let above = |k: &[u8]| match from {
            Bound::Included(f) => k >= f,
            Bound::Excluded(f) => k > f,
            Bound::Unbounded => true,
        };
        let below = |k: &[u8]| match to {
            Bound::Included(e) => k <= e,
            Bound::Excluded(e) => k < e,
            Bound::Unbounded => true,
        };
        Ok(t.iter()
            .skip_while(|(k, _)| !above(k))
            .take_while(|(k, _)| below(k))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError> {
        let inner = self.usable("reading the last key")?;
        Ok(inner
            .visible
            .get(tree)
            .and_then(|t| t.last_key_value())
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn tree_names(&self) -> Result<Vec<String>, KvError> {
        let inner = self.usable("listing trees")?;
        Ok(inner.visible.keys().cloned().collect())
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError> {
        let mut inner = self.usable("committing a batch")?;
        apply(&mut inner.visible, batch);
        inner.unsynced.push(batch.clone());
        inner.counters.commits += 1;
        Ok(())
    }

    fn drop_trees(&self, names: &[String]) -> Result<(), KvError> {
        let mut batch = WriteBatch::new();
        for name in names {
            batch.drop_tree(name);
        }
        self.commit(&batch)
    }

    fn sync(&self) -> Result<(), KvError> {
        let mut inner = self.lock();
        if inner.failing && !inner.dead {
            inner.sync_failed = true;
        }
        drop(inner);
        let mut inner = self.usable("syncing")?;
        let batches = std::mem::take(&mut inner.unsynced);
        for batch in &batches {
            apply(&mut inner.durable, batch);
        }
        inner.counters.syncs += 1;
        Ok(())
    }
}
