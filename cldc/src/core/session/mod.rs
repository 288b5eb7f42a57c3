//! [`Session`]: the client's side of one CLD session, as a sans-IO state machine.
//! The receive path is in `receive.rs`, the timers in `timers.rs`.

mod receive;
mod timers;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::events::EventInbox;
use super::lease::Lease;
use super::members::Members;
use super::retransmit::Backoff;
use super::{Config, ConfigError, Counters, Time};
use crate::proto::{
    ClientHandshake, Epoch, ErrorCode, Event, Kind, MAX_MESSAGE, PacketMeta, PacketSeq,
    Reassembler, ReplayWindow, Reply, Request, RequestSeq, SealingKey, Sender, SessionId,
    SessionKeys, encode_body, encode_message,
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
    /// The handshake, then `NewSession`, is in flight.
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
    /// The request is `EndSession`.
    ends_session: bool,
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
    /// Kept until the session is confirmed (a cell that forgot the pending handshake gets
    /// the same init again); `None` once active.
    handshake: Option<ClientHandshake>,
    /// The init datagram of `handshake` (same bytes on every send).
    init: Vec<u8>,
    /// The session id the cell chose (0 until the handshake is accepted).
    session: SessionId,
    /// The session's root keys, once the handshake is accepted.
    keys: Option<SessionKeys>,
    /// The client's sealing key for `epoch`.
    send_key: Option<SealingKey>,
    /// The last server sealing key used, to skip the derivation for the next datagram.
    recv_key: Option<SealingKey>,
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
    /// The application has no room: server events are neither delivered nor acknowledged.
    events_paused: bool,
    out: VecDeque<Output>,
    counters: Counters,
}

impl Session {
    /// The call id of the `NewSession` request that [`Session::new`] sends.
    pub const OPEN_CALL: CallId = CallId(0);

    /// Starts a session at `now`: sends the handshake, then `NewSession` (call
    /// [`Session::OPEN_CALL`]). `ephemeral_random` must be 32 fresh bytes from a
    /// cryptographic RNG (the handshake's ephemeral key; the core has no randomness).
    pub fn new(cfg: Config, now: Time, ephemeral_random: [u8; 32]) -> Result<Session, ConfigError> {
        cfg.validate()?;
        let handshake = ClientHandshake::new(cfg.user, &cfg.secret, cfg.cell_key, ephemeral_random);
        // Only fails if snow refuses its fixed parameters, which a test rules out.
        let init = handshake
            .init_datagram()
            .map_err(|_| ConfigError::Handshake)?;
        let mut s = Session {
            handshake: Some(handshake),
            init,
            session: SessionId(0),
            keys: None,
            send_key: None,
            recv_key: None,
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
            events_paused: false,
            out: VecDeque::new(),
            counters: Counters::default(),
        };
        let body = encode_body(&Request::NewSession).expect("a unit variant always encodes");
        let call = Call {
            id: Self::OPEN_CALL,
            body,
            deadline: now.plus(s.cfg.call_timeout),
            ends_session: false,
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

    /// The session id the cell chose (`SessionId(0)` until the handshake is accepted).
    pub fn id(&self) -> SessionId {
        self.session
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

    /// Back-pressure from the application: while paused, arriving server events are not
    /// delivered and not acknowledged (counted `events_deferred`); the master re-sends them
    /// (docs/protocol.md §9.4), so a slow application slows acknowledgement and never
    /// loses an acknowledged event. The driver pauses when the application's event buffer
    /// is full and resumes once its backlog is delivered.
    pub fn set_events_paused(&mut self, paused: bool) {
        self.events_paused = paused;
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
            ends_session: matches!(request, Request::EndSession),
        });
        self.pump(now);
        Ok(id)
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Completes the call in flight with `result` and applies what it means for the session.
    fn finish(&mut self, now: Time, result: Result<Reply, CallError>) {
        let Some(f) = self.in_flight.take() else {
            return;
        };
        // A retransmitted EndSession whose first copy ran (and whose reply was lost) finds
        // the session already forgotten: what it asked for is done.
        let result = match result {
            Err(CallError::Server(ErrorCode::UnknownSession)) if f.call.ends_session => {
                Ok(Reply::SessionEnded)
            }
            other => other,
        };
        if f.new_session {
            match &result {
                Ok(Reply::SessionCreated { lease }) => {
                    self.lease = Some(Lease::granted(f.first_sent, *lease, self.cfg.lease_margin));
                    self.state = State::Active;
                    self.handshake = None;
                    self.init = Vec::new();
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
        if self.keys.is_none() {
            // Still handshaking: the init goes out in place of NewSession.
            self.members.silent_sends += 1;
            self.counters.datagrams_out += 1;
            let datagram = self.init.clone();
            self.out.push_back(Output::Transmit { to, datagram });
            return;
        }
        self.send_ordered(to, Kind::Request, seq, &body, reverse);
    }

    /// The handshake was accepted: the session's keys and id are known, and `epoch` is the
    /// accepting master's.
    fn keys_agreed(&mut self, session: SessionId, epoch: Epoch, keys: SessionKeys) {
        self.session = session;
        self.send_key = Some(keys.sealing_key(&Sender::client(epoch)));
        self.keys = Some(keys);
        self.recv_key = None;
        self.epoch = epoch;
        self.window = ReplayWindow::default();
        self.inbox.reset();
        self.reassembler.clear();
    }

    /// A higher epoch: the client seals under its key from now on.
    fn adopt_epoch(&mut self, epoch: Epoch) {
        self.epoch = epoch;
        self.send_key = self
            .keys
            .as_ref()
            .map(|k| k.sealing_key(&Sender::client(epoch)));
        self.window = ReplayWindow::default();
        self.inbox.reset();
        self.reassembler.clear();
    }

    /// Back to the handshake (the same init) after the cell never confirmed the session,
    /// e.g. because the member holding the pending handshake went away.
    fn restart_handshake(&mut self) {
        if self.state == State::Connecting && self.keys.is_some() && self.handshake.is_some() {
            self.counters.handshake_restarts += 1;
            self.keys = None;
            self.send_key = None;
            self.recv_key = None;
            self.session = SessionId(0);
        }
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
            session: self.session,
            msg_seq,
            ack: self.inbox.ack(),
        };
        let Some(key) = &self.send_key else { return };
        let dgs = encode_message(
            &meta,
            body,
            self.cfg.max_datagram,
            key,
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
}
