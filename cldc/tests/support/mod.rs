//! A scripted server side of the protocol, for tests: builds signed server datagrams and
//! opens client datagrams, using only `cldc::proto`.
#![allow(dead_code)]

use cldc::proto::{
    Epoch, Event, EventSeq, Header, KeepAliveReply, Kind, NotMaster, PacketMeta, PacketSeq,
    Reassembled, Reassembler, ReassemblerLimits, Request, Response, Secret, SessionId, UserName,
    decode_body, encode_body, encode_message, open_packet,
};
use std::net::SocketAddr;
use std::time::Duration;

pub const USER: &str = "alice";
pub const SECRET: &[u8] = b"alice-secret";

pub fn user() -> UserName {
    UserName::new(USER).expect("valid user")
}

pub fn secret() -> Secret {
    Secret::new(SECRET).expect("valid secret")
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One client message as the server sees it.
#[derive(Debug, Clone)]
pub struct Received {
    pub header: Header,
    pub request: Option<Request>,
}

/// The server end of one session: numbering, signing, reassembly.
pub struct ServerEnd {
    pub session: SessionId,
    pub epoch: Epoch,
    pub next_packet: PacketSeq,
    pub reassembler: Reassembler,
    pub max_datagram: usize,
}

impl ServerEnd {
    pub fn new(session: SessionId, epoch: u64) -> Self {
        ServerEnd {
            session,
            epoch: Epoch(epoch),
            next_packet: PacketSeq(1),
            reassembler: Reassembler::new(ReassemblerLimits::default()),
            max_datagram: 1400,
        }
    }

    /// Opens a client datagram; `None` until a whole message is in.
    pub fn receive(&mut self, dg: &[u8]) -> Option<Received> {
        let s = secret();
        let p = open_packet(dg, self.max_datagram, |_| Some(&s)).expect("client datagram is valid");
        match self
            .reassembler
            .push(&p.header, p.payload)
            .expect("fragment fits")
        {
            Reassembled::Complete(body) => {
                let request = match p.header.kind {
                    Kind::Request => Some(decode_body::<Request>(&body).expect("request decodes")),
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

    pub fn datagrams(&mut self, kind: Kind, msg_seq: u64, body: &[u8]) -> Vec<Vec<u8>> {
        let meta = PacketMeta {
            kind,
            session: self.session,
            user: user(),
            msg_seq,
            ack: EventSeq(0),
            epoch: self.epoch,
        };
        encode_message(
            &meta,
            body,
            self.max_datagram,
            &secret(),
            &mut self.next_packet,
        )
        .expect("server message encodes")
    }

    pub fn reply(&mut self, seq: u64, resp: &Response) -> Vec<Vec<u8>> {
        self.datagrams(Kind::Reply, seq, &encode_body(resp).expect("encodes"))
    }

    pub fn keepalive_reply(&mut self, nonce: u64, lease: Duration) -> Vec<Vec<u8>> {
        let body = encode_body(&KeepAliveReply { lease }).expect("encodes");
        self.datagrams(Kind::KeepAliveReply, nonce, &body)
    }

    pub fn event(&mut self, seq: u64, ev: &Event) -> Vec<Vec<u8>> {
        self.datagrams(Kind::Event, seq, &encode_body(ev).expect("encodes"))
    }

    pub fn not_master(&mut self, echo: u64, hint: Option<SocketAddr>) -> Vec<u8> {
        let body = encode_body(&NotMaster { hint }).expect("encodes");
        self.datagrams(Kind::NotMaster, echo, &body).remove(0)
    }
}

#[cfg(feature = "tokio")]
pub mod fake_cell;
