//! [`SledKv`]: the [`KvStore`] on sled, durable against power loss through the same flush and
//! fsyncs as the database (`SledSync`, decision 0201).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::durable::SledSync;
use crate::kv::{KvError, KvPair, KvStore, KvWrite, WriteBatch};

/// sled's own default tree, which is not one of ours.
const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";

/// The sled store. Clones share one database.
#[derive(Clone)]
pub struct SledKv {
    db: sled::Db,
    /// How `sync` makes the database durable; `None` for a handle that may not sync (a
    /// namespace opened on a bare `sled::Db`, whose owner syncs).
    sync: Option<Arc<SledSync>>,
}

impl core::fmt::Debug for SledKv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SledKv")
            .field("dir", &self.sync.as_ref().map(|s| s.dir().to_path_buf()))
            .finish()
    }
}

impl SledKv {
    /// Opens (or creates) a sled database in directory `dir`. Nothing is assumed durable
    /// until the first [`sync`](KvStore::sync), which fsyncs the files and the directory.
    pub fn open(dir: &Path) -> Result<SledKv, KvError> {
        let db = crate::open_sled(&sled::Config::new().path(dir))
            .map_err(|e| KvError::new("opening the sled database", e))?;
        Ok(SledKv {
            db,
            sync: Some(Arc::new(SledSync::new(dir))),
        })
    }

    /// The store over `db`, made durable by `sync` (shared with the database's log).
    pub(crate) fn from_parts(db: sled::Db, sync: Arc<SledSync>) -> SledKv {
        SledKv {
            db,
            sync: Some(sync),
        }
    }

    /// The sled database underneath.
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// A handle on `db` that reads and commits but refuses to `sync`: its owner syncs.
    pub fn unsynced(db: &sled::Db) -> SledKv {
        SledKv {
            db: db.clone(),
            sync: None,
        }
    }

    /// sled's own flush, without the fsyncs: bounds the memory a long fill holds as dirty
    /// pages (not a durability point).
    pub(crate) fn flush_buffers(&self) -> Result<(), KvError> {
        self.db
            .flush()
            .map(drop)
            .map_err(|e| KvError::new("flushing sled's buffers", e))
    }

    fn tree(&self, name: &str, doing: &'static str) -> Result<sled::Tree, KvError> {
        self.db.open_tree(name).map_err(|e| KvError::new(doing, e))
    }
}

/// Whether a range with these bounds is empty whatever the keys (sled panics on some).
fn empty_bounds(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

impl KvStore for SledKv {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let t = self.tree(tree, "reading a key")?;
        t.get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| KvError::new("reading a key", e))
    }

    fn range(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        if empty_bounds(from, to) {
            return Ok(Vec::new());
        }
        let t = self.tree(tree, "scanning a tree")?;
        let mut out = Vec::new();
        for item in t.range::<&[u8], _>((from, to)).take(limit) {
            let (k, v) = item.map_err(|e| KvError::new("scanning a tree", e))?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError> {
        let t = self.tree(tree, "reading the last key")?;
        t.last()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .map_err(|e| KvError::new("reading the last key", e))
    }

    fn tree_names(&self) -> Result<Vec<String>, KvError> {
        let mut names = Vec::new();
        for raw in self.db.tree_names() {
            if raw.as_ref() == SLED_DEFAULT_TREE {
                continue;
            }
            let Ok(name) = std::str::from_utf8(&raw) else {
                continue;
            };
            if !self.tree(name, "listing trees")?.is_empty() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// One sled transaction over every tree the batch names. A `DropTree` removes the tree's
    /// keys inside the transaction (read just before it): atomic, but as costly as the tree is
    /// large.
    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError> {
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut trees = Vec::new();
        for write in &batch.writes {
            let (KvWrite::Insert { tree, .. }
            | KvWrite::Remove { tree, .. }
            | KvWrite::DropTree { tree }) = write;
            if !index.contains_key(tree.as_str()) {
                index.insert(tree, trees.len());
                trees.push(self.tree(tree, "committing a batch")?);
            }
        }
        if trees.is_empty() {
            return Ok(());
        }
        // For each DropTree (by position): the keys it removes, those stored now and those
        // inserted earlier in this batch.
        let mut dropped: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
        for (position, write) in batch.writes.iter().enumerate() {
            if let KvWrite::DropTree { tree } = write {
                let mut keys = trees[index[tree.as_str()]]
                    .iter()
                    .keys()
                    .map(|k| k.map(|k| k.to_vec()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| KvError::new("committing a batch", e))?;
                keys.extend(batch.writes[..position].iter().filter_map(|w| match w {
                    KvWrite::Insert { tree: t, key, .. } if t == tree => Some(key.clone()),
                    _ => None,
                }));
                dropped.insert(position, keys);
            }
        }
        trees
            .as_slice()
            .transaction(|t| {
                for (position, write) in batch.writes.iter().enumerate() {
                    match write {
                        KvWrite::Insert { tree, key, value } => {
                            t[index[tree.as_str()]].insert(key.as_slice(), value.as_slice())?;
                        }
                        KvWrite::Remove { tree, key } => {
                            t[index[tree.as_str()]].remove(key.as_slice())?;
                        }
                        KvWrite::DropTree { tree } => {
                            for key in dropped.get(&position).into_iter().flatten() {
                                t[index[tree.as_str()]].remove(key.as_slice())?;
                            }
                        }
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| match e {
                TransactionError::Storage(e) => KvError::new("committing a batch", e),
                TransactionError::Abort(()) => {
                    KvError::new("committing a batch", "transaction aborted")
                }
            })
    }

    fn drop_trees(&self, names: &[String]) -> Result<(), KvError> {
        for name in names {
            self.db
                .drop_tree(name.as_bytes())
                .map_err(|e| KvError::new("dropping a tree", e))?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), KvError> {
        match &self.sync {
            Some(sync) => sync.flush(&self.db).map_err(|e| KvError::new("syncing", e)),
            None => Err(KvError::new(
                "syncing",
                "this handle may not sync (SledKv::unsynced); its owner syncs the database",
            )),
        }
    }
}
