//! Making what sled wrote durable against power loss.
//!
//! sled 0.34.7's `Db::flush` writes its log buffers with `pwrite` and then calls
//! `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` on the range (pagecache/iobuf.rs). That
//! starts and waits for write-back of those pages, but it neither flushes the drive's write
//! cache nor writes the file's metadata (a grown file's size, its extents), so it is not an
//! fsync; sled's own `sync_all` runs only in its background flusher, every 500 ms. Values that
//! do not fit a quarter of a segment go to separate blob files (`blobs/<lsn>`, written by
//! pagecache/blob_io.rs with `create_new` and `write_all`) which sled never fsyncs, nor their
//! directory. sled also renames its page-table snapshots (`snap.<lsn>`) without an fsync of the
//! directory.
//!
//! The database never lets sled write a blob (values are chunked, decision 0202: a blob lost
//! at a power cut tears the transaction that wrote it, whatever we fsync afterwards), and
//! counts any blob file found ([`SyncCounters::blob_files`]).
//!
//! [`SledSync::flush`] therefore does, after sled's flush: fsync every blob file not yet known
//! to be durable and then the `blobs` directory (only when a name was added), fsync the sled
//! directory when its names changed, and `fsync` (`sync_all`) the data file `db` last. Blob
//! files first: sled's durable log may point at a blob only once the blob is durable.
//!
//! A failed flush or fsync is fatal: the error is remembered and every later call returns it
//! without trying again. A retried fsync can report success after the kernel has dropped the
//! dirty pages whose write failed, so the only safe way on is to stop, reopen and recover from
//! what is on disk.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A failed flush or fsync. Fatal: see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "durable sync of {path} failed while {doing}: {reason} (fatal: never retried; restart and recover from disk)"
)]
pub struct SyncError {
    /// The file or directory whose sync failed.
    pub path: PathBuf,
    /// What was being made durable.
    pub doing: &'static str,
    /// The OS's or sled's message.
    pub reason: String,
}

/// Counts of the durability work (syscalls beyond sled's own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Completed durable flushes.
    pub flushes: u64,
    /// fsyncs of files (the data file and blob files).
    pub file_fsyncs: u64,
    /// fsyncs of directories.
    pub dir_fsyncs: u64,
    /// Flushes that failed (each makes the store fatal; later calls fail without syncing).
    pub failures: u64,
    /// sled blob files found by flushes (each counted once). Must stay zero: the database
    /// never hands sled a value large enough for a blob (decision 0202: sled's recovery skips
    /// a log record whose blob is missing, tearing its transaction). The flush still fsyncs
    /// any it finds.
    pub blob_files: u64,
}

struct State {
    /// The data file, opened at the first flush.
    data: Option<File>,
    /// Blob file names known durable (their contents and their name).
    blobs: BTreeSet<std::ffi::OsString>,
    /// The sled directory's names as of its last fsync.
    names: BTreeSet<std::ffi::OsString>,
    /// The first failure, returned again by every later call.
    failed: Option<SyncError>,
    counters: SyncCounters,
}

/// Durable flushes of one sled database directory. Shared by the log store and the database.
pub(crate) struct SledSync {
    dir: PathBuf,
    state: Mutex<State>,
}

fn list(dir: &Path) -> std::io::Result<BTreeSet<std::ffi::OsString>> {
    let mut names = BTreeSet::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                names.insert(entry?.file_name());
            }
            Ok(names)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(names),
        Err(e) => Err(e),
    }
}

/// fsyncs a file or directory by path (Linux syncs the inode, whichever descriptor is used).
pub(crate) fn fsync_path(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

impl SledSync {
    /// For the sled database in `dir`. Nothing is assumed durable yet: the first flush fsyncs
    /// every blob and the directories.
    pub fn new(dir: impl Into<PathBuf>) -> SledSync {
        SledSync {
            dir: dir.into(),
            state: Mutex::new(State {
                data: None,
                blobs: BTreeSet::new(),
                names: BTreeSet::new(),
                failed: None,
                counters: SyncCounters::default(),
            }),
        }
    }

    /// The sled directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The counters.
    pub fn counters(&self) -> SyncCounters {
        self.lock().counters.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state usable (it is only sets and counts).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The failure that made this database fatal, if one did.
    pub fn failed(&self) -> Option<SyncError> {
        self.lock().failed.clone()
    }

    /// sled's flush, then the fsyncs that make it durable against power loss. After a
    /// failure, returns that failure again without doing anything.
    pub fn flush(&self, db: &sled::Db) -> Result<(), SyncError> {
        let mut state = self.lock();
        if let Some(failed) = &state.failed {
            return Err(failed.clone());
        }
        let result = self.flush_locked(db, &mut state);
        match result {
            Ok(()) => state.counters.flushes += 1,
            Err(ref err) => {
                state.counters.failures += 1;
                state.failed = Some(err.clone());
            }
        }
        result
    }

    fn flush_locked(&self, db: &sled::Db, state: &mut State) -> Result<(), SyncError> {
        let fail = |path: &Path, doing: &'static str, reason: &dyn std::fmt::Display| SyncError {
            path: path.to_path_buf(),
            doing,
            reason: reason.to_string(),
        };
        db.flush()
            .map_err(|e| fail(&self.dir, "flushing sled's buffers", &e))?;
        let blob_dir = self.dir.join("blobs");
        let blobs = list(&blob_dir).map_err(|e| fail(&blob_dir, "listing blob files", &e))?;
        let mut added = false;
        for name in blobs.difference(&state.blobs) {
            let path = blob_dir.join(name);
            state.counters.blob_files += 1;
            match fsync_path(&path) {
                Ok(()) => state.counters.file_fsyncs += 1,
                // sled removed it meanwhile (a rewritten page): nothing to make durable.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(&path, "fsyncing a blob file", &e)),
            }
            added = true;
        }
        if added {
            fsync_path(&blob_dir)
                .map_err(|e| fail(&blob_dir, "fsyncing the blob directory", &e))?;
            state.counters.dir_fsyncs += 1;
        }
        // Removed blobs are forgotten, so a reused name is fsynced again.
        state.blobs = blobs;
        let names =
            list(&self.dir).map_err(|e| fail(&self.dir, "listing the sled directory", &e))?;
        if names != state.names {
            fsync_path(&self.dir)
                .map_err(|e| fail(&self.dir, "fsyncing the sled directory", &e))?;
            state.counters.dir_fsyncs += 1;
            state.names = names;
        }
        let path = self.dir.join("db");
        if state.data.is_none() {
            let file =
                File::open(&path).map_err(|e| fail(&path, "opening sled's data file", &e))?;
            state.data = Some(file);
        }
        if let Some(file) = &state.data {
            file.sync_all()
                .map_err(|e| fail(&path, "fsyncing sled's data file", &e))?;
        }
        state.counters.file_fsyncs += 1;
        Ok(())
    }
}

/// fsyncs each directory in `dirs` (in order); for a data directory on first start: a new
/// name is durable only once its parent directory is fsynced.
pub(crate) fn fsync_dirs(dirs: &[&Path]) -> Result<(), SyncError> {
    for dir in dirs {
        fsync_path(dir).map_err(|e| SyncError {
            path: dir.to_path_buf(),
            doing: "fsyncing a directory of the database",
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("libpaxos-db-durable-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_failed_sync_is_returned_again_and_never_retried() {
        let dir = temp("fatal");
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .open()
            .expect("sled");
        // Sync against a directory without sled's data file: opening it for the fsync fails.
        let missing = dir.join("elsewhere");
        std::fs::create_dir_all(&missing).expect("dir");
        let sync = SledSync::new(&missing);
        let first = sync.flush(&db).expect_err("no data file to fsync");
        assert_eq!(first.path, missing.join("db"));
        assert_eq!(first.doing, "opening sled's data file");
        // The cause goes away; the sync is still refused, with the first error, untried.
        std::fs::write(missing.join("db"), b"").expect("create");
        let before = sync.counters();
        assert_eq!(sync.flush(&db), Err(first.clone()));
        let after = sync.counters();
        assert_eq!(after, before, "nothing was tried again");
        assert_eq!(after.failures, 1);
        assert_eq!(sync.failed(), Some(first));
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A sled directory with a data file and a `blobs` entry made by `make_blobs`.
    fn fake_sled(tag: &str, make_blobs: impl FnOnce(&Path)) -> (PathBuf, sled::Db) {
        let dir = temp(tag);
        let db = sled::Config::new()
            .path(dir.join("real"))
            .open()
            .expect("sled");
        let fake = dir.join("fake");
        std::fs::create_dir_all(&fake).expect("dir");
        std::fs::write(fake.join("db"), b"").expect("data file");
        make_blobs(&fake.join("blobs"));
        (dir, db)
    }

    #[test]
    fn a_blob_directory_that_cannot_be_listed_fails_the_flush() {
        // `blobs` is a file: listing it fails with ENOTDIR, which is not "no blobs yet".
        let (dir, db) = fake_sled("unlistable", |blobs| {
            std::fs::write(blobs, b"not a directory").expect("file");
        });
        let err = SledSync::new(dir.join("fake"))
            .flush(&db)
            .expect_err("fails");
        assert_eq!(err.doing, "listing blob files");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_blob_that_cannot_be_fsynced_fails_the_flush_and_one_that_vanished_does_not() {
        // A socket cannot be opened (ENXIO): an fsync failure that must not be ignored.
        let (dir, db) = fake_sled("blob-socket", |blobs| {
            std::fs::create_dir_all(blobs).expect("dir");
            std::os::unix::net::UnixListener::bind(blobs.join("77")).expect("socket");
        });
        let err = SledSync::new(dir.join("fake"))
            .flush(&db)
            .expect_err("fails");
        assert_eq!(err.doing, "fsyncing a blob file");
        let _ = std::fs::remove_dir_all(&dir);
        // A dangling name (sled removed the blob between our listing and the fsync) is skipped.
        let (dir, db) = fake_sled("blob-gone", |blobs| {
            std::fs::create_dir_all(blobs).expect("dir");
            std::os::unix::fs::symlink(blobs.join("nowhere"), blobs.join("78")).expect("link");
        });
        SledSync::new(dir.join("fake"))
            .flush(&db)
            .expect("a vanished blob is nothing to make durable");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_flush_fsyncs_new_blob_files_and_their_directory_once() {
        let dir = temp("blobs");
        let sled_dir = dir.join("sled");
        let db = sled::Config::new().path(&sled_dir).open().expect("sled");
        let sync = SledSync::new(&sled_dir);
        sync.flush(&db).expect("first flush");
        let base = sync.counters();
        // A value far above a quarter of a 512 KiB segment goes to a blob file.
        db.insert(b"big", vec![7u8; 300 * 1024]).expect("insert");
        sync.flush(&db).expect("flush");
        let blobs = std::fs::read_dir(sled_dir.join("blobs"))
            .expect("blobs")
            .count();
        assert!(blobs >= 1, "precondition: sled wrote a blob file");
        let after = sync.counters();
        assert_eq!(after.blob_files - base.blob_files, blobs as u64, "counted");
        assert_eq!(
            after.file_fsyncs - base.file_fsyncs,
            blobs as u64 + 1,
            "each blob and the data file"
        );
        assert!(after.dir_fsyncs > base.dir_fsyncs, "the blob directory");
        // Nothing new: only the data file.
        sync.flush(&db).expect("flush");
        let again = sync.counters();
        assert_eq!(again.file_fsyncs - after.file_fsyncs, 1);
        assert_eq!(again.dir_fsyncs, after.dir_fsyncs);
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
