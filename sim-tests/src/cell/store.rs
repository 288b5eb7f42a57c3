//! The members' store: [`MemKv`], which loses what was not synced when its host loses power,
//! and a lying variant for the "acknowledged before the fsync" bug switch.

use std::ops::Bound;

use libpaxos_db::kv::KvPair;
use libpaxos_db::{KvError, KvStore, MemKv, WriteBatch};

/// A member's store in the simulation.
#[derive(Clone, Debug)]
pub struct SimKv {
    kv: MemKv,
    /// `sync` returns at once without making anything durable (the bug sled's `flush()` had
    /// before decision 0201: acknowledgements went out before the data was on disk).
    lying: bool,
}

impl SimKv {
    /// `kv`, honest or lying about its syncs.
    pub fn new(kv: MemKv, lying: bool) -> SimKv {
        SimKv { kv, lying }
    }
}

impl KvStore for SimKv {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.kv.get(tree, key)
    }

    fn range(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        self.kv.range(tree, from, to, limit)
    }

    fn range_keys(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        self.kv.range_keys(tree, from, to, limit)
    }

    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError> {
        self.kv.last(tree)
    }

    fn tree_names(&self) -> Result<Vec<String>, KvError> {
        self.kv.tree_names()
    }

    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError> {
        self.kv.commit(batch)
    }

    fn drop_trees(&self, names: &[String]) -> Result<(), KvError> {
        self.kv.drop_trees(names)
    }

    fn sync(&self) -> Result<(), KvError> {
        if self.lying {
            return Ok(());
        }
        self.kv.sync()
    }
}
