//! [`SledKv`]: the [`KvStore`] on sled, durable against power loss through the same flush and
//! fsyncs as the database (`SledSync`, decision 0201).
//!
//! **sled never gets a large value** (decision 0202). sled 0.34.7 writes a log message whose
//! serialized size exceeds a quarter of a segment (about 128 KiB) to a separate blob file, and
//! its recovery *skips* a log message whose blob file is missing (`LogRead::DanglingBlob`)
//! while applying the rest of the same transaction: a power cut after the log reached the disk
//! but before the blob did tears a transaction, and a lost blob holding a whole consolidated
//! leaf (`BlobNode`) loses a page that its parent still points to (sled then panics: "cannot
//! find pid N in view_for_key"). So every value above [`CHUNK_BYTES`] is split into chunks of
//! at most that size in a companion tree `<tree>.chunks`, in the same sled transaction, and
//! the main tree holds a small header; reads reassemble. Stored values carry a tag byte:
//!
//! - `0xC0` + the value: a value of at most [`CHUNK_BYTES`] bytes, inline;
//! - `0xC1` + chunk count (u32, big-endian) + total length (u64, big-endian): the value is in
//!   `<tree>.chunks` under `len(key) (u16, big-endian) ‖ key ‖ index (u32, big-endian)`,
//!   indexes `0..count`, every chunk [`CHUNK_BYTES`] long but the last. The length prefix makes
//!   a key's chunks exactly the keys between its chunk 0 and its last chunk.
//!
//! With chunks of 2 KiB and keys of at most a few hundred bytes, no item sled writes reaches
//! the blob threshold: a leaf splits above 16 items (node.rs `should_split`) and merges below
//! 4, so a consolidated leaf holds at most about 21 items of at most 2.4 KiB (about 50 KiB);
//! an index node splits above 256 children and merges below 64 (at most about 320 separator
//! keys of at most [`MAX_KEY_BYTES`], about 105 KiB). [`SledSync`] counts blob files it finds
//! (`SyncCounters::blob_files`), which must stay zero.
//!
//! Commits are atomic (one sled transaction over the trees and their chunk trees); a read of a
//! chunked value is two reads (header, then chunks) and is not atomic against a commit of the
//! same key on another thread. The database never does that: applies wait while a snapshot
//! job reads the namespace, and an install fills a generation nobody reads. (A value torn that
//! way would fail its record's CRC.)

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::durable::SledSync;
use crate::kv::{KvError, KvPair, KvStore, KvWrite, WriteBatch};

/// sled's own default tree, which is not one of ours.
const SLED_DEFAULT_TREE: &[u8] = b"__sled__default";

/// Values longer than this are stored in chunks of at most this many bytes (see the module
/// documentation for why, and for the bound it keeps sled's items under).
pub const CHUNK_BYTES: usize = 2048;

/// The longest key a commit writes. sled's index nodes hold up to about 320 separator keys
/// (split above 256 children, merged below 64); keys of at most this size keep one under
/// 320 × (320 + 6 + ~10) bytes ≈ 105 KiB, below sled's blob threshold (~128 KiB). Our keys
/// are at most 256-byte paths (plus 6 bytes in a chunk tree).
pub const MAX_KEY_BYTES: usize = 320;

/// The suffix of a tree's companion chunk tree. Tree names ending with it are refused.
pub const CHUNKS_SUFFIX: &str = ".chunks";

/// Tag of a value stored inline.
const TAG_INLINE: u8 = 0xC0;
/// Tag of a chunked value's header.
const TAG_CHUNKED: u8 = 0xC1;
/// A chunked value's header: tag, chunk count, total length.
const HEADER_LEN: usize = 1 + 4 + 8;

/// The name of `tree`'s chunk tree.
fn chunk_tree_name(tree: &str) -> String {
    format!("{tree}{CHUNKS_SUFFIX}")
}

/// The key of chunk `index` of `key`.
fn chunk_key(key: &[u8], index: u32) -> Result<Vec<u8>, KvError> {
    let len = u16::try_from(key.len()).map_err(|_| {
        KvError::new(
            "committing a batch",
            format!("a key of {} bytes is longer than 65535", key.len()),
        )
    })?;
    let mut out = Vec::with_capacity(2 + key.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&index.to_be_bytes());
    Ok(out)
}

/// How a stored value is kept.
#[derive(Debug, PartialEq, Eq)]
enum Stored<'a> {
    /// The value itself.
    Inline(&'a [u8]),
    /// In `count` chunks, `len` bytes in all.
    Chunked { count: u32, len: u64 },
}

/// Decodes a stored value's tag (and header).
fn stored(bytes: &[u8]) -> Result<Stored<'_>, String> {
    match bytes.split_first() {
        Some((&TAG_INLINE, value)) => Ok(Stored::Inline(value)),
        Some((&TAG_CHUNKED, header)) if bytes.len() == HEADER_LEN => {
            let count = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
            let len = u64::from_be_bytes(header[4..].try_into().expect("8 bytes"));
            let chunk = CHUNK_BYTES as u64;
            // The only counts a commit writes for this length.
            if len <= chunk || u64::from(count) != len.div_ceil(chunk) {
                return Err(format!(
                    "a chunked value's header is inconsistent: {count} chunks for {len} bytes"
                ));
            }
            Ok(Stored::Chunked { count, len })
        }
        Some((&TAG_CHUNKED, _)) => Err(format!(
            "a chunked value's header is {} bytes, not {HEADER_LEN}",
            bytes.len()
        )),
        Some((tag, _)) => Err(format!(
            "a stored value has the unknown tag {tag:#04x} (not written by this format)"
        )),
        None => Err("a stored value is empty (no tag)".to_string()),
    }
}

/// The number of chunks of a stored value (0 for an inline one or a damaged header: the
/// commit that replaces or removes it then removes no chunks, it never fails on it).
fn chunks_of(old: Option<&[u8]>) -> u32 {
    match old.map(stored) {
        Some(Ok(Stored::Chunked { count, .. })) => count,
        _ => 0,
    }
}

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

    /// A handle on `db` that reads and commits but refuses to `sync`: its owner syncs.
    pub fn unsynced(db: &sled::Db) -> SledKv {
        SledKv {
            db: db.clone(),
            sync: None,
        }
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

impl SledKv {
    /// The value `bytes` (as stored under `key` in `tree`) stands for: the inline value, or the
    /// chunks reassembled. A missing, extra or misshapen chunk is an error naming the key.
    fn load(
        &self,
        tree: &str,
        key: &[u8],
        bytes: &[u8],
        doing: &'static str,
    ) -> Result<Vec<u8>, KvError> {
        let damaged = |reason: String| {
            KvError::new(
                doing,
                format!(
                    "tree `{tree}`, key {}: {reason}",
                    crate::store::show_key(key)
                ),
            )
        };
        let (count, len) = match stored(bytes).map_err(damaged)? {
            Stored::Inline(value) => return Ok(value.to_vec()),
            Stored::Chunked { count, len } => (count, len),
        };
        let chunks = self.tree(&chunk_tree_name(tree), doing)?;
        let first = chunk_key(key, 0).map_err(|e| damaged(e.reason))?;
        let last = chunk_key(key, count - 1).map_err(|e| damaged(e.reason))?;
        let mut value = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        let mut next = 0u32;
        for item in chunks.range(first..=last) {
            let (chunk_key, chunk) = item.map_err(|e| KvError::new(doing, e))?;
            let index = u32::from_be_bytes(
                chunk_key[chunk_key.len() - 4..]
                    .try_into()
                    .expect("a chunk key ends with its index"),
            );
            if index != next {
                return Err(damaged(format!("chunk {next} of {count} is missing")));
            }
            let want = if index + 1 == count {
                (len - u64::from(index) * CHUNK_BYTES as u64) as usize
            } else {
                CHUNK_BYTES
            };
            if chunk.len() != want {
                return Err(damaged(format!(
                    "chunk {index} of {count} is {} bytes, not {want}",
                    chunk.len()
                )));
            }
            value.extend_from_slice(&chunk);
            next += 1;
        }
        if next != count {
            return Err(damaged(format!("chunk {next} of {count} is missing")));
        }
        Ok(value)
    }

    /// Drops the chunk trees whose main tree holds no key: left by a crash between the two
    /// drops of [`drop_trees`](KvStore::drop_trees) (garbage, never read). Returns how many.
    pub(crate) fn drop_orphan_chunk_trees(&self) -> Result<usize, KvError> {
        let mut dropped = 0;
        for raw in self.db.tree_names() {
            let Ok(name) = std::str::from_utf8(&raw) else {
                continue;
            };
            let Some(main) = name.strip_suffix(CHUNKS_SUFFIX) else {
                continue;
            };
            if self.tree(main, "listing trees")?.is_empty()
                && !self.tree(name, "listing trees")?.is_empty()
            {
                self.db
                    .drop_tree(name.as_bytes())
                    .map_err(|e| KvError::new("dropping an orphan chunk tree", e))?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// The keys a `DropTree` removes: the tree's, and its chunk tree's.
type DroppedKeys = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The error type of our sled transactions.
type TxError = ConflictableTransactionError<KvError>;

/// Writes `value` under `key` in `main` (inline or in chunks in `chunks`), removing the
/// chunks of the value it replaces that the new one does not overwrite.
fn tx_insert(
    main: &sled::transaction::TransactionalTree,
    chunks: &sled::transaction::TransactionalTree,
    key: &[u8],
    value: &[u8],
) -> Result<(), TxError> {
    let (stored, count) = if value.len() <= CHUNK_BYTES {
        let mut stored = Vec::with_capacity(1 + value.len());
        stored.push(TAG_INLINE);
        stored.extend_from_slice(value);
        (stored, 0)
    } else {
        let count = u32::try_from(value.len().div_ceil(CHUNK_BYTES)).map_err(|_| {
            TxError::Abort(KvError::new(
                "committing a batch",
                format!("a value of {} bytes is too large", value.len()),
            ))
        })?;
        for (index, chunk) in (0..count).zip(value.chunks(CHUNK_BYTES)) {
            chunks.insert(chunk_key(key, index).map_err(TxError::Abort)?, chunk)?;
        }
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.push(TAG_CHUNKED);
        header.extend_from_slice(&count.to_be_bytes());
        header.extend_from_slice(&(value.len() as u64).to_be_bytes());
        (header, count)
    };
    let old = main.insert(key, stored)?;
    // The old value's chunks that the new one did not overwrite.
    tx_remove_chunks(chunks, key, count, chunks_of(old.as_deref()))
}

/// Removes `key` from `main` with its chunks.
fn tx_remove(
    main: &sled::transaction::TransactionalTree,
    chunks: &sled::transaction::TransactionalTree,
    key: &[u8],
) -> Result<(), TxError> {
    let old = main.remove(key)?;
    tx_remove_chunks(chunks, key, 0, chunks_of(old.as_deref()))
}

/// Removes chunks `from..to` of `key`.
fn tx_remove_chunks(
    chunks: &sled::transaction::TransactionalTree,
    key: &[u8],
    from: u32,
    to: u32,
) -> Result<(), TxError> {
    for index in from..to {
        chunks.remove(chunk_key(key, index).map_err(TxError::Abort)?)?;
    }
    Ok(())
}

impl KvStore for SledKv {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let t = self.tree(tree, "reading a key")?;
        let Some(bytes) = t.get(key).map_err(|e| KvError::new("reading a key", e))? else {
            return Ok(None);
        };
        if tree == crate::store::DB_META_TREE
            && key == crate::store::FORMAT_KEY
            && !matches!(bytes.first(), Some(&(TAG_INLINE | TAG_CHUNKED)))
        {
            // The format record of a store of format 2 or older, written before values were
            // tagged: returned as stored, so the format check can name the version it refuses.
            return Ok(Some(bytes.to_vec()));
        }
        self.load(tree, key, &bytes, "reading a key").map(Some)
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
            let value = self.load(tree, &k, &v, "scanning a tree")?;
            out.push((k.to_vec(), value));
        }
        Ok(out)
    }

    /// Keys only: chunked values are not reassembled.
    fn range_keys(
        &self,
        tree: &str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        if empty_bounds(from, to) {
            return Ok(Vec::new());
        }
        let t = self.tree(tree, "scanning a tree's keys")?;
        t.range::<&[u8], _>((from, to))
            .keys()
            .take(limit)
            .map(|k| {
                k.map(|k| k.to_vec())
                    .map_err(|e| KvError::new("scanning a tree's keys", e))
            })
            .collect()
    }

    fn last(&self, tree: &str) -> Result<Option<KvPair>, KvError> {
        let t = self.tree(tree, "reading the last key")?;
        match t
            .last()
            .map_err(|e| KvError::new("reading the last key", e))?
        {
            None => Ok(None),
            Some((k, v)) => {
                let value = self.load(tree, &k, &v, "reading the last key")?;
                Ok(Some((k.to_vec(), value)))
            }
        }
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
            if name.ends_with(CHUNKS_SUFFIX) {
                continue;
            }
            if !self.tree(name, "listing trees")?.is_empty() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// One sled transaction over every tree the batch names and their chunk trees, writes
    /// applied in order (a later write of a key wins). A value above `CHUNK_BYTES` goes to
    /// the chunk tree; the chunks of a replaced or removed value are removed. A `DropTree`
    /// removes the tree's keys and chunks inside the transaction (read just before it):
    /// atomic, but as costly as the tree is large.
    fn commit(&self, batch: &WriteBatch) -> Result<(), KvError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(name) = batch.trees.iter().find(|n| n.ends_with(CHUNKS_SUFFIX)) {
            return Err(KvError::new(
                "committing a batch",
                format!("tree name `{name}` ends with `{CHUNKS_SUFFIX}`, which is reserved"),
            ));
        }
        if let Some(key) = batch.writes.iter().find_map(|w| match w {
            KvWrite::Insert { key, .. } if key.len() > MAX_KEY_BYTES => Some(key),
            _ => None,
        }) {
            return Err(KvError::new(
                "committing a batch",
                format!(
                    "a key of {} bytes is longer than {MAX_KEY_BYTES} (sled could write a blob file)",
                    key.len()
                ),
            ));
        }
        let mut trees = batch
            .trees
            .iter()
            .map(|name| self.tree(name, "committing a batch"))
            .collect::<Result<Vec<_>, _>>()?;
        for name in &batch.trees {
            trees.push(self.tree(&chunk_tree_name(name), "committing a batch")?);
        }
        let count = batch.trees.len();
        // For each DropTree: the keys stored now, and the stored chunk keys (orphans
        // included); keys inserted earlier in the batch are removed with their chunks too.
        let mut dropped: Vec<DroppedKeys> = Vec::new();
        for (position, write) in batch.writes.iter().enumerate() {
            if let KvWrite::DropTree { tree } = write {
                let read = |t: &sled::Tree| {
                    t.iter()
                        .keys()
                        .map(|k| k.map(|k| k.to_vec()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| KvError::new("committing a batch", e))
                };
                let mut keys = read(&trees[*tree])?;
                keys.extend(batch.writes[..position].iter().filter_map(|w| match w {
                    KvWrite::Insert { tree: t, key, .. } if t == tree => Some(key.clone()),
                    _ => None,
                }));
                dropped.push((keys, read(&trees[count + *tree])?));
            }
        }
        trees
            .as_slice()
            .transaction(|t| {
                let (mains, chunks) = t.split_at(count);
                let mut drops = dropped.iter();
                for write in &batch.writes {
                    match write {
                        KvWrite::Insert { tree, key, value } => {
                            tx_insert(&mains[*tree], &chunks[*tree], key, value)?
                        }
                        KvWrite::Remove { tree, key } => {
                            tx_remove(&mains[*tree], &chunks[*tree], key)?
                        }
                        KvWrite::DropTree { tree } => {
                            let (keys, chunk_keys) =
                                drops.next().expect("one key list per DropTree");
                            for key in keys {
                                tx_remove(&mains[*tree], &chunks[*tree], key)?;
                            }
                            for key in chunk_keys {
                                chunks[*tree].remove(key.as_slice())?;
                            }
                        }
                    }
                }
                Ok(())
            })
            .map_err(|e: TransactionError<KvError>| match e {
                TransactionError::Storage(e) => KvError::new("committing a batch", e),
                TransactionError::Abort(e) => e,
            })
    }

    /// Drops each tree, then its chunk tree (a crash between the two leaves an orphan chunk
    /// tree: garbage that is never read, dropped by the next open of the database).
    fn drop_trees(&self, names: &[String]) -> Result<(), KvError> {
        for name in names {
            self.db
                .drop_tree(name.as_bytes())
                .map_err(|e| KvError::new("dropping a tree", e))?;
            self.db
                .drop_tree(chunk_tree_name(name).as_bytes())
                .map_err(|e| KvError::new("dropping a chunk tree", e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("libpaxos-db-sledkv-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn one(tree: &str, key: &[u8], value: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.insert(tree, key, value);
        batch
    }

    #[test]
    fn large_values_are_chunked_and_damage_to_chunks_is_an_error_naming_the_key() {
        let dir = temp("damage");
        let kv = SledKv::open(&dir).expect("open");
        let value: Vec<u8> = (0..5000u32).map(|b| b as u8).collect();
        kv.commit(&one("t", b"k", &value)).expect("commit");
        let main = kv.db.open_tree("t").expect("tree");
        let chunks = kv.db.open_tree("t.chunks").expect("tree");
        assert_eq!(
            main.get(b"k").expect("get").expect("header").len(),
            HEADER_LEN
        );
        assert_eq!(chunks.len(), 3, "5000 bytes in chunks of 2048");
        assert!(
            chunks
                .iter()
                .values()
                .all(|v| v.expect("chunk").len() <= CHUNK_BYTES)
        );
        // A missing chunk.
        let middle = chunk_key(b"k", 1).expect("key");
        let saved = chunks.remove(&middle).expect("remove").expect("chunk 1");
        let err = kv.get("t", b"k").expect_err("missing chunk");
        assert!(err.reason.contains("chunk 1 of 3 is missing"), "{err}");
        assert!(err.reason.contains("tree `t`, key k"), "{err}");
        // A chunk of the wrong size.
        chunks.insert(&middle, &saved[..10]).expect("insert");
        let err = kv.get("t", b"k").expect_err("short chunk");
        assert!(
            err.reason.contains("chunk 1 of 3 is 10 bytes, not 2048"),
            "{err}"
        );
        // A missing last chunk.
        chunks.insert(&middle, saved).expect("insert");
        chunks
            .remove(chunk_key(b"k", 2).expect("key"))
            .expect("remove");
        let err = kv
            .range("t", Bound::Unbounded, Bound::Unbounded, 10)
            .expect_err("range");
        assert!(err.reason.contains("chunk 2 of 3 is missing"), "{err}");
        // An unknown tag, a header that does not add up, an empty value.
        for (bytes, what) in [
            (&b"\x07abc"[..], "unknown tag 0x07"),
            (
                &[TAG_CHUNKED, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0x13, 0x88][..],
                "9 chunks for 5000 bytes",
            ),
            (&[TAG_CHUNKED, 0, 0][..], "header is 3 bytes"),
            (&[][..], "empty"),
        ] {
            main.insert(b"k", bytes).expect("insert");
            let err = kv.get("t", b"k").expect_err("damaged");
            assert!(err.reason.contains(what), "{what}: {err}");
        }
        // A damaged header is replaced without failing (its chunks, if any, stay as garbage).
        kv.commit(&one("t", b"k", b"small")).expect("overwrite");
        assert_eq!(kv.get("t", b"k").expect("get"), Some(b"small".to_vec()));
        drop((kv, main, chunks));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replacing_or_removing_a_chunked_value_removes_its_chunks() {
        let dir = temp("replace");
        let kv = SledKv::open(&dir).expect("open");
        let chunks = kv.db.open_tree("t.chunks").expect("tree");
        kv.commit(&one("t", b"k", &[1; 10_000])).expect("commit");
        assert_eq!(chunks.len(), 5);
        kv.commit(&one("t", b"k", &[2; 4097])).expect("commit");
        assert_eq!(
            chunks.len(),
            3,
            "the two chunks past the new value's end are gone"
        );
        kv.commit(&one("t", b"k", &[3; 100])).expect("commit");
        assert_eq!(chunks.len(), 0, "an inline value has no chunks");
        kv.commit(&one("t", b"k", &[4; 9000])).expect("commit");
        let mut batch = WriteBatch::new();
        batch.remove("t", b"k".as_slice());
        kv.commit(&batch).expect("commit");
        assert_eq!(chunks.len(), 0, "removed with its chunks");
        // Keys that are prefixes of each other keep their chunks apart.
        let mut batch = WriteBatch::new();
        batch.insert("t", b"a".as_slice(), vec![5; 3000]);
        batch.insert("t", b"a\0\0\0\0".as_slice(), vec![6; 3000]);
        batch.insert("t", b"a\0\0\0\x01".as_slice(), vec![7; 5000]);
        kv.commit(&batch).expect("commit");
        assert_eq!(kv.get("t", b"a").expect("get"), Some(vec![5; 3000]));
        assert_eq!(kv.get("t", b"a\0\0\0\0").expect("get"), Some(vec![6; 3000]));
        assert_eq!(
            kv.get("t", b"a\0\0\0\x01").expect("get"),
            Some(vec![7; 5000])
        );
        drop((kv, chunks));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn chunk_trees_are_hidden_reserved_and_dropped_when_orphaned() {
        let dir = temp("hidden");
        let kv = SledKv::open(&dir).expect("open");
        kv.commit(&one("t", b"k", &[1; 10_000])).expect("commit");
        assert_eq!(kv.tree_names().expect("names"), ["t"]);
        let err = kv
            .commit(&one("x.chunks", b"k", b"v"))
            .expect_err("reserved");
        assert!(err.reason.contains("reserved"), "{err}");
        kv.commit(&one("t", &[9; MAX_KEY_BYTES], b"v"))
            .expect("the longest key");
        let err = kv
            .commit(&one("t", &[9; MAX_KEY_BYTES + 1], b"v"))
            .expect_err("too long");
        assert!(
            err.reason.contains("a key of 321 bytes is longer than 320"),
            "{err}"
        );
        let mut batch = WriteBatch::new();
        batch.remove("t", vec![9; MAX_KEY_BYTES]);
        kv.commit(&batch).expect("remove");
        assert_eq!(kv.drop_orphan_chunk_trees().expect("none"), 0);
        // A crash between the two drops of drop_trees: the main tree gone, its chunks left.
        kv.db.drop_tree("t").expect("drop");
        assert!(!kv.db.open_tree("t.chunks").expect("tree").is_empty());
        assert!(kv.tree_names().expect("names").is_empty());
        assert_eq!(kv.drop_orphan_chunk_trees().expect("one"), 1);
        assert!(kv.db.open_tree("t.chunks").expect("tree").is_empty());
        drop(kv);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
