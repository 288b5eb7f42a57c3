//! The client front end: a sans-IO core that speaks docs/protocol.md (v2) for one member.
//!
//! Datagrams and time go in ([`Frontend::on_datagram`], [`Frontend::on_tick`]), so do the
//! replica's results ([`Frontend::on_applied`], [`Frontend::on_proposal_failed`],
//! [`Frontend::on_role`]); datagrams to send and commands to propose come out
//! ([`Frontend::take_outputs`]). The replica loop drives it with the namespace at hand, so
//! reads see the applied state synchronously; only the UDP edge ([`edge`]) touches sockets.
//!
//! What it keeps is docs/protocol.md §17.2: per session, as master, the replay window of its
//! epoch, `answered` and its reply, the packet counter, unacknowledged events, the reply
//! address and the lease deadline; per member, the [`Responder`], the stateless packet
//! counter and the rate limits. Everything else is in the replicated session record.

pub mod convert;
mod db;
pub mod edge;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cldc::proto::{
    CellKeys, CellStatus, DecodeError, Epoch, ErrorCode, Event, EventSeq, HandshakeOutcome, Header,
    InitCheck, KeepAliveReply, Kind, MAX_MESSAGE, MemberStatus, NotMaster, PacketMeta, PacketSeq,
    Reassembled, Reassembler, ReassemblerLimits, ReplayWindow, Reply, Request, Responder,
    ResponderCounters, ResponderLimits, Response, Role, Secret, Sender, SessionKeys, StatusCounter,
    UserName, decode_body, encode_body, encode_message, open_packet, parse_header,
};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, DynKv, Namespace, RequestSeq, SessionId, WallTime,
};

use crate::env::Entropy;
use crate::metrics::Counters;

/// Most unacknowledged events held per session; beyond it new events are dropped (counted)
/// and one `MasterFailover` follows once there is room (docs/protocol.md 9.4).
pub const MAX_UNACKED_EVENTS: usize = 1024;
/// Most proposals the front end keeps in flight; beyond it requests are dropped (the client
/// retransmits).
pub const MAX_PROPOSALS: usize = 16384;
/// `Retry` and `NotMaster` answers per session: at most one per this interval.
pub const ANSWER_INTERVAL: Duration = Duration::from_millis(100);
/// How often the cookie secret rotates.
pub const COOKIE_ROTATION: Duration = Duration::from_secs(120);
/// How often [`Frontend::on_tick`] does its per-session work.
pub const TICK_EVERY: Duration = Duration::from_millis(20);
/// How often [`Frontend::on_tick`] looks at every session, not only those whose lease ran out
/// or that have unacknowledged events: the only decision left to this sweep is forgetting a
/// session the namespace no longer has (ended by a slot another path applied), which is
/// memory only (a datagram for it looks at the namespace first).
pub const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What the front end needs to know about the cell.
#[derive(Clone)]
pub struct FrontendConfig {
    /// This member's id.
    pub member: u32,
    /// This member's boot number (data dir, incremented at every start).
    pub boot: u32,
    /// The session lease granted.
    pub lease: Duration,
    /// How long past the lease the master waits before it expires a session.
    pub expiry_margin: Duration,
    /// The largest datagram sent (and, at least 1400, accepted).
    pub max_datagram: usize,
    /// The users and their secrets.
    pub users: HashMap<String, Secret>,
    /// Every member's client address, by member id (for `NotMaster` hints and `Status`).
    pub client_addrs: BTreeMap<u64, SocketAddr>,
    /// Sessions per user, live and pending.
    pub max_sessions_per_user: usize,
    /// How long an ended session's tombstone is kept.
    pub tombstone_ttl: Duration,
    /// Unacknowledged events are re-sent at least this often.
    pub max_rto: Duration,
    /// Test-only bugs (all off for a real member).
    pub bugs: crate::server::Bugs,
}

impl FrontendConfig {
    fn expiry(&self) -> Expiry {
        Expiry {
            lease: self.lease,
            margin: self.expiry_margin,
            early: self.bugs.early_expiry,
        }
    }

    fn expiry_due(&self, lease_until: Duration) -> Duration {
        self.expiry().due(lease_until)
    }
}

/// When sessions expire.
#[derive(Clone, Copy)]
struct Expiry {
    lease: Duration,
    margin: Duration,
    early: bool,
}

impl Expiry {
    /// When a session whose lease runs to `lease_until` is due to expire: after the lease
    /// and the expiry margin (or, with the `early_expiry` bug, a quarter of the way through
    /// the lease).
    fn due(self, lease_until: Duration) -> Duration {
        if self.early {
            lease_until.saturating_sub(self.lease * 3 / 4)
        } else {
            lease_until + self.margin
        }
    }
}

impl std::fmt::Debug for FrontendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontendConfig")
            .field("member", &self.member)
            .field("boot", &self.boot)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The member's role as the front end sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeRole {
    /// `Some(epoch)` when this member is master of that epoch.
    pub master: Option<u64>,
    /// The highest epoch this member knows of.
    pub epoch: u64,
    /// The master this member believes in (member id).
    pub hint: Option<u64>,
}

/// The replicated state and what the replica allows, at the moment of a call.
pub struct CellView<'a> {
    /// The applied namespace.
    /// (On the server's store, whichever engine: [`DynKv`].)
    pub ns: &'a Namespace<DynKv>,
    /// Whether a linearizable read may be answered now (`DbReplica::can_read`).
    pub can_read: bool,
    /// The members as this member sees them (for `Status`).
    pub members: &'a [MemberStatus],
}

/// Identifies a proposal the front end made.
pub type Token = u64;

/// What the front end asks of its driver.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Send(SocketAddr, Vec<u8>),
    /// Propose a command; report its fate with [`Frontend::on_applied`] or
    /// [`Frontend::on_proposal_failed`].
    Propose(Token, Command),
}

enum Proposal {
    Request {
        session: SessionId,
        seq: u64,
    },
    Barrier {
        session: SessionId,
        seq: u64,
        request: Request,
    },
    Expire {
        session: SessionId,
    },
    EndDelays,
    Purge,
    RestartDelays,
}

/// A session as the master holds it in memory (docs/protocol.md §17.2).
struct Live {
    keys: SessionKeys,
    user: String,
    window: ReplayWindow,
    addr: Option<SocketAddr>,
    next_packet: PacketSeq,
    reassembler: Reassembler,
    answered: u64,
    reply: Option<Response>,
    in_flight: Option<u64>,
    next_event: u64,
    unacked: BTreeMap<u64, Event>,
    last_event_send: Duration,
    lease_until: Duration,
    last_answer: Option<Duration>,
    expiring: bool,
    creating: bool,
    /// Event masks of handles opened under this master (the database has one bit for both
    /// child events; these split them again). Unknown handles get both.
    masks: HashMap<u64, cldc::proto::EventMask>,
    /// Events were dropped on a full queue: a `MasterFailover` is owed once there is room.
    events_lost: bool,
    /// The mask of the open in flight: (its seq, its mask).
    opening: Option<(u64, cldc::proto::EventMask)>,
}

impl Live {
    fn new(keys: SessionKeys, user: String, lease_until: Duration) -> Live {
        Live {
            keys,
            user,
            window: ReplayWindow::default(),
            addr: None,
            next_packet: PacketSeq(1),
            reassembler: Reassembler::new(ReassemblerLimits::default()),
            answered: 0,
            reply: None,
            in_flight: None,
            next_event: 1,
            unacked: BTreeMap::new(),
            last_event_send: Duration::ZERO,
            lease_until,
            last_answer: None,
            expiring: false,
            creating: false,
            masks: HashMap::new(),
            opening: None,
            events_lost: false,
        }
    }

    fn rate_ok(&mut self, now: Duration) -> bool {
        if self
            .last_answer
            .is_some_and(|t| now.saturating_sub(t) < ANSWER_INTERVAL)
        {
            return false;
        }
        self.last_answer = Some(now);
        true
    }
}

/// The front-end core of one member.
pub struct Frontend {
    config: FrontendConfig,
    responder: Responder,
    entropy: Arc<dyn Entropy>,
    counters: Counters,
    responder_seen: ResponderCounters,
    role: FeRole,
    /// Ordered: the full sweep walks it, and the order of its expiries and resends must not
    /// depend on hashing (deterministic simulation). The other maps are only looked up.
    lives: BTreeMap<SessionId, Live>,
    /// When each live session may next be due (its lease plus the expiry margin, or the next
    /// tick while it stays due), earliest first. Lazy: an entry is checked against the
    /// session when it comes up (a keepalive moves the lease without touching this), and
    /// every live session has at least one entry no later than its deadline.
    deadlines: BinaryHeap<Reverse<(Duration, SessionId)>>,
    /// Sessions that may hold unacknowledged events (lazy: dropped when found empty).
    with_unacked: BTreeSet<SessionId>,
    next_full_sweep: Duration,
    proposals: HashMap<Token, Proposal>,
    next_token: Token,
    stateless_packet: PacketSeq,
    limited: HashMap<u64, Duration>,
    out: Vec<Output>,
    next_tick: Duration,
    next_cookie_rotation: Duration,
    end_delays_in_flight: bool,
    purge_in_flight: bool,
    served_epoch: u64,
    /// This reign's `RestartLockDelays` applied (REVIEW-FE 5).
    delays_restarted: bool,
    restart_in_flight: bool,
}

enum Found {
    Live,
    Record(SessionKeys),
    Pending,
    Tombstone(SessionKeys),
}

fn random32(entropy: &dyn Entropy) -> [u8; 32] {
    let mut b = [0u8; 32];
    entropy.fill(&mut b);
    b
}

fn is_read(req: &Request) -> bool {
    matches!(
        req,
        Request::GetContentsAndStat { .. }
            | Request::Stat { .. }
            | Request::ListDir { .. }
            | Request::GetSequencer { .. }
            | Request::CheckSequencer { .. }
            | Request::Status
            | Request::NewSession
    )
}

impl Frontend {
    /// A front end with the cell's key(s).
    pub fn new(
        config: FrontendConfig,
        keys: CellKeys,
        entropy: Arc<dyn Entropy>,
        counters: Counters,
    ) -> Frontend {
        let responder = Responder::new(keys, random32(&*entropy), ResponderLimits::default());
        Frontend {
            config,
            responder,
            entropy,
            counters,
            responder_seen: ResponderCounters::default(),
            role: FeRole::default(),
            lives: BTreeMap::new(),
            deadlines: BinaryHeap::new(),
            with_unacked: BTreeSet::new(),
            next_full_sweep: Duration::ZERO,
            proposals: HashMap::new(),
            next_token: 1,
            stateless_packet: PacketSeq(1),
            limited: HashMap::new(),
            out: Vec::new(),
            next_tick: Duration::ZERO,
            next_cookie_rotation: COOKIE_ROTATION,
            end_delays_in_flight: false,
            purge_in_flight: false,
            served_epoch: 0,
            delays_restarted: false,
            restart_in_flight: false,
        }
    }

    /// What to send and propose, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Sessions this member holds as master.
    pub fn live_sessions(&self) -> usize {
        self.lives.len()
    }

    /// Pending handshakes.
    pub fn pending_handshakes(&self) -> usize {
        self.responder.pending_count()
    }

    fn master_sender(&self, epoch: u64) -> Sender {
        Sender {
            role: Role::Master,
            epoch: Epoch(epoch),
            member: self.config.member,
            boot: self.config.boot,
        }
    }

    fn stateless_sender(&self) -> Sender {
        Sender {
            role: Role::Stateless,
            epoch: Epoch(self.role.master.unwrap_or(self.role.epoch)),
            member: self.config.member,
            boot: self.config.boot,
        }
    }

    fn hint(&self) -> Option<SocketAddr> {
        self.role
            .hint
            .and_then(|m| self.config.client_addrs.get(&m).copied())
    }

    fn accept_limit(&self) -> usize {
        self.config
            .max_datagram
            .max(cldc::proto::DEFAULT_MAX_DATAGRAM)
    }

    fn sync_responder_counters(&mut self) {
        let now = self.responder.counters();
        let was = self.responder_seen;
        let c = &self.counters;
        c.handshake_malformed.inc_by(now.malformed - was.malformed);
        c.handshake_resent.inc_by(now.resent - was.resent);
        c.handshake_cookies_sent
            .inc_by(now.cookies_sent - was.cookies_sent);
        c.handshake_bad.inc_by(now.bad_inits - was.bad_inits);
        c.handshake_unknown_cell_key
            .inc_by(now.unknown_cell_key - was.unknown_cell_key);
        c.handshake_answered.inc_by(now.answered - was.answered);
        c.handshake_expired.inc_by(now.expired - was.expired);
        c.handshake_evicted.inc_by(now.evicted - was.evicted);
        c.handshake_completed.inc_by(now.completed - was.completed);
        self.responder_seen = now;
    }

    fn propose(&mut self, proposal: Proposal, command: Command) -> bool {
        if self.proposals.len() >= MAX_PROPOSALS {
            self.counters.proposals_failed.inc();
            return false;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.proposals.insert(token, proposal);
        self.out.push(Output::Propose(token, command));
        true
    }

    // ---- sending ----

    fn stateless_answer(
        &mut self,
        keys: &SessionKeys,
        session: cldc::proto::SessionId,
        kind: Kind,
        msg_seq: u64,
        body: &[u8],
        to: SocketAddr,
    ) {
        let key = keys.sealing_key(&self.stateless_sender());
        let meta = PacketMeta {
            kind,
            session,
            msg_seq,
            ack: EventSeq(0),
        };
        if let Ok(dgs) = encode_message(
            &meta,
            body,
            self.config.max_datagram,
            &key,
            &mut self.stateless_packet,
        ) {
            self.out
                .extend(dgs.into_iter().map(|d| Output::Send(to, d)));
        }
    }

    fn not_master(
        &mut self,
        keys: &SessionKeys,
        h: &Header,
        to: SocketAddr,
        now: Duration,
        hint: Option<SocketAddr>,
    ) {
        // At most one per session per 100 ms (docs/protocol.md §9.1).
        let last = self.limited.get(&h.session.0).copied();
        if last.is_some_and(|t| now.saturating_sub(t) < ANSWER_INTERVAL) {
            self.counters.not_master_limited.inc();
            return;
        }
        if self.limited.len() >= 65536 {
            self.limited
                .retain(|_, t| now.saturating_sub(*t) < ANSWER_INTERVAL);
        }
        self.limited.insert(h.session.0, now);
        self.counters.not_master_sent.inc();
        let body = encode_body(&NotMaster { hint }).unwrap_or_default();
        self.stateless_answer(keys, h.session, Kind::NotMaster, h.msg_seq, &body, to);
    }

    /// Seals a message to a live session, to `to` or its reply address.
    fn send_live(
        &mut self,
        id: SessionId,
        kind: Kind,
        msg_seq: u64,
        body: &[u8],
        to: Option<SocketAddr>,
    ) {
        let Some(epoch) = self.role.master else {
            return;
        };
        let sender = self.master_sender(epoch);
        let max = self.config.max_datagram;
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        let Some(to) = to.or(live.addr) else {
            return;
        };
        let key = live.keys.sealing_key(&sender);
        let meta = PacketMeta {
            kind,
            session: cldc::proto::SessionId(id.0),
            msg_seq,
            ack: EventSeq(live.answered),
        };
        if let Ok(dgs) = encode_message(&meta, body, max, &key, &mut live.next_packet) {
            self.out
                .extend(dgs.into_iter().map(|d| Output::Send(to, d)));
        }
    }

    fn reply(&mut self, id: SessionId, seq: u64, response: Response) {
        let (body, response) = match encode_body(&response) {
            Ok(b) if b.len() <= MAX_MESSAGE => (b, response),
            // Cached as sent, so a retransmission gets TooLarge again (REVIEW-FE 11).
            _ => (
                encode_body(&Response::Err(ErrorCode::TooLarge)).unwrap_or_default(),
                Response::Err(ErrorCode::TooLarge),
            ),
        };
        if let Some(live) = self.lives.get_mut(&id) {
            if seq >= live.answered {
                live.answered = seq;
                live.reply = Some(response);
            }
            if live.in_flight == Some(seq) {
                live.in_flight = None;
            }
        }
        self.send_live(id, Kind::Reply, seq, &body, None);
    }

    fn queue_event(&mut self, now: Duration, id: SessionId, event: Event) {
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        if live.events_lost && live.unacked.len() < MAX_UNACKED_EVENTS {
            // Room again after a loss: the next seq says "events were lost, re-read"
            // (docs/protocol.md 9.4), never a gap in the numbered stream (REVIEW-FE 4).
            self.owe_lost_notice(now, id);
            return self.queue_event(now, id, event);
        }
        if live.unacked.len() >= MAX_UNACKED_EVENTS {
            live.events_lost = true;
            self.counters.events_dropped.inc();
            return;
        }
        let seq = live.next_event;
        live.next_event += 1;
        let body = encode_body(&event).unwrap_or_default();
        if live.unacked.is_empty() {
            // The resend clock runs from the oldest unacknowledged event's send: new events
            // do not postpone it (REVIEW-FE 9).
            live.last_event_send = now;
        }
        live.unacked.insert(seq, event);
        self.with_unacked.insert(id);
        if live.addr.is_some() {
            self.counters.events_sent.inc();
            self.send_live(id, Kind::Event, seq, &body, None);
        }
    }

    /// Sends the `MasterFailover` owed after a loss, if there is room now.
    fn owe_lost_notice(&mut self, now: Duration, id: SessionId) {
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        if !live.events_lost || live.unacked.len() >= MAX_UNACKED_EVENTS {
            return;
        }
        live.events_lost = false;
        if let Some(epoch) = self.role.master {
            self.counters.events_lost.inc();
            let lost = Event::MasterFailover {
                epoch: Epoch(epoch),
            };
            self.queue_event(now, id, lost);
        }
    }

    fn resend_events(&mut self, now: Duration, id: SessionId) {
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        if live.addr.is_none() || live.unacked.is_empty() {
            return;
        }
        live.last_event_send = now;
        let events: Vec<(u64, Vec<u8>)> = live
            .unacked
            .iter()
            .map(|(s, e)| (*s, encode_body(e).unwrap_or_default()))
            .collect();
        for (seq, body) in events {
            self.counters.events_resent.inc();
            self.send_live(id, Kind::Event, seq, &body, None);
        }
    }

    // ---- inputs ----

    /// The member's role changed. A new master epoch resets every session's memory: a fresh
    /// lease from now and `MasterFailover` as its first event (docs/protocol.md §11.3).
    pub fn on_role(&mut self, now: Duration, mut role: FeRole, cell: &CellView<'_>) {
        if let Some(e) = role.master
            && e <= self.served_epoch
            && self.role.master != Some(e)
        {
            // Serving an epoch again after leaving it would restart the per-session packet
            // counters under the same master keys (a repeated nonce): never.
            self.counters.not_serving.inc();
            role.master = None;
        }
        if let Some(e) = role.master {
            self.served_epoch = self.served_epoch.max(e);
        }
        let epoch = role
            .epoch
            .max(self.role.epoch)
            .max(role.master.unwrap_or(0));
        let changed = role.master != self.role.master;
        self.role = FeRole { epoch, ..role };
        if !changed {
            return;
        }
        self.lives.clear();
        self.deadlines.clear();
        self.with_unacked.clear();
        // Proposals of an earlier reign: their outcomes are never answered from here (a
        // StaleEpoch one may still be re-sent and run); the client's retransmission is answered
        // from the record (REVIEW-FE 3).
        self.proposals.clear();
        self.end_delays_in_flight = false;
        self.purge_in_flight = false;
        self.delays_restarted = false;
        self.restart_in_flight = false;
        let Some(epoch) = role.master else {
            return;
        };
        let sessions: Vec<(SessionId, String)> = cell
            .ns
            .sessions()
            .map(|(id, s)| (id, s.user.clone()))
            .collect();
        for (id, user) in sessions {
            if let Some(keys) = db::session_keys(cell.ns, id) {
                self.adopt(now, id, keys, user, epoch);
            }
        }
    }

    /// Holds `live` as session `id`, with its deadline in [`Self::deadlines`].
    fn insert_live(&mut self, id: SessionId, live: Live) {
        let due = self.config.expiry_due(live.lease_until);
        if !live.unacked.is_empty() {
            self.with_unacked.insert(id);
        }
        self.lives.insert(id, live);
        self.deadlines.push(Reverse((due, id)));
    }

    /// Holds a session of the namespace as this master: a fresh lease and `MasterFailover`.
    fn adopt(&mut self, now: Duration, id: SessionId, keys: SessionKeys, user: String, epoch: u64) {
        let live = Live::new(keys, user, now + self.config.lease);
        self.insert_live(id, live);
        self.queue_event(
            now,
            id,
            Event::MasterFailover {
                epoch: Epoch(epoch),
            },
        );
    }

    /// One datagram from `from`, received at `now` (monotonic) / `wall`.
    pub fn on_datagram(
        &mut self,
        now: Duration,
        wall: WallTime,
        from: SocketAddr,
        dg: &[u8],
        cell: &CellView<'_>,
    ) {
        let h = match parse_header(dg, self.accept_limit()) {
            Ok((h, _)) => h,
            Err(err) => {
                let c = &self.counters;
                match err {
                    DecodeError::TooLong => c.too_long.inc(),
                    DecodeError::TooShort => c.too_short.inc(),
                    DecodeError::BadMagic => c.bad_magic.inc(),
                    DecodeError::BadVersion(_) => c.bad_version.inc(),
                    _ => c.bad_header.inc(),
                };
                return;
            }
        };
        if !h.kind.is_client_to_server() {
            self.counters.wrong_direction.inc();
            return;
        }
        if h.kind == Kind::HandshakeInit {
            self.on_init(now, from, dg, cell);
            return;
        }
        self.on_sealed(now, wall, from, dg, &h, cell);
    }

    fn on_init(&mut self, now: Duration, from: SocketAddr, dg: &[u8], cell: &CellView<'_>) {
        let sender = self.stateless_sender();
        let check = self
            .responder
            .check_init(now, from, dg, self.accept_limit(), sender);
        let init = match check {
            InitCheck::Answer(a) => {
                self.sync_responder_counters();
                self.out.push(Output::Send(from, a));
                return;
            }
            InitCheck::Drop(_) => {
                self.sync_responder_counters();
                return;
            }
            InitCheck::Fresh(init) => init,
        };
        let Some(secret) = self.config.users.get(init.user.as_str()).cloned() else {
            self.counters.handshake_unknown_user.inc();
            self.sync_responder_counters();
            return;
        };
        let outcome = match self.role.master {
            None => HandshakeOutcome::NotMaster { hint: self.hint() },
            Some(epoch) => {
                if self.user_sessions(&init.user, cell) >= self.config.max_sessions_per_user {
                    self.counters.sessions_per_user_refused.inc();
                    HandshakeOutcome::Refused {
                        code: ErrorCode::TooManySessions,
                    }
                } else {
                    match self.fresh_session_id(cell) {
                        Some(session) => HandshakeOutcome::Accepted {
                            session: cldc::proto::SessionId(session.0),
                            epoch: Epoch(epoch),
                        },
                        None => HandshakeOutcome::Refused {
                            code: ErrorCode::Busy,
                        },
                    }
                }
            }
        };
        let random = random32(&*self.entropy);
        if let Ok(reply) = self
            .responder
            .answer(now, &init, &secret, &outcome, sender, random)
        {
            self.out.push(Output::Send(from, reply));
        }
        self.sync_responder_counters();
    }

    fn user_sessions(&self, user: &UserName, cell: &CellView<'_>) -> usize {
        let creating = self
            .lives
            .values()
            .filter(|l| l.creating && l.user == user.as_str())
            .count();
        db::sessions_of(cell.ns, user.as_str()) + creating + self.responder.pending_for(user)
    }

    /// A session id never used: random, non-zero, not live, pending or tombstoned.
    fn fresh_session_id(&self, cell: &CellView<'_>) -> Option<SessionId> {
        (0..16).find_map(|_| {
            let id = SessionId(self.entropy.next_u64());
            let taken = id.0 == 0
                || self.lives.contains_key(&id)
                || db::known(cell.ns, id)
                || self.responder.is_pending(cldc::proto::SessionId(id.0));
            (!taken).then_some(id)
        })
    }

    fn on_sealed(
        &mut self,
        now: Duration,
        wall: WallTime,
        from: SocketAddr,
        dg: &[u8],
        h: &Header,
        cell: &CellView<'_>,
    ) {
        let id = SessionId(h.session.0);
        if self
            .lives
            .get(&id)
            .is_some_and(|l| !l.creating && cell.ns.session(id).is_none())
        {
            // Ended by a slot this master applied (any proposer): its tombstone answers.
            self.lives.remove(&id);
        }
        // 6: find keys — a live session's, a pending handshake's, a tombstone's.
        let found = if self.role.master.is_some() && self.lives.contains_key(&id) {
            Found::Live
        } else if let Some(k) = db::session_keys(cell.ns, id) {
            Found::Record(k)
        } else if self.responder.pending_key(h).is_some() {
            Found::Pending
        } else if let Some(k) = db::tombstone_keys(cell.ns, id) {
            Found::Tombstone(k)
        } else {
            self.counters.unknown_session.inc();
            return;
        };
        // 7: open under the client key of the header's epoch.
        let limit = self.accept_limit();
        let opened = match &found {
            Found::Live => {
                let keys = self.lives.get(&id).map(|l| &l.keys);
                open_packet(dg, limit, |h| keys.map(|k| k.sealing_key(&h.sender)))
            }
            Found::Record(k) | Found::Tombstone(k) => {
                open_packet(dg, limit, |h| Some(k.sealing_key(&h.sender)))
            }
            Found::Pending => open_packet(dg, limit, |h| self.responder.pending_key(h)),
        };
        let packet = match opened {
            Ok(p) => p,
            Err(err) => {
                match err {
                    DecodeError::BadTag => self.counters.bad_tag.inc(),
                    DecodeError::TooShort => self.counters.too_short.inc(),
                    _ => self.counters.bad_header.inc(),
                };
                return;
            }
        };
        let h = packet.header;
        // 8: pending and tombstones.
        match found {
            Found::Tombstone(keys) => {
                self.counters.ended_session.inc();
                if matches!(h.kind, Kind::Request | Kind::KeepAlive) {
                    let body =
                        encode_body(&Response::Err(ErrorCode::UnknownSession)).unwrap_or_default();
                    self.stateless_answer(&keys, h.session, Kind::Reply, h.msg_seq, &body, from);
                }
                return;
            }
            Found::Pending => {
                self.complete(now, wall, from, &h, &packet.payload);
                return;
            }
            Found::Record(keys) => {
                // 9: non-masters redirect; a master adopts a session it has not held yet.
                let Some(epoch) = self.role.master else {
                    if matches!(h.kind, Kind::Request | Kind::KeepAlive) {
                        let hint = self.hint();
                        self.not_master(&keys, &h, from, now, hint);
                    }
                    return;
                };
                let user = cell
                    .ns
                    .session(id)
                    .map(|s| s.user.clone())
                    .unwrap_or_default();
                self.adopt(now, id, keys, user, epoch);
            }
            Found::Live => {}
        }
        let Some(epoch) = self.role.master else {
            return;
        };
        let client_epoch = h.sender.epoch.0;
        if client_epoch > epoch {
            // The client has seen a newer master: this one is deposed.
            if matches!(h.kind, Kind::Request | Kind::KeepAlive)
                && let Some(keys) = self.lives.get(&id).map(|l| l.keys.clone())
            {
                self.not_master(&keys, &h, from, now, None);
            }
            return;
        }
        if client_epoch < epoch {
            self.counters.stale_epoch.inc();
            if matches!(h.kind, Kind::Request | Kind::KeepAlive) {
                let ok = self.lives.get_mut(&id).is_some_and(|l| l.rate_ok(now));
                if ok {
                    self.counters.retries_sent.inc();
                    self.send_live(id, Kind::Retry, h.msg_seq, &[], Some(from));
                } else {
                    self.counters.not_master_limited.inc();
                }
            }
            return;
        }
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        if !live.window.accept(h.packet_seq) {
            self.counters.replayed.inc();
            return;
        }
        // 10: the reply address, reassembly, decoding, acting.
        let first_contact = live.addr.is_none();
        live.addr = Some(from);
        if h.ack.0 > 0 {
            live.unacked.retain(|seq, _| *seq > h.ack.0);
        }
        if live.events_lost {
            self.owe_lost_notice(now, id);
        }
        if first_contact {
            // Events queued before this master knew where the session is (MasterFailover).
            self.resend_events(now, id);
        }
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        let evicted = live.reassembler.evicted();
        let pushed = live.reassembler.push(&h, &packet.payload);
        self.counters
            .reassembly_evictions
            .inc_by(live.reassembler.evicted() - evicted);
        let body = match pushed {
            Ok(Reassembled::Complete(b)) => b,
            Ok(_) => return,
            Err(_) => {
                self.counters.bad_fragment.inc();
                return;
            }
        };
        match h.kind {
            Kind::Ack => {}
            Kind::KeepAlive => {
                if !cell.can_read && !self.config.bugs.keepalive_without_lease {
                    self.counters.not_serving.inc();
                    return;
                }
                if live.expiring
                    || cell.ns.session(id).is_none()
                    || now > self.config.expiry_due(live.lease_until)
                {
                    // Its expiry is (or may be) on its way: no lease for it (REVIEW-FE 1).
                    self.counters.keepalives_refused.inc();
                    return;
                }
                live.lease_until = now + self.config.lease;
                self.counters.keepalives_answered.inc();
                let body = encode_body(&KeepAliveReply {
                    lease: self.config.lease,
                })
                .unwrap_or_default();
                self.send_live(id, Kind::KeepAliveReply, h.msg_seq, &body, None);
                if !first_contact {
                    self.resend_events(now, id);
                }
            }
            Kind::Request => match decode_body::<Request>(&body) {
                Ok(req) => self.on_request(now, wall, id, h.msg_seq, req, cell),
                Err(_) => {
                    self.counters.bad_body.inc();
                    if h.msg_seq > 1 {
                        // Through the seq checks and the barrier rule like any read; it is
                        // answered BadPacket (`answer_read` of NewSession) (REVIEW-FE 8).
                        self.on_request(now, wall, id, h.msg_seq, Request::NewSession, cell);
                    }
                }
            },
            _ => {}
        }
    }

    /// The first sealed datagram of a pending handshake: the session is born (12.3 step 4).
    fn complete(
        &mut self,
        now: Duration,
        wall: WallTime,
        from: SocketAddr,
        h: &Header,
        payload: &[u8],
    ) {
        let Some(epoch) = self.role.master else {
            self.counters.not_serving.inc();
            return;
        };
        if h.kind != Kind::Request || h.msg_seq != 1 || h.frag_count != 1 {
            self.counters.bad_body.inc();
            return;
        }
        // `pending_key` opened it under the accepting epoch's client key. An older accepting
        // epoch (this member answered the init in an earlier reign of its own) is no replay:
        // the entry is used once. The session is born in the current epoch, whose key seals
        // the reply; the client adopts that epoch from it (docs/protocol.md 15.2 step 8).
        if h.sender.epoch.0 > epoch {
            self.counters.bad_body.inc();
            return;
        }
        if decode_body::<Request>(payload) != Ok(Request::NewSession) {
            self.counters.bad_body.inc();
            return;
        }
        let Some(proven) = self.responder.complete(h.session) else {
            return;
        };
        self.sync_responder_counters();
        let id = SessionId(proven.session.0);
        let mut live = Live::new(
            proven.keys,
            proven.user.as_str().to_string(),
            now + self.config.lease,
        );
        live.creating = true;
        live.window.accept(h.packet_seq);
        live.addr = Some(from);
        self.insert_live(id, live);
        self.propose_new_session(wall, id);
    }

    fn propose_new_session(&mut self, wall: WallTime, id: SessionId) {
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        live.in_flight = Some(1);
        let (user, keys) = (live.user.clone(), live.keys.clone());
        let op = db::new_session(&user, self.config.lease, &keys);
        self.counters.requests_proposed.inc();
        let command = Command::Client(ClientRequest {
            session: id,
            seq: RequestSeq(1),
            time: wall,
            op,
        });
        if !self.propose(
            Proposal::Request {
                session: id,
                seq: 1,
            },
            command,
        ) && let Some(live) = self.lives.get_mut(&id)
        {
            live.in_flight = None;
        }
    }

    fn on_request(
        &mut self,
        now: Duration,
        wall: WallTime,
        id: SessionId,
        seq: u64,
        req: Request,
        cell: &CellView<'_>,
    ) {
        let record = cell.ns.session(id);
        let Some(live) = self.lives.get_mut(&id) else {
            return;
        };
        if live.creating && record.is_none() {
            // Only the creating NewSession means anything before the record exists.
            if seq == 1 && req == Request::NewSession && live.in_flight.is_none() {
                self.propose_new_session(wall, id);
            } else {
                self.counters.stale_request.inc();
            }
            return;
        }
        let Some(record) = record else {
            return;
        };
        live.creating = false;
        let last_seq = record.last_seq.0;
        let seen = last_seq.max(live.answered);
        if seq < seen {
            self.counters.stale_request.inc();
            return;
        }
        if seq == seen {
            // A retransmission: the cached reply, never a second execution.
            let cached = if live.answered == seq {
                live.reply.clone()
            } else {
                convert::response(&record.last_reply, record.lease)
            };
            match cached {
                Some(resp) => {
                    let body = encode_body(&resp).unwrap_or_default();
                    self.send_live(id, Kind::Reply, seq, &body, None);
                }
                None => {
                    self.counters.stale_request.inc();
                }
            }
            return;
        }
        if live.in_flight == Some(seq) {
            self.counters.stale_request.inc();
            return;
        }
        let op = match self.write_op(&req) {
            Ok(Some(op)) => op,
            Ok(None) => {
                // A read (or a request refused before the log): the barrier rule.
                if seq > seen + 1 {
                    self.barrier(wall, id, seq, req);
                } else {
                    self.answer_read(id, seq, &req, cell);
                }
                return;
            }
            Err(code) => {
                if seq > seen + 1 {
                    self.barrier(wall, id, seq, req);
                } else {
                    self.answer_from_memory(id, seq, Response::Err(code), cell);
                }
                return;
            }
        };
        if self.delays_pending(cell) {
            // A write could grant a lock before this reign restarted the lock-delays: the
            // client's retransmission comes after the restart applied.
            self.counters.not_serving.inc();
            return;
        }
        if let Some(live) = self.lives.get_mut(&id) {
            live.in_flight = Some(seq);
            live.opening = match &req {
                Request::Open { events, .. } | Request::OpenWith { events, .. } => {
                    Some((seq, *events))
                }
                _ => None,
            };
        }
        self.counters.requests_proposed.inc();
        let command = Command::Client(ClientRequest {
            session: id,
            seq: RequestSeq(seq),
            time: wall,
            op,
        });
        if !self.propose(Proposal::Request { session: id, seq }, command)
            && let Some(live) = self.lives.get_mut(&id)
        {
            live.in_flight = None;
        }
        let _ = now;
    }

    /// The log op of a write; `Ok(None)` for a read; `Err` for a request refused before the
    /// log (unknown flag bits).
    fn write_op(&self, req: &Request) -> Result<Option<ClientOp>, ErrorCode> {
        Ok(Some(match req {
            r if is_read(r) => return Ok(None),
            Request::EndSession => ClientOp::EndSession,
            Request::Open { path, mode, events } => ClientOp::Open {
                path: path.clone(),
                mode: convert::open_mode(*mode).ok_or(ErrorCode::BadPacket)?,
                events: convert::event_mask(*events).ok_or(ErrorCode::BadPacket)?,
            },
            Request::OpenWith {
                path,
                mode,
                events,
                lock_delay,
            } => {
                if *lock_delay > cldc::proto::MAX_LOCK_DELAY {
                    return Err(ErrorCode::BadPacket);
                }
                ClientOp::OpenWith {
                    path: path.clone(),
                    mode: convert::open_mode(*mode).ok_or(ErrorCode::BadPacket)?,
                    events: convert::event_mask(*events).ok_or(ErrorCode::BadPacket)?,
                    lock_delay: *lock_delay,
                }
            }
            Request::Close { handle } => ClientOp::Close {
                handle: libpaxos_db::HandleId(handle.0),
            },
            Request::Put { handle, cas, data } => ClientOp::Put {
                handle: libpaxos_db::HandleId(handle.0),
                data: data.clone(),
                cas: cas.map(|c| libpaxos_db::ContentGeneration(c.0)),
            },
            Request::Delete { path } => ClientOp::Delete { path: path.clone() },
            Request::Lock { handle, mode, wait } => ClientOp::Lock {
                handle: libpaxos_db::HandleId(handle.0),
                mode: convert::lock_mode_in(*mode),
                wait: *wait,
            },
            Request::Unlock { handle } => ClientOp::Unlock {
                handle: libpaxos_db::HandleId(handle.0),
            },
            _ => return Ok(None),
        }))
    }

    /// A read after a gap: first log `Barrier` for `seq - 1` (docs/protocol.md §9.2), answer
    /// once it is applied.
    fn barrier(&mut self, wall: WallTime, id: SessionId, seq: u64, request: Request) {
        self.counters.barriers_logged.inc();
        if let Some(live) = self.lives.get_mut(&id) {
            live.in_flight = Some(seq);
        }
        let command = Command::Client(ClientRequest {
            session: id,
            seq: RequestSeq(seq.saturating_sub(1)),
            time: wall,
            op: db::barrier(),
        });
        let proposal = Proposal::Barrier {
            session: id,
            seq,
            request,
        };
        if !self.propose(proposal, command)
            && let Some(live) = self.lives.get_mut(&id)
        {
            live.in_flight = None;
        }
    }

    fn answer_from_memory(&mut self, id: SessionId, seq: u64, resp: Response, cell: &CellView<'_>) {
        if !cell.can_read {
            self.counters.not_serving.inc();
            return;
        }
        self.reply(id, seq, resp);
    }

    fn answer_read(&mut self, id: SessionId, seq: u64, req: &Request, cell: &CellView<'_>) {
        if !cell.can_read {
            self.counters.not_serving.inc();
            return;
        }
        let ns = cell.ns;
        let sid = id;
        let err = |e: &libpaxos_db::CmdError| Response::Err(convert::error_code(e));
        let resp = match req {
            Request::Stat { path } => match ns.stat(path) {
                Ok(node) => Response::Ok(Reply::Stat {
                    meta: convert::meta(&node),
                }),
                Err(e) => err(&e),
            },
            Request::ListDir { path } => match ns.list_dir(path) {
                Ok(entries) => Response::Ok(Reply::Listing {
                    entries: entries
                        .iter()
                        .map(|e| cldc::proto::DirEntry {
                            name: e.name.clone(),
                            meta: convert::meta(&e.node),
                        })
                        .collect(),
                }),
                Err(e) => err(&e),
            },
            Request::GetContentsAndStat { handle } => {
                match ns.read(sid, libpaxos_db::HandleId(handle.0)) {
                    Ok((node, data)) => Response::Ok(Reply::Contents {
                        meta: convert::meta(&node),
                        data,
                    }),
                    Err(libpaxos_db::ReadError::Cmd(e)) => err(&e),
                    Err(libpaxos_db::ReadError::Db(_)) => Response::Err(ErrorCode::Internal),
                }
            }
            Request::GetSequencer { handle } => {
                match ns.sequencer(sid, libpaxos_db::HandleId(handle.0)) {
                    Ok(s) => Response::Ok(Reply::Sequencer {
                        sequencer: convert::sequencer_out(&s),
                    }),
                    Err(e) => err(&e),
                }
            }
            Request::CheckSequencer { sequencer } => {
                match ns.check_sequencer(&convert::sequencer_in(sequencer)) {
                    Ok(()) => Response::Ok(Reply::SequencerValid),
                    Err(e) => err(&e),
                }
            }
            Request::Status => Response::Ok(Reply::Status(self.status(id, cell))),
            Request::NewSession => Response::Err(ErrorCode::BadPacket),
            _ => Response::Err(ErrorCode::Internal),
        };
        self.counters.reads_answered.inc();
        self.reply(id, seq, resp);
    }

    fn status(&self, id: SessionId, cell: &CellView<'_>) -> CellStatus {
        let last = self
            .lives
            .get(&id)
            .map_or(0, |l| l.answered)
            .max(cell.ns.session(id).map_or(0, |s| s.last_seq.0));
        let mut counters: Vec<StatusCounter> = self
            .counters
            .values()
            .into_iter()
            .map(|(name, value)| StatusCounter {
                name: name.to_string(),
                value,
            })
            .chain(std::iter::once(StatusCounter {
                name: "pending_handshakes".to_string(),
                value: self.responder.pending_count() as u64,
            }))
            .collect();
        counters.sort_by(|a, b| a.name.cmp(&b.name));
        CellStatus {
            epoch: Epoch(self.role.master.unwrap_or(self.role.epoch)),
            members: cell.members.to_vec(),
            sessions: cell.ns.sessions().count() as u64,
            last_request: cldc::proto::RequestSeq(last),
            counters,
        }
    }

    /// A proposal was refused or lost its slot: nothing ran; the client retransmits.
    /// `too_large`: the command exceeds what one Paxos batch carries; the request is
    /// answered `TooLarge` (it can never run).
    pub fn on_proposal_failed(&mut self, token: Token, too_large: bool) {
        let Some(p) = self.proposals.remove(&token) else {
            return;
        };
        self.counters.proposals_failed.inc();
        if too_large && let Proposal::Request { session, seq } = &p {
            let (session, seq) = (*session, *seq);
            self.reply(session, seq, Response::Err(ErrorCode::TooLarge));
            return;
        }
        match p {
            Proposal::Request { session, seq } | Proposal::Barrier { session, seq, .. } => {
                if let Some(live) = self.lives.get_mut(&session)
                    && live.in_flight == Some(seq)
                {
                    live.in_flight = None;
                }
            }
            Proposal::Expire { session } => {
                if let Some(live) = self.lives.get_mut(&session) {
                    live.expiring = false;
                }
            }
            Proposal::EndDelays => self.end_delays_in_flight = false,
            Proposal::Purge => self.purge_in_flight = false,
            Proposal::RestartDelays => self.restart_in_flight = false,
        }
    }

    /// Whether a lock-delay runs that this reign has not restarted on its own clock yet: until
    /// then no write that could grant a lock is proposed (docs/database.md, lock-delay).
    fn delays_pending(&self, cell: &CellView<'_>) -> bool {
        !self.delays_restarted && db::next_lock_delay_end(cell.ns).is_some()
    }

    /// A slot was applied; `token` when it held this front end's proposal. (`_wall` is the
    /// wall clock now, kept for symmetry with the other inputs.)
    pub fn on_applied(
        &mut self,
        now: Duration,
        _wall: WallTime,
        token: Option<Token>,
        applied: &libpaxos_db::Applied,
        cell: &CellView<'_>,
    ) {
        if let Some(p) = token.and_then(|t| self.proposals.remove(&t)) {
            match p {
                Proposal::Request { session, seq } => {
                    if matches!(applied.reply, Err(libpaxos_db::CmdError::StaleEpoch { .. })) {
                        // Did not run: like a lost proposal, nothing answered or cached.
                        self.counters.proposals_failed.inc();
                        if let Some(live) = self.lives.get_mut(&session)
                            && live.in_flight == Some(seq)
                        {
                            live.in_flight = None;
                        }
                    } else if applied.request == Some((session, RequestSeq(seq))) {
                        let resp = convert::response(&applied.reply, self.config.lease);
                        let ended =
                            matches!(applied.reply, Ok(libpaxos_db::Response::SessionEnded));
                        if matches!(applied.reply, Ok(libpaxos_db::Response::SessionCreated)) {
                            self.counters.sessions_created.inc();
                            if let Some(live) = self.lives.get_mut(&session) {
                                live.creating = false;
                                live.lease_until = now + self.config.lease;
                            }
                        }
                        if let (Ok(libpaxos_db::Response::Opened { handle, .. }), Some(live)) =
                            (&applied.reply, self.lives.get_mut(&session))
                            && let Some((s, mask)) = live.opening.take()
                            && s == seq
                        {
                            if live.masks.len() >= 4096 {
                                live.masks.clear();
                            }
                            live.masks.insert(handle.0, mask);
                        }
                        if let Some(resp) = resp {
                            self.reply(session, seq, resp);
                        }
                        if ended {
                            self.counters.sessions_ended.inc();
                            self.lives.remove(&session);
                        }
                    } else if let Some(live) = self.lives.get_mut(&session)
                        && live.in_flight == Some(seq)
                    {
                        live.in_flight = None;
                    }
                }
                Proposal::Barrier {
                    session,
                    seq,
                    request,
                } => {
                    if let Some(live) = self.lives.get_mut(&session)
                        && live.in_flight == Some(seq)
                    {
                        live.in_flight = None;
                    }
                    if applied.request == Some((session, RequestSeq(seq.saturating_sub(1))))
                        && applied.reply.is_ok()
                    {
                        match self.write_op(&request) {
                            Err(code) => {
                                self.answer_from_memory(session, seq, Response::Err(code), cell)
                            }
                            _ => self.answer_read(session, seq, &request, cell),
                        }
                    }
                }
                Proposal::Expire { session } => {
                    if cell.ns.session(session).is_none() {
                        self.counters.sessions_expired.inc();
                        self.lives.remove(&session);
                    } else if let Some(live) = self.lives.get_mut(&session) {
                        live.expiring = false;
                    }
                }
                Proposal::EndDelays => self.end_delays_in_flight = false,
                Proposal::Purge => self.purge_in_flight = false,
                Proposal::RestartDelays => {
                    self.restart_in_flight = false;
                    self.delays_restarted = applied.reply.is_ok();
                }
            }
        }
        let Some(epoch) = self.role.master else {
            return;
        };
        // A session created by a slot this master applied but did not propose (recovered
        // from the previous master): hold it now, so it is served and can expire.
        if let (Ok(libpaxos_db::Response::SessionCreated), Some((id, _))) =
            (&applied.reply, applied.request)
            && !self.lives.contains_key(&id)
            && let Some(record) = cell.ns.session(id)
            && let Some(keys) = db::session_keys(cell.ns, id)
        {
            let user = record.user.clone();
            self.adopt(now, id, keys, user, epoch);
        }
        if applied.events.is_empty() {
            return;
        }
        let generation = match &applied.reply {
            Ok(libpaxos_db::Response::Written { node }) => node.content_generation.0,
            _ => 0,
        };
        for notice in &applied.events {
            let wanted = match &notice.event {
                libpaxos_db::EventKind::ChildAdded { .. } => {
                    Some(cldc::proto::EventMask::CHILD_ADDED)
                }
                libpaxos_db::EventKind::ChildRemoved { .. } => {
                    Some(cldc::proto::EventMask::CHILD_REMOVED)
                }
                _ => None,
            };
            if let Some(bit) = wanted
                && let Some(mask) = self
                    .lives
                    .get(&notice.to.session)
                    .and_then(|l| l.masks.get(&notice.to.handle.0))
                && !mask.contains(bit)
            {
                continue;
            }
            let event = convert::event(notice, cldc::proto::ContentGeneration(generation));
            self.queue_event(now, notice.to.session, event);
        }
    }

    /// Timers: session expiry, event resends, lock-delay ends, tombstone purges, cookie
    /// rotation, pending handshake expiry.
    pub fn on_tick(&mut self, now: Duration, wall: WallTime, cell: &CellView<'_>) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK_EVERY;
        self.responder.expire(now);
        if now >= self.next_cookie_rotation {
            self.next_cookie_rotation = now + COOKIE_ROTATION;
            let r = random32(&*self.entropy);
            self.responder.rotate_cookie_secret(r);
        }
        self.sync_responder_counters();
        if self.limited.len() > 1024 {
            self.limited
                .retain(|_, t| now.saturating_sub(*t) < ANSWER_INTERVAL);
        }
        if self.role.master.is_none() {
            return;
        }
        if self.delays_pending(cell) && !self.restart_in_flight {
            // First in this reign: every running lock-delay restarts from now on this
            // master's wall clock, never compared with another master's (REVIEW-FE 5).
            self.restart_in_flight = self.propose(
                Proposal::RestartDelays,
                Command::RestartLockDelays { time: wall },
            );
        }
        if !cell.can_read {
            // Without a lease this master answers no keepalive: it expires nobody for the
            // time it could not listen (later is always the safe side of expiry).
            for live in self.lives.values_mut() {
                live.lease_until = live.lease_until.max(now);
            }
            return;
        }
        let expiry = self.config.expiry();
        let max_rto = self.config.max_rto;
        let delays_pending = self.delays_pending(cell);
        // The sessions to look at: every one at a full sweep; otherwise those whose deadline
        // came up and those with unacknowledged events. Each is judged as a full sweep would.
        let full = now >= self.next_full_sweep;
        let candidates: Vec<SessionId> = if full {
            self.next_full_sweep = now + FULL_SWEEP_EVERY;
            self.lives.keys().copied().collect()
        } else {
            let mut ids = BTreeSet::new();
            while let Some(Reverse((at, id))) = self.deadlines.peek().copied() {
                if at >= now {
                    break;
                }
                self.deadlines.pop();
                ids.insert(id);
            }
            self.with_unacked
                .retain(|id| self.lives.get(id).is_some_and(|l| !l.unacked.is_empty()));
            ids.extend(self.with_unacked.iter().copied());
            ids.into_iter().collect()
        };
        let mut expire = Vec::new();
        let mut gone = Vec::new();
        let mut resend = Vec::new();
        let mut recheck = Vec::new();
        for id in candidates {
            let Some(live) = self.lives.get(&id) else {
                continue;
            };
            let due = now > expiry.due(live.lease_until);
            if !full {
                if !due {
                    // The lease moved on since the entry was made.
                    self.deadlines
                        .push(Reverse((expiry.due(live.lease_until), id)));
                } else {
                    // Due: looked at every tick until it is gone or its lease moves on, as
                    // before (an expiry in flight, lock-delays pending, a create in flight).
                    recheck.push(id);
                }
            }
            let exists = cell.ns.session(id).is_some();
            if live.creating && !exists {
                if due && live.in_flight.is_none() {
                    gone.push(id);
                }
                continue;
            }
            if !exists {
                gone.push(id);
                continue;
            }
            if !live.expiring && due && !delays_pending {
                expire.push(id);
                continue;
            }
            if !live.unacked.is_empty()
                && live.addr.is_some()
                && now.saturating_sub(live.last_event_send) >= max_rto
            {
                resend.push(id);
            }
        }
        for id in recheck {
            self.deadlines.push(Reverse((now + TICK_EVERY, id)));
        }
        if full {
            // The heap's stale entries are rebuilt from the sessions (bounded memory).
            self.deadlines = self
                .lives
                .iter()
                .map(|(id, l)| Reverse((expiry.due(l.lease_until).max(now), *id)))
                .collect();
        }
        for id in gone {
            self.lives.remove(&id);
        }
        for id in resend {
            self.resend_events(now, id);
        }
        for id in expire {
            if let Some(live) = self.lives.get_mut(&id) {
                live.expiring = true;
            }
            let ok = self.propose(
                Proposal::Expire { session: id },
                Command::ExpireSession {
                    session: id,
                    time: wall,
                },
            );
            if !ok && let Some(live) = self.lives.get_mut(&id) {
                live.expiring = false;
            }
        }
        if !self.end_delays_in_flight
            && !delays_pending
            && db::next_lock_delay_end(cell.ns).is_some_and(|t| t <= wall)
        {
            self.end_delays_in_flight =
                self.propose(Proposal::EndDelays, Command::EndLockDelays { time: wall });
        }
        let ttl = self.config.tombstone_ttl.as_millis() as u64;
        let before = WallTime(wall.0.saturating_sub(ttl));
        if !self.purge_in_flight && db::oldest_tombstone(cell.ns).is_some_and(|t| t < before) {
            self.purge_in_flight = self.propose(Proposal::Purge, db::purge(before));
        }
    }
}
