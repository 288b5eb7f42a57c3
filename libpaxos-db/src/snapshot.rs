//! Snapshot files: writing, verifying, reading back, and chunked transfer.
//!
//! Format (all integers little-endian):
//! ```text
//! magic "CLDSNAP1" (8) | version u32 = 2 | applied index u64 | epoch u64
//! record* : length u32 (1..=1 MiB) | postcard (tree u8, key bytes, value bytes)
//! end     : length u32 = 0 | record count u64
//! trailer : SHA-256 of every byte before it (32)
//! ```
//! Records are the namespace trees' raw key/value pairs in canonical order (trees in
//! `TreeTag` order, keys in sled order), so installing a snapshot reproduces the namespace
//! byte for byte.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use libpaxos::{Epoch, Slot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::DbError;
use crate::kv::KvStore;
use crate::namespace::Namespace;
use crate::sled_kv::SledKv;
use crate::store::{self, NsTrees, TreeTag};

/// The first 8 bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"CLDSNAP1";
/// The format version written (2: session keys, tombstones tree, lock-delay fields).
pub const VERSION: u32 = 2;
/// The largest record accepted.
pub const MAX_RECORD: u32 = 1024 * 1024;
const HEADER_LEN: u64 = 8 + 4 + 8 + 8;

/// What a snapshot file's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The file.
    pub path: PathBuf,
    /// The namespace's applied index it captures.
    pub applied: Slot,
    /// The namespace's epoch then.
    pub epoch: Epoch,
    /// The file's length in bytes.
    pub len: u64,
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    tree: u8,
    #[serde(borrow)]
    key: &'a [u8],
    #[serde(borrow)]
    value: &'a [u8],
}

/// The file name of the snapshot at `applied`.
pub fn file_name(applied: Slot) -> String {
    format!("snapshot-{:020}.cld", applied.0)
}

fn parse_file_name(name: &str) -> Option<Slot> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".cld")?;
    digits.parse().ok().map(Slot)
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }
}

/// Writes a snapshot of `ns` into `dir` (temp file, fsync, rename, fsync of the directory).
pub fn write<K: KvStore>(ns: &Namespace<K>, dir: &Path) -> Result<SnapshotInfo, DbError> {
    write_trees(ns.trees(), ns.applied(), ns.epoch(), dir)
}

/// A snapshot to be written, possibly on another thread, while nothing is applied to the
/// namespace (see `DbReplica::set_background_snapshots`). It holds handles to the namespace
/// trees, not a copy: applying while it runs would make the snapshot inconsistent.
pub struct SnapshotJob<K: KvStore = SledKv> {
    trees: NsTrees<K>,
    applied: Slot,
    epoch: Epoch,
    dir: PathBuf,
}

impl<K: KvStore> core::fmt::Debug for SnapshotJob<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SnapshotJob")
            .field("applied", &self.applied)
            .field("dir", &self.dir)
            .finish()
    }
}

impl<K: KvStore> SnapshotJob<K> {
    pub(crate) fn new(ns: &Namespace<K>, dir: &Path) -> SnapshotJob<K> {
        SnapshotJob {
            trees: ns.trees().clone(),
            applied: ns.applied(),
            epoch: ns.epoch(),
            dir: dir.to_path_buf(),
        }
    }

    /// The applied index the snapshot captures.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// Writes the snapshot file (the slow part: run it off the replica loop).
    pub fn run(self) -> Result<SnapshotInfo, DbError> {
        write_trees(&self.trees, self.applied, self.epoch, &self.dir)
    }
}

fn write_trees<K: KvStore>(
    trees: &NsTrees<K>,
    applied: Slot,
    epoch: Epoch,
    dir: &Path,
) -> Result<SnapshotInfo, DbError> {
    let tmp = dir.join(format!(".tmp-{}", file_name(applied)));
    let written = write_file(trees, applied, epoch, dir, &tmp);
    if written.is_err() {
        // A partial file on a full disk would only make it fuller until the next open.
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn write_file<K: KvStore>(
    trees: &NsTrees<K>,
    applied: Slot,
    epoch: Epoch,
    dir: &Path,
    tmp: &Path,
) -> Result<SnapshotInfo, DbError> {
    let path = dir.join(file_name(applied));
    let fail = |e: std::io::Error| DbError::snapshot_io(tmp, e);
    let file = File::create(tmp).map_err(fail)?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
    };
    out.put(MAGIC).map_err(fail)?;
    out.put(&VERSION.to_le_bytes()).map_err(fail)?;
    out.put(&applied.0.to_le_bytes()).map_err(fail)?;
    out.put(&epoch.0.to_le_bytes()).map_err(fail)?;
    let mut count: u64 = 0;
    let mut buf = Vec::new();
    for tag in TreeTag::ALL {
        trees.for_each(tag, "reading for a snapshot", |key, value| {
            buf.clear();
            let record = Record {
                tree: tag as u8,
                key,
                value,
            };
            buf = postcard::to_extend(&record, std::mem::take(&mut buf))
                .map_err(|e| DbError::snapshot_io(tmp, e))?;
            if buf.len() > MAX_RECORD as usize {
                return Err(DbError::SnapshotRecordTooLarge {
                    tree: store::tree_name(trees.generation, tag),
                    key: store::show_key(key),
                    len: buf.len(),
                });
            }
            out.put(&(buf.len() as u32).to_le_bytes()).map_err(fail)?;
            out.put(&buf).map_err(fail)?;
            count += 1;
            Ok(())
        })?;
    }
    out.put(&0u32.to_le_bytes()).map_err(fail)?;
    out.put(&count.to_le_bytes()).map_err(fail)?;
    let digest = out.hasher.finalize();
    let mut writer = out.inner;
    writer.write_all(&digest).map_err(fail)?;
    let file = writer.into_inner().map_err(|e| fail(e.into_error()))?;
    file.sync_all().map_err(fail)?;
    let len = file.metadata().map_err(fail)?.len();
    drop(file);
    fs::rename(tmp, &path).map_err(fail)?;
    sync_dir(dir)?;
    Ok(SnapshotInfo {
        path,
        applied,
        epoch,
        len,
    })
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), DbError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DbError::snapshot_io(dir, e))
}

/// Reads a snapshot file record by record, hashing as it goes.
pub(crate) struct SnapshotFile {
    path: PathBuf,
    input: BufReader<File>,
    hasher: Sha256,
    offset: u64,
    len: u64,
    records: u64,
    /// The header.
    pub info: SnapshotInfo,
    buf: Vec<u8>,
}

/// One record read back.
pub(crate) struct RawRecord {
    pub offset: u64,
    pub tag: TreeTag,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl SnapshotFile {
    /// Opens a file and checks its header.
    pub fn open(path: &Path) -> Result<SnapshotFile, DbError> {
        let file = File::open(path).map_err(|e| DbError::snapshot_io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| DbError::snapshot_io(path, e))?
            .len();
        let mut reader = SnapshotFile {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            offset: 0,
            len,
            records: 0,
            info: SnapshotInfo {
                path: path.to_path_buf(),
                applied: Slot::ZERO,
                epoch: Epoch(0),
                len,
            },
            buf: Vec::new(),
        };
        let mut header = [0u8; HEADER_LEN as usize];
        reader.fill(&mut header)?;
        if &header[..8] != MAGIC {
            return Err(DbError::SnapshotMagic {
                file: path.to_path_buf(),
            });
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if version != VERSION {
            return Err(DbError::SnapshotVersion {
                file: path.to_path_buf(),
                version,
            });
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&header[12..20]);
        reader.info.applied = Slot(u64::from_le_bytes(word));
        word.copy_from_slice(&header[20..28]);
        reader.info.epoch = Epoch(u64::from_le_bytes(word));
        Ok(reader)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), DbError> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.hasher.update(&*buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(DbError::SnapshotTruncated {
                    file: self.path.clone(),
                    offset: self.len,
                })
            }
            Err(e) => Err(DbError::snapshot_io(&self.path, e)),
        }
    }

    fn bad(&self, offset: u64, reason: impl Into<String>) -> DbError {
        DbError::SnapshotRecord {
            file: self.path.clone(),
            offset,
            reason: reason.into(),
        }
    }

    /// The next record, or `None` at the end marker (after which the trailer is checked).
    pub fn next_record(&mut self) -> Result<Option<RawRecord>, DbError> {
        let start = self.offset;
        let mut word = [0u8; 4];
        self.fill(&mut word)?;
        let length = u32::from_le_bytes(word);
        if length == 0 {
            self.finish()?;
            return Ok(None);
        }
        if length > MAX_RECORD {
            return Err(self.bad(start, format!("record length {length} exceeds 1 MiB")));
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(length as usize, 0);
        self.fill(&mut buf)?;
        let record: Record<'_> = postcard::from_bytes(&buf)
            .map_err(|e| self.bad(start, format!("record does not decode: {e}")))?;
        let tag = TreeTag::from_u8(record.tree)
            .ok_or_else(|| self.bad(start, format!("unknown tree tag {}", record.tree)))?;
        store::validate_record(tag, record.key, record.value).map_err(|e| {
            self.bad(
                start,
                format!("{} record {}: {e}", tag.name(), store::show_key(record.key)),
            )
        })?;
        let raw = RawRecord {
            offset: start,
            tag,
            key: record.key.to_vec(),
            value: record.value.to_vec(),
        };
        self.buf = buf;
        self.records += 1;
        Ok(Some(raw))
    }

    fn finish(&mut self) -> Result<(), DbError> {
        let count_at = self.offset;
        let mut word = [0u8; 8];
        self.fill(&mut word)?;
        let count = u64::from_le_bytes(word);
        if count != self.records {
            return Err(self.bad(
                count_at,
                format!(
                    "trailer counts {count} records, the file has {}",
                    self.records
                ),
            ));
        }
        let computed = std::mem::take(&mut self.hasher).finalize();
        let mut stored = [0u8; 32];
        match self.input.read_exact(&mut stored) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(DbError::SnapshotTruncated {
                    file: self.path.clone(),
                    offset: self.len,
                });
            }
            Err(e) => return Err(DbError::snapshot_io(&self.path, e)),
        }
        self.offset += 32;
        if computed.as_slice() != stored {
            return Err(DbError::SnapshotChecksum {
                file: self.path.clone(),
                index: self.info.applied,
            });
        }
        if self.offset != self.len {
            return Err(self.bad(self.offset, "bytes after the trailer"));
        }
        Ok(())
    }
}

/// Reads a whole snapshot file and checks every record and the trailer.
pub fn verify(path: &Path) -> Result<SnapshotInfo, DbError> {
    let mut file = SnapshotFile::open(path)?;
    while file.next_record()?.is_some() {}
    Ok(file.info)
}

/// The newest complete snapshot file in `dir` (by name; not verified), removing leftover
/// temp files of interrupted writes.
pub fn latest(dir: &Path) -> Result<Option<(Slot, PathBuf)>, DbError> {
    let mut best: Option<(Slot, PathBuf)> = None;
    let entries = fs::read_dir(dir).map_err(|e| DbError::snapshot_io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DbError::snapshot_io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(".tmp-") {
            fs::remove_file(entry.path()).map_err(|e| DbError::snapshot_io(&entry.path(), e))?;
            continue;
        }
        if let Some(slot) = parse_file_name(name)
            && best.as_ref().is_none_or(|(b, _)| slot > *b)
        {
            best = Some((slot, entry.path()));
        }
    }
    Ok(best)
}

/// Deletes all but the `keep` newest snapshot files in `dir`.
pub fn prune(dir: &Path, keep: usize) -> Result<(), DbError> {
    let mut all: Vec<(Slot, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DbError::snapshot_io(dir, e))? {
        let entry = entry.map_err(|e| DbError::snapshot_io(dir, e))?;
        if let Some(slot) = entry.file_name().to_str().and_then(parse_file_name) {
            all.push((slot, entry.path()));
        }
    }
    all.sort();
    let excess = all.len().saturating_sub(keep);
    for (_, path) in all.into_iter().take(excess) {
        fs::remove_file(&path).map_err(|e| DbError::snapshot_io(&path, e))?;
    }
    Ok(())
}

/// Deletes all but the `keep` newest set-aside `corrupt-snapshot-<index>.cld` files in `dir`
/// (newest by index; names that do not parse count as oldest). Returns how many were removed
/// and how many removals failed.
pub fn prune_corrupt(dir: &Path, keep: usize) -> Result<(u64, u64), DbError> {
    let mut all: Vec<(Option<Slot>, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DbError::snapshot_io(dir, e))? {
        let entry = entry.map_err(|e| DbError::snapshot_io(dir, e))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("corrupt-")) else {
            continue;
        };
        all.push((parse_file_name(rest), entry.path()));
    }
    all.sort();
    let excess = all.len().saturating_sub(keep);
    let (mut removed, mut failed) = (0, 0);
    for (_, path) in all.into_iter().take(excess) {
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(_) => failed += 1,
        }
    }
    Ok((removed, failed))
}
