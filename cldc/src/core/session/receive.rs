//! The receive path of a [`Session`]: checking, reassembling and acting on datagrams.

use core::net::SocketAddr;

use super::{CallError, Output, Session, SessionEvent, State};
use crate::core::Time;
use crate::core::events::Arrival;
use crate::proto::{
    DEFAULT_MAX_DATAGRAM, DecodeError, ErrorCode, Event, EventSeq, HandshakeOutcome, Header,
    KeepAliveReply, Kind, NotMaster, ReassembleError, Reassembled, Response, Role, SealingKey,
    Sender, VersionReject, decode_body, open_packet, parse_header, read_cookie,
};

impl Session {
    /// Feeds one datagram received from `from`. Bad datagrams are dropped and counted.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, datagram: &[u8]) {
        self.counters.datagrams_in += 1;
        if VersionReject::decode(datagram).is_some() {
            self.counters.version_rejects += 1;
            return;
        }
        // The server does not know this client's `max_datagram`: a smaller setting limits
        // what the client sends, never what it accepts below the protocol default.
        let accept = self.cfg.max_datagram.max(DEFAULT_MAX_DATAGRAM);
        let (h, rest) = match parse_header(datagram, accept) {
            Ok(p) => p,
            Err(e) => {
                self.count_decode_error(e);
                return;
            }
        };
        if h.kind.is_client_to_server() {
            self.counters.wrong_direction += 1;
            return;
        }
        if matches!(self.state, State::Expired | State::Ended) {
            self.counters.stray_replies += 1;
            return;
        }
        if h.kind.is_unsealed() {
            self.handshake_answer(now, from, &h, rest);
            return;
        }
        if self.keys.is_none() || h.session != self.session {
            self.counters.unknown_session += 1;
            return;
        }
        let packet = match open_packet(datagram, accept, |h| self.server_key(&h.sender)) {
            Ok(p) => p,
            Err(e) => {
                self.count_decode_error(e);
                return;
            }
        };
        if h.sender.role == Role::Stateless {
            // A member without the session's state: a redirect, or the answer for an ended
            // session. Numbered from a counter shared by all sessions, so no window applies;
            // each is acted on only if it answers what the client has outstanding.
            match h.kind {
                Kind::NotMaster => match decode_body::<NotMaster>(&packet.payload) {
                    Ok(nm) => self.not_master(now, from, h.msg_seq, nm),
                    Err(e) => self.count_decode_error(e),
                },
                _ => match decode_body::<Response>(&packet.payload) {
                    Ok(resp) => self.ended_answer(now, h.msg_seq, resp),
                    Err(e) => self.count_decode_error(e),
                },
            }
            return;
        }
        if h.sender.epoch < self.epoch {
            self.counters.stale_epoch += 1;
            return;
        }
        if h.sender.epoch > self.epoch {
            self.adopt_epoch(h.sender.epoch);
        }
        if !self.window.accept(h.packet_seq) {
            self.counters.replayed += 1;
            return;
        }
        // Only the master seals in the master role: remember where it is.
        if from != self.members.current() {
            self.members.redirect(from);
        }
        self.members.heard_from(from);
        let pushed = self.reassembler.push(&h, &packet.payload);
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

    /// The key `sender` seals this session's datagrams with (cached for the next one).
    fn server_key(&mut self, sender: &Sender) -> Option<SealingKey> {
        if let Some(k) = &self.recv_key
            && k.sender() == *sender
        {
            return Some(k.clone());
        }
        let key = self.keys.as_ref()?.sealing_key(sender);
        self.recv_key = Some(key.clone());
        Some(key)
    }

    /// A `HandshakeReply` or `Cookie`.
    fn handshake_answer(&mut self, now: Time, from: SocketAddr, h: &Header, body: &[u8]) {
        let Some(hs) = self.handshake.as_mut().filter(|_| self.keys.is_none()) else {
            self.counters.stray_handshakes += 1;
            return;
        };
        if h.kind == Kind::Cookie {
            // Unauthenticated: only from the member the client talks to, and bounded like
            // redirects, so a forged cookie costs at most a few extra inits.
            match read_cookie(h, body) {
                Some(c) if from == self.members.current() => {
                    hs.set_cookie(c);
                    if let Ok(init) = hs.init_datagram() {
                        self.init = init;
                    }
                    self.counters.cookies += 1;
                    self.resend_now(now);
                }
                _ => self.counters.stray_handshakes += 1,
            }
            return;
        }
        let (outcome, keys) = match hs.read_reply(h, body) {
            Ok(r) => r,
            Err(_) => {
                self.counters.bad_handshakes += 1;
                return;
            }
        };
        match outcome {
            HandshakeOutcome::Accepted { session, epoch } => {
                // `read_reply` returns keys with every `Accepted` outcome.
                let Some(keys) = keys else { return };
                self.keys_agreed(session, epoch, keys);
                if from != self.members.current() {
                    self.members.redirect(from);
                }
                self.members.heard_from(from);
                self.redirect_burst = 0;
                // Prove the handshake at once: NewSession, sealed under the new keys.
                self.send_in_flight(now);
                if let Some(f) = &mut self.in_flight {
                    f.backoff.reset(now);
                }
            }
            HandshakeOutcome::NotMaster { hint } => {
                self.not_master(now, from, 1, NotMaster { hint });
            }
            HandshakeOutcome::Refused { code } => {
                self.finish(now, Err(CallError::Server(code)));
            }
        }
    }

    /// An answer from a member for an ended session (stateless role): it ends this session
    /// only if it echoes the request in flight or a keepalive awaiting its reply. It cannot
    /// be forged (sealed with the session's keys) nor replayed from another session (keys
    /// are per session), so it is never a way to kill a live session.
    fn ended_answer(&mut self, now: Time, msg_seq: u64, resp: Response) {
        let ended = matches!(
            resp,
            Response::Err(ErrorCode::UnknownSession | ErrorCode::SessionExpired)
        );
        let answers_request = self.in_flight.as_ref().is_some_and(|f| f.seq.0 == msg_seq);
        if !ended || !(answers_request || self.keepalive_outstanding(msg_seq)) {
            self.counters.stray_ended += 1;
            return;
        }
        if answers_request {
            self.finish(now, Err(CallError::Server(ErrorCode::UnknownSession)));
        } else {
            self.expire();
        }
    }

    /// Re-sends the request in flight and an outstanding keepalive now (after a redirect, a
    /// cookie or a `Retry`), at most `2 × members` times in a row without an answer.
    fn resend_now(&mut self, now: Time) {
        let hops = self.redirect_burst;
        self.redirect_burst = hops.saturating_add(1);
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
            Kind::Retry => self.retry(now, h.msg_seq),
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
        if self.events_paused {
            // Not delivered, so not acknowledged: the master re-sends it.
            self.counters.events_deferred += 1;
            self.send(from, Kind::Ack, 0, &[]);
            return;
        }
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

    /// The master of a newer epoch did not act on a datagram sealed under an older epoch's
    /// key (the epoch is adopted by now): re-send what it answers under the new key.
    fn retry(&mut self, now: Time, msg_seq: u64) {
        let answers_request = self.in_flight.as_ref().is_some_and(|f| f.seq.0 == msg_seq);
        if !(answers_request || self.keepalive_outstanding(msg_seq)) {
            self.counters.stray_replies += 1;
            return;
        }
        self.counters.retries += 1;
        self.resend_now(now);
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
        // Hints are followed for at most one hop per member in a row; past that they may
        // form a loop (A names B, B names A) that never reaches the real master, so the
        // client goes round the list instead.
        match nm.hint {
            Some(hint) if hint != from && hops < self.members.len() => self.members.redirect(hint),
            _ => self.members.rotate(),
        }
        // A redirect loop must not become a packet storm: after a burst, wait for timers.
        self.resend_now(now);
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
            DecodeError::Unsealed => c.bad_header += 1,
        }
    }
}
