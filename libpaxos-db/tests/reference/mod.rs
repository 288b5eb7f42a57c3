//! A deliberately simple reference model of the namespace, written from the specification
//! with flat vectors and linear scans, to check the sled state machine against.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use libpaxos::{Epoch, Slot};
use libpaxos_db::lock::Waiter;
use libpaxos_db::{
    Checksum, ClientOp, CmdError, Command, ContentGeneration, Dump, EventKind, EventMask, Handle,
    HandleId, HandleRef, Instance, Limits, LockGeneration, LockMode, LockState, ModeRule, Node,
    NodeKind, Notice, OpenMode, Permission, Reply, Response, Sequencer, Session, SessionId,
    Tombstone, WallTime,
};

/// A lock as (path, exclusive holder, shared holders, queue).
pub type ModelLock = (
    String,
    Option<HandleRef>,
    Vec<HandleRef>,
    Vec<(HandleRef, LockMode)>,
);

pub struct Model {
    pub applied: u64,
    pub epoch: u64,
    pub next_instance: u64,
    pub nodes: Vec<(String, Node, Vec<u8>)>,
    pub sessions: Vec<(SessionId, Session)>,
    /// Ended sessions not yet purged.
    pub tombstones: Vec<(SessionId, Tombstone)>,
    pub handles: Vec<(HandleRef, Handle)>,
    /// path -> (exclusive, shared, queue)
    pub locks: Vec<ModelLock>,
    /// path -> (lock-delay, blocked until), for nodes created with a lock-delay.
    pub lock_delays: BTreeMap<String, (Duration, Option<WallTime>)>,
    pub limits: Limits,
    events: Vec<Notice>,
}

fn parent_of(path: &str) -> Option<String> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/".into() } else { path[..i].into() })
}

fn name_of(path: &str) -> String {
    path[path.rfind('/').map_or(0, |i| i + 1)..].to_string()
}

impl Model {
    pub fn new(limits: Limits) -> Model {
        let root = Node {
            kind: NodeKind::Directory,
            instance: Instance(1),
            content_generation: ContentGeneration(0),
            lock_generation: LockGeneration(0),
            created: Default::default(),
            modified: Default::default(),
            size: 0,
            checksum: Checksum::of(&[]),
            ephemeral_owner: None,
        };
        Model {
            applied: 0,
            epoch: 0,
            next_instance: 2,
            nodes: vec![("/".into(), root, vec![])],
            sessions: vec![],
            tombstones: vec![],
            handles: vec![],
            locks: vec![],
            lock_delays: BTreeMap::new(),
            limits,
            events: vec![],
        }
    }

    fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.0 == path).map(|n| &n.1)
    }

    fn node_mut(&mut self, path: &str) -> Option<&mut (String, Node, Vec<u8>)> {
        self.nodes.iter_mut().find(|n| n.0 == path)
    }

    fn session(&self, s: SessionId) -> Option<&Session> {
        self.sessions.iter().find(|x| x.0 == s).map(|x| &x.1)
    }

    fn session_mut(&mut self, s: SessionId) -> Option<&mut Session> {
        self.sessions
            .iter_mut()
            .find(|x| x.0 == s)
            .map(|x| &mut x.1)
    }

    fn handle(&self, who: HandleRef) -> Option<&Handle> {
        self.handles.iter().find(|x| x.0 == who).map(|x| &x.1)
    }

    /// Handles on `path`, sorted by (session, handle).
    fn handles_on(&self, path: &str) -> Vec<HandleRef> {
        let mut v: Vec<HandleRef> = self
            .handles
            .iter()
            .filter(|h| h.1.path == path)
            .map(|h| h.0)
            .collect();
        v.sort();
        v
    }

    fn tell(&mut self, path: &str, mask: EventMask, event: EventKind, skip: Option<SessionId>) {
        for who in self.handles_on(path) {
            if Some(who.session) == skip {
                continue;
            }
            if self.handle(who).is_some_and(|h| h.events.contains(mask)) {
                self.events.push(Notice {
                    to: who,
                    event: event.clone(),
                });
            }
        }
    }

    pub fn apply_noop(&mut self, epoch: u64) -> (Reply, Vec<Notice>) {
        self.applied += 1;
        self.epoch = self.epoch.max(epoch);
        (Ok(Response::Noop), vec![])
    }

    pub fn apply(&mut self, command: &Command, epoch: u64) -> (Reply, Vec<Notice>) {
        self.applied += 1;
        self.events.clear();
        let reply = if epoch < self.epoch {
            Err(CmdError::StaleEpoch {
                command: epoch,
                current: self.epoch,
            })
        } else {
            match command {
                Command::Noop => Ok(Response::Noop),
                Command::ExpireSession { session, time } => self
                    .end(*session, *time, true)
                    .map(|_| Response::SessionEnded),
                Command::EndLockDelays { time } => {
                    let ended: Vec<String> = self
                        .lock_delays
                        .iter()
                        .filter(|(_, (_, until))| until.is_some_and(|u| u <= *time))
                        .map(|(path, _)| path.clone())
                        .collect();
                    for path in ended {
                        self.promote(&path, *time);
                    }
                    Ok(Response::Noop)
                }
                Command::RestartLockDelays { time } => {
                    for (delay, until) in self.lock_delays.values_mut() {
                        if let Some(u) = until {
                            let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                            *u = (*u).max(WallTime(time.0.saturating_add(ms)));
                        }
                    }
                    Ok(Response::Noop)
                }
                Command::PurgeTombstones { before } => {
                    self.tombstones.retain(|t| t.1.ended_at >= *before);
                    Ok(Response::Noop)
                }
                Command::Client(req) => self.client(req),
            }
        };
        (reply, std::mem::take(&mut self.events))
    }

    fn client(&mut self, req: &libpaxos_db::ClientRequest) -> Reply {
        let sid = req.session;
        if let Some(s) = self.session(sid) {
            if let ClientOp::NewSession { user, keys, .. } = &req.op
                && (*user != s.user || *keys != s.keys)
            {
                return Err(CmdError::SessionExists(sid));
            }
            if req.seq == s.last_seq {
                return s.last_reply.clone();
            }
            if req.seq < s.last_seq {
                return Err(CmdError::RequestTooOld {
                    seq: req.seq,
                    last: s.last_seq,
                });
            }
        }
        if let ClientOp::NewSession { user, lease, keys } = &req.op {
            if user.is_empty() || user.len() > 32 || user.contains('\0') {
                return Err(CmdError::BadUserName);
            }
            if keys.len() != 64 {
                return Err(CmdError::BadSessionKeys { len: keys.len() });
            }
            if self.session(sid).is_some() || self.tombstones.iter().any(|t| t.0 == sid) {
                return Err(CmdError::SessionExists(sid));
            }
            if self.sessions.len() as u64 >= self.limits.max_sessions {
                return Err(CmdError::TooManySessions(self.limits.max_sessions));
            }
            self.sessions.push((
                sid,
                Session {
                    user: user.clone(),
                    lease: *lease,
                    keys: keys.clone(),
                    created: req.time,
                    next_handle: HandleId(1),
                    last_seq: req.seq,
                    last_reply: Ok(Response::SessionCreated),
                },
            ));
            return Ok(Response::SessionCreated);
        }
        if self.session(sid).is_none() {
            return Err(CmdError::UnknownSession(sid));
        }
        let reply = match &req.op {
            ClientOp::NewSession { .. } => unreachable!(),
            ClientOp::EndSession => self
                .end(sid, req.time, false)
                .map(|_| Response::SessionEnded),
            ClientOp::Open { path, mode, events } => {
                self.open(sid, req.time, path, *mode, *events, Duration::ZERO)
            }
            ClientOp::OpenWith {
                path,
                mode,
                events,
                lock_delay,
            } => self.open(sid, req.time, path, *mode, *events, *lock_delay),
            ClientOp::Close { handle } => self.close(
                HandleRef {
                    session: sid,
                    handle: *handle,
                },
                req.time,
            ),
            ClientOp::Put { handle, data, cas } => self.put(
                HandleRef {
                    session: sid,
                    handle: *handle,
                },
                req.time,
                data,
                *cas,
            ),
            ClientOp::Delete { path } => self.delete(path),
            ClientOp::Lock { handle, mode, wait } => self.lock(
                HandleRef {
                    session: sid,
                    handle: *handle,
                },
                *mode,
                *wait,
                req.time,
            ),
            ClientOp::Unlock { handle } => self.unlock(
                HandleRef {
                    session: sid,
                    handle: *handle,
                },
                req.time,
            ),
            ClientOp::CheckSequencer { sequencer } => {
                self.check(sequencer).map(|_| Response::SequencerValid)
            }
            ClientOp::Barrier => {
                let s = self.session_mut(sid).expect("checked");
                s.last_seq = req.seq;
                s.last_reply = Err(CmdError::Barred);
                return Ok(Response::Noop);
            }
        };
        if let Some(s) = self.session_mut(sid) {
            s.last_seq = req.seq;
            s.last_reply = reply.clone();
        }
        reply
    }

    fn open(
        &mut self,
        sid: SessionId,
        time: libpaxos_db::WallTime,
        path: &str,
        mode: OpenMode,
        events: EventMask,
        lock_delay: Duration,
    ) -> Reply {
        libpaxos_db::path::validate(path).map_err(CmdError::BadPath)?;
        let has = |f| mode.contains(f);
        if has(OpenMode::EXCLUSIVE) && !has(OpenMode::CREATE) {
            return Err(CmdError::BadMode(ModeRule::ExclusiveWithoutCreate));
        }
        if has(OpenMode::EPHEMERAL) && !has(OpenMode::CREATE) {
            return Err(CmdError::BadMode(ModeRule::EphemeralWithoutCreate));
        }
        if has(OpenMode::EPHEMERAL) && has(OpenMode::DIRECTORY) {
            return Err(CmdError::BadMode(ModeRule::EphemeralDirectory));
        }
        if has(OpenMode::WRITE) && has(OpenMode::DIRECTORY) {
            return Err(CmdError::BadMode(ModeRule::WriteDirectory));
        }
        if lock_delay > Duration::from_secs(60) {
            return Err(CmdError::LockDelayTooLong {
                max_ms: 60_000,
                got_ms: lock_delay.as_millis() as u64,
            });
        }
        let count = self.handles.iter().filter(|h| h.0.session == sid).count() as u64;
        if count >= self.limits.max_handles_per_session {
            return Err(CmdError::TooManyHandles(
                self.limits.max_handles_per_session,
            ));
        }
        let dir = has(OpenMode::DIRECTORY);
        let (node, created) = if let Some(node) = self.node(path) {
            if has(OpenMode::CREATE) && has(OpenMode::EXCLUSIVE) {
                return Err(CmdError::Exists);
            }
            if dir && node.kind == NodeKind::File {
                return Err(CmdError::NotADirectory);
            }
            if !dir && node.kind == NodeKind::Directory {
                return Err(CmdError::IsADirectory);
            }
            (node.clone(), false)
        } else {
            if !has(OpenMode::CREATE) {
                return Err(CmdError::NoSuchNode);
            }
            let parent = parent_of(path).expect("not root");
            match self.node(&parent) {
                None => return Err(CmdError::ParentMissing),
                Some(p) if p.kind == NodeKind::File => return Err(CmdError::ParentNotDirectory),
                _ => {}
            }
            let node = Node {
                kind: if dir {
                    NodeKind::Directory
                } else {
                    NodeKind::File
                },
                instance: Instance(self.next_instance),
                content_generation: ContentGeneration(0),
                lock_generation: LockGeneration(0),
                created: time,
                modified: time,
                size: 0,
                checksum: Checksum::of(&[]),
                ephemeral_owner: has(OpenMode::EPHEMERAL).then_some(sid),
            };
            self.next_instance += 1;
            self.nodes.push((path.to_string(), node.clone(), vec![]));
            if !lock_delay.is_zero() {
                self.lock_delays
                    .insert(path.to_string(), (lock_delay, None));
            }
            self.tell(
                &parent,
                EventMask::CHILDREN,
                EventKind::ChildAdded {
                    name: name_of(path),
                },
                None,
            );
            (node, true)
        };
        let session = self.session_mut(sid).expect("checked");
        let handle = session.next_handle;
        session.next_handle = HandleId(handle.0 + 1);
        self.handles.push((
            HandleRef {
                session: sid,
                handle,
            },
            Handle {
                path: path.to_string(),
                instance: node.instance,
                mode,
                events,
            },
        ));
        Ok(Response::Opened {
            handle,
            created,
            node,
        })
    }

    fn lookup(&self, who: HandleRef) -> Result<Handle, CmdError> {
        self.handle(who)
            .cloned()
            .ok_or(CmdError::UnknownHandle(who.handle))
    }

    fn close(&mut self, who: HandleRef, time: WallTime) -> Reply {
        let h = self.lookup(who)?;
        self.handles.retain(|x| x.0 != who);
        if self.drop_lock(&h.path, who) {
            self.promote(&h.path, time);
        }
        Ok(Response::Closed)
    }

    fn put(
        &mut self,
        who: HandleRef,
        time: libpaxos_db::WallTime,
        data: &[u8],
        cas: Option<ContentGeneration>,
    ) -> Reply {
        let h = self.lookup(who)?;
        if !h.mode.contains(OpenMode::WRITE) {
            return Err(CmdError::ModeForbids(Permission::Write));
        }
        let limit = self.limits.max_file_size;
        let entry = self.node_mut(&h.path).expect("handles name live nodes");
        if data.len() as u64 > limit {
            return Err(CmdError::FileTooLarge {
                size: data.len() as u64,
                limit,
            });
        }
        if let Some(expected) = cas
            && expected != entry.1.content_generation
        {
            return Err(CmdError::CasConflict {
                expected,
                actual: entry.1.content_generation,
            });
        }
        entry.1.content_generation.0 += 1;
        entry.1.modified = time;
        entry.1.size = data.len() as u32;
        entry.1.checksum = Checksum::of(data);
        entry.2 = data.to_vec();
        let node = entry.1.clone();
        self.tell(
            &h.path,
            EventMask::MODIFIED,
            EventKind::ContentModified,
            None,
        );
        Ok(Response::Written { node })
    }

    fn delete(&mut self, path: &str) -> Reply {
        libpaxos_db::path::validate(path).map_err(CmdError::BadPath)?;
        if path == "/" {
            return Err(CmdError::RootImmutable);
        }
        if self.node(path).is_none() {
            return Err(CmdError::NoSuchNode);
        }
        let prefix = format!("{path}/");
        if self.nodes.iter().any(|n| n.0.starts_with(&prefix)) {
            return Err(CmdError::DirectoryNotEmpty);
        }
        self.remove(path, None);
        Ok(Response::Deleted)
    }

    fn remove(&mut self, path: &str, skip: Option<SessionId>) {
        for who in self.handles_on(path) {
            self.handles.retain(|x| x.0 != who);
            if Some(who.session) != skip {
                self.events.push(Notice {
                    to: who,
                    event: EventKind::NodeDeleted,
                });
            }
        }
        self.locks.retain(|l| l.0 != path);
        self.lock_delays.remove(path);
        self.nodes.retain(|n| n.0 != path);
        let parent = parent_of(path).expect("not root");
        self.tell(
            &parent,
            EventMask::CHILDREN,
            EventKind::ChildRemoved {
                name: name_of(path),
            },
            skip,
        );
    }

    fn end(&mut self, sid: SessionId, time: WallTime, expired: bool) -> Result<(), CmdError> {
        if self.session(sid).is_none() {
            return Err(CmdError::UnknownSession(sid));
        }
        let mut mine: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.1.ephemeral_owner == Some(sid))
            .map(|n| n.0.clone())
            .collect();
        mine.sort();
        for path in mine {
            self.remove(&path, Some(sid));
        }
        let mut hs: Vec<(HandleRef, Handle)> = self
            .handles
            .iter()
            .filter(|h| h.0.session == sid)
            .cloned()
            .collect();
        hs.sort_by_key(|h| h.0);
        let mut touched = BTreeSet::new();
        for (who, h) in hs {
            self.handles.retain(|x| x.0 != who);
            let held = self
                .locks
                .iter()
                .any(|l| l.0 == h.path && (l.1 == Some(who) || l.2.contains(&who)));
            if self.drop_lock(&h.path, who) {
                if expired
                    && held
                    && let Some((delay, until)) = self.lock_delays.get_mut(&h.path)
                {
                    let end = WallTime(time.0 + delay.as_millis() as u64);
                    *until = Some(until.map_or(end, |u| u.max(end)));
                }
                touched.insert(h.path);
            }
        }
        for path in touched {
            self.promote(&path, time);
        }
        let ended = self.session(sid).expect("checked").clone();
        self.sessions.retain(|s| s.0 != sid);
        self.tombstones.push((
            sid,
            Tombstone {
                user: ended.user,
                keys: ended.keys,
                ended_at: time,
            },
        ));
        Ok(())
    }

    fn lock_entry(&mut self, path: &str) -> usize {
        if let Some(i) = self.locks.iter().position(|l| l.0 == path) {
            return i;
        }
        self.locks.push((path.to_string(), None, vec![], vec![]));
        self.locks.len() - 1
    }

    fn gc_locks(&mut self) {
        self.locks
            .retain(|l| l.1.is_some() || !l.2.is_empty() || !l.3.is_empty());
    }

    fn sequencer(&self, path: &str, mode: LockMode) -> Sequencer {
        let node = self.node(path).expect("live");
        Sequencer {
            path: path.to_string(),
            instance: node.instance,
            mode,
            generation: node.lock_generation,
        }
    }

    fn lock(&mut self, who: HandleRef, mode: LockMode, wait: bool, time: WallTime) -> Reply {
        let reply = self.lock_inner(who, mode, wait, time);
        self.gc_locks();
        reply
    }

    fn lock_inner(&mut self, who: HandleRef, mode: LockMode, wait: bool, time: WallTime) -> Reply {
        let h = self.lookup(who)?;
        if !h.mode.contains(OpenMode::LOCK) {
            return Err(CmdError::ModeForbids(Permission::Lock));
        }
        let until = self.lock_delays.get(&h.path).and_then(|d| d.1);
        if until.is_some_and(|u| time >= u) {
            self.promote(&h.path, time);
        }
        let blocked = until.is_some_and(|u| time < u);
        let i = self.lock_entry(&h.path);
        let (_, ex, sh, q) = self.locks[i].clone();
        if ex == Some(who) || sh.contains(&who) {
            return Err(CmdError::AlreadyHeld);
        }
        if q.iter().any(|w| w.0 == who) {
            return Err(CmdError::AlreadyWaiting);
        }
        let free = !blocked
            && q.is_empty()
            && match mode {
                LockMode::Exclusive => ex.is_none() && sh.is_empty(),
                LockMode::Shared => ex.is_none(),
            };
        if free {
            if mode == LockMode::Shared && sh.len() as u64 >= self.limits.max_holders_per_lock {
                return Err(CmdError::TooManyHolders(self.limits.max_holders_per_lock));
            }
            match mode {
                LockMode::Exclusive => {
                    self.locks[i].1 = Some(who);
                    self.node_mut(&h.path).expect("live").1.lock_generation.0 += 1;
                }
                LockMode::Shared => self.locks[i].2.push(who),
            }
            return Ok(Response::Locked {
                sequencer: self.sequencer(&h.path, mode),
            });
        }
        if wait && q.len() as u64 >= self.limits.max_waiters_per_lock {
            return Err(CmdError::TooManyWaiters(self.limits.max_waiters_per_lock));
        }
        let mut holders: Vec<HandleRef> = ex.into_iter().collect();
        if mode == LockMode::Exclusive {
            let mut shared = sh.clone();
            shared.sort();
            holders.extend(shared);
        }
        for holder in holders {
            if self
                .handle(holder)
                .is_some_and(|x| x.events.contains(EventMask::LOCK_CONFLICT))
            {
                self.events.push(Notice {
                    to: holder,
                    event: EventKind::LockConflict,
                });
            }
        }
        if !wait {
            return Err(CmdError::LockConflict);
        }
        self.locks[i].3.push((who, mode));
        Ok(Response::LockQueued)
    }

    fn unlock(&mut self, who: HandleRef, time: WallTime) -> Reply {
        let h = self.lookup(who)?;
        if !h.mode.contains(OpenMode::LOCK) {
            return Err(CmdError::ModeForbids(Permission::Lock));
        }
        if !self.drop_lock(&h.path, who) {
            return Err(CmdError::NotLocked);
        }
        self.promote(&h.path, time);
        Ok(Response::Unlocked)
    }

    fn drop_lock(&mut self, path: &str, who: HandleRef) -> bool {
        let Some(l) = self.locks.iter_mut().find(|l| l.0 == path) else {
            return false;
        };
        let found = if l.1 == Some(who) {
            l.1 = None;
            true
        } else if let Some(i) = l.2.iter().position(|x| *x == who) {
            l.2.remove(i);
            true
        } else if let Some(i) = l.3.iter().position(|x| x.0 == who) {
            l.3.remove(i);
            true
        } else {
            false
        };
        self.gc_locks();
        found
    }

    fn promote(&mut self, path: &str, time: WallTime) {
        if let Some((_, until)) = self.lock_delays.get_mut(path) {
            if until.is_some_and(|u| time < u) {
                return;
            }
            *until = None;
        }
        let Some(i) = self.locks.iter().position(|l| l.0 == path) else {
            return;
        };
        let mut granted = vec![];
        loop {
            let l = &mut self.locks[i];
            let Some(&(who, mode)) = l.3.first() else {
                break;
            };
            let ok = match mode {
                LockMode::Exclusive => l.1.is_none() && l.2.is_empty(),
                LockMode::Shared => {
                    l.1.is_none() && (l.2.len() as u64) < self.limits.max_holders_per_lock
                }
            };
            if !ok {
                break;
            }
            l.3.remove(0);
            match mode {
                LockMode::Exclusive => l.1 = Some(who),
                LockMode::Shared => l.2.push(who),
            }
            if mode == LockMode::Exclusive {
                self.node_mut(path).expect("live").1.lock_generation.0 += 1;
            }
            granted.push((who, mode));
        }
        for (who, mode) in granted {
            let sequencer = self.sequencer(path, mode);
            self.events.push(Notice {
                to: who,
                event: EventKind::LockAcquired { sequencer },
            });
        }
    }

    fn check(&self, s: &Sequencer) -> Result<(), CmdError> {
        let node = self.node(&s.path).ok_or(CmdError::StaleSequencer)?;
        if node.instance != s.instance || node.lock_generation != s.generation {
            return Err(CmdError::StaleSequencer);
        }
        let held = self
            .locks
            .iter()
            .find(|l| l.0 == s.path)
            .is_some_and(|l| match s.mode {
                LockMode::Exclusive => l.1.is_some(),
                LockMode::Shared => !l.2.is_empty(),
            });
        if held {
            Ok(())
        } else {
            Err(CmdError::StaleSequencer)
        }
    }

    fn dump_locks(&self) -> BTreeMap<String, LockState> {
        let mut out = BTreeMap::new();
        for l in &self.locks {
            out.insert(
                l.0.clone(),
                LockState {
                    exclusive: l.1,
                    shared: l.2.iter().copied().collect(),
                    waiters: l
                        .3
                        .iter()
                        .map(|&(who, mode)| Waiter { who, mode })
                        .collect::<VecDeque<_>>(),
                    ..LockState::default()
                },
            );
        }
        for (path, (delay, until)) in &self.lock_delays {
            let lock = out.entry(path.clone()).or_default();
            lock.delay = *delay;
            lock.blocked_until = *until;
        }
        out
    }

    /// How many live sessions `user` has.
    pub fn sessions_of(&self, user: &str) -> usize {
        self.sessions.iter().filter(|s| s.1.user == user).count()
    }

    /// The earliest end of a lock-delay block still recorded.
    pub fn next_lock_delay_end(&self) -> Option<WallTime> {
        self.lock_delays.values().filter_map(|d| d.1).min()
    }

    /// When the oldest tombstone's session ended.
    pub fn oldest_tombstone(&self) -> Option<WallTime> {
        self.tombstones.iter().map(|t| t.1.ended_at).min()
    }

    /// The tombstones in id order.
    pub fn tombstones(&self) -> Vec<(SessionId, Tombstone)> {
        let mut all = self.tombstones.clone();
        all.sort_by_key(|t| t.0);
        all
    }

    /// The model's state in the library's dump form.
    pub fn dump(&self) -> Dump {
        Dump {
            applied: Slot(self.applied),
            epoch: Epoch(self.epoch),
            next_instance: self.next_instance,
            nodes: self
                .nodes
                .iter()
                .map(|n| (n.0.clone(), (n.1.clone(), n.2.clone())))
                .collect(),
            sessions: self.sessions.iter().cloned().collect(),
            handles: self.handles.iter().cloned().collect(),
            locks: self.dump_locks(),
            tombstones: self.tombstones.iter().cloned().collect(),
        }
    }
}
