//! The sans-IO front-end harness of tests/frontend_core.rs (a copy with public items), for
//! tests in other files.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cld_server::env::SeededEntropy;
use cld_server::frontend::{CellView, FeRole, Frontend, FrontendConfig, Output, Token};
use cld_server::metrics::Metrics;
use cldc::proto::{
    CellKeys, CellPrivateKey, ClientHandshake, Epoch, EventSeq, HandshakeOutcome, Header, Kind,
    PacketMeta, PacketSeq, Reply, Request, Response, Secret, Sender, SessionId, SessionKeys,
    UserName, decode_body, encode_body, encode_message, open_packet, parse_header,
};
use libpaxos::{Committed, Payload, Slot, Value};
use libpaxos_db::{Command, DynKv, Limits, Namespace, SledKv, WallTime};

pub const USER: &str = "alice";
pub const SECRET: &[u8] = b"alice-secret-alice-secret-alice-secret";

pub fn client() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

pub struct Harness {
    pub fe: Frontend,
    pub metrics: Metrics,
    pub ns: Namespace<DynKv>,
    pub _db: sled::Db,
    pub slot: u64,
    pub epoch: u64,
    pub now: Duration,
    pub proposed: Vec<(Token, Command)>,
    pub sent: Vec<(SocketAddr, Vec<u8>)>,
    pub can_read: bool,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_limit(64)
    }

    pub fn with_limit(max_sessions_per_user: usize) -> Harness {
        let db = sled::Config::new().temporary(true).open().unwrap();
        // The server's namespace type (`DynKv`), on sled as in production.
        let ns = Namespace::open_on(&DynKv::new(SledKv::unsynced(&db)), Limits::default()).unwrap();
        let metrics = Metrics::new();
        let mut users = HashMap::new();
        users.insert(USER.to_string(), Secret::new(SECRET).unwrap());
        let mut addrs = BTreeMap::new();
        addrs.insert(1, "127.0.0.1:8001".parse().unwrap());
        addrs.insert(2, "127.0.0.1:8002".parse().unwrap());
        let config = FrontendConfig {
            member: 1,
            boot: 1,
            lease: Duration::from_secs(12),
            expiry_margin: Duration::from_secs(1),
            max_datagram: 1400,
            users,
            client_addrs: addrs,
            max_sessions_per_user,
            tombstone_ttl: Duration::from_secs(120),
            max_rto: Duration::from_secs(2),
            bugs: cld_server::server::Bugs::default(),
        };
        let fe = Frontend::new(
            config,
            CellKeys::new(CellPrivateKey::from_bytes([0x42; 32]), None),
            Arc::new(SeededEntropy::new(1)),
            metrics.counters.clone(),
        );
        let mut h = Harness {
            fe,
            metrics,
            ns,
            _db: db,
            slot: 0,
            epoch: 1,
            now: Duration::from_secs(1),
            proposed: vec![],
            sent: vec![],
            can_read: true,
        };
        h.become_master(1);
        h
    }

    pub fn become_master(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.apply(Payload::Noop);
        let cell = CellView {
            ns: &self.ns,
            can_read: self.can_read,
            members: &[],
        };
        self.fe.on_role(
            self.now,
            FeRole {
                master: Some(epoch),
                epoch,
                hint: Some(1),
            },
            &cell,
        );
        self.collect();
    }

    pub fn follow(&mut self, master: u64) {
        let cell = CellView {
            ns: &self.ns,
            can_read: false,
            members: &[],
        };
        self.fe.on_role(
            self.now,
            FeRole {
                master: None,
                epoch: self.epoch,
                hint: Some(master),
            },
            &cell,
        );
        self.collect();
    }

    pub fn apply(&mut self, payload: Payload) -> libpaxos_db::Applied {
        self.slot += 1;
        self.ns
            .apply(&Committed {
                slot: Slot(self.slot),
                value: Value {
                    epoch: libpaxos::Epoch(self.epoch),
                    payload,
                },
            })
            .unwrap()
    }

    pub fn collect(&mut self) {
        for o in self.fe.take_outputs() {
            match o {
                Output::Send(to, dg) => self.sent.push((to, dg)),
                Output::Propose(t, c) => self.proposed.push((t, c)),
            }
        }
    }

    pub fn feed(&mut self, dg: &[u8]) {
        let cell = CellView {
            ns: &self.ns,
            can_read: self.can_read,
            members: &[],
        };
        self.fe
            .on_datagram(self.now, WallTime(5_000), client(), dg, &cell);
        self.collect();
    }

    /// Commits and applies every proposal, in order, reporting each to the core.
    pub fn commit_all(&mut self) {
        while !self.proposed.is_empty() {
            let batch = std::mem::take(&mut self.proposed);
            for (token, command) in batch {
                let applied = self.apply(Payload::Command(command.encode().into()));
                let cell = CellView {
                    ns: &self.ns,
                    can_read: self.can_read,
                    members: &[],
                };
                self.fe
                    .on_applied(self.now, WallTime(5_000), Some(token), &applied, &cell);
                self.collect();
            }
        }
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.metrics
            .counters
            .values()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    }

    pub fn tick(&mut self, now: Duration, wall: u64) {
        self.now = now;
        let cell = CellView {
            ns: &self.ns,
            can_read: self.can_read,
            members: &[],
        };
        self.fe.on_tick(now, WallTime(wall), &cell);
        self.collect();
    }

    /// Commits and applies every proposal at wall time `wall`.
    pub fn commit_at(&mut self, wall: u64) {
        let batch = std::mem::take(&mut self.proposed);
        for (token, command) in batch {
            self.apply_reported(Some(token), &command, wall);
        }
    }

    /// Applies `command` in the harness's current epoch and reports it to the core.
    pub fn apply_reported(
        &mut self,
        token: Option<Token>,
        command: &Command,
        wall: u64,
    ) -> libpaxos_db::Applied {
        let applied = self.apply(Payload::Command(command.encode().into()));
        let cell = CellView {
            ns: &self.ns,
            can_read: self.can_read,
            members: &[],
        };
        self.fe
            .on_applied(self.now, WallTime(wall), token, &applied, &cell);
        self.collect();
        applied
    }

    /// Reports a role to the core directly (no no-op applied).
    pub fn role(&mut self, role: FeRole) {
        let cell = CellView {
            ns: &self.ns,
            can_read: self.can_read,
            members: &[],
        };
        self.fe.on_role(self.now, role, &cell);
        self.collect();
    }

    pub fn quiet(&self) -> bool {
        self.sent.is_empty() && self.proposed.is_empty()
    }
}

/// A client end: the handshake, then sealing under its epoch's key.
pub struct Client {
    pub keys: SessionKeys,
    pub session: SessionId,
    pub epoch: u64,
    pub packet: PacketSeq,
}

impl Client {
    pub fn handshake(h: &mut Harness) -> Client {
        Client::handshake_with(h, [7; 32]).expect("accepted")
    }

    pub fn handshake_with(
        h: &mut Harness,
        ephemeral: [u8; 32],
    ) -> Result<Client, HandshakeOutcome> {
        let hs = ClientHandshake::new(
            UserName::new(USER).unwrap(),
            &Secret::new(SECRET).unwrap(),
            CellPrivateKey::from_bytes([0x42; 32]).public(),
            ephemeral,
        );
        h.feed(&hs.init_datagram().unwrap());
        assert!(h.proposed.is_empty(), "nothing is logged for a handshake");
        let (_, reply) = h.sent.pop().expect("a handshake reply");
        let (header, body) = parse_header(&reply, 1400).unwrap();
        let (outcome, keys) = hs.read_reply(&header, body).unwrap();
        let HandshakeOutcome::Accepted { session, epoch } = outcome else {
            return Err(outcome);
        };
        Ok(Client {
            keys: keys.unwrap(),
            session,
            epoch: epoch.0,
            packet: PacketSeq(1),
        })
    }

    pub fn seal(&mut self, kind: Kind, msg_seq: u64, body: &[u8]) -> Vec<u8> {
        let key = self.keys.sealing_key(&Sender::client(Epoch(self.epoch)));
        let meta = PacketMeta {
            kind,
            session: self.session,
            msg_seq,
            ack: EventSeq(0),
        };
        let mut dgs = encode_message(&meta, body, 1400, &key, &mut self.packet).unwrap();
        assert_eq!(dgs.len(), 1);
        dgs.remove(0)
    }

    pub fn request(&mut self, seq: u64, req: &Request) -> Vec<u8> {
        self.seal(Kind::Request, seq, &encode_body(req).unwrap())
    }

    pub fn open(&self, dg: &[u8]) -> (Header, Vec<u8>) {
        let p = open_packet(dg, 1400, |h| Some(self.keys.sealing_key(&h.sender))).unwrap();
        (p.header, p.payload)
    }

    /// The one reply sent, opened.
    pub fn reply(&self, h: &mut Harness) -> (Header, Response) {
        let replies: Vec<(Header, Vec<u8>)> = h
            .sent
            .drain(..)
            .map(|(_, dg)| self.open(&dg))
            .filter(|(hd, _)| hd.kind == Kind::Reply)
            .collect();
        assert_eq!(replies.len(), 1, "exactly one reply");
        let (hd, body) = replies.into_iter().next().unwrap();
        (hd, decode_body(&body).unwrap())
    }
}

pub fn session(h: &mut Harness) -> Client {
    let mut c = Client::handshake(h);
    h.feed(&c.request(1, &Request::NewSession));
    assert_eq!(h.proposed.len(), 1, "NewSession is logged once proven");
    h.commit_all();
    let (_, resp) = c.reply(h);
    assert!(
        matches!(resp, Response::Ok(Reply::SessionCreated { .. })),
        "{resp:?}"
    );
    h.sent.clear();
    c
}

impl Client {
    /// The kinds and bodies of the datagrams sent so far, opened (the sent list is drained).
    pub fn drain(&self, h: &mut Harness) -> Vec<(Header, Vec<u8>)> {
        h.sent.drain(..).map(|(_, dg)| self.open(&dg)).collect()
    }

    /// Seals with an event acknowledgement.
    pub fn seal_ack(&mut self, kind: Kind, msg_seq: u64, ack: u64, body: &[u8]) -> Vec<u8> {
        let key = self.keys.sealing_key(&Sender::client(Epoch(self.epoch)));
        let meta = PacketMeta {
            kind,
            session: self.session,
            msg_seq,
            ack: EventSeq(ack),
        };
        let mut dgs = encode_message(&meta, body, 1400, &key, &mut self.packet).unwrap();
        assert_eq!(dgs.len(), 1);
        dgs.remove(0)
    }
}
