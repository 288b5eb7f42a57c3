//! A workload client host: a real `cldc::Session` on a turmoil UDP socket, running the
//! workload, recording every operation and library event in the history.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cldc::proto::{ContentGeneration, EventMask, InstanceNumber, LockGeneration, OpenMode};
use cldc::{Credentials, Error, Handle, Session, SessionOptions};

use super::env::{NetFaults, SimSocket, true_now};
use super::member::{Cell, USER, USER_SECRET};
use super::{LOCK_DELAY, Shared, Switches, lock, sim_time};
use crate::faults::SplitMix64;
use crate::history::{ClientId, Event, LockMode, Op, OpError, OpResult, Reply, Sequencer};

/// How long a waiting lock may wait before the client gives it up.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Registers client host `name`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn register(
    sim: &mut turmoil::Sim<'_>,
    name: &str,
    client: ClientId,
    cell: Arc<OnceLock<Cell>>,
    net: NetFaults,
    shared: Arc<Shared>,
    switches: Switches,
    seed: u64,
) {
    sim.client(name, async move {
        let Some(cell) = cell.get().cloned() else {
            return Err("the cell config was not written".into());
        };
        let mut c = Client {
            id: client,
            cell,
            net,
            shared,
            switches,
            rng: SplitMix64::new(seed ^ u64::from(client.0).wrapping_mul(0xa076_1d64_78bd_642f)),
            sessions: 0,
        };
        c.run().await;
        Ok(())
    });
}

struct Client {
    id: ClientId,
    cell: Cell,
    net: NetFaults,
    shared: Arc<Shared>,
    switches: Switches,
    rng: SplitMix64,
    sessions: u64,
}

fn now() -> crate::history::SimTime {
    sim_time(true_now())
}

fn to_mode(mode: LockMode) -> cldc::proto::LockMode {
    match mode {
        LockMode::Shared => cldc::proto::LockMode::Shared,
        LockMode::Exclusive => cldc::proto::LockMode::Exclusive,
    }
}

fn from_sequencer(s: &cldc::proto::Sequencer) -> Sequencer {
    Sequencer {
        mode: match s.mode {
            cldc::proto::LockMode::Shared => LockMode::Shared,
            cldc::proto::LockMode::Exclusive => LockMode::Exclusive,
        },
        generation: s.lock_generation.0,
        instance: s.instance.0,
    }
}

/// What the client learned from an error: a definite verdict, or not knowing.
fn outcome(err: &Error) -> OpResult {
    match err {
        Error::NoSuchNode => OpResult::Err(OpError::NoSuchNode),
        Error::Exists => OpResult::Err(OpError::Exists),
        Error::StaleCas => OpResult::Err(OpError::StaleCas),
        Error::LockConflict => OpResult::Err(OpError::LockConflict),
        Error::NotLocked => OpResult::Err(OpError::NotLocked),
        Error::StaleSequencer => OpResult::Err(OpError::StaleSequencer),
        // Refused before anything was proposed.
        Error::BadHandle
        | Error::ModeForbids
        | Error::LockPending
        | Error::Busy
        | Error::QueueFull
        | Error::NotADirectory
        | Error::IsADirectory
        | Error::NoParent
        | Error::BadPath
        | Error::InvalidPath(_)
        | Error::TooLarge => OpResult::Err(OpError::Refused(format!("{err}"))),
        // Timeouts, lost sessions, a master change mid-call: it may have happened.
        _ => OpResult::Unknown,
    }
}

/// Errors no correct cell and client produce: they fail the run.
fn broken(err: &Error) -> bool {
    matches!(
        err,
        Error::ChecksumMismatch
            | Error::UnexpectedReply
            | Error::Internal
            | Error::BadPacket
            | Error::Unrecognized(_)
            | Error::SessionExists
    )
}

fn session_over(err: &Error) -> bool {
    matches!(
        err,
        Error::SessionExpired
            | Error::SessionClosed
            | Error::TaskStopped
            | Error::UnknownSession
            | Error::Io(_)
    )
}

impl Client {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn paused_until(&self) -> Option<Duration> {
        lock(&self.shared.paused_until)
            .get(&self.id)
            .copied()
            .filter(|until| *until > true_now())
    }

    async fn open(&mut self) -> Option<Session> {
        let mut after_stop = 0;
        loop {
            if self.stopping() {
                // The final reads need a session too: keep trying a while.
                after_stop += 1;
                if after_stop > 60 {
                    return None;
                }
            }
            self.sessions += 1;
            let port = 10_000 + (self.sessions % 50_000) as u16;
            let bind = SocketAddr::from(([0, 0, 0, 0], port));
            let socket = match SimSocket::bind(bind, self.net.clone()).await {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let mut seed = [0u8; 32];
            for chunk in seed.chunks_mut(8) {
                chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
            }
            let options = SessionOptions {
                cell_key: Some(self.cell.key),
                call_timeout: Duration::from_secs(4),
                ..SessionOptions::default()
            };
            let credentials = match Credentials::new(USER, USER_SECRET.as_bytes()) {
                Ok(c) => c,
                Err(_) => return None,
            };
            match Session::open_with_socket(
                self.cell.clients.clone(),
                credentials,
                options,
                socket,
                seed,
            )
            .await
            {
                Ok(session) => return Some(session),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100 + self.rng.range(0, 200))).await;
                }
            }
        }
    }

    async fn run(&mut self) {
        while !self.stopping() {
            let Some(session) = self.open().await else {
                lock(&self.shared.client_errors).push(format!(
                    "client {}: no session for the final reads",
                    self.id.0
                ));
                return;
            };
            // The workload's directories (made by whoever gets there first; not recorded).
            let dirs = lock(&self.shared.workload).directories();
            for dir in dirs {
                if let Ok(h) = session
                    .open_node(dir, OpenMode::CREATE | OpenMode::DIRECTORY)
                    .await
                {
                    let _ = h.close().await;
                }
            }
            let expired = Arc::new(AtomicBool::new(false));
            if let Some(mut events) = session.events() {
                let shared = self.shared.clone();
                let id = self.id;
                let expired = expired.clone();
                let ignore_lease = self.switches.client_ignores_lease;
                tokio::spawn(async move {
                    while let Some(event) = events.next().await {
                        let event = match event {
                            cldc::core::SessionEvent::Jeopardy if ignore_lease => continue,
                            cldc::core::SessionEvent::Jeopardy => Event::Jeopardy {},
                            cldc::core::SessionEvent::Safe => Event::Safe {},
                            cldc::core::SessionEvent::Expired => {
                                expired.store(true, Ordering::SeqCst);
                                if ignore_lease {
                                    continue;
                                }
                                Event::Expired {}
                            }
                            cldc::core::SessionEvent::Server(_) => continue,
                        };
                        lock(&shared.workload).observe_event(id, &event);
                        lock(&shared.recorder).event(id, now(), event);
                    }
                });
            }
            let mut handles: BTreeMap<String, Handle> = BTreeMap::new();
            while !self.stopping() && !expired.load(Ordering::SeqCst) {
                if let Some(until) = self.paused_until() {
                    tokio::time::sleep(until.saturating_sub(true_now())).await;
                    continue;
                }
                let planned = lock(&self.shared.workload).next(self.id);
                let id = lock(&self.shared.recorder).invoke(
                    self.id,
                    &planned.path,
                    planned.op.clone(),
                    now(),
                );
                let (result, over) = self
                    .execute(&session, &mut handles, &planned.path, &planned.op)
                    .await;
                if result != OpResult::Unknown {
                    // An unknown outcome stays pending: it may take effect at any time.
                    let _ = lock(&self.shared.recorder).complete(id, result.clone(), now());
                }
                lock(&self.shared.workload).observe(self.id, &planned.path, &planned.op, &result);
                if over {
                    break;
                }
                let granted = matches!((&planned.op, &result), (Op::Lock { .. }, OpResult::Ok(_)));
                // Lock holders mostly sit on their locks: now and then one idles a while,
                // leaving only its keepalives on the wire.
                let think = if granted && self.rng.percent(20) {
                    self.rng.range(1_000, 5_000)
                } else {
                    self.rng.range(0, 30)
                };
                tokio::time::sleep(Duration::from_millis(think)).await;
            }
            if self.stopping() && !expired.load(Ordering::SeqCst) {
                self.final_reads(&session).await;
                return;
            }
            drop(handles);
            drop(session);
        }
        // Stopped between sessions: one more session for the final reads.
        match self.open().await {
            Some(session) => self.final_reads(&session).await,
            None => lock(&self.shared.client_errors).push(format!(
                "client {}: no session for the final reads",
                self.id.0
            )),
        }
    }

    /// Reads every file once more (liveness and durability read-back).
    /// Reads every file once more (durability read-back; liveness after the heal). A session
    /// that ends during them (expired while the client was still looking for a new master)
    /// is replaced once, as an application would; a read the cell never answers, in either
    /// session, is a client error.
    async fn final_reads(&mut self, session: &Session) {
        let files: Vec<String> = lock(&self.shared.workload)
            .paths()
            .into_iter()
            .filter(|p| p.starts_with("/f/"))
            .collect();
        let mut left = self.read_files(session, &files).await;
        if !left.is_empty()
            && let Some(fresh) = self.open().await
        {
            left = self.read_files(&fresh, &left).await;
        }
        for path in left {
            lock(&self.shared.client_errors).push(format!(
                "client {}: final read of {path} got no answer",
                self.id.0
            ));
        }
    }

    /// Reads `files`; returns those whose read got no answer.
    async fn read_files(&mut self, session: &Session, files: &[String]) -> Vec<String> {
        let mut handles = BTreeMap::new();
        let mut left = Vec::new();
        for path in files {
            let op = Op::Get {};
            let id = lock(&self.shared.recorder).invoke(self.id, path, op.clone(), now());
            let (result, _) = self.execute(session, &mut handles, path, &op).await;
            if result == OpResult::Unknown {
                left.push(path.clone());
            } else {
                let _ = lock(&self.shared.recorder).complete(id, result, now());
            }
        }
        left
    }

    async fn handle<'h>(
        &mut self,
        session: &Session,
        handles: &'h mut BTreeMap<String, Handle>,
        path: &str,
        create: bool,
    ) -> Result<&'h Handle, Error> {
        if !handles.contains_key(path) {
            let handle = if path.starts_with("/l/") {
                session
                    .open_node_with_lock_delay(
                        path,
                        OpenMode::LOCK | OpenMode::CREATE,
                        EventMask::NONE,
                        LOCK_DELAY,
                    )
                    .await?
            } else {
                let mut mode = OpenMode::READ | OpenMode::WRITE;
                if create {
                    mode = mode | OpenMode::CREATE;
                }
                session.open_node(path, mode).await?
            };
            handles.insert(path.to_owned(), handle);
        }
        handles.get(path).ok_or(Error::BadHandle)
    }

    /// Runs `op`: what the client learned, and whether the session is over.
    async fn execute(
        &mut self,
        session: &Session,
        handles: &mut BTreeMap<String, Handle>,
        path: &str,
        op: &Op,
    ) -> (OpResult, bool) {
        let result: Result<Reply, Error> = match op {
            Op::Create { exclusive } => {
                let mut mode = OpenMode::READ | OpenMode::WRITE | OpenMode::CREATE;
                if *exclusive {
                    mode = mode | OpenMode::EXCLUSIVE;
                }
                match session.open_node(path, mode).await {
                    Ok(h) => {
                        let generation = h.meta_at_open().content_generation.0;
                        if let Some(old) = handles.insert(path.to_owned(), h) {
                            let _ = old.close().await;
                        }
                        Ok(Reply {
                            generation: Some(generation),
                            ..Reply::default()
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            Op::Get {} => match self.handle(session, handles, path, false).await {
                Ok(h) => h.get().await.map(|c| Reply {
                    data: Some(String::from_utf8_lossy(&c.data).into_owned()),
                    generation: Some(c.meta.content_generation.0),
                    ..Reply::default()
                }),
                Err(e) => Err(e),
            },
            Op::Put { data, cas } => match self.handle(session, handles, path, false).await {
                Ok(h) => {
                    let written = match cas {
                        Some(g) => h.put_if(ContentGeneration(*g), data.as_bytes()).await,
                        None => h.put(data.as_bytes()).await,
                    };
                    written.map(|m| Reply {
                        generation: Some(m.content_generation.0),
                        ..Reply::default()
                    })
                }
                Err(e) => Err(e),
            },
            Op::Delete {} => {
                if let Some(h) = handles.remove(path) {
                    let _ = h.close().await;
                }
                session.delete(path).await.map(|()| Reply::default())
            }
            Op::Lock { mode, wait } => match self.handle(session, handles, path, true).await {
                Ok(h) => {
                    if *wait {
                        match tokio::time::timeout(LOCK_WAIT, h.lock(to_mode(*mode))).await {
                            Ok(r) => r.map(|s| Reply {
                                sequencer: Some(from_sequencer(&s)),
                                ..Reply::default()
                            }),
                            // Given up: a late grant is released at once by the library.
                            Err(_) => Err(Error::Timeout),
                        }
                    } else {
                        h.try_lock(to_mode(*mode)).await.map(|s| Reply {
                            sequencer: Some(from_sequencer(&s)),
                            ..Reply::default()
                        })
                    }
                }
                Err(e) => Err(e),
            },
            Op::Unlock {} => match handles.get(path) {
                Some(h) => h.unlock().await.map(|()| Reply::default()),
                None => Err(Error::BadHandle),
            },
            Op::Close {} => match handles.remove(path) {
                Some(h) => h.close().await.map(|()| Reply::default()),
                None => Err(Error::BadHandle),
            },
            Op::CheckSequencer { sequencer } => {
                let s = cldc::proto::Sequencer {
                    path: path.to_owned(),
                    mode: to_mode(sequencer.mode),
                    lock_generation: LockGeneration(sequencer.generation),
                    instance: InstanceNumber(sequencer.instance),
                };
                session.check_sequencer(&s).await.map(|()| Reply::default())
            }
        };
        match result {
            Ok(reply) => (OpResult::Ok(reply), false),
            Err(err) => {
                if broken(&err) {
                    lock(&self.shared.client_errors).push(format!(
                        "client {} {} {path}: {err}",
                        self.id.0,
                        op.name()
                    ));
                }
                if matches!(err, Error::BadHandle | Error::NoSuchNode) {
                    handles.remove(path);
                }
                (outcome(&err), session_over(&err))
            }
        }
    }
}
