//! [`Session`]: the client's side of one CLD session, as a sans-IO state machine.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::events::{Arrival, EventInbox};
use super::lease::Lease;
use super::members::Members;
use super::retransmit::Backoff;
use super::{Config, ConfigError, Counters, Time};
use crate::proto::{
    DecodeError, Epoch, ErrorCode, Event, Header, KeepAliveReply, Kind, MAX_MESSAGE, NotMaster,
    PacketMeta, PacketSeq, ReassembleError, Reassembled, Reassembler, ReplayWindow, Reply, Request,
    RequestSeq, Response, VersionReject, decode_body, encode_body, encode_message, open_packet,
};

/// Names one call, so its reply can be matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u64);

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server refused it.
    #[error("server error: {0}")]
    Server(ErrorCode),
    /// No reply within the call timeout.
    #[error("no reply within the call timeout")]
    Timeout,
    /// The session expired (lease and grace period ran out, or the cell forgot it).
    #[error("session expired")]
    SessionExpired,
    /// The session was ended, or never got established.
    #[error("session ended")]
    SessionEnded,
    /// Too many calls are already waiting.
    #[error("too many calls queued")]
    QueueFull,
    /// The application cancelled the call (e.g. unlocked while a lock request waited).
    #[error("call cancelled")]
    Cancelled,
    /// The request is larger than any message may be.
    #[error("request too large")]
    TooLarge,
}

/// Session-level events, beside the server's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// An event the server sent (in order, each exactly once per master epoch).
    Server(Event),
    /// The local lease ran out: calls are held while the client looks for the master.
    Jeopardy,
    /// The master answered within the grace period: the session carries on.
    Safe,
    /// The grace period ran out, or the cell no longer knows the session. Locks are lost.
    Expired,
}

/// Something for the driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this datagram.
    Transmit {
        /// To this member.
        to: SocketAddr,
        /// The signed datagram.
        datagram: Vec<u8>,
    },
    /// A call finished.
    Reply {
        /// Which call.
        call: CallId,
        /// Its outcome.
        result: Result<Reply, CallError>,
    },
    /// Tell the application.
    Event(SessionEvent),
}

/// Where the session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// `NewSession` is in flight.
    Connecting,
    /// The local lease holds.
    Active,
    /// The local lease ran out; the grace period runs.
    Jeopardy,
    /// The session is gone; every call fails.
    Expired,
    /// The session was ended (or could not be created).
    Ended,
}

struct Call {
    id: CallId,
    body: Vec<u8>,
    deadline: Time,
}

struct InFlight {
    call: Call,
    seq: RequestSeq,
    new_session: bool,
    first_sent: Time,
    backoff: Backoff,
    sends: u32,
}

/// The client side of one session. See the [module docs](super) for how to drive it.
pub struct Session {
    cfg: Config,
    state: State,
    members: Members,
    next_packet: PacketSeq,
    next_request: RequestSeq,
    next_call: u64,
    in_flight: Option<InFlight>,
    queue: VecDeque<Call>,
    lease: Option<Lease>,
    keepalive_retry: Option<Backoff>,
    epoch: Epoch,
    window: ReplayWindow,
    inbox: EventInbox,
    reassembler: Reassembler,
    redirect_burst: usize,
    out: VecDeque<Output>,
    counters: Counters,
}

impl Session {
    /// The call id of the `NewSession` request that [`Session::new`] sends.
    pub const OPEN_CALL: CallId = CallId(0);

    /// Starts a session: sends `NewSession` (call [`Session::OPEN_CALL`]) at `now`.
    pub fn new(cfg: Config, now: Time) -> Result<Session, ConfigError> {
        cfg.validate()?;
        let mut s = Session {
            members: Members::new(cfg.members.clone()),
            reassembler: Reassembler::new(cfg.reassembly),
            cfg,
            state: State::Connecting,
            next_packet: PacketSeq(1),
            next_request: RequestSeq(1),
            next_call: 1,
            in_flight: None,
            queue: VecDeque::new(),
            lease: None,
            keepalive_retry: None,
            epoch: Epoch(0),
            window: ReplayWindow::default(),
            inbox: EventInbox::default(),
            redirect_burst: 0,
            out: VecDeque::new(),
            counters: Counters::default(),
        };
        let body = encode_body(&Request::NewSession).expect("a unit variant always encodes");
        let call = Call {
            id: Self::OPEN_CALL,
            body,
            deadline: now.plus(s.cfg.call_timeout),
        };
        s.start(now, call, true);
        Ok(s)
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The drop and failure counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The member currently believed to be master.
    pub fn master(&self) -> SocketAddr {
        self.members.current()
    }

    /// The highest master epoch seen.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// When the local lease runs out, once the session is established.
    pub fn lease_deadline(&self) -> Option<Time> {
        self.lease.as_ref().map(|l| l.deadline)
    }

    /// Body bytes held in reassembly (bounded by the reassembly limits).
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembler.bytes_held()
    }

    /// Queues a request; its reply comes out later as [`Output::Reply`] with the returned id.
    pub fn submit(&mut self, now: Time, request: &Request) -> Result<CallId, CallError> {
        match self.state {
            State::Expired => return Err(CallError::SessionExpired),
            State::Ended => return Err(CallError::SessionEnded),
            _ => {}
        }
        let body = encode_body(request).map_err(|_| CallError::TooLarge)?;
        if body.len() > MAX_MESSAGE {
            return Err(CallError::TooLarge);
        }
        if self.queue.len() >= self.cfg.max_queued {
            self.counters.queue_full += 1;
            return Err(CallError::QueueFull);
        }
        let id = CallId(self.next_call);
        self.next_call += 1;
        self.queue.push_back(Call {
            id,
            body,
            deadline: now.plus(self.cfg.call_timeout),
        });
        self.pump(now);
        Ok(id)
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Runs every timer due at `now` (retransmissions, keepalives, lease, grace, call
    /// timeouts) and returns when to call again; `None` once the session is over.
    pub fn poll_timeout(&mut self, now: Time) -> Option<Time> {
        self.run_timers(now);
        self.next_timeout()
    }

    fn run_timers(&mut self, now: Time) {
        if let (State::Active, Some(l)) = (self.state, &self.lease)
            && now >= l.deadline
        {
            self.state = State::Jeopardy;
            self.counters.jeopardies += 1;
            self.out.push_back(Output::Event(SessionEvent::Jeopardy));
        }
        if let (State::Jeopardy, Some(l)) = (self.state, &self.lease)
            && now >= l.deadline.plus(self.cfg.grace)
        {
            self.expire();
            return;
        }
        self.fail_overdue_queued(now);
        if let Some(f) = &self.in_flight {
            if now >= f.call.deadline {
                self.counters.call_timeouts += 1;
                self.finish(now, Err(CallError::Timeout));
            } else if now >= f.backoff.due {
                self.counters.retransmissions += 1;
                self.rotate_if_silent();
                self.send_in_flight(now);
                if let Some(f) = &mut self.in_flight {
                    f.backoff.retransmitted(now);
                }
            }
        }
        if matches!(self.state, State::Active | State::Jeopardy) {
            self.keepalive_timer(now);
        }
    }

    fn keepalive_timer(&mut self, now: Time) {
        let Some(lease) = &self.lease else { return };
        let due = match &self.keepalive_retry {
            Some(b) if lease.awaiting_reply() => now >= b.due,
            _ => now >= lease.next_keepalive || self.state == State::Jeopardy,
        };
        if !due {
            return;
        }
        if lease.awaiting_reply() {
            self.rotate_if_silent();
        }
        self.send_keepalive(now);
        match &mut self.keepalive_retry {
            Some(b) if self.lease.as_ref().is_some_and(|l| l.awaiting_reply()) => {
                b.retransmitted(now)
            }
            _ => {
                let max = self.cfg.max_rto;
                self.keepalive_retry = Some(Backoff::start(now, self.cfg.initial_rto, max));
            }
        }
    }

    fn next_timeout(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        let mut consider = |t: Time| next = Some(next.map_or(t, |n| n.min(t)));
        match self.state {
            State::Expired | State::Ended => return None,
            State::Active => {
                if let Some(l) = &self.lease {
                    consider(l.deadline);
                }
            }
            State::Jeopardy => {
                if let Some(l) = &self.lease {
                    consider(l.deadline.plus(self.cfg.grace));
                }
            }
            State::Connecting => {}
        }
        if let Some(f) = &self.in_flight {
            consider(f.backoff.due);
            consider(f.call.deadline);
        }
        for c in &self.queue {
            consider(c.deadline);
        }
        if let Some(l) = &self.lease {
            match &self.keepalive_retry {
                Some(b) if l.awaiting_reply() => consider(b.due),
                _ => consider(l.next_keepalive),
            }
        }
        next
    }

    /// Feeds one datagram received from `from`. Bad datagrams are dropped and counted.
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, datagram: &[u8]) {
        self.counters.datagrams_in += 1;
        if VersionReject::decode(datagram).is_some() {
            self.counters.version_rejects += 1;
            return;
        }
        let (session, user) = (self.cfg.session, self.cfg.user);
        let secret = &self.cfg.secret;
        let opened = open_packet(datagram, self.cfg.max_datagram, |h| {
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
                Ok(nm) => self.not_master(now, from, nm),
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
            Err(ReassembleError::TooLarge | ReassembleError::CountMismatch) => {
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
            _ => {
                self.counters.stray_replies += 1;
                return;
            }
        }
        if resp == Response::Err(ErrorCode::NotMaster) {
            // The reserved code, from a server that does not use the NotMaster packet: the
            // request did not run there, so it is redirected, not failed.
            self.not_master(now, from, NotMaster { hint: None });
            return;
        }
        self.redirect_burst = 0;
        let result = match resp {
            Response::Ok(r) => Ok(r),
            Response::Err(code) => Err(CallError::Server(code)),
        };
        self.finish(now, result);
    }

    /// Completes the call in flight with `result` and applies what it means for the session.
    fn finish(&mut self, now: Time, result: Result<Reply, CallError>) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        if f.new_session {
            match &result {
                Ok(Reply::SessionCreated { lease }) => {
                    self.lease = Some(Lease::granted(f.first_sent, *lease, self.cfg.lease_margin));
                    self.state = State::Active;
                }
                _ => {
                    self.state = State::Ended;
                    self.fail_all(CallError::SessionEnded);
                }
            }
        }
        let expired = matches!(result, Err(CallError::Server(ErrorCode::UnknownSession)));
        let ended = matches!(result, Ok(Reply::SessionEnded));
        self.out.push_back(Output::Reply {
            call: f.call.id,
            result,
        });
        if expired {
            self.expire();
        } else if ended {
            self.state = State::Ended;
            self.fail_all(CallError::SessionEnded);
        } else {
            self.pump(now);
        }
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
        match self.inbox.arrive(
            crate::proto::EventSeq(h.msg_seq),
            ev,
            self.cfg.max_buffered_events,
        ) {
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

    fn not_master(&mut self, now: Time, from: SocketAddr, nm: NotMaster) {
        self.counters.redirects += 1;
        match nm.hint {
            Some(hint) if hint != from => self.members.redirect(hint),
            _ if from == self.members.current() => self.members.rotate(),
            _ => {}
        }
        // A redirect loop must not become a packet storm: after a burst, wait for timers.
        if self.redirect_burst >= 2 * self.members.len() {
            return;
        }
        self.redirect_burst += 1;
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

    fn pump(&mut self, now: Time) {
        if self.in_flight.is_some() || self.state != State::Active {
            return;
        }
        if let Some(call) = self.queue.pop_front() {
            self.start(now, call, false);
        }
    }

    fn start(&mut self, now: Time, call: Call, new_session: bool) {
        let seq = self.next_request;
        self.next_request = seq.next();
        let backoff = Backoff::start(now, self.cfg.initial_rto, self.cfg.max_rto);
        self.in_flight = Some(InFlight {
            call,
            seq,
            new_session,
            first_sent: now,
            backoff,
            sends: 0,
        });
        self.send_in_flight(now);
    }

    fn send_in_flight(&mut self, _now: Time) {
        let Some(f) = &mut self.in_flight else { return };
        // Every other attempt sends the fragments last to first: a receive buffer that
        // overflows on a burst keeps the head one time and the tail the next, and the
        // receiver's reassembly joins them.
        let reverse = f.sends % 2 == 1;
        f.sends += 1;
        let (seq, body) = (f.seq.0, f.call.body.clone());
        let to = self.members.current();
        self.send_ordered(to, Kind::Request, seq, &body, reverse);
    }

    fn send_keepalive(&mut self, now: Time) {
        let Some(lease) = &mut self.lease else { return };
        let nonce = lease.keepalive_sent(now);
        self.counters.keepalives += 1;
        let to = self.members.current();
        self.send(to, Kind::KeepAlive, nonce, &[]);
    }

    fn send(&mut self, to: SocketAddr, kind: Kind, msg_seq: u64, body: &[u8]) {
        self.send_ordered(to, kind, msg_seq, body, false);
    }

    fn send_ordered(&mut self, to: SocketAddr, kind: Kind, msg_seq: u64, body: &[u8], rev: bool) {
        let meta = PacketMeta {
            kind,
            session: self.cfg.session,
            user: self.cfg.user,
            msg_seq,
            ack: self.inbox.ack(),
            epoch: self.epoch,
        };
        let dgs = encode_message(
            &meta,
            body,
            self.cfg.max_datagram,
            &self.cfg.secret,
            &mut self.next_packet,
        );
        // Bodies were size-checked at submit and the datagram size at validate.
        let Ok(mut dgs) = dgs else { return };
        if rev {
            dgs.reverse();
        }
        if to == self.members.current() && kind != Kind::Ack {
            self.members.silent_sends += 1;
        }
        for datagram in dgs {
            self.counters.datagrams_out += 1;
            self.out.push_back(Output::Transmit { to, datagram });
        }
    }

    fn rotate_if_silent(&mut self) {
        if self.members.silent_sends >= self.cfg.sends_before_rotate {
            self.members.rotate();
            self.counters.rotations += 1;
        }
    }

    fn fail_overdue_queued(&mut self, now: Time) {
        while let Some(pos) = self.queue.iter().position(|c| now >= c.deadline) {
            if let Some(c) = self.queue.remove(pos) {
                self.counters.call_timeouts += 1;
                self.out.push_back(Output::Reply {
                    call: c.id,
                    result: Err(CallError::Timeout),
                });
            }
        }
    }

    fn expire(&mut self) {
        self.state = State::Expired;
        self.out.push_back(Output::Event(SessionEvent::Expired));
        self.fail_all(CallError::SessionExpired);
        self.reassembler.clear();
    }

    fn fail_all(&mut self, err: CallError) {
        if let Some(f) = self.in_flight.take() {
            self.out.push_back(Output::Reply {
                call: f.call.id,
                result: Err(err),
            });
        }
        while let Some(c) = self.queue.pop_front() {
            self.out.push_back(Output::Reply {
                call: c.id,
                result: Err(err),
            });
        }
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
