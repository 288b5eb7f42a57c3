//! The replica loop: one task owns the [`DbReplica`] and performs its work; everything else
//! talks to it through bounded channels ([`ServerHandle`] for proposals, reads and status,
//! the peer transport for Paxos frames).
//!
//! Each turn takes one input, then every input that queued meanwhile (up to
//! [`MAX_DRAIN`]), feeding each to the replica with a `now` read *when it is taken from its
//! queue* (never earlier than its arrival, as libpaxos's time contract requires), and only
//! then performs the Ready batches with [`DbReplica::drive_sending`]: heartbeats and the
//! master's accepts leave before the fsync, and all proposals that arrived while the
//! previous fsync ran share the next one (group commit). Snapshot writes run on a blocking
//! thread (on the loop's task with [`ReplicaLoop::with_inline_jobs`], for the simulation).
//! A failed sync or apply ends the loop with an error and the process exits: a retried
//! fsync can lie.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libpaxos::{Envelope, Epoch, Event, LogStore, Message, NodeId, ProposeError, Role, Slot};
use libpaxos_db::{
    Applied, Command, DbReplica, DynKv, GlueError, Namespace, RequestSeq, SessionId, SnapshotChunk,
    SnapshotInfo, StagedInstall,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::datadir::{DataDir, MemberState};
use crate::env::Clock;
use crate::frontend::edge::{Inbound as Datagram, Outbound};
use crate::frontend::{CellView, FeRole, Frontend, Output, Token};
use crate::metrics::Metrics;
use crate::peer::{Hello, Inbound, InboundSink, PROGRESS_EVERY, PeerBody, PeerSender};

/// Inputs taken per turn before the replica is driven (bounds a turn's latency).
pub const MAX_DRAIN: usize = 512;
/// Requests (proposals, reads, status) queued for the loop.
pub const REQUEST_QUEUE: usize = 4096;
/// Peer frames queued for the loop.
pub const INBOUND_QUEUE: usize = 8192;
/// How often the replica is ticked.
pub const TICK: Duration = Duration::from_millis(5);
/// How often a rejoining member asks the master for a barrier.
pub const REJOIN_RETRY: Duration = Duration::from_millis(500);
/// After a hand-over at shutdown, how long the old master stays up once another member is
/// master, answering clients `NotMaster` with the new master's address: long enough for a
/// client's first retransmissions at cldc's default timing (100 ms, then 200 ms later), which
/// then go straight to the new master instead of timing out against a closed port and
/// rotating.
pub const HANDOVER_LINGER: Duration = Duration::from_millis(300);
/// How often the free space in the data dir's file system is checked against the reserve.
pub const DISK_CHECK: Duration = Duration::from_millis(20);

/// Why a proposal or read was not done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// This member is not master (or has no lease for a read); `hint` is who may be.
    #[error("not master (master hint: {hint:?})")]
    NotMaster {
        /// The master this member last heard from.
        hint: Option<NodeId>,
    },
    /// Too many proposals in flight; try again shortly.
    #[error("too many proposals in flight")]
    Busy,
    /// The slot was chosen with another value (the master changed): propose again.
    #[error("proposal lost to a change of master; propose again")]
    Lost,
    /// The command is larger than one Paxos batch may carry.
    #[error("command of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The loop's queue is full.
    #[error("server overloaded (request queue full)")]
    Overloaded,
    /// The loop has stopped.
    #[error("server stopped")]
    Stopped,
}

/// The role of this member, as the front end needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleView {
    /// The Paxos role.
    pub role: Role,
    /// The epoch of the current master term, if known.
    pub epoch: Option<Epoch>,
    /// The master this member believes in.
    pub master: Option<NodeId>,
    /// Whether this member is master holding a valid lease.
    pub lease: bool,
    /// This member's voting state.
    pub state: MemberState,
}

/// A snapshot of the member's state for operators and tests.
#[derive(Clone, Debug)]
pub struct StatusView {
    /// This member.
    pub id: NodeId,
    /// Role, epoch, lease.
    pub role: RoleView,
    /// The commit index.
    pub commit: Slot,
    /// The applied index.
    pub applied: Slot,
    /// Open sessions.
    pub sessions: usize,
    /// Proposals waiting for their slot to be applied.
    pub pending: usize,
    /// Log syncs performed (one per Ready with something to persist): with group commit,
    /// far fewer than proposals under concurrent load.
    pub syncs: u64,
    /// Snapshots installed from peers.
    pub snapshots_installed: u64,
}

type ReadFn = Box<dyn FnOnce(Result<&Namespace<DynKv>, SubmitError>) + Send>;

/// What the handle asks of the loop.
enum Request {
    Submit {
        command: Command,
        reply: oneshot::Sender<Result<Applied, SubmitError>>,
    },
    Read(ReadFn),
    Status(oneshot::Sender<StatusView>),
    Shutdown(oneshot::Sender<()>),
}

/// The front end's and tests' way into the replica loop. Cheap to clone.
///
/// * [`submit`](Self::submit): propose a command (master only) and get its [`Applied`]
///   (reply and notices) once its slot is applied.
/// * [`read`](Self::read): run a closure over the namespace when a linearizable read is
///   allowed here (`DbReplica::can_read`: master, lease held, applied through the fence).
/// * [`roles`](Self::roles): watch role, epoch and lease changes (to send `MasterFailover`
///   and refresh session leases).
/// * [`sessions`](Self::sessions): the committed session records.
#[derive(Clone)]
pub struct ServerHandle {
    requests: mpsc::Sender<Request>,
    roles: watch::Receiver<RoleView>,
    metrics: Metrics,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl ServerHandle {
    fn request(&self, request: Request) -> Result<(), SubmitError> {
        self.requests.try_send(request).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => {
                self.metrics.counters.loop_requests_full.inc();
                SubmitError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })
    }

    /// Proposes `command` and waits until its slot is applied.
    pub async fn submit(&self, command: Command) -> Result<Applied, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.request(Request::Submit { command, reply })?;
        rx.await.unwrap_or(Err(SubmitError::Stopped))
    }

    /// Runs `f` over the namespace if a linearizable read may be served here now.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Namespace<DynKv>) -> R + Send + 'static,
    ) -> Result<R, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.request(Request::Read(Box::new(move |ns| {
            let _ = tx.send(ns.map(f));
        })))?;
        rx.await.unwrap_or(Err(SubmitError::Stopped))
    }

    /// The committed session records (id, user, lease), read under the same rule as
    /// [`read`](Self::read).
    pub async fn sessions(&self) -> Result<Vec<(SessionId, String, Duration)>, SubmitError> {
        self.read(|ns| {
            ns.sessions()
                .map(|(id, s)| (id, s.user.clone(), s.lease))
                .collect()
        })
        .await
    }

    /// The member's state now.
    pub async fn status(&self) -> Result<StatusView, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.request(Request::Status(tx))?;
        rx.await.map_err(|_| SubmitError::Stopped)
    }

    /// Role, epoch and lease changes.
    pub fn roles(&self) -> watch::Receiver<RoleView> {
        self.roles.clone()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops the loop after its current turn (every acknowledged write is already durable).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The transport's view of the loop: queues inbound frames, answers handshakes.
pub struct Sink {
    inbound: mpsc::Sender<Inbound>,
    state: Mutex<MemberState>,
    peers: Mutex<HashMap<NodeId, MemberState>>,
    metrics: Metrics,
}

impl InboundSink for Sink {
    fn deliver(&self, inbound: Inbound) {
        if self.inbound.try_send(inbound).is_err() {
            self.metrics.counters.loop_inbound_full.inc();
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            state: *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            progress: true,
        }
    }

    fn peer_hello(&self, from: NodeId, hello: Hello) {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(from, hello.state);
    }
}

enum Waiter {
    Client {
        key: Option<(SessionId, RequestSeq)>,
        reply: oneshot::Sender<Result<Applied, SubmitError>>,
    },
    Barrier(NodeId),
    Frontend(Token),
}

/// What this member last heard of another member (for `Status`, docs/protocol.md 5.6).
#[derive(Clone, Copy, Debug)]
struct PeerSeen {
    /// Its commit index: from its latest progress frame, raised by its heartbeats or acks.
    commit: Slot,
    /// Its applied index, from its latest progress frame (0 until one came: unknown).
    applied: Slot,
    /// When an authenticated frame from it last arrived.
    heard: libpaxos::Time,
}

/// A member is reachable when heard from within this long (a progress frame comes every
/// [`PROGRESS_EVERY`], a heartbeat or ack more often).
pub const REACHABLE_WITHIN: Duration = Duration::from_secs(1);

/// The client front end as the loop drives it.
struct FrontendParts {
    core: Frontend,
    inbound: mpsc::Receiver<Datagram>,
    outbound: Outbound,
    client_addrs: BTreeMap<u64, std::net::SocketAddr>,
    members: Vec<cldc::proto::MemberStatus>,
    role: Option<FeRole>,
}

async fn next_datagram(fe: &mut Option<FrontendParts>) -> Option<Datagram> {
    match fe {
        Some(fe) => fe.inbound.recv().await,
        None => std::future::pending().await,
    }
}

/// Removes a peer from the set of running snapshot streams when its stream ends.
struct StreamDone(Arc<Mutex<HashSet<NodeId>>>, NodeId);

impl Drop for StreamDone {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// Sends the snapshot `reader` reads to `to`, chunk by chunk, each as the peer's bulk queue
/// has room; `done` ends the transfer's entry when it finishes.
async fn stream_snapshot(
    mut reader: libpaxos_db::SnapshotReader,
    peers: PeerSender,
    to: NodeId,
    counters: crate::metrics::Counters,
    done: StreamDone,
) {
    let _done = done;
    loop {
        match reader.next_chunk() {
            Ok(Some(chunk)) => {
                let body = PeerBody::SnapshotChunk {
                    applied: chunk.applied,
                    total: chunk.total,
                    offset: chunk.offset,
                    data: chunk.data,
                };
                if !peers.send_bulk_wait(to, &body).await {
                    return;
                }
            }
            Ok(None) => {
                counters.snapshots_sent.inc();
                info!(to = to.0, "snapshot sent");
                return;
            }
            Err(err) => {
                counters.snapshot_unavailable.inc();
                warn!(to = to.0, %err, "snapshot read failed");
                return;
            }
        }
    }
}

/// Why the loop stopped with an error (the process must exit).
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// Driving the replica failed (a sync, an apply, the core).
    #[error("replica: {0}")]
    Glue(#[from] GlueError),
    /// The data dir's identity could not be updated.
    #[error("{0}")]
    DataDir(#[from] crate::datadir::DataDirError),
    /// A write failed because the disk is full. The member stopped acknowledging and stepped
    /// down when it happened, and stayed up (reporting it) until shut down.
    #[error("disk full, member stepped down: {0}")]
    DiskFull(String),
}

impl LoopError {
    /// Whether this failure is a full disk (free space below the reserve, or `ENOSPC` from a
    /// write): the member steps down and stays up, reporting it, instead of exiting at once.
    /// The storage layers carry an `ENOSPC` only as text.
    pub fn is_disk_full(&self) -> bool {
        if matches!(self, LoopError::DiskFull(_)) {
            return true;
        }
        let text = self.to_string();
        text.contains("No space left on device") || text.contains("os error 28")
    }
}

/// The loop's channels, made before the transport starts (the transport needs the sink).
pub struct LoopChannels {
    requests: mpsc::Receiver<Request>,
    inbound: mpsc::Receiver<Inbound>,
    /// The handle.
    pub handle: ServerHandle,
    /// The sink for the transport.
    pub sink: Arc<Sink>,
    roles_tx: watch::Sender<RoleView>,
}

/// Makes the loop's channels for a member starting in `state`.
pub fn channels(state: MemberState, metrics: Metrics) -> LoopChannels {
    let (req_tx, req_rx) = mpsc::channel(REQUEST_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (roles_tx, roles_rx) = watch::channel(RoleView {
        role: Role::Follower { master: None },
        epoch: None,
        master: None,
        lease: false,
        state,
    });
    LoopChannels {
        requests: req_rx,
        inbound: in_rx,
        handle: ServerHandle {
            requests: req_tx,
            roles: roles_rx,
            metrics: metrics.clone(),
        },
        sink: Arc::new(Sink {
            inbound: in_tx,
            state: Mutex::new(state),
            peers: Mutex::new(HashMap::new()),
            metrics,
        }),
        roles_tx,
    }
}

/// Runs `f`, which blocks (fsync, file i/o), without starving the runtime's other tasks
/// when the runtime has other worker threads.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::try_current()
        .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        .unwrap_or(false);
    if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Whether a message may leave a member that must not vote (rejoining, or fresh and not yet
/// bootstrapped): no promise, no accept, no lease grant, no election of its own.
fn allowed_without_vote(msg: &Message) -> bool {
    !matches!(
        msg,
        Message::PreVote { .. }
            | Message::PreVoteReply { .. }
            | Message::Prepare { .. }
            | Message::Promise { .. }
            | Message::Accepted { .. }
            | Message::HeartbeatAck { .. }
            | Message::Accept { .. }
            | Message::Heartbeat { .. }
    )
}

/// The replica loop. Its database's store is a [`DynKv`]: sled in production
/// (`DbReplica::open_dyn`), any engine through `DbReplica::open_on` (the simulation's `MemKv`).
pub struct ReplicaLoop<S: LogStore, C: Clock> {
    replica: DbReplica<S, DynKv>,
    clock: Arc<C>,
    peers: PeerSender,
    data_dir: DataDir,
    members: Vec<NodeId>,
    metrics: Metrics,
    requests: mpsc::Receiver<Request>,
    inbound: mpsc::Receiver<Inbound>,
    sink: Arc<Sink>,
    roles_tx: watch::Sender<RoleView>,
    jobs_tx: mpsc::Sender<Result<SnapshotInfo, libpaxos_db::DbError>>,
    jobs_rx: mpsc::Receiver<Result<SnapshotInfo, libpaxos_db::DbError>>,
    installs_tx: mpsc::Sender<Result<StagedInstall, libpaxos_db::DbError>>,
    installs_rx: mpsc::Receiver<Result<StagedInstall, libpaxos_db::DbError>>,
    pending: BTreeMap<Slot, Waiter>,
    state: MemberState,
    barrier: Option<Slot>,
    last_barrier_ask: Option<libpaxos::Time>,
    stop: Option<oneshot::Sender<()>>,
    streaming: Arc<Mutex<HashSet<NodeId>>>,
    disk_reserve: u64,
    last_disk_check: Option<libpaxos::Time>,
    fe: Option<FrontendParts>,
    peer_seen: HashMap<NodeId, PeerSeen>,
    last_progress: Option<libpaxos::Time>,
    /// A shutdown that waits for the hand-over of mastership to finish.
    handover: Option<ShutdownHandOver>,
    /// The core's counters as last mirrored into the metrics.
    core_seen: libpaxos::Counters,
    /// Snapshot and install jobs run on the loop's task, snapshot streams on async tasks
    /// (no blocking threads): see [`ReplicaLoop::with_inline_jobs`].
    inline_jobs: bool,
    /// Test-only bugs (all off for a real member).
    bugs: crate::server::Bugs,
}

/// A master shutting down: it handed over (or is handing over) and waits, up to `deadline`,
/// until another member is master before it stops.
struct ShutdownHandOver {
    done: oneshot::Sender<()>,
    started: libpaxos::Time,
    deadline: libpaxos::Time,
    /// Another member is master: answer clients with its address until then, then stop.
    linger_until: Option<libpaxos::Time>,
}

impl<S: LogStore + Send + 'static, C: Clock> ReplicaLoop<S, C> {
    /// Drives the client front end `core` from this loop: datagrams from `inbound` (the UDP
    /// edge's queue), datagrams out through `outbound`. `client_addrs` are the members'
    /// client addresses by id.
    pub fn with_frontend(
        mut self,
        core: Frontend,
        inbound: mpsc::Receiver<Datagram>,
        outbound: Outbound,
        client_addrs: BTreeMap<u64, std::net::SocketAddr>,
    ) -> ReplicaLoop<S, C> {
        self.fe = Some(FrontendParts {
            core,
            inbound,
            outbound,
            client_addrs,
            members: Vec::new(),
            role: None,
        });
        self
    }

    /// Sends and proposes what the front end produced.
    fn flush_frontend(&mut self) {
        loop {
            let outputs = match self.fe.as_mut() {
                Some(fe) => fe.core.take_outputs(),
                None => return,
            };
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                match output {
                    Output::Send(to, dg) => {
                        if let Some(fe) = &self.fe {
                            fe.outbound.send(to, dg);
                        }
                    }
                    Output::Propose(token, command) => match self.propose(&command) {
                        Ok(slot) => {
                            if let Some(old) = self.pending.insert(slot, Waiter::Frontend(token)) {
                                self.fail_waiter(old, SubmitError::Lost);
                            }
                        }
                        Err(err) => {
                            let too_large = matches!(err, SubmitError::TooLarge { .. });
                            if let Some(fe) = self.fe.as_mut() {
                                fe.core.on_proposal_failed(token, too_large);
                            }
                        }
                    },
                }
            }
        }
    }

    fn on_datagram(&mut self, from: std::net::SocketAddr, dg: Vec<u8>) {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let can_read = self.can_read(now);
        let Some(fe) = self.fe.as_mut() else {
            return;
        };
        let cell = CellView {
            ns: self.replica.database().namespace(),
            can_read,
            members: &fe.members,
        };
        fe.core.on_datagram(now.0, wall, from, &dg, &cell);
        self.flush_frontend();
    }

    fn frontend_tick(&mut self) {
        let now = self.clock.now();
        let wall = self.clock.wall();
        let can_read = self.can_read(now);
        let status = self.replica.replica().status(now);
        let Some(fe) = self.fe.as_mut() else {
            return;
        };
        let applied = self.replica.database().namespace().applied();
        let peers = &self.peer_seen;
        fe.members = fe
            .client_addrs
            .iter()
            .map(|(&id, &addr)| {
                let is_master = status.master == Some(NodeId(id));
                if id == status.id.0 {
                    return cldc::proto::MemberStatus {
                        id,
                        addr,
                        is_master,
                        reachable: true,
                        commit_index: status.commit.0,
                        applied_index: applied.0,
                    };
                }
                // Another member: what it last reported, kept when it goes silent.
                let seen = peers.get(&NodeId(id));
                cldc::proto::MemberStatus {
                    id,
                    addr,
                    is_master,
                    reachable: seen.is_some_and(|p| now.since(p.heard) < REACHABLE_WITHIN),
                    commit_index: seen.map_or(0, |p| p.commit.0),
                    applied_index: seen.map_or(0, |p| p.applied.0),
                }
            })
            .collect();
        let cell = CellView {
            ns: self.replica.database().namespace(),
            can_read,
            members: &fe.members,
        };
        fe.core.on_tick(now.0, wall, &cell);
        self.flush_frontend();
    }

    /// Tells the front end about a change of role (a new master epoch resets its sessions).
    fn frontend_role(&mut self) {
        let now = self.clock.now();
        let status = self.replica.replica().status(now);
        let can_read = self.can_read(now);
        let Some(fe) = self.fe.as_mut() else {
            return;
        };
        let ns = self.replica.database().namespace();
        let mut master = match status.role {
            Role::Master { .. } => status.epoch.map(|e| e.0),
            _ => None,
        };
        let bugs = self.bugs;
        if (bugs.read_without_lease || bugs.keepalive_without_lease)
            && master.is_none()
            && status.master.is_none()
        {
            // The bug: a master that stepped down for want of a lease goes on acting as
            // master until it hears of another one.
            master = fe.role.and_then(|r| r.master);
        }
        let role = FeRole {
            master,
            epoch: ns.epoch().0.max(master.unwrap_or(0)),
            hint: status.master.map(|m| m.0),
        };
        if fe.role == Some(role) {
            return;
        }
        fe.role = Some(role);
        let cell = CellView {
            ns,
            can_read,
            members: &fe.members,
        };
        fe.core.on_role(now.0, role, &cell);
        self.flush_frontend();
    }
    /// A loop over `replica`, sending through `peers`.
    pub fn new(
        replica: DbReplica<S, DynKv>,
        clock: Arc<C>,
        peers: PeerSender,
        data_dir: DataDir,
        channels: LoopChannels,
        metrics: Metrics,
    ) -> ReplicaLoop<S, C> {
        let members = replica.replica().config().members.clone();
        let (jobs_tx, jobs_rx) = mpsc::channel(1);
        let (installs_tx, installs_rx) = mpsc::channel(1);
        let state = data_dir.identity().state;
        metrics
            .gauges
            .rejoining
            .set(i64::from(state != MemberState::Voter));
        ReplicaLoop {
            replica,
            clock,
            peers,
            data_dir,
            members,
            metrics,
            requests: channels.requests,
            inbound: channels.inbound,
            sink: channels.sink,
            roles_tx: channels.roles_tx,
            jobs_tx,
            jobs_rx,
            installs_tx,
            installs_rx,
            pending: BTreeMap::new(),
            state,
            barrier: None,
            last_barrier_ask: None,
            stop: None,
            streaming: Arc::new(Mutex::new(HashSet::new())),
            disk_reserve: 0,
            last_disk_check: None,
            fe: None,
            peer_seen: HashMap::new(),
            last_progress: None,
            handover: None,
            core_seen: libpaxos::Counters::default(),
            inline_jobs: false,
            bugs: crate::server::Bugs::default(),
        }
    }

    /// With `true`, no blocking thread is used: a snapshot job and a snapshot install run
    /// on the loop's own task (their results still come through the loop's job channels, so
    /// the same code handles them), and a snapshot is streamed to a peer by an async task.
    /// For the whole-cell simulation (turmoil: one thread per host, simulated time), where
    /// threads make the timing of results nondeterministic and `block_on` cannot run. The
    /// loop stalls for the length of each job, so a real member keeps the default, `false`.
    pub fn with_inline_jobs(mut self, inline: bool) -> ReplicaLoop<S, C> {
        self.inline_jobs = inline;
        self
    }

    /// Turns on test-only bugs (the whole-cell simulation's checker tests).
    pub fn with_bugs(mut self, bugs: crate::server::Bugs) -> ReplicaLoop<S, C> {
        self.bugs = bugs;
        self
    }

    /// Whether a linearizable read may be served here now (`DbReplica::can_read`), or, with
    /// the `read_without_lease` bug, whenever the front end acts as master.
    fn can_read(&self, now: libpaxos::Time) -> bool {
        self.replica.can_read(now)
            || (self.bugs.read_without_lease
                && self
                    .fe
                    .as_ref()
                    .and_then(|fe| fe.role)
                    .is_some_and(|r| r.master.is_some()))
    }

    /// Keeps `bytes` free in the data dir's file system: below that, the member stops
    /// writing and steps down (see [`LoopError::DiskFull`]). 0 turns the check off.
    pub fn with_disk_reserve(mut self, bytes: u64) -> ReplicaLoop<S, C> {
        self.disk_reserve = bytes;
        self
    }

    /// Fails with [`LoopError::DiskFull`] when the data dir's file system has less than the
    /// reserve free. Checked at most every [`DISK_CHECK`], before a Ready is performed: the
    /// member stops before a write can fail (sled 0.34 does not always return from a flush
    /// whose write hit `ENOSPC`), so what is on disk stays whole.
    fn check_disk(&mut self) -> Result<(), LoopError> {
        if self.disk_reserve == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        if self
            .last_disk_check
            .is_some_and(|t| now.since(t) < DISK_CHECK)
        {
            return Ok(());
        }
        self.last_disk_check = Some(now);
        match rustix::fs::statvfs(self.data_dir.path()) {
            Ok(st) => {
                let free = st.f_bavail.saturating_mul(st.f_frsize);
                if free < self.disk_reserve {
                    return Err(LoopError::DiskFull(format!(
                        "{} has {free} bytes free, below the reserve of {} bytes (cell.disk_reserve_mb)",
                        self.data_dir.path().display(),
                        self.disk_reserve
                    )));
                }
            }
            Err(err) => {
                self.metrics.counters.disk_check_failures.inc();
                warn!(%err, dir = %self.data_dir.path().display(), "cannot read the free space of the data dir");
            }
        }
        Ok(())
    }

    /// Runs until shutdown (`Ok`) or a fatal error (`Err`: the process must exit).
    pub async fn run(mut self) -> Result<(), LoopError> {
        self.replica.set_background_snapshots(true);
        // A received snapshot is installed on a blocking thread: a long install never stalls
        // heartbeats, acks or client answers.
        self.replica.set_background_installs(true);
        if self.state != MemberState::Voter {
            info!(
                state = ?self.state,
                "this member does not vote yet: it neither promises nor accepts until it knows the cell is new (every member empty) or has caught up after rejoining"
            );
        }
        self.publish_role();
        self.metrics.serving.store(true, Ordering::Relaxed);
        let mut next_tick = tokio::time::Instant::now();
        let result = loop {
            // Biased (no RNG: deterministic simulation). Snapshot and install results come
            // first: one job of each runs at a time, so they are never ready twice in a row;
            // the busy queues after them cannot starve each other or the tick, because every
            // turn drains inbound and requests alternately and datagrams after them, and
            // ticks when due (`tick_due` below) whichever branch won.
            let turn = tokio::select! {
                biased;
                job = self.jobs_rx.recv() => match job {
                    Some(result) => self.snapshot_done(result),
                    None => Ok(()),
                },
                staged = self.installs_rx.recv() => match staged {
                    Some(staged) => self.install_done(staged),
                    None => Ok(()),
                },
                inbound = self.inbound.recv() => match inbound {
                    Some(inbound) => self.on_inbound(inbound),
                    None => Ok(()),
                },
                request = self.requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => break Ok(()),
                },
                datagram = next_datagram(&mut self.fe) => {
                    if let Some((from, dg)) = datagram {
                        self.on_datagram(from, dg);
                    }
                    Ok(())
                },
                _ = tokio::time::sleep_until(next_tick) => {
                    next_tick = tokio::time::Instant::now() + TICK;
                    self.tick()
                }
            };
            // A busy inbound queue must never starve the tick (heartbeats, leases).
            let tick_due = tokio::time::Instant::now() >= next_tick;
            let turn = turn.and_then(|()| {
                if tick_due {
                    next_tick = tokio::time::Instant::now() + TICK;
                    self.tick()
                } else {
                    Ok(())
                }
            });
            if let Err(err) = turn.and_then(|()| self.drain()).and_then(|()| self.drive()) {
                if err.is_disk_full() {
                    break self.halt_disk_full(err).await;
                }
                break Err(err);
            }
            if self.stop.is_some() {
                break Ok(());
            }
        };
        self.metrics.serving.store(false, Ordering::Relaxed);
        for (_, waiter) in std::mem::take(&mut self.pending) {
            if let Waiter::Client { reply, .. } = waiter {
                let _ = reply.send(Err(SubmitError::Stopped));
            }
        }
        if let Err(err) = &result {
            self.metrics.counters.fatal_errors.inc();
            error!(%err, "replica loop failed; this member stops (restart recovers from disk)");
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        result
    }

    /// A write failed with a full disk. Nothing more is written, synced or sent: the replica's
    /// memory may be ahead of its disk, so it is never driven again (and a failed sync is
    /// never retried). The member stops acknowledging and campaigning at once (its peers see
    /// it as down and elect another master if it was one), keeps answering status requests,
    /// refuses proposals and reads, reports itself unhealthy, and waits for shutdown. What is
    /// on disk is what was synced before: a restart recovers from it once space is freed.
    async fn halt_disk_full(&mut self, err: LoopError) -> Result<(), LoopError> {
        let cause = err.to_string();
        self.metrics.serving.store(false, Ordering::Relaxed);
        error!(
            %cause,
            "disk full: this member stops acknowledging and steps down; free space in its data dir and restart it"
        );
        for (_, waiter) in std::mem::take(&mut self.pending) {
            self.fail_waiter(waiter, SubmitError::Stopped);
        }
        self.metrics.gauges.is_master.set(0);
        self.metrics.gauges.installing.set(0);
        self.roles_tx.send_replace(RoleView {
            role: Role::Follower { master: None },
            epoch: None,
            master: None,
            lease: false,
            state: self.state,
        });
        // Reported last, so whoever sees the gauge also sees that this member stepped down.
        self.metrics.counters.disk_full.inc();
        self.metrics.gauges.disk_full.set(1);
        let mut next_progress = tokio::time::Instant::now();
        loop {
            // Biased (deterministic simulation). Job results come at most once each; requests
            // before peer frames, so a shutdown never waits behind a flood of frames (only
            // dropped here), and each request is answered at once, so they cannot hold the
            // loop either. Progress frames keep going out: the peers' readers close a link
            // that brings nothing for `PEER_SILENCE`, and this member is stopped, not gone.
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(next_progress) => {
                    next_progress = tokio::time::Instant::now() + PROGRESS_EVERY;
                    let now = self.clock.now();
                    self.send_progress(now);
                }
                // Background snapshot or install results are dropped unapplied.
                Some(_) = self.jobs_rx.recv() => {}
                Some(_) = self.installs_rx.recv() => {}
                request = self.requests.recv() => match request {
                    None => break,
                    Some(Request::Submit { reply, .. }) => {
                        self.metrics.counters.disk_full_dropped.inc();
                        let _ = reply.send(Err(SubmitError::Stopped));
                    }
                    Some(Request::Read(f)) => {
                        self.metrics.counters.reads_refused.inc();
                        f(Err(SubmitError::NotMaster { hint: None }));
                    }
                    Some(Request::Status(reply)) => {
                        let now = self.clock.now();
                        let status = self.replica.replica().status(now);
                        let ns = self.replica.database().namespace();
                        let _ = reply.send(StatusView {
                            id: status.id,
                            role: *self.roles_tx.borrow(),
                            commit: status.commit,
                            applied: ns.applied(),
                            sessions: ns.sessions().count(),
                            pending: 0,
                            syncs: self.replica.counters().syncs,
                            snapshots_installed: self.replica.counters().snapshots_installed,
                        });
                    }
                    Some(Request::Shutdown(done)) => {
                        self.stop = Some(done);
                        break;
                    }
                },
                inbound = self.inbound.recv() => {
                    if inbound.is_none() {
                        break;
                    }
                    self.metrics.counters.disk_full_dropped.inc();
                }
            }
        }
        Err(LoopError::DiskFull(cause))
    }

    /// Takes what queued while the last turn ran (group commit), each with its own `now`.
    fn drain(&mut self) -> Result<(), LoopError> {
        // Peer frames and requests alternately: a flood of either never starves the other.
        let mut taken = 0;
        while taken < MAX_DRAIN {
            let before = taken;
            if let Ok(inbound) = self.inbound.try_recv() {
                self.on_inbound(inbound)?;
                taken += 1;
            }
            if let Ok(request) = self.requests.try_recv() {
                self.on_request(request)?;
                taken += 1;
                if self.stop.is_some() {
                    break;
                }
            }
            if taken == before {
                break;
            }
        }
        for _ in 0..MAX_DRAIN {
            let Some(Ok((from, dg))) = self.fe.as_mut().map(|fe| fe.inbound.try_recv()) else {
                break;
            };
            self.on_datagram(from, dg);
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), LoopError> {
        let now = self.clock.now();
        self.replica.on_tick(now)?;
        self.rejoin_progress()?;
        self.mirror_core_counters();
        self.handover_progress(now);
        let status = self.replica.replica().status(now);
        if self.roles_tx.borrow().lease != status.lease_valid {
            self.publish_role();
        }
        self.send_progress(now);
        self.frontend_tick();
        Ok(())
    }

    fn send(&self, envelope: Envelope) {
        if self.state != MemberState::Voter && !allowed_without_vote(&envelope.msg) {
            self.metrics.counters.rejoin_dropped_votes.inc();
            return;
        }
        self.peers.send(envelope.to, &PeerBody::Paxos(envelope.msg));
    }

    /// Performs Ready batches until there is nothing left to do.
    fn drive(&mut self) -> Result<(), LoopError> {
        self.check_disk()?;
        loop {
            let now = self.clock.now();
            let peers = &self.peers;
            let voting = self.state == MemberState::Voter;
            let counters = &self.metrics.counters;
            let replica = &mut self.replica;
            let out = blocking(|| {
                replica.drive_sending(now, &mut |envelope: Envelope| {
                    if !voting && !allowed_without_vote(&envelope.msg) {
                        counters.rejoin_dropped_votes.inc();
                    } else {
                        peers.send(envelope.to, &PeerBody::Paxos(envelope.msg));
                    }
                })
            })?;
            if !out.performed {
                return Ok(());
            }
            for envelope in out.messages {
                self.send(envelope);
            }
            self.on_applied(out.applied);
            for event in out.events {
                self.on_event(event);
            }
            if let Some(err) = out.snapshot_failed {
                self.metrics.counters.snapshot_failures.inc();
                warn!(%err, "snapshot write failed; carrying on without it");
            }
            if let Some(job) = out.snapshot_job {
                info!(applied = job.applied().0, "snapshot started");
                if self.inline_jobs {
                    // Handled at the next turn, as a background job's result would be.
                    let result = blocking(|| job.run());
                    if let Err(mpsc::error::TrySendError::Full(result)) =
                        self.jobs_tx.try_send(result)
                    {
                        // One job runs at a time, so the slot is free; if not, finish here.
                        self.snapshot_done(result)?;
                    }
                } else {
                    let tx = self.jobs_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let _ = tx.blocking_send(job.run());
                    });
                }
            }
        }
    }

    fn snapshot_done(
        &mut self,
        result: Result<SnapshotInfo, libpaxos_db::DbError>,
    ) -> Result<(), LoopError> {
        let out = blocking(|| self.replica.snapshot_finished(result))?;
        match (&out.snapshot, &out.snapshot_failed) {
            (Some(slot), _) => info!(applied = slot.0, "snapshot written"),
            (_, Some(err)) => {
                self.metrics.counters.snapshot_failures.inc();
                warn!(%err, "snapshot write failed; carrying on without it");
            }
            _ => {}
        }
        self.on_applied(out.applied);
        Ok(())
    }

    fn on_applied(&mut self, applied: Vec<Applied>) {
        for a in applied {
            // Slots below are settled with another value (or compacted by an install).
            while let Some(entry) = self.pending.first_entry() {
                if *entry.key() >= a.slot {
                    break;
                }
                let waiter = entry.remove();
                self.fail_waiter(waiter, SubmitError::Lost);
            }
            let waiter = self.pending.remove(&a.slot);
            let mut token = None;
            if let Some(Waiter::Frontend(t)) = &waiter {
                token = Some(*t);
            }
            let now = self.clock.now();
            let can_read = self.fe.is_some() && self.can_read(now);
            if let Some(fe) = self.fe.as_mut() {
                let wall = self.clock.wall();
                let cell = CellView {
                    ns: self.replica.database().namespace(),
                    can_read,
                    members: &fe.members,
                };
                fe.core.on_applied(now.0, wall, token, &a, &cell);
            }
            let Some(waiter) = waiter else {
                continue;
            };
            match waiter {
                Waiter::Frontend(_) => {}
                Waiter::Client { key, reply } => {
                    if key == a.request {
                        let _ = reply.send(Ok(a));
                    } else {
                        self.metrics.counters.proposals_lost.inc();
                        let _ = reply.send(Err(SubmitError::Lost));
                    }
                }
                Waiter::Barrier(to) => {
                    self.peers
                        .send(to, &PeerBody::RejoinBarrierDone { slot: a.slot });
                }
            }
        }
        self.flush_frontend();
        let db_applied = self.replica.database().namespace().applied();
        self.metrics.gauges.applied.set(db_applied.0 as i64);
        self.metrics
            .gauges
            .commit
            .set(self.replica.replica().commit().0 as i64);
    }

    fn fail_waiter(&mut self, waiter: Waiter, err: SubmitError) {
        match waiter {
            Waiter::Client { reply, .. } => {
                self.metrics.counters.proposals_lost.inc();
                let _ = reply.send(Err(err));
            }
            Waiter::Frontend(token) => {
                self.metrics.counters.proposals_lost.inc();
                if let Some(fe) = self.fe.as_mut() {
                    fe.core.on_proposal_failed(token, false);
                }
            }
            Waiter::Barrier(_) => {}
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::RoleChanged(role) => {
                self.metrics.counters.role_changes.inc();
                match role {
                    Role::Master { ballot } => {
                        self.metrics.counters.elections_won.inc();
                        info!(epoch = ballot.epoch().0, "became master");
                    }
                    Role::Follower { master } => {
                        info!(master = ?master.map(|m| m.0), "following")
                    }
                    Role::Candidate { ballot } => {
                        info!(round = ballot.round, "standing for election")
                    }
                    Role::Recovering { ballot } => {
                        info!(round = ballot.round, "won phase 1; recovering open slots")
                    }
                }
                if !matches!(role, Role::Master { .. }) {
                    // A barrier is answered only by a master whose own no-op committed.
                    self.pending.retain(|_, w| !matches!(w, Waiter::Barrier(_)));
                }
                self.publish_role();
            }
            Event::LeaseAcquired => {
                info!("master lease acquired");
                self.publish_role();
            }
            Event::LeaseLost => {
                self.metrics.counters.leases_lost.inc();
                warn!("master lease lost");
                self.publish_role();
            }
            Event::HandedOver { to } => {
                info!(
                    to = to.0,
                    "handed over: stepped down, lease released, asked the member to stand for election"
                );
                self.publish_role();
            }
            Event::SnapshotNeeded { from, slot } => {
                if let Some(installing) = self.replica.install_in_progress() {
                    // The install under way brings this member to `installing`; the core
                    // asks again afterwards if that is not far enough.
                    tracing::debug!(
                        installing = installing.0,
                        "snapshot needed: install under way"
                    );
                    return;
                }
                info!(
                    from = from.0,
                    slot = slot.0,
                    "log compacted at the peer: fetching its snapshot"
                );
                self.peers.send(from, &PeerBody::SnapshotRequest);
            }
        }
    }

    fn publish_role(&mut self) {
        let now = self.clock.now();
        let status = self.replica.replica().status(now);
        let view = RoleView {
            role: status.role,
            epoch: status.epoch,
            master: status.master,
            lease: status.lease_valid,
            state: self.state,
        };
        self.metrics
            .gauges
            .is_master
            .set(i64::from(matches!(status.role, Role::Master { .. })));
        self.metrics
            .gauges
            .epoch
            .set(status.epoch.map_or(0, |e| e.0 as i64));
        self.roles_tx.send_replace(view);
        self.frontend_role();
    }

    fn propose(&mut self, command: &Command) -> Result<Slot, SubmitError> {
        let now = self.clock.now();
        match self.replica.propose(now, command) {
            Ok((slot, _epoch)) => Ok(slot),
            Err(ProposeError::NotMaster { hint }) => {
                self.metrics.counters.proposals_not_master.inc();
                Err(SubmitError::NotMaster { hint })
            }
            Err(ProposeError::HandingOver { to }) => {
                // Shutting down: this master takes no new work; the client retries and is
                // sent to the new master once this member has stepped down.
                self.metrics.counters.proposals_handing_over.inc();
                Err(SubmitError::NotMaster { hint: to })
            }
            Err(ProposeError::Busy { .. }) => {
                self.metrics.counters.proposals_busy.inc();
                Err(SubmitError::Busy)
            }
            Err(ProposeError::TooLarge { size, limit }) => {
                self.metrics.counters.proposals_too_large.inc();
                Err(SubmitError::TooLarge { size, limit })
            }
        }
    }

    fn on_request(&mut self, request: Request) -> Result<(), LoopError> {
        match request {
            Request::Submit { command, reply } => {
                let key = match &command {
                    Command::Client(req) => Some((req.session, req.seq)),
                    _ => None,
                };
                match self.propose(&command) {
                    Ok(slot) => {
                        if let Some(old) = self.pending.insert(slot, Waiter::Client { key, reply })
                        {
                            self.fail_waiter(old, SubmitError::Lost);
                        }
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            Request::Read(f) => {
                let now = self.clock.now();
                if self.can_read(now) {
                    f(Ok(self.replica.database().namespace()));
                } else {
                    self.metrics.counters.reads_refused.inc();
                    f(Err(SubmitError::NotMaster {
                        hint: self.replica.replica().master_hint(),
                    }));
                }
            }
            Request::Status(reply) => {
                let now = self.clock.now();
                let status = self.replica.replica().status(now);
                let ns = self.replica.database().namespace();
                let _ = reply.send(StatusView {
                    id: status.id,
                    role: *self.roles_tx.borrow(),
                    commit: status.commit,
                    applied: ns.applied(),
                    sessions: ns.sessions().count(),
                    pending: self.pending.len(),
                    syncs: self.replica.counters().syncs,
                    snapshots_installed: self.replica.counters().snapshots_installed,
                });
            }
            Request::Shutdown(done) => self.shutdown(done),
        }
        Ok(())
    }

    /// Stops the loop; a master first hands mastership over (so a planned restart costs the
    /// cell no fail-over wait) and stops once another member is master or twice the election
    /// timeout has passed.
    fn shutdown(&mut self, done: oneshot::Sender<()>) {
        let now = self.clock.now();
        if let Some(waiting) = self.handover.take() {
            // A second request while handing over: stop now.
            let _ = waiting.done.send(());
            self.stop_now(done);
            return;
        }
        let is_master = matches!(self.replica.replica().role(), Role::Master { .. });
        if !is_master || self.state != MemberState::Voter {
            self.stop_now(done);
            return;
        }
        match self.replica.hand_over(now, None) {
            Ok(()) => {
                self.metrics.counters.handovers_started.inc();
                let bound = self.replica.replica().config().election_timeout * 2;
                info!(
                    bound_ms = bound.as_millis() as u64,
                    "shutdown: master takes no new work and hands over mastership"
                );
                self.handover = Some(ShutdownHandOver {
                    done,
                    started: now,
                    deadline: now + bound,
                    linger_until: None,
                });
            }
            Err(err) => {
                info!(%err, "shutdown: no hand-over");
                self.stop_now(done);
            }
        }
    }

    fn stop_now(&mut self, done: oneshot::Sender<()>) {
        info!("shutting down: no new work taken; every acknowledged write is durable");
        self.stop = Some(done);
    }

    /// While shutting down after a hand-over: stops once another member is master (this one
    /// follows it), or once the bound has passed.
    fn handover_progress(&mut self, now: libpaxos::Time) {
        let Some(waiting) = &self.handover else {
            return;
        };
        if let Some(until) = waiting.linger_until {
            if now >= until
                && let Some(waiting) = self.handover.take()
            {
                self.stop_now(waiting.done);
            }
            return;
        }
        let me = self.replica.replica().id();
        let role = self.replica.replica().role();
        if matches!(role, Role::Master { .. }) && !self.replica.replica().handing_over() {
            // The member it handed over to never stood and this one was elected again
            // meanwhile: hand over once more rather than stop as master.
            if self.replica.hand_over(now, None).is_ok() {
                info!("shutdown: master again; handing over again");
            }
        }
        let new_master = match role {
            Role::Follower { master: Some(m) } if m != me => Some(m),
            _ => None,
        };
        let Some(waiting) = &mut self.handover else {
            return;
        };
        let elapsed = now.since(waiting.started);
        if let Some(master) = new_master {
            self.metrics.counters.handovers_completed.inc();
            waiting.linger_until = Some(now + HANDOVER_LINGER);
            info!(
                master = master.0,
                elapsed_ms = elapsed.as_millis() as u64,
                linger_ms = HANDOVER_LINGER.as_millis() as u64,
                "shutdown: another member is master; sending clients to it before stopping"
            );
            return;
        } else if now >= waiting.deadline {
            self.metrics.counters.handovers_timed_out.inc();
            warn!(
                elapsed_ms = elapsed.as_millis() as u64,
                "shutdown: no other member became master within the bound; stopping anyway"
            );
        } else {
            return;
        }
        if let Some(waiting) = self.handover.take() {
            self.stop_now(waiting.done);
        }
    }

    /// Mirrors the core's election counters into the metrics.
    fn mirror_core_counters(&mut self) {
        let core = self.replica.replica().counters().clone();
        let seen = &self.core_seen;
        let c = &self.metrics.counters;
        c.prevotes_started
            .inc_by(core.prevotes_started.saturating_sub(seen.prevotes_started));
        c.elections_on_handover.inc_by(
            core.elections_on_handover
                .saturating_sub(seen.elections_on_handover),
        );
        c.leases_released
            .inc_by(core.leases_released.saturating_sub(seen.leases_released));
        c.stale_releases
            .inc_by(core.stale_releases.saturating_sub(seen.stale_releases));
        let pairs = [
            (
                &c.paxos_unknown_sender,
                core.unknown_sender,
                seen.unknown_sender,
            ),
            (&c.paxos_malformed, core.malformed, seen.malformed),
            (
                &c.paxos_beyond_accept_window,
                core.beyond_accept_window,
                seen.beyond_accept_window,
            ),
            (&c.paxos_stale_ballot, core.stale_ballot, seen.stale_ballot),
            (
                &c.paxos_refused_by_lease,
                core.refused_by_lease,
                seen.refused_by_lease,
            ),
            (
                &c.paxos_refused_while_quiet,
                core.refused_while_quiet,
                seen.refused_while_quiet,
            ),
            (&c.paxos_unexpected, core.unexpected, seen.unexpected),
            (
                &c.prevotes_refused,
                core.prevotes_refused,
                seen.prevotes_refused,
            ),
            (
                &c.elections_started,
                core.elections_started,
                seen.elections_started,
            ),
            (&c.accepts_resent, core.accepts_resent, seen.accepts_resent),
            (
                &c.catch_up_requests,
                core.catch_up_requests,
                seen.catch_up_requests,
            ),
        ];
        for (counter, now, before) in pairs {
            counter.inc_by(now.saturating_sub(before));
        }
        self.core_seen = core;
    }

    fn on_inbound(&mut self, inbound: Inbound) -> Result<(), LoopError> {
        let now = self.clock.now();
        let from = inbound.from;
        match inbound.body {
            PeerBody::Paxos(msg) => {
                // What Status reports of the other members: their commit index as their
                // heartbeats (acks) carry it, and when they were last heard from.
                let commit = match &msg {
                    Message::Heartbeat { commit, .. } | Message::HeartbeatAck { commit, .. } => {
                        Some(*commit)
                    }
                    _ => None,
                };
                let seen = self.heard_from(from, now);
                if let Some(c) = commit {
                    seen.commit = seen.commit.max(c);
                }
                self.replica.on_message(now, from, msg)?
            }
            PeerBody::Progress { commit, applied } => {
                let seen = self.heard_from(from, now);
                seen.commit = commit;
                seen.applied = applied;
            }
            PeerBody::SnapshotRequest => self.serve_snapshot(from),
            PeerBody::SnapshotChunk {
                applied,
                total,
                offset,
                data,
            } => {
                let chunk = SnapshotChunk {
                    applied,
                    total,
                    offset,
                    data,
                };
                let result = blocking(|| self.replica.receive_snapshot_chunk(now, &chunk));
                self.on_install_result(result)?;
                if let Some(job) = self.replica.take_install_job() {
                    info!(
                        from = from.0,
                        slot = job.applied().0,
                        "snapshot received; installing it in the background"
                    );
                    self.metrics.gauges.installing.set(1);
                    if self.inline_jobs {
                        // Handled at the next turn, as a background install's result would be.
                        let result = blocking(|| job.run());
                        if let Err(mpsc::error::TrySendError::Full(result)) =
                            self.installs_tx.try_send(result)
                        {
                            // One install runs at a time, so the slot is free; if not, finish
                            // here.
                            self.install_done(result)?;
                        }
                    } else {
                        let tx = self.installs_tx.clone();
                        tokio::task::spawn_blocking(move || {
                            let _ = tx.blocking_send(job.run());
                        });
                    }
                }
            }
            PeerBody::SnapshotUnavailable => {
                self.metrics.counters.snapshot_unavailable.inc();
                warn!(from = from.0, "peer has no snapshot to send");
            }
            PeerBody::RejoinBarrier => {
                if matches!(self.replica.replica().role(), Role::Master { .. })
                    && let Ok(slot) = self.propose(&Command::Noop)
                {
                    info!(from = from.0, slot = slot.0, "rejoin barrier proposed");
                    self.pending.insert(slot, Waiter::Barrier(from));
                }
            }
            PeerBody::RejoinBarrierDone { slot } => {
                if self.state == MemberState::Rejoining && self.barrier.is_none() {
                    info!(
                        slot = slot.0,
                        "rejoin barrier committed; voting once applied through it"
                    );
                    self.barrier = Some(slot);
                }
            }
        }
        Ok(())
    }

    /// What this member knows of `from`, which was just heard from (`from` is a member: the
    /// transport authenticated it, so the map holds at most one entry per member).
    fn heard_from(&mut self, from: NodeId, now: libpaxos::Time) -> &mut PeerSeen {
        let seen = self.peer_seen.entry(from).or_insert(PeerSeen {
            commit: Slot(0),
            applied: Slot(0),
            heard: now,
        });
        seen.heard = now;
        seen
    }

    /// Tells every peer this member's commit and applied index, every [`PROGRESS_EVERY`]
    /// (the master reports them in `Status`).
    fn send_progress(&mut self, now: libpaxos::Time) {
        if self
            .last_progress
            .is_some_and(|t| now.since(t) < PROGRESS_EVERY)
        {
            return;
        }
        self.last_progress = Some(now);
        let me = self.replica.replica().id();
        let body = PeerBody::Progress {
            commit: self.replica.replica().commit(),
            applied: self.replica.database().namespace().applied(),
        };
        for &m in &self.members {
            if m != me {
                self.peers.send(m, &body);
            }
        }
    }

    /// The end of a background install: the quick switch to the staged namespace.
    fn install_done(
        &mut self,
        staged: Result<StagedInstall, libpaxos_db::DbError>,
    ) -> Result<(), LoopError> {
        self.metrics.gauges.installing.set(0);
        let now = self.clock.now();
        let result = blocking(|| self.replica.install_finished(now, staged));
        self.on_install_result(result)
    }

    /// What an install (or a chunk that may have completed one) did.
    fn on_install_result(
        &mut self,
        result: Result<Option<Slot>, GlueError>,
    ) -> Result<(), LoopError> {
        match result {
            Ok(Some(slot)) => {
                self.metrics.counters.snapshots_installed.inc();
                info!(slot = slot.0, "snapshot installed");
                self.on_applied(Vec::new());
                // Proposals at or below the installed slot cannot be matched any more.
                let rest = self.pending.split_off(&slot.next());
                for (_, waiter) in std::mem::replace(&mut self.pending, rest) {
                    self.fail_waiter(waiter, SubmitError::Lost);
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(GlueError::SnapshotRefused(err)) => {
                self.metrics.counters.snapshot_chunks_refused.inc();
                warn!(%err, "snapshot chunk or install refused");
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    fn serve_snapshot(&self, to: NodeId) {
        {
            let mut streaming = self.streaming.lock().unwrap_or_else(|e| e.into_inner());
            if !streaming.insert(to) {
                // One transfer per peer at a time: a repeated request while one runs is
                // answered by the running one.
                return;
            }
        }
        let streaming = self.streaming.clone();
        let reader = match self.replica.snapshot_reader() {
            Ok(reader) => reader,
            Err(err) => {
                self.metrics.counters.snapshot_unavailable.inc();
                warn!(to = to.0, %err, "cannot send a snapshot");
                self.peers.send(to, &PeerBody::SnapshotUnavailable);
                streaming
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&to);
                return;
            }
        };
        let done = StreamDone(streaming, to);
        let stream = stream_snapshot(
            reader,
            self.peers.clone(),
            to,
            self.metrics.counters.clone(),
            done,
        );
        if self.inline_jobs {
            // An async task: chunks are read on the runtime's thread, between the sends.
            tokio::spawn(stream);
        } else {
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || runtime.block_on(stream));
        }
    }

    /// Moves a non-voting member forward: bootstrap when every member is fresh, otherwise
    /// rejoin through a barrier.
    fn rejoin_progress(&mut self) -> Result<(), LoopError> {
        match self.state {
            MemberState::Voter => Ok(()),
            MemberState::Fresh => {
                let peers = self
                    .sink
                    .peers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let me = self.replica.replica().id();
                let others: Vec<NodeId> =
                    self.members.iter().copied().filter(|m| *m != me).collect();
                if peers
                    .values()
                    .any(|s| matches!(s, MemberState::Voter | MemberState::Rejoining))
                {
                    info!(
                        "the cell has history and this data dir is empty: rejoining without a vote until caught up (Paxos Made Live 5.1)"
                    );
                    self.set_state(MemberState::Rejoining)
                } else if others
                    .iter()
                    .all(|m| peers.get(m) == Some(&MemberState::Fresh))
                {
                    info!("every member reports an empty data dir: bootstrapping a new cell");
                    self.set_state(MemberState::Voter)
                } else {
                    Ok(())
                }
            }
            MemberState::Rejoining => {
                let now = self.clock.now();
                if let Some(barrier) = self.barrier {
                    if self.replica.database().namespace().applied() >= barrier {
                        info!(
                            barrier = barrier.0,
                            "caught up and saw a complete instance begun after rejoining: voting again"
                        );
                        self.set_state(MemberState::Voter)?;
                    }
                    return Ok(());
                }
                let due = self
                    .last_barrier_ask
                    .is_none_or(|t| now.since(t) >= REJOIN_RETRY);
                if due {
                    self.last_barrier_ask = Some(now);
                    let me = self.replica.replica().id();
                    for &m in &self.members {
                        if m != me {
                            self.peers.send(m, &PeerBody::RejoinBarrier);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn set_state(&mut self, state: MemberState) -> Result<(), LoopError> {
        self.data_dir.set_state(state)?;
        self.state = state;
        *self.sink.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.metrics
            .gauges
            .rejoining
            .set(i64::from(state != MemberState::Voter));
        self.publish_role();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart_from_other_failures() {
        let enospc = LoopError::Glue(GlueError::SyncFailed(
            "flush: No space left on device (os error 28)".into(),
        ));
        assert!(enospc.is_disk_full());
        let log = LoopError::Glue(GlueError::Log(libpaxos::StorageError::Io(
            "write: os error 28".into(),
        )));
        assert!(log.is_disk_full());
        assert!(LoopError::DiskFull("below the reserve".into()).is_disk_full());
        // Any other failed sync still stops the process.
        let eio = LoopError::Glue(GlueError::SyncFailed(
            "flush: Input/output error (os error 5)".into(),
        ));
        assert!(!eio.is_disk_full());
    }
    use libpaxos::{Ballot, Entry, Epoch as E, Payload, Value};

    #[test]
    fn a_member_without_a_vote_withholds_every_vote_and_election_message_only() {
        let b = Ballot {
            round: 1,
            node: NodeId(1),
        };
        let entry = Entry {
            slot: Slot(1),
            ballot: b,
            value: Value {
                epoch: E(0),
                payload: Payload::Noop,
            },
        };
        let withheld = [
            Message::PreVote {
                attempt: 1,
                round: 1,
                commit: Slot(0),
            },
            Message::PreVoteReply {
                attempt: 1,
                round: 1,
                granted: true,
                promised: b,
            },
            Message::Prepare {
                ballot: b,
                from: Slot(1),
            },
            Message::Promise {
                ballot: b,
                commit: Slot(0),
                entries: vec![],
            },
            Message::Accepted {
                ballot: b,
                slots: vec![Slot(1)],
            },
            Message::HeartbeatAck {
                ballot: b,
                seq: 1,
                commit: Slot(0),
            },
            Message::Accept {
                ballot: b,
                commit: Slot(0),
                entries: vec![entry],
            },
            Message::Heartbeat {
                ballot: b,
                seq: 1,
                commit: Slot(0),
            },
        ];
        for msg in &withheld {
            assert!(
                !allowed_without_vote(msg),
                "{} must be withheld",
                msg.kind()
            );
        }
        let allowed = [
            Message::CatchUpRequest { from: Slot(1) },
            Message::CatchUp {
                commit: Slot(0),
                entries: vec![],
            },
            Message::SnapshotNeeded { slot: Slot(1) },
            Message::Reject {
                ballot: b,
                promised: b,
            },
        ];
        for msg in &allowed {
            assert!(allowed_without_vote(msg), "{} may leave", msg.kind());
        }
    }
}
