//! Checks of the client's receive path (docs/protocol.md §15.1), each with a datagram that
//! only that check stops, and the counter it bumps. Written to kill the mutants the
//! mutation run found alive.

mod support;

use cldc::core::{Session, State, Time};
use cldc::proto::*;
use std::time::Duration;
use support::{ServerEnd, addr, handshaken};

const LEASE: Duration = Duration::from_secs(12);

fn active() -> (Session, ServerEnd) {
    let (mut s, mut server) = handshaken(2);
    for dg in server.reply(1, &Response::Ok(Reply::SessionCreated { lease: LEASE })) {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    while s.poll_output().is_some() {}
    assert_eq!(s.state(), State::Active);
    (s, server)
}

#[test]
fn client_kinds_are_dropped_as_wrong_direction() {
    let (mut s, server) = active();
    let keys = server.keys.clone().expect("keys");
    let meta = PacketMeta {
        kind: Kind::Request,
        session: server.session,
        msg_seq: 2,
        ack: EventSeq(0),
    };
    let body = encode_body(&Request::Status).expect("encodes");
    let key = keys.sealing_key(&Sender::client(Epoch(1)));
    for dg in encode_message(&meta, &body, 1400, &key, &mut PacketSeq(50)).expect("seals") {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    let init = ClientHandshake::new(
        support::user(),
        &support::secret(),
        support::cell_key(),
        [8; 32],
    )
    .init_datagram()
    .expect("init");
    s.handle_datagram(Time::default(), addr(1), &init);
    assert_eq!(s.counters().wrong_direction, 2);
    assert!(s.poll_output().is_none());
}

#[test]
fn datagrams_after_the_end_are_stray() {
    let (mut s, mut server) = active();
    s.submit(Time::default(), &Request::EndSession)
        .expect("queued");
    while s.poll_output().is_some() {}
    for dg in server.reply(2, &Response::Ok(Reply::SessionEnded)) {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    assert_eq!(s.state(), State::Ended);
    while s.poll_output().is_some() {}
    let before = s.counters().stray_replies;
    for dg in server.reply(2, &Response::Ok(Reply::SessionEnded)) {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    let ev = Event::NodeDeleted {
        handle: HandleId(1),
    };
    for dg in server.event(1, &ev) {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    assert_eq!(s.counters().stray_replies, before + 2);
    let after = s.poll_output();
    assert!(after.is_none(), "nothing may follow the end: {after:?}");
}

/// A session whose handshake init to member 1 (of `n`) is out, and that init.
fn handshaking(n: u16) -> (Session, Vec<u8>) {
    let cfg = support::config((1..=n).map(addr).collect());
    let mut s = Session::new(cfg, Time::default(), [5; 32]).expect("valid config");
    let mut init = None;
    while let Some(o) = s.poll_output() {
        if let cldc::core::Output::Transmit { datagram, .. } = o {
            init = Some(datagram);
        }
    }
    (s, init.expect("init sent"))
}

fn sent(s: &mut Session) -> Vec<(std::net::SocketAddr, Vec<u8>)> {
    let mut out = vec![];
    while let Some(o) = s.poll_output() {
        if let cldc::core::Output::Transmit { to, datagram } = o {
            out.push((to, datagram));
        }
    }
    out
}

#[test]
fn a_cookie_is_taken_only_from_the_current_member_while_handshaking() {
    let (mut s, init) = handshaking(2);
    let me = ServerEnd::new(SessionId(9), 1).master();
    let cookie = cookie_datagram(&[7; COOKIE_LEN], me);
    // From another member: ignored.
    s.handle_datagram(Time::default(), addr(2), &cookie);
    assert!(sent(&mut s).is_empty());
    assert_eq!(
        (s.counters().cookies, s.counters().stray_handshakes),
        (0, 1)
    );
    // From the current member: the init is re-sent at once, carrying the cookie.
    s.handle_datagram(Time::default(), addr(1), &cookie);
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(1));
    let parsed = HandshakeInit::parse(&out[0].1, 1400).expect("an init");
    assert_eq!(parsed.cookie, [7; COOKIE_LEN]);
    assert_eq!(
        parsed.ephemeral(),
        HandshakeInit::parse(&init, 1400).expect("init").ephemeral()
    );
    assert_eq!(s.counters().cookies, 1);
    // A cookie of the wrong length is stray.
    s.handle_datagram(Time::default(), addr(1), &cookie[..cookie.len() - 1]);
    assert_eq!(s.counters().stray_handshakes, 2);
}

#[test]
fn handshake_answers_outside_a_handshake_or_forged_are_counted_and_ignored() {
    let (mut s, init) = handshaking(1);
    // A reply that does not authenticate.
    let mut server = ServerEnd::new(SessionId(9), 1);
    let mut reply = server.accept(&init);
    let last = reply.len() - 1;
    reply[last] ^= 1;
    s.handle_datagram(Time::default(), addr(1), &reply);
    assert_eq!(s.counters().bad_handshakes, 1);
    assert_eq!(s.id(), SessionId(0));
    // Once active, any handshake answer is stray.
    let (mut s, _) = active();
    let mut other = ServerEnd::new(SessionId(9), 1);
    let reply = other.accept(&init);
    s.handle_datagram(Time::default(), addr(1), &reply);
    let me = other.master();
    s.handle_datagram(
        Time::default(),
        addr(1),
        &cookie_datagram(&[1; COOKIE_LEN], me),
    );
    assert_eq!(s.counters().stray_handshakes, 2);
    assert_eq!(s.counters().bad_handshakes, 0);
}

#[test]
fn an_accepting_member_other_than_the_current_one_gets_the_new_session() {
    let (mut s, init) = handshaking(3);
    let mut server = ServerEnd::new(SessionId(9), 1);
    let reply = server.accept(&init);
    // Member 3 answers (the client had sent the same init there too, e.g. before rotating).
    s.handle_datagram(Time::default(), addr(3), &reply);
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(3));
    assert_eq!(s.master(), addr(3));
    let r = server.receive(&out[0].1).expect("whole");
    assert_eq!(r.request, Some(Request::NewSession));
}

#[test]
fn a_refused_handshake_ends_the_open_with_its_code() {
    let (mut s, init) = handshaking(1);
    let mut server = ServerEnd::new(SessionId(9), 1);
    let reply = server.answer_init(
        &init,
        HandshakeOutcome::Refused {
            code: ErrorCode::TooManySessions,
        },
    );
    s.handle_datagram(Time::default(), addr(1), &reply);
    assert_eq!(s.state(), State::Ended);
    let mut got = None;
    while let Some(o) = s.poll_output() {
        if let cldc::core::Output::Reply { call, result } = o {
            got = Some((call, result));
        }
    }
    assert_eq!(
        got,
        Some((
            Session::OPEN_CALL,
            Err(cldc::core::CallError::Server(ErrorCode::TooManySessions))
        ))
    );
}

#[test]
fn a_retry_from_a_new_master_re_sends_under_its_epoch_at_once() {
    let (mut s, server) = active();
    s.submit(Time::default(), &Request::Status).expect("queued");
    let first = sent(&mut s);
    assert_eq!(first.len(), 1);
    let mut new_master = server.sibling(2, 2);
    // A Retry echoing nothing outstanding changes nothing but a counter and the epoch.
    let stray = new_master.retry(99);
    s.handle_datagram(Time::default(), addr(2), &stray);
    assert!(sent(&mut s).is_empty());
    assert_eq!(s.counters().retries, 0);
    assert_eq!(s.counters().stray_replies, 1);
    // A Retry echoing the request in flight: re-sent now, sealed under epoch 2.
    let retry = new_master.retry(2);
    s.handle_datagram(Time::default(), addr(2), &retry);
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(2));
    let r = new_master.receive(&out[0].1).expect("whole");
    assert_eq!(r.header.sender.epoch, Epoch(2));
    assert_eq!(r.header.msg_seq, 2);
    assert_eq!(s.counters().retries, 1);
    assert_eq!(s.epoch(), Epoch(2));
}

#[test]
fn immediate_resends_stop_after_twice_as_many_as_members() {
    let (mut s3, mut server3) = {
        let (mut s3, mut server3) = support::handshaken(3);
        for dg in server3.reply(1, &Response::Ok(Reply::SessionCreated { lease: LEASE })) {
            s3.handle_datagram(Time::default(), addr(1), &dg);
        }
        while s3.poll_output().is_some() {}
        (s3, server3)
    };
    s3.submit(Time::default(), &Request::Status)
        .expect("queued");
    sent(&mut s3);
    let mut resends = 0;
    let mut at = 1u16;
    for _ in 0..20 {
        let nm = server3.not_master(2, None);
        s3.handle_datagram(Time::default(), addr(at), &nm);
        let out = sent(&mut s3);
        resends += out.len();
        at = out.last().map_or(at, |(to, _)| to.port());
        if out.is_empty() {
            // No resend: the member does not change either; the next redirect comes from
            // the member the client now talks to.
            at = s3.master().port();
        }
    }
    assert_eq!(resends, 6, "2 x 3 members");
}

#[test]
fn header_parsing_reports_each_cause_at_its_exact_boundary() {
    // 5 bytes are enough to judge magic and version; 60 are a whole header.
    assert_eq!(
        parse_header(b"XLDr\x02", 1400).map(|_| ()),
        Err(DecodeError::BadMagic)
    );
    assert_eq!(
        parse_header(b"CLDr\x07", 1400).map(|_| ()),
        Err(DecodeError::BadVersion(7))
    );
    assert_eq!(
        parse_header(b"CLDr", 1400).map(|_| ()),
        Err(DecodeError::TooShort)
    );
    assert_eq!(
        parse_header(b"CLDr\x02", 1400).map(|_| ()),
        Err(DecodeError::TooShort)
    );
    let init = ClientHandshake::new(
        support::user(),
        &support::secret(),
        support::cell_key(),
        [8; 32],
    )
    .init_datagram()
    .expect("init");
    let (h, rest) = parse_header(&init[..HEADER_LEN], 1400).expect("a bare header parses");
    assert_eq!((h.kind, rest.len()), (Kind::HandshakeInit, 0));
    assert_eq!(
        parse_header(&init[..HEADER_LEN - 1], 1400).map(|_| ()),
        Err(DecodeError::TooShort)
    );
    assert_eq!(
        parse_header(&init, 163).map(|_| ()),
        Err(DecodeError::TooLong)
    );
}
