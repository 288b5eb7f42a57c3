//! A FUSE file system for power-loss tests. It holds files and directories in memory and keeps,
//! beside what the programs see, what a disk would hold after a power cut: for each file the
//! contents as of its last fsync, for each directory its names as of its last fsync, and the
//! writes and name changes since then in the order they happened. `power_off` decides what of
//! those unsynced changes survives, in one of three modes, and makes that the new state:
//!
//! - `Mode::Nothing`: nothing unsynced survives;
//! - `Mode::Prefix`: a random prefix of the unsynced changes survives, in order;
//! - `Mode::Subset`: a random subset of unsynced 4 KiB blocks and name changes survives
//!   (torn and reordered writes).
//!
//! A new name or a rename is durable only once its directory is fsynced; a file's contents
//! (and size) once the file is. `sync_file_range` and `close` make nothing durable (with
//! `direct_io` the kernel keeps no page cache for these files, so every write reaches us).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// What survives a power cut of the unsynced changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing that was not fsynced.
    Nothing,
    /// A random prefix of the unsynced changes, in the order they were made.
    Prefix,
    /// A random subset of unsynced blocks and name changes (torn and reordered).
    Subset,
}

const BLOCK: u64 = 4096;

#[derive(Clone, Debug)]
enum Op {
    Write {
        ino: u64,
        offset: u64,
        data: Vec<u8>,
    },
    Truncate {
        ino: u64,
        len: u64,
    },
    Link {
        dir: u64,
        name: OsString,
        ino: u64,
    },
    Unlink {
        dir: u64,
        name: OsString,
    },
    Rename {
        from_dir: u64,
        from: OsString,
        to_dir: u64,
        to: OsString,
        ino: u64,
    },
}

impl Op {
    fn file(&self) -> Option<u64> {
        match self {
            Op::Write { ino, .. } | Op::Truncate { ino, .. } => Some(*ino),
            _ => None,
        }
    }

    fn dirs(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Op::Link { dir, .. } | Op::Unlink { dir, .. } => (Some(*dir), None),
            Op::Rename {
                from_dir, to_dir, ..
            } => (Some(*from_dir), Some(*to_dir)),
            _ => (None, None),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Inode {
    dir: bool,
    data: Vec<u8>,
    durable_data: Vec<u8>,
    entries: BTreeMap<OsString, u64>,
    durable_entries: BTreeMap<OsString, u64>,
}

/// Counts of what the programs asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsCounters {
    /// fsync/fdatasync of files.
    pub fsyncs: u64,
    /// fsync of directories.
    pub dir_fsyncs: u64,
    /// Writes.
    pub writes: u64,
    /// Power cuts.
    pub power_offs: u64,
    /// Unsynced changes dropped by power cuts.
    pub lost_changes: u64,
}

/// The model behind the mount (shared with the test through `CrashFs::state`).
#[derive(Debug)]
pub struct State {
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    pending: Vec<Op>,
    /// Counters.
    pub counters: FsCounters,
}

fn apply(inodes: &mut BTreeMap<u64, Inode>, op: &Op) {
    match op {
        Op::Write { ino, offset, data } => {
            if let Some(inode) = inodes.get_mut(ino) {
                let end = *offset as usize + data.len();
                if inode.durable_data.len() < end {
                    inode.durable_data.resize(end, 0);
                }
                inode.durable_data[*offset as usize..end].copy_from_slice(data);
            }
        }
        Op::Truncate { ino, len } => {
            if let Some(inode) = inodes.get_mut(ino) {
                inode.durable_data.resize(*len as usize, 0);
            }
        }
        Op::Link { dir, name, ino } => {
            if let Some(d) = inodes.get_mut(dir) {
                d.durable_entries.insert(name.clone(), *ino);
            }
        }
        Op::Unlink { dir, name } => {
            if let Some(d) = inodes.get_mut(dir) {
                d.durable_entries.remove(name);
            }
        }
        Op::Rename {
            from_dir,
            from,
            to_dir,
            to,
            ino,
        } => {
            if let Some(d) = inodes.get_mut(from_dir) {
                d.durable_entries.remove(from);
            }
            if let Some(d) = inodes.get_mut(to_dir) {
                d.durable_entries.insert(to.clone(), *ino);
            }
        }
    }
}

/// A small deterministic generator (splitmix64), so a seed reproduces a power cut exactly.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

impl State {
    fn new() -> State {
        let mut inodes = BTreeMap::new();
        inodes.insert(
            1,
            Inode {
                dir: true,
                ..Inode::default()
            },
        );
        State {
            inodes,
            next_ino: 2,
            pending: Vec::new(),
            counters: FsCounters::default(),
        }
    }

    /// Unsynced changes now.
    pub fn unsynced(&self) -> usize {
        self.pending.len()
    }

    /// Cuts the power: decides what of the unsynced changes survives and makes that the state
    /// programs see from now on. Call only while no program uses the mount.
    pub fn power_off(&mut self, mode: Mode, rng: &mut Rng) {
        let pending = std::mem::take(&mut self.pending);
        let before = pending.len();
        let survivors: Vec<Op> = match mode {
            Mode::Nothing => Vec::new(),
            Mode::Prefix => {
                let keep = rng.below(pending.len() as u64 + 1) as usize;
                pending.into_iter().take(keep).collect()
            }
            Mode::Subset => {
                let mut kept = Vec::new();
                for op in pending {
                    match op {
                        Op::Write { ino, offset, data } => {
                            // Split at block boundaries; each piece survives on its own.
                            let mut at = 0usize;
                            while at < data.len() {
                                let pos = offset + at as u64;
                                let room = (BLOCK - pos % BLOCK) as usize;
                                let end = (at + room).min(data.len());
                                if rng.below(2) == 0 {
                                    kept.push(Op::Write {
                                        ino,
                                        offset: pos,
                                        data: data[at..end].to_vec(),
                                    });
                                }
                                at = end;
                            }
                        }
                        other => {
                            if rng.below(2) == 0 {
                                kept.push(other);
                            }
                        }
                    }
                }
                kept
            }
        };
        self.counters.power_offs += 1;
        self.counters.lost_changes += (before.saturating_sub(survivors.len())) as u64;
        for op in &survivors {
            apply(&mut self.inodes, op);
        }
        for inode in self.inodes.values_mut() {
            inode.data = inode.durable_data.clone();
            inode.entries = inode.durable_entries.clone();
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let inode = self.inodes.get(&ino)?;
        let size = inode.data.len() as u64;
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind: if inode.dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if inode.dir { 0o755 } else { 0o644 },
            nlink: if inode.dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let dir = self.inodes.get(&parent).ok_or(Errno::ENOENT)?;
        if !dir.dir {
            return Err(Errno::ENOTDIR);
        }
        dir.entries.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn make(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<u64, Errno> {
        match self.child(parent, name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(e) if e != Errno::ENOENT => return Err(e),
            Err(_) => {}
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                dir,
                ..Inode::default()
            },
        );
        if let Some(d) = self.inodes.get_mut(&parent) {
            d.entries.insert(name.to_os_string(), ino);
        }
        self.pending.push(Op::Link {
            dir: parent,
            name: name.to_os_string(),
            ino,
        });
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        let inode = self.inodes.get(&ino).ok_or(Errno::ENOENT)?;
        if dir && !inode.dir {
            return Err(Errno::ENOTDIR);
        }
        if !dir && inode.dir {
            return Err(Errno::EISDIR);
        }
        if dir && !inode.entries.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        if let Some(d) = self.inodes.get_mut(&parent) {
            d.entries.remove(name);
        }
        self.pending.push(Op::Unlink {
            dir: parent,
            name: name.to_os_string(),
        });
        Ok(())
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let inode = self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if inode.dir {
            return Err(Errno::EISDIR);
        }
        let end = offset as usize + data.len();
        if inode.data.len() < end {
            inode.data.resize(end, 0);
        }
        inode.data[offset as usize..end].copy_from_slice(data);
        self.pending.push(Op::Write {
            ino,
            offset,
            data: data.to_vec(),
        });
        self.counters.writes += 1;
        Ok(())
    }

    fn fsync_file(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.durable_data = inode.data.clone();
        }
        self.pending.retain(|op| op.file() != Some(ino));
        self.counters.fsyncs += 1;
    }

    fn fsync_dir(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.durable_entries = inode.entries.clone();
        }
        // A rename into or out of this directory is durable with it (the other side, when in
        // another directory, follows its own fsync; the programs tested rename within one).
        self.pending.retain(|op| {
            let (a, b) = op.dirs();
            a != Some(ino) && b != Some(ino)
        });
        self.counters.dir_fsyncs += 1;
    }
}

/// The file system served over FUSE.
pub struct CrashFs {
    state: Arc<Mutex<State>>,
}

/// Locks the model (a panic in a handler leaves it usable).
pub fn lock(state: &Arc<Mutex<State>>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

const TTL: Duration = Duration::ZERO;

impl CrashFs {
    /// An empty file system and the handle the test keeps to cut its power.
    pub fn new() -> (CrashFs, Arc<Mutex<State>>) {
        let state = Arc::new(Mutex::new(State::new()));
        (
            CrashFs {
                state: state.clone(),
            },
            state,
        )
    }

    /// A file system over an existing model (to mount again after a power cut).
    pub fn with_state(state: Arc<Mutex<State>>) -> CrashFs {
        CrashFs { state }
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Filesystem for CrashFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = self.st();
        match st
            .child(parent.0, name)
            .and_then(|ino| st.attr(ino).ok_or(Errno::ENOENT))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.st().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.st();
        if let Some(len) = size {
            match st.inodes.get_mut(&ino.0) {
                Some(inode) if !inode.dir => inode.data.resize(len as usize, 0),
                Some(_) => return reply.error(Errno::EISDIR),
                None => return reply.error(Errno::ENOENT),
            }
            st.pending.push(Op::Truncate { ino: ino.0, len });
        }
        match st.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        match st.make(parent.0, name, true) {
            Ok(ino) => match st.attr(ino) {
                Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
                None => reply.error(Errno::EIO),
            },
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.st().remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.st().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        let ino = match st.child(parent.0, name) {
            Ok(ino) => ino,
            Err(e) => return reply.error(e),
        };
        match st.child(newparent.0, newname) {
            Ok(_) if flags.contains(RenameFlags::RENAME_NOREPLACE) => {
                return reply.error(Errno::EEXIST);
            }
            Ok(target) if st.inodes.get(&target).is_some_and(|t| t.dir) => {
                return reply.error(Errno::EISDIR);
            }
            Err(e) if e != Errno::ENOENT => return reply.error(e),
            _ => {}
        }
        if let Some(d) = st.inodes.get_mut(&parent.0) {
            d.entries.remove(name);
        }
        if let Some(d) = st.inodes.get_mut(&newparent.0) {
            d.entries.insert(newname.to_os_string(), ino);
        }
        st.pending.push(Op::Rename {
            from_dir: parent.0,
            from: name.to_os_string(),
            to_dir: newparent.0,
            to: newname.to_os_string(),
            ino,
        });
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.st().inodes.contains_key(&ino.0) {
            reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.st();
        match st.inodes.get(&ino.0) {
            Some(inode) if !inode.dir => {
                let start = (offset as usize).min(inode.data.len());
                let end = (start + size as usize).min(inode.data.len());
                reply.data(&inode.data[start..end]);
            }
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.st().write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        if st.inodes.get(&ino.0).is_some_and(|i| i.dir) {
            st.fsync_dir(ino.0);
        } else {
            st.fsync_file(ino.0);
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.st().inodes.get(&ino.0) {
            Some(inode) if inode.dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.st();
        let Some(dir) = st.inodes.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, child) in &dir.entries {
            let kind = if st.inodes.get(child).is_some_and(|c| c.dir) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            all.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.st().fsync_dir(ino.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            1 << 24,
            1 << 23,
            1 << 23,
            1 << 20,
            1 << 19,
            BLOCK as u32,
            255,
            BLOCK as u32,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.st();
        match st.make(parent.0, name, false) {
            Ok(ino) => match st.attr(ino) {
                Some(attr) => reply.created(
                    &TTL,
                    &attr,
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_DIRECT_IO,
                ),
                None => reply.error(Errno::EIO),
            },
            Err(e) => reply.error(e),
        }
    }
}

/// Why the file system could not be mounted (the test then skips, loudly).
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse does not exist".into());
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join("fusermount3").exists()));
    if !found {
        return Some(
            "fusermount3 is not installed (scripts/install-test-deps.sh installs fuse3)".into(),
        );
    }
    None
}

/// Unmounts the crashfs mounts that test processes killed earlier left behind (a killed
/// process never drops its [`fuser::BackgroundSession`], so its mount stays, dead, until
/// unmounted), and removes their temporary directories. Mounts of live processes are left
/// alone. Returns how many were unmounted.
pub fn sweep_stale_mounts() -> usize {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return 0;
    };
    let mut swept = 0;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some("crashfs"), Some(target), Some(fstype)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !fstype.starts_with("fuse") {
            continue;
        }
        // The mount point lies in a test's temporary directory, named
        // `libpaxos-db-TAG-PID-N` (tests/common's TempDir).
        let target = Path::new(target);
        let Some(dir) = target.ancestors().find(|a| {
            a.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libpaxos-db-"))
        }) else {
            continue;
        };
        let pid = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('-').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let unmounted = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(target)
            .status()
            .is_ok_and(|s| s.success());
        if unmounted {
            swept += 1;
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    swept
}

/// Unmounts a mount of this process and waits for its thread. When the kernel refuses
/// (busy: a file of a killed child still open), the mount is detached lazily instead, so no
/// run leaves a mount behind.
pub fn unmount(session: fuser::BackgroundSession, mountpoint: &Path) {
    if session.umount_and_join().is_err() {
        let _ = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg("-z")
            .arg(mountpoint)
            .status();
    }
}

/// Mounts `fs` at `mountpoint` (serving it on a background thread until dropped).
pub fn mount(fs: CrashFs, mountpoint: &Path) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("crashfs".into())];
    fuser::spawn_mount(fs, mountpoint, &config)
}
