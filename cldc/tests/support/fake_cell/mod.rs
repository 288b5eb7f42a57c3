//! A scripted one-process "cell" speaking docs/protocol.md v2 over real loopback UDP, with
//! an in-memory namespace (in `namespace.rs`) and fault knobs (drop, duplicate, delay,
//! redirect, silence, fail-over).
//!
//! Its receive path (`State::handle_packet`) is the shape a server follows, built only from
//! `cldc::proto` pieces: `Responder` for handshakes (cookies, pending handshakes),
//! `Responder::pending_key`/`complete` for the first sealed datagram, `SessionKeys::
//! sealing_key` + `open_packet`/`encode_message` for sealed traffic, a `ReplayWindow` per
//! session and epoch, `Retry` for datagrams sealed under an older epoch, tombstones that
//! answer ended sessions in the stateless role, and `NotMaster` in the stateless role.

mod namespace;

use super::{USER, cell_keys, secret};
use cldc::proto::{
    ContentGeneration, Epoch, ErrorCode, Event, EventMask, EventSeq, HandleId, HandshakeOutcome,
    InitCheck, InstanceNumber, KeepAliveReply, Kind, LockGeneration, LockMode, NodeFlags, NodeMeta,
    NotMaster, OpenMode, PacketMeta, PacketSeq, Reassembled, Reassembler, ReassemblerLimits,
    ReplayWindow, Request, Responder, ResponderLimits, Response, Role, SealingKey, Sender,
    SessionId, SessionKeys, decode_body, encode_body, encode_message, open_packet, parse_header,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

/// What the test can make the cell do wrong.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Drop the next N datagrams from clients.
    pub drop_in: u32,
    /// Drop the next N datagrams to clients.
    pub drop_out: u32,
    /// Send every datagram to clients twice.
    pub duplicate_out: bool,
    /// Delay every datagram to clients by this much.
    pub delay_out: Option<Duration>,
    /// Answer everything with NotMaster carrying this hint.
    pub not_master: Option<Option<SocketAddr>>,
    /// Ignore everything.
    pub silent: bool,
    /// Do not answer keepalives.
    pub ignore_keepalives: bool,
    /// Drop every event datagram to clients.
    pub drop_events: bool,
    /// Forget every session at the next datagram (as after their expiry at the server).
    pub forget_sessions: bool,
    /// Become the master of this epoch at the next datagram: unacknowledged events are lost,
    /// numbering restarts, and every session gets a `MasterFailover` event.
    pub epoch: Option<u64>,
    /// Answer every handshake with a cookie request until it carries a valid cookie (as a
    /// cell under a handshake flood does).
    pub demand_cookies: bool,
    /// Post these events, in order, to the session of the next client request, before
    /// executing it (after a pending fail-over): the events a new master re-sends for an
    /// entry the old master committed just before failing (docs/protocol.md 9.4).
    pub inject: Vec<Event>,
}

/// What the cell saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests executed, in order (retransmissions answered from the cache are not here).
    pub executed: Vec<(SessionId, u64, Request)>,
    /// Requests answered from the reply cache.
    pub deduplicated: u64,
    /// Keepalives received.
    pub keepalives: u64,
    /// Handshake inits received, and how many were answered from a pending entry.
    pub inits: u64,
    /// Inits answered from a pending entry (client re-sends).
    pub inits_resent: u64,
    /// Cookie requests sent.
    pub cookies_sent: u64,
    /// Sealed datagrams that did not open, or were replays, or came from an older epoch.
    pub dropped: u64,
    /// `Retry` answers sent (datagrams sealed under an older epoch).
    pub retries: u64,
    /// Every datagram received, with its source (what an eavesdropper captures).
    pub raw_in: Vec<(SocketAddr, Vec<u8>)>,
    /// Unacknowledged events held, over all sessions, after the last datagram.
    pub unacked: usize,
}

struct Sess {
    keys: SessionKeys,
    window: ReplayWindow,
    addr: SocketAddr,
    next_packet: PacketSeq,
    reassembler: Reassembler,
    last_seq: u64,
    last_reply: Option<Response>,
    next_event: u64,
    unacked: BTreeMap<u64, Event>,
}

struct Node {
    meta: NodeMeta,
    data: Vec<u8>,
}

struct Open {
    session: SessionId,
    path: String,
    mode: OpenMode,
    events: EventMask,
}

type Holder = (SessionId, HandleId, LockMode);

#[derive(Default)]
struct LockState {
    holders: Vec<Holder>,
    queue: VecDeque<Holder>,
}

struct State {
    epoch: Epoch,
    member: u32,
    boot: u32,
    responder: Responder,
    /// Ended sessions' keys: their datagrams get a sealed `UnknownSession` (stateless role).
    ended: HashMap<SessionId, SessionKeys>,
    started: std::time::Instant,
    lease: Duration,
    sessions: HashMap<SessionId, Sess>,
    nodes: BTreeMap<String, Node>,
    handles: HashMap<HandleId, Open>,
    locks: HashMap<String, LockState>,
    next_handle: u64,
    next_instance: u64,
    /// Numbers everything sealed in the stateless role (one counter for all sessions).
    stateless_packet: PacketSeq,
}

/// A running fake cell member.
pub struct FakeCell {
    pub addr: SocketAddr,
    pub faults: Arc<Mutex<Faults>>,
    pub seen: Arc<Mutex<Seen>>,
}

impl FakeCell {
    /// Starts a member on an ephemeral loopback port, granting `lease`.
    pub async fn start(lease: Duration) -> FakeCell {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind loopback"));
        let addr = socket.local_addr().expect("bound");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "/".to_string(),
            Node {
                meta: meta(1, NodeFlags::DIRECTORY, &[]),
                data: vec![],
            },
        );
        let mut state = State {
            epoch: Epoch(1),
            member: 1,
            boot: 1,
            responder: Responder::new(cell_keys(), rand::random(), ResponderLimits::default()),
            ended: HashMap::new(),
            started: std::time::Instant::now(),
            lease,
            sessions: HashMap::new(),
            nodes,
            handles: HashMap::new(),
            locks: HashMap::new(),
            next_handle: 2,
            next_instance: 2,
            stateless_packet: PacketSeq(1),
        };
        let (f, s) = (faults.clone(), seen.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let out = state.handle(&buf[..n], from, &f, &s);
                for (to, dg) in out {
                    send(&socket, &f, to, dg).await;
                }
            }
        });
        FakeCell { addr, faults, seen }
    }

    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.faults.lock().expect("faults"));
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().expect("seen").clone()
    }
}

async fn send(socket: &Arc<UdpSocket>, faults: &Arc<Mutex<Faults>>, to: SocketAddr, dg: Vec<u8>) {
    let (copies, delay) = {
        let mut f = faults.lock().expect("faults");
        if f.drop_events && dg.get(5) == Some(&(Kind::Event as u8)) {
            return;
        }
        if f.drop_out > 0 {
            f.drop_out -= 1;
            return;
        }
        (if f.duplicate_out { 2 } else { 1 }, f.delay_out)
    };
    let socket = socket.clone();
    let go = async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        for _ in 0..copies {
            let _ = socket.send_to(&dg, to).await;
        }
    };
    if delay.is_some() {
        tokio::spawn(go);
    } else {
        go.await;
    }
}

fn meta(instance: u64, flags: NodeFlags, data: &[u8]) -> NodeMeta {
    NodeMeta {
        instance: InstanceNumber(instance),
        content_generation: ContentGeneration(1),
        lock_generation: LockGeneration(0),
        created: Duration::from_secs(1_700_000_000),
        modified: Duration::from_secs(1_700_000_000),
        size: data.len() as u32,
        checksum: NodeMeta::checksum_of(data),
        flags,
    }
}

impl State {
    fn handle(
        &mut self,
        dg: &[u8],
        from: SocketAddr,
        faults: &Mutex<Faults>,
        seen: &Mutex<Seen>,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = vec![];
        seen.lock().expect("seen").raw_in.push((from, dg.to_vec()));
        let new_epoch = faults.lock().expect("faults").epoch;
        if let Some(e) = new_epoch
            && e > self.epoch.0
        {
            out = self.fail_over(Epoch(e));
        }
        if let Ok((h, _)) = parse_header(dg, 1400)
            && h.kind == Kind::Request
            && self.sessions.contains_key(&h.session)
        {
            let inject = std::mem::take(&mut faults.lock().expect("faults").inject);
            for ev in inject {
                out.extend(self.post_event(h.session, ev));
            }
        }
        out.extend(self.handle_packet(dg, from, faults, seen));
        seen.lock().expect("seen").unacked = self.sessions.values().map(|s| s.unacked.len()).sum();
        out
    }

    fn fail_over(&mut self, epoch: Epoch) -> Vec<(SocketAddr, Vec<u8>)> {
        self.epoch = epoch;
        let sids: Vec<SessionId> = self.sessions.keys().copied().collect();
        let mut out = vec![];
        for sid in sids {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.unacked.clear();
                s.next_event = 1;
                // A new epoch is a new sealing key: numbering may start over, and the
                // client's datagrams are judged by a fresh window for the new epoch.
                s.next_packet = PacketSeq(1);
                s.window = ReplayWindow::default();
            }
            out.extend(self.post_event(sid, Event::MasterFailover { epoch }));
        }
        out
    }

    /// The responder's counters as `CellStatus` shows them (name order).
    pub(super) fn status_counters(&self) -> Vec<cldc::proto::StatusCounter> {
        let c = self.responder.counters();
        let mut v: Vec<cldc::proto::StatusCounter> = [
            ("handshake_answered", c.answered),
            ("handshake_bad", c.bad_inits),
            ("handshake_completed", c.completed),
            ("handshake_cookies_sent", c.cookies_sent),
            ("handshake_expired", c.expired),
            ("handshake_resent", c.resent),
            ("pending_handshakes", self.responder.pending_count() as u64),
        ]
        .into_iter()
        .map(|(name, value)| cldc::proto::StatusCounter {
            name: name.into(),
            value,
        })
        .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn master(&self) -> Sender {
        Sender {
            role: Role::Master,
            epoch: self.epoch,
            member: self.member,
            boot: self.boot,
        }
    }

    fn stateless(&self) -> Sender {
        Sender {
            role: Role::Stateless,
            ..self.master()
        }
    }

    /// A session id nobody has used: random, not live, pending or ended.
    fn fresh_session_id(&self) -> SessionId {
        loop {
            let id = SessionId(rand::random::<u64>());
            if id.0 != 0
                && !self.sessions.contains_key(&id)
                && !self.ended.contains_key(&id)
                && !self.responder.is_pending(id)
            {
                return id;
            }
        }
    }

    fn handshake(
        &mut self,
        dg: &[u8],
        from: SocketAddr,
        f: &Faults,
        seen: &Mutex<Seen>,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        seen.lock().expect("seen").inits += 1;
        let now = self.started.elapsed();
        let before = self.responder.counters();
        self.responder.set_limits(ResponderLimits {
            cookie_threshold: if f.demand_cookies { 0 } else { usize::MAX },
            ..ResponderLimits::default()
        });
        let check = self
            .responder
            .check_init(now, from, dg, 1400, self.master());
        let init = match check {
            InitCheck::Answer(a) => {
                let mut seen = seen.lock().expect("seen");
                let c = self.responder.counters();
                seen.inits_resent += c.resent - before.resent;
                seen.cookies_sent += c.cookies_sent - before.cookies_sent;
                return vec![(from, a)];
            }
            InitCheck::Drop(_) => return vec![],
            InitCheck::Fresh(init) => init,
        };
        // The users file: one user.
        if init.user.as_str() != USER {
            return vec![];
        }
        let outcome = match f.not_master {
            Some(hint) => HandshakeOutcome::NotMaster { hint },
            None => HandshakeOutcome::Accepted {
                session: self.fresh_session_id(),
                epoch: self.epoch,
            },
        };
        match self.responder.answer(
            now,
            &init,
            &secret(),
            &outcome,
            self.master(),
            rand::random(),
        ) {
            Ok(reply) => vec![(from, reply)],
            Err(_) => vec![],
        }
    }

    fn handle_packet(
        &mut self,
        dg: &[u8],
        from: SocketAddr,
        faults: &Mutex<Faults>,
        seen: &Mutex<Seen>,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let Ok((h, _)) = parse_header(dg, 1400) else {
            return vec![];
        };
        if h.kind == Kind::KeepAlive {
            seen.lock().expect("seen").keepalives += 1;
        }
        let f = faults.lock().expect("faults").clone();
        if f.silent {
            return vec![];
        }
        if f.drop_in > 0 {
            faults.lock().expect("faults").drop_in -= 1;
            return vec![];
        }
        if f.forget_sessions {
            faults.lock().expect("faults").forget_sessions = false;
            for (sid, sess) in self.sessions.drain() {
                self.ended.insert(sid, sess.keys);
            }
        }
        if h.kind == Kind::HandshakeInit {
            return self.handshake(dg, from, &f, seen);
        }
        // Which keys open it: a live session's, a pending handshake's, or an ended one's.
        let keys: Option<SessionKeys> = match self.sessions.get(&h.session) {
            Some(s) => Some(s.keys.clone()),
            None => self.ended.get(&h.session).cloned(),
        };
        let opened = match (&keys, self.responder.pending_key(&h)) {
            (Some(k), _) => open_packet(dg, 1400, |h| Some(k.sealing_key(&h.sender))),
            (None, Some(pending)) => open_packet(dg, 1400, |_| Some(pending)),
            (None, None) => {
                // No keys for this session here: nothing can be sealed for it.
                seen.lock().expect("seen").dropped += 1;
                return vec![];
            }
        };
        let Ok(p) = opened else {
            seen.lock().expect("seen").dropped += 1;
            return vec![];
        };
        let h = p.header;
        if h.sender.role != Role::Client {
            return vec![];
        }
        if let Some(hint) = f.not_master {
            let body = encode_body(&NotMaster { hint }).expect("encodes");
            return self.stateless_answer(h.session, Kind::NotMaster, h.msg_seq, &body, from);
        }
        if self.ended.contains_key(&h.session) {
            if matches!(h.kind, Kind::Request | Kind::KeepAlive) {
                let body = encode_body(&Response::Err(ErrorCode::UnknownSession)).expect("encodes");
                return self.stateless_answer(h.session, Kind::Reply, h.msg_seq, &body, from);
            }
            return vec![];
        }
        if !self.sessions.contains_key(&h.session) {
            // The first sealed datagram of a pending handshake: the client proved it holds
            // the keys. Only now does the session exist (a server logs it here).
            let Some(proven) = self.responder.complete(h.session) else {
                return vec![];
            };
            self.sessions.insert(
                h.session,
                Sess {
                    keys: proven.keys,
                    window: ReplayWindow::default(),
                    addr: from,
                    next_packet: PacketSeq(1),
                    reassembler: Reassembler::new(ReassemblerLimits::default()),
                    last_seq: 0,
                    last_reply: None,
                    next_event: 1,
                    unacked: BTreeMap::new(),
                },
            );
        }
        if h.sender.epoch > self.epoch {
            // The client has seen a newer master: this member is deposed.
            let body = encode_body(&NotMaster { hint: None }).expect("encodes");
            return self.stateless_answer(h.session, Kind::NotMaster, h.msg_seq, &body, from);
        }
        let epoch = self.epoch;
        let master = self.master();
        let Some(sess) = self.sessions.get_mut(&h.session) else {
            return vec![];
        };
        if h.sender.epoch < epoch {
            // Sealed under an older epoch's key: possibly a replay from before the
            // fail-over. Nothing is acted on (acks included); requests and keepalives get
            // a Retry to the source, without moving the session's address.
            seen.lock().expect("seen").dropped += 1;
            if h.kind == Kind::Ack {
                return vec![];
            }
            seen.lock().expect("seen").retries += 1;
            let key = sess.keys.sealing_key(&master);
            let mut next = sess.next_packet;
            let out = encode(
                &key,
                h.session,
                Kind::Retry,
                h.msg_seq,
                &[],
                &mut next,
                from,
            );
            sess.next_packet = next;
            return out;
        }
        if !sess.window.accept(h.packet_seq) {
            seen.lock().expect("seen").dropped += 1;
            return vec![];
        }
        sess.addr = from;
        let body = match sess.reassembler.push(&h, &p.payload) {
            Ok(Reassembled::Complete(b)) => b,
            _ => return vec![],
        };
        match h.kind {
            Kind::KeepAlive => {
                if f.ignore_keepalives {
                    return vec![];
                }
                let body = encode_body(&KeepAliveReply { lease: self.lease }).expect("encodes");
                let mut out =
                    self.send_to_session(h.session, Kind::KeepAliveReply, h.msg_seq, &body);
                out.extend(self.resend_events(h.session));
                out
            }
            Kind::Ack => {
                if let Some(sess) = self.sessions.get_mut(&h.session) {
                    sess.unacked.retain(|seq, _| *seq > h.ack.0);
                }
                vec![]
            }
            Kind::Request => {
                let Ok(req) = decode_body::<Request>(&body) else {
                    return vec![];
                };
                let seq = h.msg_seq;
                let last = sess.last_seq;
                if seq < last {
                    return vec![];
                }
                let mut out = vec![];
                let mut resend = false;
                let resp = if seq == last {
                    let mut seen = seen.lock().expect("seen");
                    seen.deduplicated += 1;
                    resend = seen.deduplicated % 2 == 1;
                    sess.last_reply
                        .clone()
                        .unwrap_or(Response::Err(ErrorCode::Internal))
                } else {
                    seen.lock()
                        .expect("seen")
                        .executed
                        .push((h.session, seq, req.clone()));
                    let (resp, events) = self.execute(h.session, req);
                    if let Some(sess) = self.sessions.get_mut(&h.session) {
                        sess.last_seq = seq;
                        sess.last_reply = Some(resp.clone());
                    }
                    for (sid, ev) in events {
                        out.extend(self.post_event(sid, ev));
                    }
                    resp
                };
                let body = encode_body(&resp).expect("encodes");
                let mut reply = self.send_to_session(h.session, Kind::Reply, seq, &body);
                if resend {
                    // Like the client, alternate fragment order on resends.
                    reply.reverse();
                }
                reply.extend(out);
                reply
            }
            _ => vec![],
        }
    }

    fn stateless_answer(
        &mut self,
        session: SessionId,
        kind: Kind,
        msg_seq: u64,
        body: &[u8],
        to: SocketAddr,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let keys = match self.sessions.get(&session) {
            Some(s) => s.keys.clone(),
            None => match self.ended.get(&session) {
                Some(k) => k.clone(),
                None => return vec![],
            },
        };
        let key = keys.sealing_key(&self.stateless());
        let mut next = self.stateless_packet;
        let out = encode(&key, session, kind, msg_seq, body, &mut next, to);
        self.stateless_packet = next;
        out
    }

    fn send_to_session(
        &mut self,
        sid: SessionId,
        kind: Kind,
        msg_seq: u64,
        body: &[u8],
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let master = self.master();
        let Some(sess) = self.sessions.get(&sid) else {
            return vec![];
        };
        let (to, mut next) = (sess.addr, sess.next_packet);
        let key = sess.keys.sealing_key(&master);
        let out = encode(&key, sid, kind, msg_seq, body, &mut next, to);
        if let Some(sess) = self.sessions.get_mut(&sid) {
            sess.next_packet = next;
        }
        out
    }

    fn post_event(&mut self, sid: SessionId, ev: Event) -> Vec<(SocketAddr, Vec<u8>)> {
        let Some(sess) = self.sessions.get_mut(&sid) else {
            return vec![];
        };
        let seq = sess.next_event;
        sess.next_event += 1;
        sess.unacked.insert(seq, ev.clone());
        let body = encode_body(&ev).expect("encodes");
        self.send_to_session(sid, Kind::Event, seq, &body)
    }

    fn resend_events(&mut self, sid: SessionId) -> Vec<(SocketAddr, Vec<u8>)> {
        let pending: Vec<(u64, Event)> = match self.sessions.get(&sid) {
            Some(s) => s.unacked.iter().map(|(k, v)| (*k, v.clone())).collect(),
            None => return vec![],
        };
        let mut out = vec![];
        for (seq, ev) in pending {
            let body = encode_body(&ev).expect("encodes");
            out.extend(self.send_to_session(sid, Kind::Event, seq, &body));
        }
        out
    }
}

fn encode(
    key: &SealingKey,
    session: SessionId,
    kind: Kind,
    msg_seq: u64,
    body: &[u8],
    next: &mut PacketSeq,
    to: SocketAddr,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let meta = PacketMeta {
        kind,
        session,
        msg_seq,
        ack: EventSeq(0),
    };
    encode_message(&meta, body, 1400, key, next)
        .expect("encodes")
        .into_iter()
        .map(|d| (to, d))
        .collect()
}
