//! Snapshot transfer: cutting a snapshot file into chunks, and receiving chunks in order into
//! a verified file ready for `Database::install`.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use libpaxos::Slot;
use serde::{Deserialize, Serialize};

use crate::error::DbError;
use crate::snapshot::{SnapshotInfo, file_name, sync_dir, verify};

/// One piece of a snapshot in transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The snapshot's applied index (identifies the transfer).
    pub applied: Slot,
    /// The snapshot file's total length.
    pub total: u64,
    /// Where these bytes start.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Cuts a snapshot file into chunks for sending.
pub struct SnapshotReader {
    info: SnapshotInfo,
    file: File,
    offset: u64,
    chunk_size: usize,
}

impl SnapshotReader {
    /// Opens a snapshot file for sending in chunks of `chunk_size` bytes.
    pub fn open(info: &SnapshotInfo, chunk_size: usize) -> Result<SnapshotReader, DbError> {
        let file = File::open(&info.path).map_err(|e| DbError::snapshot_io(&info.path, e))?;
        Ok(SnapshotReader {
            info: info.clone(),
            file,
            offset: 0,
            chunk_size: chunk_size.max(1),
        })
    }

    /// The next chunk, or `None` when all have been read.
    pub fn next_chunk(&mut self) -> Result<Option<SnapshotChunk>, DbError> {
        if self.offset >= self.info.len {
            return Ok(None);
        }
        let want = (self.info.len - self.offset).min(self.chunk_size as u64) as usize;
        let mut data = vec![0u8; want];
        self.file
            .read_exact(&mut data)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => DbError::SnapshotTruncated {
                    file: self.info.path.clone(),
                    offset: self.offset,
                },
                _ => DbError::snapshot_io(&self.info.path, e),
            })?;
        let chunk = SnapshotChunk {
            applied: self.info.applied,
            total: self.info.len,
            offset: self.offset,
            data,
        };
        self.offset += want as u64;
        Ok(Some(chunk))
    }
}

/// Receives a snapshot's chunks in order into a temp file, then verifies it.
pub struct SnapshotInstaller {
    dir: PathBuf,
    tmp: PathBuf,
    file: BufWriter<File>,
    applied: Slot,
    total: u64,
    received: u64,
}

impl SnapshotInstaller {
    /// Starts receiving the snapshot at `applied`, `total` bytes long, into `dir`.
    pub fn new(dir: &Path, applied: Slot, total: u64) -> Result<SnapshotInstaller, DbError> {
        let tmp = dir.join(format!(".tmp-recv-{}", file_name(applied)));
        let file = File::create(&tmp).map_err(|e| DbError::snapshot_io(&tmp, e))?;
        Ok(SnapshotInstaller {
            dir: dir.to_path_buf(),
            tmp,
            file: BufWriter::with_capacity(1 << 20, file),
            applied,
            total,
            received: 0,
        })
    }

    /// Bytes received so far (the offset the next chunk must have).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether every byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.received == self.total
    }

    /// Takes the next chunk; it must continue exactly where the last one ended.
    pub fn accept(&mut self, chunk: &SnapshotChunk) -> Result<(), DbError> {
        if chunk.applied != self.applied {
            return Err(DbError::ChunkWrongSnapshot {
                expected: self.applied,
                got: chunk.applied,
            });
        }
        if chunk.offset != self.received {
            return Err(DbError::ChunkOutOfOrder {
                expected: self.received,
                got: chunk.offset,
            });
        }
        if chunk.total != self.total {
            return Err(DbError::ChunkTotalMismatch {
                expected: self.total,
                got: chunk.total,
            });
        }
        let end =
            self.received
                .checked_add(chunk.data.len() as u64)
                .ok_or(DbError::ChunkLength {
                    received: u64::MAX,
                    total: self.total,
                })?;
        if end > self.total {
            return Err(DbError::ChunkLength {
                received: end,
                total: self.total,
            });
        }
        self.file
            .write_all(&chunk.data)
            .map_err(|e| DbError::snapshot_io(&self.tmp, e))?;
        self.received = end;
        Ok(())
    }

    /// Checks that everything arrived, syncs, verifies the file (every record and the
    /// SHA-256 trailer) and moves it into place. Install it with `Database::install`.
    pub fn finish(mut self) -> Result<SnapshotInfo, DbError> {
        if self.received != self.total {
            return Err(DbError::ChunkLength {
                received: self.received,
                total: self.total,
            });
        }
        // On every failure below, dropping `self` removes the temp file.
        self.file
            .flush()
            .map_err(|e| DbError::snapshot_io(&self.tmp, e))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(|e| DbError::snapshot_io(&self.tmp, e))?;
        let info = verify(&self.tmp)?;
        if info.applied != self.applied {
            return Err(DbError::ChunkWrongSnapshot {
                expected: self.applied,
                got: info.applied,
            });
        }
        let path = self.dir.join(file_name(info.applied));
        fs::rename(&self.tmp, &path).map_err(|e| DbError::snapshot_io(&self.tmp, e))?;
        sync_dir(&self.dir)?;
        Ok(SnapshotInfo { path, ..info })
    }
}

impl Drop for SnapshotInstaller {
    /// An abandoned or failed transfer removes its temp file (after a successful `finish` it
    /// has been renamed and there is nothing to remove), so retried transfers cannot fill the
    /// disk with partial snapshots between restarts.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}
