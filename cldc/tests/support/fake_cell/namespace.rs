//! The fake cell's namespace: executing requests, locks and their waiters, events.

use super::{Holder, Node, Open, State, meta};
use cldc::proto::{
    CellStatus, DirEntry, ErrorCode, Event, EventMask, HandleId, LockMode, NodeFlags, NodeMeta,
    OpenMode, Reply, Request, RequestSeq, Response, Sequencer, SessionId,
};

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

fn conflicts(a: LockMode, b: LockMode) -> bool {
    a == LockMode::Exclusive || b == LockMode::Exclusive
}

impl State {
    fn handle_of(&self, sid: SessionId, h: HandleId) -> Result<&Open, ErrorCode> {
        match self.handles.get(&h) {
            Some(o) if o.session == sid => Ok(o),
            _ => Err(ErrorCode::BadHandle),
        }
    }

    pub(super) fn execute(
        &mut self,
        sid: SessionId,
        req: Request,
    ) -> (Response, Vec<(SessionId, Event)>) {
        let mut events = vec![];
        let r = self.execute_inner(sid, req, &mut events);
        (
            match r {
                Ok(reply) => Response::Ok(reply),
                Err(code) => Response::Err(code),
            },
            events,
        )
    }

    fn watchers(&self, path: &str, mask: EventMask) -> Vec<(SessionId, HandleId)> {
        let mut w: Vec<_> = self
            .handles
            .iter()
            .filter(|(_, o)| o.path == path && o.events.contains(mask))
            .map(|(h, o)| (o.session, *h))
            .collect();
        w.sort();
        w
    }

    fn sequencer(&self, path: &str, mode: LockMode) -> Sequencer {
        let m = &self.nodes[path].meta;
        Sequencer {
            path: path.into(),
            mode,
            lock_generation: m.lock_generation,
            instance: m.instance,
        }
    }

    fn grant(&mut self, path: &str, holder: Holder) -> Sequencer {
        if holder.2 == LockMode::Exclusive
            && let Some(n) = self.nodes.get_mut(path)
        {
            n.meta.lock_generation.0 += 1;
        }
        self.locks
            .entry(path.into())
            .or_default()
            .holders
            .push(holder);
        self.sequencer(path, holder.2)
    }

    fn release(
        &mut self,
        path: &str,
        sid: SessionId,
        h: HandleId,
        events: &mut Vec<(SessionId, Event)>,
    ) -> bool {
        let Some(ls) = self.locks.get_mut(path) else {
            return false;
        };
        let before = ls.holders.len() + ls.queue.len();
        ls.holders.retain(|x| !(x.0 == sid && x.1 == h));
        ls.queue.retain(|x| !(x.0 == sid && x.1 == h));
        let removed = before != ls.holders.len() + ls.queue.len();
        while let Some(ls) = self.locks.get_mut(path) {
            let Some(next) = ls.queue.front().copied() else {
                break;
            };
            if ls.holders.iter().any(|x| conflicts(x.2, next.2)) {
                break;
            }
            ls.queue.pop_front();
            let sequencer = self.grant(path, next);
            events.push((
                next.0,
                Event::LockAcquired {
                    handle: next.1,
                    sequencer,
                },
            ));
        }
        removed
    }

    fn execute_inner(
        &mut self,
        sid: SessionId,
        req: Request,
        events: &mut Vec<(SessionId, Event)>,
    ) -> Result<Reply, ErrorCode> {
        // The fake cell keeps no lock-delays: OpenWith is Open.
        let req = match req {
            Request::OpenWith {
                path, mode, events, ..
            } => Request::Open { path, mode, events },
            other => other,
        };
        match req {
            Request::NewSession => Ok(Reply::SessionCreated { lease: self.lease }),
            Request::EndSession => {
                let mine: Vec<HandleId> = self
                    .handles
                    .iter()
                    .filter(|(_, o)| o.session == sid)
                    .map(|(h, _)| *h)
                    .collect();
                for h in mine {
                    if let Some(o) = self.handles.remove(&h) {
                        self.release(&o.path, sid, h, events);
                    }
                }
                Ok(Reply::SessionEnded)
            }
            Request::Open {
                path,
                mode,
                events: mask,
            } => {
                if !self.nodes.contains_key(&path) {
                    if !mode.contains(OpenMode::CREATE) {
                        return Err(ErrorCode::NoSuchNode);
                    }
                    let p = parent(&path).to_string();
                    match self.nodes.get(&p) {
                        None => return Err(ErrorCode::NoParent),
                        Some(n) if !n.meta.flags.contains(NodeFlags::DIRECTORY) => {
                            return Err(ErrorCode::NotADirectory);
                        }
                        _ => {}
                    }
                    let flags = if mode.contains(OpenMode::DIRECTORY) {
                        NodeFlags::DIRECTORY
                    } else {
                        NodeFlags::NONE
                    };
                    self.next_instance += 1;
                    self.nodes.insert(
                        path.clone(),
                        Node {
                            meta: meta(self.next_instance, flags, &[]),
                            data: vec![],
                        },
                    );
                    let name = path.rsplit('/').next().unwrap_or("").to_string();
                    for (s, h) in self.watchers(&p, EventMask::CHILD_ADDED) {
                        events.push((
                            s,
                            Event::ChildAdded {
                                handle: h,
                                name: name.clone(),
                            },
                        ));
                    }
                } else if mode.contains(OpenMode::CREATE) && mode.contains(OpenMode::EXCLUSIVE) {
                    return Err(ErrorCode::Exists);
                }
                let handle = HandleId(self.next_handle);
                self.next_handle += 1;
                let meta = self.nodes[&path].meta.clone();
                self.handles.insert(
                    handle,
                    Open {
                        session: sid,
                        path,
                        mode,
                        events: mask,
                    },
                );
                Ok(Reply::Opened { handle, meta })
            }
            Request::Close { handle } => {
                let path = self.handle_of(sid, handle)?.path.clone();
                self.handles.remove(&handle);
                self.release(&path, sid, handle, events);
                Ok(Reply::Closed)
            }
            Request::GetContentsAndStat { handle } => {
                let o = self.handle_of(sid, handle)?;
                if !o.mode.contains(OpenMode::READ) {
                    return Err(ErrorCode::ModeForbids);
                }
                let n = self.nodes.get(&o.path).ok_or(ErrorCode::NoSuchNode)?;
                Ok(Reply::Contents {
                    meta: n.meta.clone(),
                    data: n.data.clone(),
                })
            }
            Request::Stat { path } => self
                .nodes
                .get(&path)
                .map(|n| Reply::Stat {
                    meta: n.meta.clone(),
                })
                .ok_or(ErrorCode::NoSuchNode),
            Request::ListDir { path } => {
                if !self.nodes.contains_key(&path) {
                    return Err(ErrorCode::NoSuchNode);
                }
                let prefix = if path == "/" {
                    "/".to_string()
                } else {
                    format!("{path}/")
                };
                let entries = self
                    .nodes
                    .iter()
                    .filter(|(k, _)| {
                        k.starts_with(&prefix)
                            && k.len() > prefix.len()
                            && !k[prefix.len()..].contains('/')
                    })
                    .map(|(k, n)| DirEntry {
                        name: k[prefix.len()..].to_string(),
                        meta: n.meta.clone(),
                    })
                    .collect();
                Ok(Reply::Listing { entries })
            }
            Request::Put { handle, cas, data } => {
                let o = self.handle_of(sid, handle)?;
                if !o.mode.contains(OpenMode::WRITE) {
                    return Err(ErrorCode::ModeForbids);
                }
                let path = o.path.clone();
                let n = self.nodes.get_mut(&path).ok_or(ErrorCode::NoSuchNode)?;
                if cas.is_some_and(|g| g != n.meta.content_generation) {
                    return Err(ErrorCode::StaleCas);
                }
                n.meta.content_generation.0 += 1;
                n.meta.size = data.len() as u32;
                n.meta.checksum = NodeMeta::checksum_of(&data);
                n.data = data;
                let (meta, generation) = (n.meta.clone(), n.meta.content_generation);
                for (s, h) in self.watchers(&path, EventMask::CONTENTS_MODIFIED) {
                    if h != handle {
                        events.push((
                            s,
                            Event::ContentsModified {
                                handle: h,
                                generation,
                            },
                        ));
                    }
                }
                Ok(Reply::Written { meta })
            }
            Request::Delete { path } => {
                if !self.nodes.contains_key(&path) {
                    return Err(ErrorCode::NoSuchNode);
                }
                let prefix = format!("{path}/");
                if self.nodes.keys().any(|k| k.starts_with(&prefix)) {
                    return Err(ErrorCode::DirectoryNotEmpty);
                }
                self.nodes.remove(&path);
                self.locks.remove(&path);
                for (s, h) in self.watchers(&path, EventMask::NONE) {
                    events.push((s, Event::NodeDeleted { handle: h }));
                }
                Ok(Reply::Deleted)
            }
            Request::Lock { handle, mode, wait } => {
                let o = self.handle_of(sid, handle)?;
                if !o.mode.contains(OpenMode::LOCK) {
                    return Err(ErrorCode::ModeForbids);
                }
                let path = o.path.clone();
                let ls = self.locks.entry(path.clone()).or_default();
                if ls.queue.iter().any(|x| x.1 == handle) {
                    return Err(ErrorCode::LockPending);
                }
                let blocked =
                    ls.holders.iter().any(|x| conflicts(x.2, mode)) || !ls.queue.is_empty();
                if !blocked {
                    return Ok(Reply::Locked {
                        sequencer: self.grant(&path, (sid, handle, mode)),
                    });
                }
                if !wait {
                    return Err(ErrorCode::LockConflict);
                }
                ls.queue.push_back((sid, handle, mode));
                Ok(Reply::LockQueued)
            }
            Request::Unlock { handle } => {
                let path = self.handle_of(sid, handle)?.path.clone();
                if self.release(&path, sid, handle, events) {
                    Ok(Reply::Unlocked)
                } else {
                    Err(ErrorCode::NotLocked)
                }
            }
            Request::GetSequencer { handle } => {
                let path = self.handle_of(sid, handle)?.path.clone();
                let held = self.locks.get(&path).and_then(|l| {
                    l.holders
                        .iter()
                        .find(|x| x.0 == sid && x.1 == handle)
                        .copied()
                });
                match held {
                    Some(h) => Ok(Reply::Sequencer {
                        sequencer: self.sequencer(&path, h.2),
                    }),
                    None => Err(ErrorCode::NotLocked),
                }
            }
            Request::CheckSequencer { sequencer } => {
                let current = self.nodes.get(&sequencer.path).is_some_and(|n| {
                    n.meta.instance == sequencer.instance
                        && n.meta.lock_generation == sequencer.lock_generation
                }) && self
                    .locks
                    .get(&sequencer.path)
                    .is_some_and(|l| l.holders.iter().any(|x| x.2 == sequencer.mode));
                if current {
                    Ok(Reply::SequencerValid)
                } else {
                    Err(ErrorCode::StaleSequencer)
                }
            }
            Request::Status => Ok(Reply::Status(CellStatus {
                epoch: self.epoch,
                members: vec![],
                sessions: self.sessions.len() as u64,
                last_request: RequestSeq(0),
                counters: self.status_counters(),
            })),
            Request::OpenWith { .. } => Err(ErrorCode::Internal),
        }
    }
}
