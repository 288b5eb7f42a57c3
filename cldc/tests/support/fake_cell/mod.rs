//! A scripted one-process "cell" speaking docs/protocol.md over real loopback UDP, with an
//! in-memory namespace (in `namespace.rs`) and fault knobs (drop, duplicate, delay, redirect,
//! silence, fail-over).

mod namespace;

use super::{USER, secret};
use cldc::proto::{
    ContentGeneration, Epoch, ErrorCode, Event, EventMask, EventSeq, HandleId, InstanceNumber,
    KeepAliveReply, Kind, LockGeneration, LockMode, NodeFlags, NodeMeta, NotMaster, OpenMode,
    PacketMeta, PacketSeq, Reassembled, Reassembler, ReassemblerLimits, Request, Response,
    SessionId, UserName, decode_body, encode_body, encode_message, open_packet,
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
}

struct Sess {
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
    lease: Duration,
    sessions: HashMap<SessionId, Sess>,
    nodes: BTreeMap<String, Node>,
    handles: HashMap<HandleId, Open>,
    locks: HashMap<String, LockState>,
    next_handle: u64,
    next_instance: u64,
    /// Numbers the answers to unknown sessions: far above any session's own numbering, so
    /// that they are fresh for the client's replay window (docs/protocol.md §10).
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
            lease,
            sessions: HashMap::new(),
            nodes,
            handles: HashMap::new(),
            locks: HashMap::new(),
            next_handle: 2,
            next_instance: 2,
            stateless_packet: PacketSeq(1 << 40),
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
        let new_epoch = faults.lock().expect("faults").epoch;
        if let Some(e) = new_epoch
            && e > self.epoch.0
        {
            out = self.fail_over(Epoch(e));
        }
        out.extend(self.handle_packet(dg, from, faults, seen));
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
                s.next_packet = PacketSeq(1);
            }
            out.extend(self.post_event(sid, Event::MasterFailover { epoch }));
        }
        out
    }

    fn handle_packet(
        &mut self,
        dg: &[u8],
        from: SocketAddr,
        faults: &Mutex<Faults>,
        seen: &Mutex<Seen>,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let s = secret();
        let Ok(p) = open_packet(dg, 1400, |h| (h.user.as_str() == USER).then_some(&s)) else {
            return vec![];
        };
        let h = p.header;
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
            self.sessions.clear();
        }
        if let Some(hint) = f.not_master {
            let body = encode_body(&NotMaster { hint }).expect("encodes");
            let mut seq = PacketSeq(1);
            return self.encode(h.session, Kind::NotMaster, h.msg_seq, &body, &mut seq, from);
        }
        if h.kind == Kind::Request && h.msg_seq == 1 && !self.sessions.contains_key(&h.session) {
            self.sessions.insert(
                h.session,
                Sess {
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
        let Some(sess) = self.sessions.get_mut(&h.session) else {
            let body = encode_body(&Response::Err(ErrorCode::UnknownSession)).expect("encodes");
            let mut seq = self.stateless_packet;
            let out = self.encode(h.session, Kind::Reply, h.msg_seq, &body, &mut seq, from);
            self.stateless_packet = seq;
            return out;
        };
        sess.addr = from;
        let body = match sess.reassembler.push(&h, p.payload) {
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

    fn encode(
        &self,
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
            user: UserName::new(USER).expect("valid"),
            msg_seq,
            ack: EventSeq(0),
            epoch: self.epoch,
        };
        encode_message(&meta, body, 1400, &secret(), next)
            .expect("encodes")
            .into_iter()
            .map(|d| (to, d))
            .collect()
    }

    fn send_to_session(
        &mut self,
        sid: SessionId,
        kind: Kind,
        msg_seq: u64,
        body: &[u8],
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let Some(sess) = self.sessions.get(&sid) else {
            return vec![];
        };
        let (to, mut next) = (sess.addr, sess.next_packet);
        let out = self.encode(sid, kind, msg_seq, body, &mut next, to);
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
