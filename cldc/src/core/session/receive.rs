//! The receive path of a [`Session`]: checking, reassembling and acting on datagrams.

use core::net::SocketAddr;

use super::{CallError, Output, Session, SessionEvent, State};
use crate::core::Time;
use crate::core::events::Arrival;
use crate::proto::{
    DEFAULT_MAX_DATAGRAM, DecodeError, ErrorCode, Event, EventSeq, Header, KeepAliveReply, Kind,
    NotMaster, ReassembleError, Reassembled, ReplayWindow, Response, VersionReject, decode_body,
    open_packet,
};

impl Session {
    /// Feeds one datagram received from `from`. Bad datagrams are dropped and counted.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, datagram: &[u8]) {
        self.counters.datagrams_in += 1;
        if VersionReject::decode(datagram).is_some() {
            self.counters.version_rejects += 1;
            return;
        }
        let (session, user) = (self.cfg.session, self.cfg.user);
        let secret = &self.cfg.secret;
        // The server does not know this client's `max_datagram`: a smaller setting limits
        // what the client sends, never what it accepts below the protocol default.
        let accept = self.cfg.max_datagram.max(DEFAULT_MAX_DATAGRAM);
        let opened = open_packet(datagram, accept, |h| {
            (h.session == session && h.user == user).then_some(secret)
        });
        let packet = match opened {
            Ok(p) => p,
            Err(e) => {
                self.count_decode_error(e);
                return;
            }
        };
        let h = packet.header;
        if h.kind.is_client_to_server() {
            self.counters.wrong_direction += 1;
            return;
        }
        if matches!(self.state, State::Expired | State::Ended) {
            self.counters.stray_replies += 1;
            return;
        }
        if h.kind == Kind::NotMaster {
            // Non-masters have their own epochs and packet numbering: no window applies.
            match decode_body::<NotMaster>(packet.payload) {
                Ok(nm) => self.not_master(now, from, h.msg_seq, nm),
                Err(e) => self.count_decode_error(e),
            }
            return;
        }
        if h.epoch < self.epoch {
            self.counters.stale_epoch += 1;
            return;
        }
        if h.epoch > self.epoch {
            self.epoch = h.epoch;
            self.window = ReplayWindow::default();
            self.inbox.reset();
            self.reassembler.clear();
        }
        if !self.window.accept(h.packet_seq) {
            self.counters.replayed += 1;
            return;
        }
        // Only the master sends anything but NotMaster: remember where it is.
        if from != self.members.current() {
            self.members.redirect(from);
        }
        self.members.heard_from(from);
        let pushed = self.reassembler.push(&h, packet.payload);
        self.counters.reassembly_evictions = self.reassembler.evicted();
        let body = match pushed {
            Ok(Reassembled::Complete(body)) => body,
            Ok(_) => return,
            Err(
                ReassembleError::TooLarge
                | ReassembleError::CountMismatch
                | ReassembleError::BadFragment,
            ) => {
                self.counters.bad_fragment += 1;
                return;
            }
        };
        self.dispatch(now, from, &h, &body);
    }

    fn dispatch(&mut self, now: Time, from: SocketAddr, h: &Header, body: &[u8]) {
        match h.kind {
            Kind::Reply => match decode_body::<Response>(body) {
                Ok(resp) => self.reply(now, from, h.msg_seq, resp),
                Err(e) => self.count_decode_error(e),
            },
            Kind::KeepAliveReply => match decode_body::<KeepAliveReply>(body) {
                Ok(r) => self.keepalive_reply(now, h.msg_seq, r),
                Err(e) => self.count_decode_error(e),
            },
            Kind::Event => match decode_body::<Event>(body) {
                Ok(ev) => self.event(from, h, ev),
                Err(e) => self.count_decode_error(e),
            },
            // Client kinds and NotMaster were handled before reassembly.
            _ => self.counters.wrong_direction += 1,
        }
    }

    fn reply(&mut self, now: Time, from: SocketAddr, msg_seq: u64, resp: Response) {
        match &self.in_flight {
            Some(f) if f.seq.0 == msg_seq => {}
            // A master that no longer knows the session answers a keepalive this way
            // (docs/protocol.md §10): waiting out the grace period would only delay the news.
            _ if resp == Response::Err(ErrorCode::UnknownSession)
                && self.keepalive_outstanding(msg_seq) =>
            {
                self.expire();
                return;
            }
            _ => {
                self.counters.stray_replies += 1;
                return;
            }
        }
        if resp == Response::Err(ErrorCode::NotMaster) {
            // The reserved code, from a server that does not use the NotMaster packet: the
            // request did not run there, so it is redirected, not failed.
            self.not_master(now, from, msg_seq, NotMaster { hint: None });
            return;
        }
        self.redirect_burst = 0;
        let result = match resp {
            Response::Ok(r) => Ok(r),
            Response::Err(code) => Err(CallError::Server(code)),
        };
        self.finish(now, result);
    }

    fn keepalive_reply(&mut self, now: Time, nonce: u64, r: KeepAliveReply) {
        let margin = self.cfg.lease_margin;
        let Some(lease) = &mut self.lease else {
            self.counters.stray_keepalive_replies += 1;
            return;
        };
        if !lease.reply(nonce, r.lease, margin) {
            self.counters.stray_keepalive_replies += 1;
            return;
        }
        if !lease.awaiting_reply() {
            self.keepalive_retry = None;
        }
        self.redirect_burst = 0;
        if self.state == State::Jeopardy && now < lease.deadline {
            self.state = State::Active;
            self.out.push_back(Output::Event(SessionEvent::Safe));
            self.pump(now);
        }
    }

    fn event(&mut self, from: SocketAddr, h: &Header, ev: Event) {
        match self
            .inbox
            .arrive(EventSeq(h.msg_seq), ev, self.cfg.max_buffered_events)
        {
            Arrival::Deliver(evs) => {
                for e in evs {
                    self.out.push_back(Output::Event(SessionEvent::Server(e)));
                }
            }
            Arrival::Buffered => {}
            Arrival::Duplicate => self.counters.duplicate_events += 1,
            Arrival::Overflow => self.counters.events_overflow += 1,
        }
        self.send(from, Kind::Ack, 0, &[]);
    }

    fn not_master(&mut self, now: Time, from: SocketAddr, msg_seq: u64, nm: NotMaster) {
        // Only a redirect from the member the client talks to, answering what it has
        // outstanding, may move it: a late one (the client already moved on) or a replayed
        // one (NotMaster is exempt from the replay window) would pull it off the master.
        let answers_request = self.in_flight.as_ref().is_some_and(|f| f.seq.0 == msg_seq);
        if from != self.members.current()
            || !(answers_request || self.keepalive_outstanding(msg_seq))
        {
            self.counters.stray_redirects += 1;
            return;
        }
        self.counters.redirects += 1;
        let hops = self.redirect_burst;
        self.redirect_burst = hops.saturating_add(1);
        // Hints are followed for at most one hop per member in a row; past that they may
        // form a loop (A names B, B names A) that never reaches the real master, so the
        // client goes round the list instead.
        match nm.hint {
            Some(hint) if hint != from && hops < self.members.len() => self.members.redirect(hint),
            _ => self.members.rotate(),
        }
        // A redirect loop must not become a packet storm: after a burst, wait for timers.
        if hops >= 2 * self.members.len() {
            return;
        }
        if self.in_flight.is_some() {
            self.send_in_flight(now);
            if let Some(f) = &mut self.in_flight {
                f.backoff.reset(now);
            }
        }
        if self.lease.as_ref().is_some_and(|l| l.awaiting_reply()) {
            self.send_keepalive(now);
        }
    }

    fn keepalive_outstanding(&self, nonce: u64) -> bool {
        self.lease.as_ref().is_some_and(|l| l.is_outstanding(nonce))
    }

    fn count_decode_error(&mut self, e: DecodeError) {
        let c = &mut self.counters;
        match e {
            DecodeError::TooShort => c.too_short += 1,
            DecodeError::TooLong => c.too_long += 1,
            DecodeError::BadMagic => c.bad_magic += 1,
            DecodeError::BadVersion(_) => c.bad_version += 1,
            DecodeError::BadHeader(_) => c.bad_header += 1,
            DecodeError::UnknownKey => c.unknown_session += 1,
            DecodeError::BadTag => c.bad_tag += 1,
            DecodeError::BadBody => c.bad_body += 1,
        }
    }
}
