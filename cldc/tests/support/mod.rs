//! A scripted server side of the protocol, for tests: answers handshakes with the real
//! [`Responder`], builds sealed server datagrams and opens client datagrams, using only
//! `cldc::proto` (the pieces the server uses).
#![allow(dead_code)]

use cldc::core::Config;
use cldc::proto::{
    CellKeys, CellPrivateKey, CellPublicKey, Epoch, Event, EventSeq, HandshakeOutcome, Header,
    InitCheck, KeepAliveReply, Kind, NotMaster, PacketMeta, PacketSeq, Reassembled, Reassembler,
    ReassemblerLimits, Request, Responder, ResponderLimits, Response, Role, Secret, Sender,
    SessionId, SessionKeys, UserName, decode_body, encode_body, encode_message, open_packet,
    parse_header,
};
use std::net::SocketAddr;
use std::time::Duration;

pub const USER: &str = "alice";
pub const SECRET: &[u8] = b"alice-secret-alice-secret-alice-secret";

pub fn user() -> UserName {
    UserName::new(USER).expect("valid user")
}

pub fn secret() -> Secret {
    Secret::new(SECRET).expect("valid secret")
}

/// The test cell's private key (fixed, so that test vectors are reproducible).
pub fn cell_private() -> CellPrivateKey {
    CellPrivateKey::from_bytes([0x42; 32])
}

pub fn cell_key() -> CellPublicKey {
    cell_private().public()
}

pub fn cell_keys() -> CellKeys {
    CellKeys::new(cell_private(), None)
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A client configuration for `members` with the test user and cell key.
/// The core tests were written for 250 ms / 3 sends (the v2 defaults before fail-over was
/// tuned): they keep those timings so that every exact time they assert stays meaningful.
pub fn config(members: Vec<SocketAddr>) -> Config {
    let mut cfg = Config::new(user(), secret(), cell_key(), members);
    cfg.initial_rto = core::time::Duration::from_millis(250);
    cfg.sends_before_rotate = 3;
    cfg
}

/// One client message as the server sees it.
#[derive(Debug, Clone)]
pub struct Received {
    pub header: Header,
    pub request: Option<Request>,
}

/// The server end of one session: the handshake, numbering, sealing, reassembly.
pub struct ServerEnd {
    pub session: SessionId,
    pub epoch: Epoch,
    pub member: u32,
    pub boot: u32,
    pub keys: Option<SessionKeys>,
    pub next_packet: PacketSeq,
    pub next_stateless: PacketSeq,
    pub reassembler: Reassembler,
    pub max_datagram: usize,
    pub responder: Responder,
    random: u8,
}

impl ServerEnd {
    pub fn new(session: SessionId, epoch: u64) -> Self {
        ServerEnd {
            session,
            epoch: Epoch(epoch),
            member: 1,
            boot: 1,
            keys: None,
            next_packet: PacketSeq(1),
            next_stateless: PacketSeq(1),
            reassembler: Reassembler::new(ReassemblerLimits::default()),
            max_datagram: 1400,
            responder: Responder::new(cell_keys(), [7; 32], ResponderLimits::default()),
            random: 1,
        }
    }

    /// Another member's (or a later master's) end of the same session: same keys.
    pub fn sibling(&self, epoch: u64, member: u32) -> Self {
        let mut s = ServerEnd::new(self.session, epoch);
        s.member = member;
        s.keys = self.keys.clone();
        s
    }

    fn fresh(&mut self) -> [u8; 32] {
        self.random = self.random.wrapping_add(1);
        [self.random; 32]
    }

    /// The master sender of this end.
    pub fn master(&self) -> Sender {
        Sender {
            role: Role::Master,
            epoch: self.epoch,
            member: self.member,
            boot: self.boot,
        }
    }

    /// The stateless sender of this end.
    pub fn stateless(&self) -> Sender {
        Sender {
            role: Role::Stateless,
            ..self.master()
        }
    }

    /// Answers a handshake init with `outcome` (through the real responder).
    pub fn answer_init(&mut self, init: &[u8], outcome: HandshakeOutcome) -> Vec<u8> {
        let from = addr(9);
        let check = self
            .responder
            .check_init(Duration::ZERO, from, init, 1400, self.master());
        let parsed = match check {
            InitCheck::Fresh(i) => i,
            InitCheck::Answer(a) => return a,
            InitCheck::Drop(e) => panic!("init dropped: {e}"),
        };
        let random = self.fresh();
        self.responder
            .answer(
                Duration::ZERO,
                &parsed,
                &secret(),
                &outcome,
                self.master(),
                random,
            )
            .expect("init authenticates")
    }

    /// Accepts a handshake init: the session gets this end's id and epoch; the keys are kept.
    pub fn accept(&mut self, init: &[u8]) -> Vec<u8> {
        let outcome = HandshakeOutcome::Accepted {
            session: self.session,
            epoch: self.epoch,
        };
        let reply = self.answer_init(init, outcome);
        // The responder keeps the keys as pending until the first sealed datagram; tests
        // take them at once (the client's sealed datagrams then open directly).
        self.keys = self
            .responder
            .complete(self.session)
            .map(|p| p.keys.clone());
        reply
    }

    /// Opens a client datagram; `None` until a whole message is in. Panics on a datagram
    /// that does not open (tests feed only what the client sent).
    pub fn receive(&mut self, dg: &[u8]) -> Option<Received> {
        let (h, _) = parse_header(dg, self.max_datagram).expect("client datagram parses");
        if h.kind == Kind::HandshakeInit {
            return Some(Received {
                header: h,
                request: None,
            });
        }
        let keys = self.keys.as_ref().expect("handshake done");
        let p = open_packet(dg, self.max_datagram, |h| Some(keys.sealing_key(&h.sender)))
            .expect("client datagram opens");
        match self
            .reassembler
            .push(&p.header, &p.payload)
            .expect("fragment fits")
        {
            Reassembled::Complete(body) => {
                let request = match p.header.kind {
                    Kind::Request => Some(decode_body::<Request>(&body).unwrap_or_else(|e| {
                        panic!("request decodes: {e} {:?} {body:?}", p.header)
                    })),
                    _ => None,
                };
                Some(Received {
                    header: p.header,
                    request,
                })
            }
            _ => None,
        }
    }

    fn seal(&mut self, sender: Sender, kind: Kind, msg_seq: u64, body: &[u8]) -> Vec<Vec<u8>> {
        let meta = PacketMeta {
            kind,
            session: self.session,
            msg_seq,
            ack: EventSeq(0),
        };
        let key = self
            .keys
            .as_ref()
            .expect("handshake done")
            .sealing_key(&sender);
        let next = if sender.role == Role::Stateless {
            &mut self.next_stateless
        } else {
            &mut self.next_packet
        };
        encode_message(&meta, body, self.max_datagram, &key, next).expect("server message encodes")
    }

    pub fn datagrams(&mut self, kind: Kind, msg_seq: u64, body: &[u8]) -> Vec<Vec<u8>> {
        self.seal(self.master(), kind, msg_seq, body)
    }

    pub fn reply(&mut self, seq: u64, resp: &Response) -> Vec<Vec<u8>> {
        self.datagrams(Kind::Reply, seq, &encode_body(resp).expect("encodes"))
    }

    /// An answer for an ended session (stateless role).
    pub fn ended(&mut self, seq: u64, resp: &Response) -> Vec<Vec<u8>> {
        let body = encode_body(resp).expect("encodes");
        self.seal(self.stateless(), Kind::Reply, seq, &body)
    }

    pub fn keepalive_reply(&mut self, nonce: u64, lease: Duration) -> Vec<Vec<u8>> {
        let body = encode_body(&KeepAliveReply { lease }).expect("encodes");
        self.datagrams(Kind::KeepAliveReply, nonce, &body)
    }

    pub fn event(&mut self, seq: u64, ev: &Event) -> Vec<Vec<u8>> {
        self.datagrams(Kind::Event, seq, &encode_body(ev).expect("encodes"))
    }

    pub fn retry(&mut self, echo: u64) -> Vec<u8> {
        self.datagrams(Kind::Retry, echo, &[]).remove(0)
    }

    pub fn not_master(&mut self, echo: u64, hint: Option<SocketAddr>) -> Vec<u8> {
        let body = encode_body(&NotMaster { hint }).expect("encodes");
        self.seal(self.stateless(), Kind::NotMaster, echo, &body)
            .remove(0)
    }
}

#[cfg(feature = "tokio")]
pub mod fake_cell;

#[cfg(feature = "tokio")]
pub mod api_bodies;

/// Root keys of a real handshake between the test user and the test cell (session 9,
/// epoch 1), for tests that seal datagrams directly.
pub fn test_keys() -> SessionKeys {
    use cldc::proto::{ClientHandshake, HandshakeInit, respond};
    let hs = ClientHandshake::new(user(), &secret(), cell_key(), [3; 32]);
    let init = hs.init_datagram().expect("init");
    let parsed = HandshakeInit::parse(&init, 1400).expect("parses");
    let outcome = HandshakeOutcome::Accepted {
        session: SessionId(9),
        epoch: Epoch(1),
    };
    let server = ServerEnd::new(SessionId(9), 1);
    let (_, keys) = respond(
        &cell_keys(),
        &parsed,
        &secret(),
        &outcome,
        server.master(),
        [4; 32],
    )
    .expect("handshake");
    keys.expect("accepted")
}

/// A sender whose role may send `kind` (epoch 1, member 1, boot 1 for servers).
pub fn sender_for(kind: Kind) -> Sender {
    let role = if kind.is_client_to_server() {
        return Sender::client(Epoch(1));
    } else if kind == Kind::NotMaster {
        Role::Stateless
    } else {
        Role::Master
    };
    Sender {
        role,
        epoch: Epoch(1),
        member: 1,
        boot: 1,
    }
}

/// A client session (members 1..=n) whose handshake member 1 accepted (session 9, epoch 1),
/// its NewSession sent and not yet answered; and the server end holding its keys.
pub fn handshaken(n: u16) -> (cldc::core::Session, ServerEnd) {
    handshaken_with(config((1..=n).map(addr).collect()))
}

/// [`handshaken`] with a given configuration.
pub fn handshaken_with(cfg: Config) -> (cldc::core::Session, ServerEnd) {
    use cldc::core::{Output, Session, Time};
    let mut s = Session::new(cfg, Time::default(), [5; 32]).expect("valid config");
    let mut init = None;
    while let Some(o) = s.poll_output() {
        if let Output::Transmit { datagram, .. } = o {
            init = Some(datagram);
        }
    }
    let mut server = ServerEnd::new(SessionId(9), 1);
    let reply = server.accept(&init.expect("init sent"));
    s.handle_datagram(Time::default(), addr(1), &reply);
    while s.poll_output().is_some() {}
    (s, server)
}

/// Session options with the test cell's key (everything else default).
#[cfg(feature = "tokio")]
pub fn options() -> cldc::SessionOptions {
    cldc::SessionOptions {
        cell_key: Some(cell_key()),
        ..cldc::SessionOptions::default()
    }
}
