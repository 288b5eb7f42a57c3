//! The session state machine driven by a fake clock and a scripted server.

mod support;

use cldc::core::{CallError, CallId, Config, Output, Session, SessionEvent, State, Time};
use cldc::proto::{
    ContentGeneration, ErrorCode, Event, HandleId, InstanceNumber, Kind, LockGeneration, NodeFlags,
    NodeMeta, Reply, Request, Response, SessionId,
};
use std::net::SocketAddr;
use std::time::Duration;
use support::{Received, ServerEnd, addr, config, test_keys};

const SID: SessionId = SessionId(0x5eed);
const LEASE: Duration = Duration::from_secs(12);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Harness {
    s: Session,
    now: Time,
    server: ServerEnd,
    sent: Vec<(Time, SocketAddr, Vec<u8>)>,
    replies: Vec<(CallId, Result<Reply, CallError>)>,
    events: Vec<SessionEvent>,
}

impl Harness {
    /// A session whose handshake the first member accepted at t=0 (session `SID`, epoch
    /// 1): `sent` holds the NewSession that followed.
    fn new(members: &[u16]) -> Harness {
        let mut h = Harness::handshaking(members);
        let (_, _, init) = h.sent.pop().expect("init sent");
        h.sent.clear();
        let reply = h.server.accept(&init);
        h.deliver(members[0], &reply);
        h
    }

    /// A session whose handshake init is out, unanswered.
    fn handshaking(members: &[u16]) -> Harness {
        let cfg = config(members.iter().map(|p| addr(*p)).collect());
        let s = Session::new(cfg, Time::default(), [5; 32]).expect("valid config");
        let mut h = Harness {
            s,
            now: Time::default(),
            server: ServerEnd::new(SID, 1),
            sent: vec![],
            replies: vec![],
            events: vec![],
        };
        h.drain();
        h
    }

    /// A session on members 1, 2, 3 whose NewSession was answered by member 1 at t=0.
    fn established() -> Harness {
        let mut h = Harness::new(&[1, 2, 3]);
        h.answer_last(&Response::Ok(Reply::SessionCreated { lease: LEASE }), 1);
        assert_eq!(h.s.state(), State::Active);
        h.sent.clear();
        h.replies.clear();
        h
    }

    fn drain(&mut self) {
        while let Some(o) = self.s.poll_output() {
            match o {
                Output::Transmit { to, datagram } => self.sent.push((self.now, to, datagram)),
                Output::Reply { call, result } => self.replies.push((call, result)),
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    fn deliver(&mut self, from: u16, dg: &[u8]) {
        self.s.handle_datagram(self.now, addr(from), dg);
        self.drain();
    }

    fn deliver_all(&mut self, from: u16, dgs: &[Vec<u8>]) {
        for dg in dgs {
            self.deliver(from, dg);
        }
    }

    /// Runs timers until `t`, stepping through every deadline on the way.
    fn advance_to(&mut self, t: Time) {
        loop {
            let next = self.s.poll_timeout(self.now);
            self.drain();
            match next {
                Some(n) if n <= t && n > self.now => self.now = n,
                _ => break,
            }
        }
        self.now = t;
        self.s.poll_timeout(self.now);
        self.drain();
    }

    fn advance(&mut self, d: Duration) {
        self.advance_to(self.now.plus(d));
    }

    fn last_received(&mut self) -> Received {
        let (_, _, dg) = self.sent.last().expect("something was sent").clone();
        self.server.receive(&dg).expect("single-datagram message")
    }

    /// Answers the most recent request with `resp`, from member `from`.
    fn answer_last(&mut self, resp: &Response, from: u16) {
        let r = self.last_received();
        assert_eq!(r.header.kind, Kind::Request);
        let dgs = self.server.reply(r.header.msg_seq, resp);
        self.deliver_all(from, &dgs);
    }

    fn submit(&mut self, req: Request) -> CallId {
        let id = self.s.submit(self.now, &req).expect("accepted");
        self.drain();
        id
    }

    fn sends_to(&self, port: u16) -> usize {
        self.sent
            .iter()
            .filter(|(_, to, _)| *to == addr(port))
            .count()
    }
}

/// A session with `cfg` whose handshake member 1 accepted; NewSession is out.
fn start(cfg: Config) -> (Session, ServerEnd) {
    let mut s = Session::new(cfg, Time::default(), [5; 32]).expect("valid config");
    let mut init = None;
    while let Some(o) = s.poll_output() {
        if let Output::Transmit { datagram, .. } = o {
            init = Some(datagram);
        }
    }
    let mut server = ServerEnd::new(SID, 1);
    let reply = server.accept(&init.expect("init"));
    s.handle_datagram(Time::default(), addr(1), &reply);
    while s.poll_output().is_some() {}
    (s, server)
}

fn meta(size: u32) -> NodeMeta {
    NodeMeta {
        instance: InstanceNumber(1),
        content_generation: ContentGeneration(1),
        lock_generation: LockGeneration(0),
        created: Duration::ZERO,
        modified: Duration::ZERO,
        size,
        checksum: 0,
        flags: NodeFlags::NONE,
    }
}

#[test]
fn new_session_goes_to_first_member_and_reply_establishes_it() {
    let mut h = Harness::new(&[1, 2]);
    assert_eq!(h.s.state(), State::Connecting);
    assert_eq!(h.sent.len(), 1);
    assert_eq!(h.sent[0].1, addr(1));
    assert_eq!(h.last_received().request, Some(Request::NewSession));
    h.answer_last(&Response::Ok(Reply::SessionCreated { lease: LEASE }), 1);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.replies[0].0, Session::OPEN_CALL);
    assert_eq!(h.s.lease_deadline(), Some(Time(LEASE - ms(250))));
}

#[test]
fn unanswered_request_is_retransmitted_with_doubling_backoff() {
    let mut h = Harness::established();
    h.submit(Request::Status);
    h.advance(ms(3_900));
    let times: Vec<u128> = h.sent.iter().map(|(t, _, _)| t.0.as_millis()).collect();
    assert_eq!(times, vec![0, 250, 750, 1750, 3750]);
    assert_eq!(h.s.counters().retransmissions, 4);
    // Every retransmission is a new packet with the same request seq.
    let seqs: Vec<(u64, u64)> = h
        .sent
        .clone()
        .iter()
        .map(|(_, _, dg)| {
            let r = h.server.receive(dg).expect("whole");
            (r.header.packet_seq.0, r.header.msg_seq)
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 == w[1].1));
}

#[test]
fn silent_master_makes_the_client_move_to_the_next_member() {
    let mut h = Harness::new(&[1, 2, 3]);
    h.advance(ms(1000));
    // Three sends to member 1 (0, 250, 750 ms), then the next goes to member 2.
    assert_eq!(h.sends_to(1), 3);
    h.advance(ms(800));
    assert_eq!(h.sent.last().expect("sent").1, addr(2));
    assert_eq!(h.s.counters().rotations, 1);
    // Member 1 held the pending handshake; member 2 gets the handshake again.
    assert_eq!(h.s.counters().handshake_restarts, 1);
    let (_, _, init) = h.sent.last().expect("sent").clone();
    assert_eq!(h.last_received().header.kind, Kind::HandshakeInit);
    let reply = h.server.accept(&init);
    h.deliver(2, &reply);
    h.answer_last(&Response::Ok(Reply::SessionCreated { lease: LEASE }), 2);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.master(), addr(2));
}

#[test]
fn redirect_chain_is_followed_immediately_to_the_master() {
    let mut h = Harness::new(&[1, 2]);
    let nm = h.server.not_master(1, Some(addr(2)));
    h.deliver(1, &nm);
    assert_eq!(h.sent.last().expect("resent").1, addr(2));
    let nm = h.server.not_master(1, Some(addr(7)));
    h.deliver(2, &nm);
    assert_eq!(h.sent.last().expect("resent").1, addr(7));
    assert_eq!(h.sent.len(), 3);
    h.answer_last(&Response::Ok(Reply::SessionCreated { lease: LEASE }), 7);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.master(), addr(7));
    assert_eq!(h.s.counters().redirects, 2);
}

#[test]
fn redirect_loop_falls_back_to_timed_retransmission() {
    let mut h = Harness::new(&[1, 2]);
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
        let nm = h.server.not_master(1, Some(addr(to)));
        h.deliver(from, &nm);
    }
    // One initial send plus at most 2 * members immediate resends.
    assert_eq!(h.sent.len(), 1 + 4);
}

#[test]
fn duplicated_reply_completes_the_call_once() {
    let mut h = Harness::established();
    let call = h.submit(Request::Stat { path: "/a".into() });
    let r = h.last_received();
    let dgs = h.server.reply(
        r.header.msg_seq,
        &Response::Ok(Reply::Stat { meta: meta(0) }),
    );
    h.deliver_all(1, &dgs);
    h.deliver_all(1, &dgs);
    let again = h.server.reply(
        r.header.msg_seq,
        &Response::Ok(Reply::Stat { meta: meta(0) }),
    );
    h.deliver_all(1, &again);
    assert_eq!(h.replies.len(), 1);
    assert_eq!(h.replies[0], (call, Ok(Reply::Stat { meta: meta(0) })));
    assert_eq!(h.s.counters().replayed, 1);
    assert_eq!(h.s.counters().stray_replies, 1);
}

#[test]
fn calls_go_one_at_a_time_in_order() {
    let mut h = Harness::established();
    let a = h.submit(Request::Delete { path: "/a".into() });
    let b = h.submit(Request::Delete { path: "/b".into() });
    assert_eq!(h.sent.len(), 1);
    h.answer_last(&Response::Ok(Reply::Deleted), 1);
    assert_eq!(h.sent.len(), 2);
    assert_eq!(
        h.last_received().request,
        Some(Request::Delete { path: "/b".into() })
    );
    h.answer_last(&Response::Err(ErrorCode::NoSuchNode), 1);
    assert_eq!(h.replies[0], (a, Ok(Reply::Deleted)));
    assert_eq!(
        h.replies[1],
        (b, Err(CallError::Server(ErrorCode::NoSuchNode)))
    );
}

#[test]
fn reordered_and_duplicated_events_are_delivered_once_in_order_and_acked() {
    let mut h = Harness::established();
    let e1 = Event::NodeDeleted {
        handle: HandleId(1),
    };
    let e2 = Event::LockConflict {
        handle: HandleId(2),
    };
    let d1 = h.server.event(1, &e1);
    let d2 = h.server.event(2, &e2);
    h.deliver_all(1, &d2);
    assert!(h.events.is_empty());
    h.deliver_all(1, &d1);
    let d1_again = h.server.event(1, &e1);
    h.deliver_all(1, &d1_again);
    assert_eq!(
        h.events,
        vec![SessionEvent::Server(e1), SessionEvent::Server(e2)]
    );
    assert_eq!(h.s.counters().duplicate_events, 1);
    let acks: Vec<u64> = h
        .sent
        .clone()
        .iter()
        .map(|(_, _, dg)| h.server.receive(dg).expect("whole").header)
        .filter(|hd| hd.kind == Kind::Ack)
        .map(|hd| hd.ack.0)
        .collect();
    assert_eq!(acks, vec![0, 2, 2]);
}

#[test]
fn lost_and_reordered_fragments_are_filled_in_by_the_server_resend() {
    let mut h = Harness::established();
    let call = h.submit(Request::GetContentsAndStat {
        handle: HandleId(4),
    });
    let seq = h.last_received().header.msg_seq;
    let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let resp = Response::Ok(Reply::Contents {
        meta: meta(5000),
        data: data.clone(),
    });
    let first = h.server.reply(seq, &resp);
    assert_eq!(first.len(), 4);
    // Fragments 3, 1, 0 arrive; 2 is lost.
    for i in [3, 1, 0] {
        h.deliver(1, &first[i]);
    }
    assert!(h.replies.is_empty());
    h.advance(ms(300));
    assert_eq!(h.s.counters().retransmissions, 1);
    let second = h.server.reply(seq, &resp);
    h.deliver(1, &second[2]);
    assert_eq!(
        h.replies,
        vec![(
            call,
            Ok(Reply::Contents {
                meta: meta(5000),
                data
            })
        )]
    );
}

#[test]
fn keepalives_go_out_every_third_of_the_lease() {
    let mut h = Harness::established();
    h.advance(ms(3999));
    assert!(h.sent.is_empty());
    h.advance(ms(1));
    let ka = h.last_received();
    assert_eq!(ka.header.kind, Kind::KeepAlive);
    let dgs = h.server.keepalive_reply(ka.header.msg_seq, LEASE);
    h.deliver_all(1, &dgs);
    assert_eq!(h.s.lease_deadline(), Some(Time(ms(4000) + LEASE - ms(250))));
    h.advance(ms(3999));
    assert_eq!(h.sent.len(), 1);
    h.advance(ms(1));
    assert_eq!(h.sent.len(), 2);
}

#[test]
fn lease_runs_out_into_jeopardy_then_a_keepalive_reply_makes_it_safe() {
    let mut h = Harness::established();
    h.advance(ms(11_749));
    assert_eq!(h.s.state(), State::Active);
    h.advance(ms(1));
    assert_eq!(h.s.state(), State::Jeopardy);
    assert_eq!(h.events, vec![SessionEvent::Jeopardy]);
    // Calls made in jeopardy are held, not sent.
    let before = h.sent.len();
    let call = h.submit(Request::Stat { path: "/x".into() });
    assert!(h.sent[before..].iter().all(|(_, _, dg)| {
        h.server
            .sibling(1, 1)
            .receive(dg)
            .expect("whole")
            .header
            .kind
            == Kind::KeepAlive
    }));
    h.advance(ms(5000));
    let (_, to, dg) = h.sent.last().expect("keepalive").clone();
    let ka = h.server.receive(&dg).expect("whole");
    assert_eq!(ka.header.kind, Kind::KeepAlive);
    let port = to.port();
    let dgs = h.server.keepalive_reply(ka.header.msg_seq, LEASE);
    h.deliver_all(port, &dgs);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.events, vec![SessionEvent::Jeopardy, SessionEvent::Safe]);
    // The held call is released.
    assert_eq!(
        h.last_received().request,
        Some(Request::Stat { path: "/x".into() })
    );
    assert!(h.replies.iter().all(|(c, _)| *c != call));
}

#[test]
fn jeopardy_without_the_master_ends_in_expiry_after_the_grace_period() {
    let mut h = Harness::established();
    let call = h.submit(Request::Stat { path: "/x".into() });
    h.advance(ms(11_750 + 44_999));
    assert_eq!(h.s.state(), State::Jeopardy);
    h.advance(ms(1));
    assert_eq!(h.s.state(), State::Expired);
    assert_eq!(
        h.events,
        vec![SessionEvent::Jeopardy, SessionEvent::Expired]
    );
    assert!(h.replies.contains(&(call, Err(CallError::SessionExpired))));
    assert_eq!(
        h.s.submit(h.now, &Request::Status),
        Err(CallError::SessionExpired)
    );
    assert_eq!(h.s.poll_timeout(h.now), None);
    // Keepalives rotated through the members while looking for the master.
    assert!(h.sends_to(2) > 0 && h.sends_to(3) > 0);
}

#[test]
fn unanswered_new_session_times_out_and_ends_the_session() {
    let mut h = Harness::new(&[1, 2]);
    h.advance(ms(59_999));
    assert!(h.replies.is_empty());
    h.advance(ms(1));
    assert_eq!(
        h.replies,
        vec![(Session::OPEN_CALL, Err(CallError::Timeout))]
    );
    assert_eq!(h.s.state(), State::Ended);
    assert_eq!(h.s.counters().call_timeouts, 1);
}

#[test]
fn unknown_session_reply_expires_the_session() {
    let mut h = Harness::established();
    h.submit(Request::Status);
    h.answer_last(&Response::Err(ErrorCode::UnknownSession), 1);
    assert_eq!(h.s.state(), State::Expired);
    assert_eq!(h.events, vec![SessionEvent::Expired]);
}

#[test]
fn packets_from_an_older_epoch_are_dropped() {
    let mut h = Harness::established();
    h.server.epoch = cldc::proto::Epoch(5);
    let e = Event::MasterFailover {
        epoch: cldc::proto::Epoch(5),
    };
    let dgs = h.server.event(1, &e);
    h.deliver_all(1, &dgs);
    let mut old = h.server.sibling(1, 1);
    let stale = old.event(
        2,
        &Event::NodeDeleted {
            handle: HandleId(1),
        },
    );
    h.deliver_all(1, &stale);
    assert_eq!(h.events, vec![SessionEvent::Server(e)]);
    assert_eq!(h.s.counters().stale_epoch, 1);
    assert_eq!(h.s.epoch(), cldc::proto::Epoch(5));
}

#[test]
fn end_session_reply_ends_the_session() {
    let mut h = Harness::established();
    let call = h.submit(Request::EndSession);
    h.answer_last(&Response::Ok(Reply::SessionEnded), 1);
    assert_eq!(h.s.state(), State::Ended);
    assert_eq!(h.replies, vec![(call, Ok(Reply::SessionEnded))]);
    assert_eq!(
        h.s.submit(h.now, &Request::Status),
        Err(CallError::SessionEnded)
    );
}

#[test]
fn retransmissions_alternate_fragment_order() {
    let mut h = Harness::established();
    h.submit(Request::Put {
        handle: HandleId(1),
        cas: None,
        data: vec![1; 4000],
    });
    h.advance(ms(250));
    let order: Vec<u16> = h
        .sent
        .clone()
        .iter()
        .map(|(_, _, dg)| u16::from_le_bytes([dg[56], dg[57]]))
        .collect();
    assert_eq!(order, vec![0, 1, 2, 3, 3, 2, 1, 0]);
}

#[test]
fn bad_datagrams_are_dropped_and_counted_by_cause() {
    let mut h = Harness::established();
    let good = h.server.reply(99, &Response::Ok(Reply::Deleted)).remove(0);
    h.deliver(1, &good[..10]);
    let mut long = good.clone();
    long.resize(1401, 0);
    h.deliver(1, &long);
    let mut magic = good.clone();
    magic[0] ^= 1;
    h.deliver(1, &magic);
    let mut version = good.clone();
    version[4] = 9;
    h.deliver(1, &version);
    let mut tag = good.clone();
    let last = tag.len() - 1;
    tag[last] ^= 0x80;
    h.deliver(1, &tag);
    let mut other = ServerEnd::new(SessionId(1), 1);
    other.keys = Some(test_keys());
    let foreign = other.reply(1, &Response::Ok(Reply::Deleted)).remove(0);
    h.deliver(1, &foreign);
    let garbage = h
        .server
        .datagrams(Kind::Reply, 2, &[0xff, 0xff, 0xff])
        .remove(0);
    h.deliver(1, &garbage);
    let c = h.s.counters();
    assert_eq!(
        (
            c.too_short,
            c.too_long,
            c.bad_magic,
            c.bad_version,
            c.bad_tag,
            c.unknown_session,
            c.bad_body
        ),
        (1, 1, 1, 1, 1, 1, 1)
    );
    assert!(h.replies.is_empty() && h.events.is_empty());
    assert_eq!(h.s.state(), State::Active);
}

#[test]
fn endless_fragments_keep_reassembly_memory_bounded() {
    let mut h = Harness::established();
    let limits = cldc::proto::ReassemblerLimits::default();
    let chunk = vec![0xab; 1284];
    for i in 0..3000u64 {
        // First one message that grows beyond the size limit, then many that never complete.
        let seq = if i < 1000 { 7 } else { i };
        let meta = cldc::proto::PacketMeta {
            kind: Kind::Event,
            session: SID,
            msg_seq: seq,
            ack: cldc::proto::EventSeq(0),
        };
        let mut next = h.server.next_packet;
        let idx = (i % 1024) as u16;
        let key = h
            .server
            .keys
            .as_ref()
            .expect("keys")
            .sealing_key(&h.server.master());
        let dg = fragment(&meta, idx, 1024, &chunk, &mut next, &key);
        h.server.next_packet = next;
        h.deliver(1, &dg);
        assert!(h.s.reassembly_bytes() <= limits.max_partial * limits.max_message);
    }
    assert!(
        h.s.counters().bad_fragment > 0,
        "the oversized message was refused"
    );
    assert!(
        h.s.counters().reassembly_evictions > 0,
        "old partial messages were evicted"
    );
    assert!(h.events.is_empty());
}

/// One sealed fragment with an explicit index and count.
fn fragment(
    meta: &cldc::proto::PacketMeta,
    index: u16,
    count: u16,
    payload: &[u8],
    next: &mut cldc::proto::PacketSeq,
    key: &cldc::proto::SealingKey,
) -> Vec<u8> {
    let header = cldc::proto::Header {
        kind: meta.kind,
        session: meta.session,
        packet_seq: *next,
        msg_seq: meta.msg_seq,
        ack: meta.ack,
        sender: key.sender(),
        frag_index: index,
        frag_count: count,
        pad: 0,
    };
    *next = next.next();
    cldc::proto::seal_datagram(&header, payload, key).expect("seals")
}

#[test]
fn a_not_master_error_reply_moves_the_request_to_the_next_member() {
    let mut h = Harness::established();
    let call = h.submit(Request::Status);
    h.answer_last(&Response::Err(ErrorCode::NotMaster), 1);
    assert!(h.replies.is_empty(), "the call is not failed");
    assert_eq!(h.sent.last().expect("resent").1, addr(2));
    h.server.epoch = cldc::proto::Epoch(2);
    let status = Reply::Deleted;
    h.answer_last(&Response::Ok(status.clone()), 2);
    assert_eq!(h.replies, vec![(call, Ok(status))]);
}

#[test]
fn a_version_reject_is_counted_and_changes_nothing() {
    let mut h = Harness::new(&[1]);
    let reject = cldc::proto::VersionReject { min: 2, max: 3 }.encode();
    h.deliver(1, &reject);
    assert_eq!(h.s.counters().version_rejects, 1);
    assert_eq!(h.s.state(), State::Connecting);
    assert!(h.replies.is_empty());
}

/// The request seq (or keepalive nonce) of the last datagram the client sent, and where to.
fn last_sent(h: &mut Harness) -> (SocketAddr, u64) {
    let (_, to, dg) = h.sent.last().expect("something was sent").clone();
    let r = h.server.receive(&dg).expect("single-datagram message");
    (to, r.header.msg_seq)
}

#[test]
fn a_redirect_loop_between_two_members_still_reaches_the_third() {
    let mut h = Harness::new(&[1, 2, 3]);
    // Members 1 and 2 each name the other as master; 3 is the master and never hinted.
    let mut steps = 0;
    while h.sent.last().expect("sent").1 != addr(3) {
        steps += 1;
        assert!(steps < 100, "the client never tried member 3");
        let before = h.sent.len();
        let (to, seq) = last_sent(&mut h);
        let other = if to == addr(1) { 2 } else { 1 };
        let nm = h.server.not_master(seq, Some(addr(other)));
        h.deliver(to.port(), &nm);
        if h.sent.len() == before {
            h.advance(ms(2000));
        }
    }
    assert!(h.now.0 < ms(60_000), "reached before the call timeout");
    h.answer_last(&Response::Ok(Reply::SessionCreated { lease: LEASE }), 3);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.master(), addr(3));
}

#[test]
fn a_not_master_that_answers_nothing_in_flight_is_ignored() {
    let mut h = Harness::established();
    // A late or replayed redirect: no request and no keepalive is outstanding.
    let nm = h.server.not_master(1, Some(addr(2)));
    h.deliver(1, &nm);
    assert_eq!(h.s.master(), addr(1));
    assert!(h.sent.is_empty());
    assert_eq!(h.s.counters().stray_redirects, 1);
}

#[test]
fn a_not_master_from_a_member_already_left_is_ignored() {
    let mut h = Harness::established();
    h.submit(Request::Status);
    let (_, seq) = last_sent(&mut h);
    // Member 1 stays silent; after three sends the request moves to member 2.
    h.advance(ms(1800));
    assert_eq!(h.sent.last().expect("sent").1, addr(2));
    // Member 1's late redirect for the first transmission must not pull the client away.
    let nm = h.server.not_master(seq, Some(addr(3)));
    h.deliver(1, &nm);
    assert_eq!(h.s.master(), addr(2));
    assert_eq!(h.s.counters().stray_redirects, 1);
}

#[test]
fn unknown_session_answer_to_a_keepalive_expires_the_session() {
    let mut h = Harness::established();
    h.advance(ms(4000));
    let (to, nonce) = last_sent(&mut h);
    assert_eq!(h.last_received().header.kind, Kind::KeepAlive);
    let dgs = h
        .server
        .reply(nonce, &Response::Err(ErrorCode::UnknownSession));
    h.deliver_all(to.port(), &dgs);
    assert_eq!(h.s.state(), State::Expired);
    assert_eq!(h.events, vec![SessionEvent::Expired]);
}

#[test]
fn unknown_session_reply_to_a_nonce_never_sent_changes_nothing() {
    let mut h = Harness::established();
    let dgs = h
        .server
        .reply(77, &Response::Err(ErrorCode::UnknownSession));
    h.deliver_all(1, &dgs);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.counters().stray_replies, 1);
}

#[test]
fn the_lease_counts_from_the_send_of_the_keepalive_that_was_answered() {
    let mut h = Harness::established();
    h.advance(ms(4000));
    let (_, first) = last_sent(&mut h);
    h.advance(ms(250));
    let (to, second) = last_sent(&mut h);
    assert_ne!(first, second, "a resent keepalive takes a new nonce");
    // The server got only the resend (at 4250 ms) and answers it much later.
    h.advance(ms(1000));
    let dgs = h.server.keepalive_reply(second, LEASE);
    h.deliver_all(to.port(), &dgs);
    assert_eq!(h.s.lease_deadline(), Some(Time(ms(4250) + LEASE - ms(250))));
    // A late answer to the first keepalive can no longer move anything.
    let dgs = h.server.keepalive_reply(first, LEASE);
    h.deliver_all(to.port(), &dgs);
    assert_eq!(h.s.lease_deadline(), Some(Time(ms(4250) + LEASE - ms(250))));
    assert_eq!(h.s.counters().stray_keepalive_replies, 1);
}

#[test]
fn a_keepalive_reply_whose_renewal_already_ran_out_leaves_the_session_in_jeopardy() {
    let mut h = Harness::established();
    h.advance(ms(4250));
    let (to, old) = last_sent(&mut h);
    // The keepalive resent at 4250 ms is answered only when its own renewal
    // (4250 + 12000 - 250 = 16000 ms) has run out.
    h.advance_to(Time(ms(16_000)));
    assert_eq!(h.s.state(), State::Jeopardy);
    let dgs = h.server.keepalive_reply(old, LEASE);
    h.deliver_all(to.port(), &dgs);
    assert_eq!(
        h.s.counters().stray_keepalive_replies,
        0,
        "the reply was taken"
    );
    assert_eq!(h.s.lease_deadline(), Some(Time(ms(16_000))));
    assert_eq!(h.s.state(), State::Jeopardy);
    assert_eq!(h.events, vec![SessionEvent::Jeopardy]);
}

#[test]
fn a_request_retried_across_a_fail_over_keeps_its_request_seq() {
    let mut h = Harness::established();
    let call = h.submit(Request::Delete { path: "/a".into() });
    let (_, seq) = last_sent(&mut h);
    // Member 1 dies; the client moves on by itself and member 2 (the new master) answers.
    h.advance(ms(2000));
    let resent: Vec<(SocketAddr, u64)> = h
        .sent
        .clone()
        .iter()
        .map(|(_, to, dg)| (*to, h.server.receive(dg).expect("whole").header.msg_seq))
        .collect();
    assert!(resent.iter().any(|(to, _)| *to == addr(2)));
    assert!(resent.iter().all(|(_, s)| *s == seq), "{resent:?}");
    let mut new_master = h.server.sibling(2, 2);
    let dgs = new_master.reply(seq, &Response::Ok(Reply::Deleted));
    h.deliver_all(2, &dgs);
    assert_eq!(h.replies, vec![(call, Ok(Reply::Deleted))]);
    assert_eq!(h.s.epoch(), cldc::proto::Epoch(2));
    // The next request takes the next seq.
    h.submit(Request::Status);
    assert_eq!(last_sent(&mut h), (addr(2), seq + 1));
}

#[test]
fn an_unbounded_event_buffer_setting_does_not_overflow_the_gap_check() {
    let mut cfg = config(vec![addr(1)]);
    cfg.max_buffered_events = usize::MAX;
    let (mut s, mut server) = start(cfg);
    for dg in server.reply(1, &Response::Ok(Reply::SessionCreated { lease: LEASE })) {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    let ev = Event::NodeDeleted {
        handle: HandleId(1),
    };
    for dg in server.event(3, &ev) {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    assert_eq!(s.counters().events_overflow, 0, "held, waiting for 1 and 2");
}

#[test]
fn a_client_with_small_datagrams_still_accepts_full_size_server_datagrams() {
    let mut cfg = config(vec![addr(1)]);
    cfg.max_datagram = cldc::proto::MIN_DATAGRAM;
    let (mut s, mut server) = start(cfg);
    // The server does not know the client's setting and sends 1400-byte fragments.
    let dgs = server.reply(1, &Response::Ok(Reply::SessionCreated { lease: LEASE }));
    for dg in dgs {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    assert_eq!(s.state(), State::Active);
    let data = vec![7u8; 3000];
    let resp = Response::Ok(Reply::Contents {
        meta: meta(3000),
        data: data.clone(),
    });
    let call = s
        .submit(
            Time::default(),
            &Request::GetContentsAndStat {
                handle: HandleId(1),
            },
        )
        .expect("accepted");
    let dgs = server.reply(2, &resp);
    assert!(dgs[0].len() > cldc::proto::MIN_DATAGRAM);
    for dg in dgs {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    let mut got = None;
    while let Some(o) = s.poll_output() {
        if let Output::Reply { call: c, result } = o {
            got = Some((c, result));
        }
    }
    assert_eq!(
        got,
        Some((
            call,
            Ok(Reply::Contents {
                meta: meta(3000),
                data
            })
        ))
    );
    assert_eq!(s.counters().too_long, 0);
}

#[test]
fn a_zero_lease_from_the_server_does_not_turn_keepalives_into_a_storm() {
    let mut h = Harness::new(&[1]);
    h.answer_last(
        &Response::Ok(Reply::SessionCreated {
            lease: Duration::ZERO,
        }),
        1,
    );
    let mut keepalives = 0;
    for _ in 0..10_000 {
        let next = h.s.poll_timeout(h.now);
        h.drain();
        // The server answers every keepalive at once, again with a zero lease; like the
        // driver, the loop then asks for the next timeout again before time moves.
        let mut answered = false;
        for (_, to, dg) in std::mem::take(&mut h.sent) {
            let r = h.server.receive(&dg).expect("whole");
            if r.header.kind == Kind::KeepAlive {
                keepalives += 1;
                answered = true;
                let dgs = h.server.keepalive_reply(r.header.msg_seq, Duration::ZERO);
                h.deliver_all(to.port(), &dgs);
            }
        }
        if answered {
            continue;
        }
        match next {
            Some(n) if n > h.now => h.now = n,
            Some(_) => {}
            None => break,
        }
        if h.now >= Time(ms(10_000)) {
            break;
        }
    }
    assert!(h.now >= Time(ms(10_000)), "time stood still at {:?}", h.now);
    // At most one keepalive per initial_rto (250 ms).
    assert!(keepalives <= 41, "{keepalives} keepalives in 10 s");
}

#[test]
fn end_session_answered_unknown_session_counts_as_ended() {
    // The first EndSession ran and the cell forgot the session, but its reply was lost:
    // the retransmission finds no session. What EndSession asked for is done.
    let mut h = Harness::established();
    let call = h.submit(Request::EndSession);
    h.answer_last(&Response::Err(ErrorCode::UnknownSession), 1);
    assert_eq!(h.replies, vec![(call, Ok(Reply::SessionEnded))]);
    assert_eq!(h.s.state(), State::Ended);
    assert!(
        h.events.is_empty(),
        "no Expired event for a session the client ended"
    );
}
