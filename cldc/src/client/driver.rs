//! The background task that owns the socket, the timers and the session core.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Stats;
use super::socket::ClientSocket;
use crate::core::{CallError, CallId, Output, Session as Core, SessionEvent, State, Time};
use crate::proto::{Event, HandleId, LockGeneration, Reply, Request, Sequencer, SessionId};

/// A reply channel for one call.
pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, CallError>>;
/// The reply channel of the session's creation: the reply and the session id the cell chose.
pub(crate) type OpenTx = oneshot::Sender<Result<(Reply, SessionId), CallError>>;

/// What the API sends the driver.
pub(crate) enum Command {
    /// Run a request.
    Call(Request, ReplyTx),
    /// Run a waiting `Lock`; the reply is the sequencer, after the grant event if queued.
    Lock(Request, HandleId, ReplyTx),
}

enum Pending {
    Plain(ReplyTx),
    Lock(HandleId, ReplyTx),
    /// A `GetSequencer` the driver sent itself after a fail-over, for a waiting lock.
    Recheck(HandleId),
    /// An `Unlock` the driver sent itself for a grant nobody waits for any more.
    Release,
}

pub(crate) struct Driver<S: ClientSocket> {
    pub(crate) core: Core,
    pub(crate) socket: S,
    pub(crate) start: Instant,
    pub(crate) commands: mpsc::Receiver<Command>,
    /// `None` once the session is over, so that [`super::Events::next`] ends.
    pub(crate) events: Option<mpsc::Sender<SessionEvent>>,
    pub(crate) stats: Arc<Mutex<Stats>>,
    pub(crate) opened: Option<OpenTx>,
    // Ordered maps: the fail-over recheck sends one request per waiting lock, and the order
    // of those requests must not depend on hashing (deterministic simulation).
    pending: BTreeMap<CallId, Pending>,
    waiting_locks: BTreeMap<HandleId, ReplyTx>,
    early_grants: BTreeMap<HandleId, Sequencer>,
    /// Per handle, the newest lock generation this session has been granted (and seen).
    /// A `LockAcquired` at or below it is a re-sent old grant, not the answer to a lock
    /// call made since: events are delivered once per master epoch, and a new master
    /// re-sends those it has no acknowledgement for.
    granted: BTreeMap<HandleId, LockGeneration>,
    /// Events the application's full buffer had no room for, in order; never dropped
    /// (the core acknowledged the server events among them). While it is not empty the
    /// core is paused (no event is delivered or acknowledged), so it holds at most what
    /// one datagram delivered plus collapsed session-state events.
    backlog: VecDeque<SessionEvent>,
}

impl<S: ClientSocket> Driver<S> {
    pub(crate) fn new(
        core: Core,
        socket: S,
        start: Instant,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<SessionEvent>,
        stats: Arc<Mutex<Stats>>,
        opened: OpenTx,
    ) -> Self {
        Driver {
            core,
            socket,
            start,
            commands,
            events: Some(events),
            stats,
            opened: Some(opened),
            pending: BTreeMap::new(),
            waiting_locks: BTreeMap::new(),
            early_grants: BTreeMap::new(),
            granted: BTreeMap::new(),
            backlog: VecDeque::new(),
        }
    }

    fn now(&self) -> Time {
        Time(self.start.elapsed())
    }

    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; 65536];
        loop {
            self.flush().await;
            let wake = self.core.poll_timeout(self.now());
            self.flush().await;
            // A deadline too far out to be an Instant (Duration::MAX options) is "never".
            let wake = wake.and_then(|t| self.start.checked_add(t.0));
            let held_tx = if self.backlog.is_empty() {
                None
            } else {
                self.events.clone()
            };
            // Biased (no RNG: deterministic simulation). Room for a held event first: the
            // backlog only shrinks meanwhile (the core is paused). Datagrams before commands,
            // so the application cannot starve replies; a command is also taken after every
            // other branch (below), so a flood of datagrams cannot starve the application.
            // The timer last: timers run at the top of every turn (`poll_timeout`), so this
            // branch only wakes an idle task.
            let mut took_command = false;
            tokio::select! {
                biased;
                permit = reserve(held_tx) => match (permit, self.backlog.pop_front()) {
                    (Some(permit), Some(ev)) => {
                        permit.send(ev);
                        if self.backlog.is_empty() {
                            self.core.set_events_paused(false);
                        }
                    }
                    // The application dropped its Events: nobody will read them.
                    (_, ev) => {
                        let lost = self.backlog.len() as u64 + u64::from(ev.is_some());
                        self.backlog.clear();
                        self.core.set_events_paused(false);
                        self.events = None;
                        self.bump(|s| s.events_dropped += lost);
                    }
                },
                got = self.socket.recv_from(&mut buf) => match got {
                    Ok((n, from)) => {
                        let now = self.now();
                        self.core.handle_datagram(now, from, &buf[..n]);
                    }
                    Err(_) => self.bump(|s| s.receive_errors += 1),
                },
                cmd = self.commands.recv() => {
                    took_command = true;
                    match cmd {
                        Some(cmd) => self.command(cmd),
                        None => return,
                    }
                }
                _ = sleep_until(wake) => {}
            }
            if !took_command && let Ok(cmd) = self.commands.try_recv() {
                self.command(cmd);
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let (req, pending) = match cmd {
            Command::Call(req, tx) => (req, Pending::Plain(tx)),
            Command::Lock(req, handle, tx) => (req, Pending::Lock(handle, tx)),
        };
        // Unlock and close end a queued request on the server: end its waiter here too.
        if let Request::Unlock { handle } | Request::Close { handle } = &req
            && let Some(tx) = self.waiting_locks.remove(handle)
        {
            let _ = tx.send(Err(CallError::Cancelled));
        }
        self.submit(req, pending);
    }

    /// Completes a lock call. If its caller has gone (the `lock()` future was dropped, e.g.
    /// by a timeout around it), nobody believes in a granted lock: release it at once rather
    /// than hold it, unseen, until the session ends.
    fn finish_lock(&mut self, handle: HandleId, tx: ReplyTx, result: Result<Reply, CallError>) {
        if let Ok(Reply::Locked { sequencer }) = &result {
            let newest = self
                .granted
                .entry(handle)
                .or_insert(sequencer.lock_generation);
            *newest = (*newest).max(sequencer.lock_generation);
        }
        let granted = matches!(result, Ok(Reply::Locked { .. }));
        if tx.send(result).is_err() && granted {
            self.bump(|s| s.abandoned_grants += 1);
            self.submit(Request::Unlock { handle }, Pending::Release);
        }
    }

    fn submit(&mut self, req: Request, pending: Pending) {
        match self.core.submit(self.now(), &req) {
            Ok(id) => {
                self.pending.insert(id, pending);
            }
            Err(e) => match pending {
                Pending::Plain(tx) | Pending::Lock(_, tx) => {
                    let _ = tx.send(Err(e));
                }
                Pending::Recheck(handle) => {
                    if let Some(tx) = self.waiting_locks.remove(&handle) {
                        let _ = tx.send(Err(e));
                    }
                }
                Pending::Release => {}
            },
        }
    }

    async fn flush(&mut self) {
        let mut sent = 0u32;
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit { to, datagram } => {
                    self.transmit(to, &datagram).await;
                    sent += 1;
                    // Let other tasks (a co-located receiver) run during long bursts.
                    if sent.is_multiple_of(16) {
                        tokio::task::yield_now().await;
                    }
                }
                Output::Reply { call, result } => self.reply(call, result),
                Output::Event(ev) => self.event(ev),
            }
        }
        let core = self.core.counters();
        self.bump(|s| s.core = core);
        // The task lives on while handles exist (their calls fail at once), but nothing can
        // follow an expired or ended session: end the event stream after what is buffered,
        // and fail the lock calls that wait for a grant event (they would wait forever).
        let over = match self.core.state() {
            State::Expired => Some(CallError::SessionExpired),
            State::Ended => Some(CallError::SessionEnded),
            _ => None,
        };
        if let Some(err) = over {
            // A held Expired must still reach the application before the stream ends.
            if self.backlog.is_empty() {
                self.events = None;
            }
            for (_, tx) in std::mem::take(&mut self.waiting_locks) {
                let _ = tx.send(Err(err));
            }
            self.early_grants.clear();
        }
    }

    async fn transmit(&mut self, to: SocketAddr, datagram: &[u8]) {
        if let Err(e) = self.socket.send_to(datagram, to).await {
            tracing::debug!(%to, error = %e, "cldc: send failed");
            self.bump(|s| s.send_errors += 1);
        }
    }

    fn reply(&mut self, call: CallId, result: Result<Reply, CallError>) {
        if call == Core::OPEN_CALL {
            if let Some(tx) = self.opened.take() {
                let id = self.core.id();
                let _ = tx.send(result.map(|r| (r, id)));
            }
            return;
        }
        match self.pending.remove(&call) {
            Some(Pending::Plain(tx)) => {
                let _ = tx.send(result);
            }
            Some(Pending::Lock(handle, tx)) => match result {
                Ok(Reply::LockQueued) => match self.early_grants.remove(&handle) {
                    Some(sequencer) => {
                        self.finish_lock(handle, tx, Ok(Reply::Locked { sequencer }));
                    }
                    None => {
                        self.waiting_locks.insert(handle, tx);
                    }
                },
                other => self.finish_lock(handle, tx, other),
            },
            Some(Pending::Recheck(handle)) => {
                // Granted while the grant event may have been lost in the fail-over. If still
                // queued (`NotLocked`) or the check failed, keep waiting for the event.
                if let Ok(Reply::Sequencer { sequencer }) = result
                    && let Some(tx) = self.waiting_locks.remove(&handle)
                {
                    self.finish_lock(handle, tx, Ok(Reply::Locked { sequencer }));
                }
            }
            Some(Pending::Release) | None => {}
        }
    }

    fn event(&mut self, ev: SessionEvent) {
        let session = self.core.counters();
        match &ev {
            SessionEvent::Jeopardy => tracing::warn!(
                master = %self.core.master(),
                jeopardies = session.jeopardies,
                "cldc: session lease ran out, in jeopardy; looking for the master"
            ),
            SessionEvent::Safe => {
                tracing::info!(master = %self.core.master(), "cldc: session safe again")
            }
            SessionEvent::Expired => tracing::warn!("cldc: session expired; its locks are lost"),
            _ => {}
        }
        if let SessionEvent::Server(Event::LockAcquired { handle, sequencer }) = &ev
            && self
                .granted
                .get(handle)
                .is_some_and(|g| sequencer.lock_generation <= *g)
        {
            // Not a new generation: most likely a re-sent old grant, which must not complete
            // a lock call (it would hand the caller a lock the handle no longer holds: found
            // by the whole-cell simulation, crash-restart seed 553). But a shared grant that
            // ends a wait behind a withdrawn exclusive request keeps the generation too, so
            // a pending or waiting call asks the master (answered after the lock request,
            // calls run in order): the handle's sequencer completes it, `NotLocked` keeps
            // it waiting. Neither the caller nor the application sees the event itself.
            self.bump(|s| s.stale_grants += 1);
            let handle = *handle;
            if self.waiting_locks.contains_key(&handle) || self.has_pending_lock(handle) {
                self.submit(Request::GetSequencer { handle }, Pending::Recheck(handle));
            }
            return;
        }
        match &ev {
            SessionEvent::Server(Event::LockAcquired { handle, sequencer }) => {
                match self.waiting_locks.remove(handle) {
                    Some(tx) => {
                        let granted = Ok(Reply::Locked {
                            sequencer: sequencer.clone(),
                        });
                        self.finish_lock(*handle, tx, granted);
                    }
                    None if self.has_pending_lock(*handle) => {
                        // The grant overtook the `LockQueued` reply.
                        self.early_grants.insert(*handle, sequencer.clone());
                    }
                    None => {}
                }
            }
            SessionEvent::Server(Event::NodeDeleted { handle }) => {
                if let Some(tx) = self.waiting_locks.remove(handle) {
                    let _ = tx.send(Err(CallError::Server(crate::proto::ErrorCode::NoSuchNode)));
                }
            }
            SessionEvent::Server(Event::MasterFailover { .. }) => {
                // Events not acknowledged before a fail-over may be lost, a grant among them:
                // ask the new master about every waiting lock.
                let waiting: Vec<HandleId> = self.waiting_locks.keys().copied().collect();
                for handle in waiting {
                    self.submit(Request::GetSequencer { handle }, Pending::Recheck(handle));
                }
            }
            _ => {}
        }
        let is_state = matches!(
            ev,
            SessionEvent::Jeopardy | SessionEvent::Safe | SessionEvent::Expired
        );
        let Some(tx) = &self.events else {
            self.bump(|s| s.events_dropped += 1);
            return;
        };
        if !self.backlog.is_empty() {
            // Keep the order. Consecutive session-state events collapse into the latest
            // (the application learns the current state), which bounds the backlog.
            let back_is_state = matches!(
                self.backlog.back(),
                Some(SessionEvent::Jeopardy | SessionEvent::Safe)
            );
            if is_state && back_is_state {
                self.backlog.pop_back();
            }
            self.backlog.push_back(ev);
            return;
        }
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                self.backlog.push_back(ev);
                self.core.set_events_paused(true);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.events = None;
                self.bump(|s| s.events_dropped += 1);
            }
        }
    }

    fn has_pending_lock(&self, handle: HandleId) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p, Pending::Lock(h, _) if *h == handle))
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }
}

/// Room for one event in the application's buffer; never ready without a sender.
async fn reserve(
    tx: Option<mpsc::Sender<SessionEvent>>,
) -> Option<mpsc::OwnedPermit<SessionEvent>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
