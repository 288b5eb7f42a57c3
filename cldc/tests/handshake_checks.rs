//! Every check of the handshake's receive paths, each with a datagram that only that check
//! refuses (found by the mutation run: docs/protocol.md §12.3).

mod support;

use cldc::proto::*;
use std::time::Duration;
use support::{ServerEnd, addr, cell_key, cell_keys, secret, user};

fn me() -> Sender {
    ServerEnd::new(SessionId(7), 1).master()
}

fn accepted(id: u64) -> HandshakeOutcome {
    HandshakeOutcome::Accepted {
        session: SessionId(id),
        epoch: Epoch(1),
    }
}

fn client() -> ClientHandshake {
    ClientHandshake::new(user(), &secret(), cell_key(), [3; 32])
}

fn reply_to(hs: &ClientHandshake, outcome: &HandshakeOutcome) -> Vec<u8> {
    let init = HandshakeInit::parse(&hs.init_datagram().expect("init"), 1400).expect("parses");
    respond(&cell_keys(), &init, &secret(), outcome, me(), [4; 32])
        .expect("answers")
        .0
}

#[test]
fn an_init_with_any_header_field_set_or_the_wrong_length_is_malformed() {
    let init = client().init_datagram().expect("init");
    assert!(HandshakeInit::parse(&init, 1400).is_ok());
    let malformed = |d: &[u8]| {
        matches!(
            HandshakeInit::parse(d, 1400),
            Err(HandshakeError::Malformed(_))
        )
    };
    // One byte more or less.
    let mut longer = init.clone();
    longer.push(0);
    assert!(malformed(&longer));
    assert!(malformed(&init[..init.len() - 1]));
    // Each header field that must be zero: session, packet seq, msg seq, ack, epoch,
    // member, boot.
    for at in [8, 16, 24, 32, 40, 48, 52] {
        let mut d = init.clone();
        d[at] = 1;
        assert!(malformed(&d), "byte {at}");
    }
    // Another kind with an init's length and header shape.
    let mut d = init.clone();
    d[5] = Kind::Request as u8;
    assert!(malformed(&d));
    // A bad user name in the body.
    let mut d = init.clone();
    d[HEADER_LEN] = 0;
    assert!(malformed(&d));
}

#[test]
fn a_reply_of_the_wrong_kind_or_length_is_malformed() {
    let hs = client();
    let reply = reply_to(&hs, &accepted(7));
    let (h, body) = parse_header(&reply, 1400).expect("parses");
    assert!(hs.read_reply(&h, body).is_ok());
    let malformed = |r: Result<_, HandshakeError>| matches!(r, Err(HandshakeError::Malformed(_)));
    assert!(malformed(hs.read_reply(&h, &body[1..])));
    let mut longer = body.to_vec();
    longer.push(0);
    assert!(malformed(hs.read_reply(&h, &longer)));
    let cookie_header = Header {
        kind: Kind::Cookie,
        ..h
    };
    assert!(malformed(hs.read_reply(&cookie_header, body)));
}

#[test]
fn an_accepted_reply_whose_header_names_another_session_is_refused() {
    let hs = client();
    let reply = reply_to(&hs, &accepted(7));
    let mut moved = reply.clone();
    moved[8..16].copy_from_slice(&8u64.to_le_bytes());
    let (h, body) = parse_header(&moved, 1400).expect("parses");
    assert_eq!(
        hs.read_reply(&h, body).map(|_| ()),
        Err(HandshakeError::BadOutcome)
    );
    // A NotMaster outcome carries no session: any header session is fine, and no keys.
    let reply = reply_to(&hs, &HandshakeOutcome::NotMaster { hint: None });
    let (h, body) = parse_header(&reply, 1400).expect("parses");
    let (outcome, keys) = hs.read_reply(&h, body).expect("reads");
    assert_eq!(outcome, HandshakeOutcome::NotMaster { hint: None });
    assert!(keys.is_none());
}

#[test]
fn a_cookie_is_read_only_from_a_cookie_datagram_of_the_right_length() {
    let dg = cookie_datagram(&[9; COOKIE_LEN], me());
    let (h, body) = parse_header(&dg, 1400).expect("parses");
    assert_eq!(read_cookie(&h, body), Some([9; COOKIE_LEN]));
    assert_eq!(read_cookie(&h, &body[1..]), None);
    let reply_header = Header {
        kind: Kind::HandshakeReply,
        ..h
    };
    assert_eq!(read_cookie(&reply_header, body), None);
}

#[test]
fn a_cookie_differing_in_two_bytes_by_the_same_bits_is_refused() {
    let limits = ResponderLimits {
        cookie_threshold: 0,
        ..ResponderLimits::default()
    };
    let mut responder = Responder::new(cell_keys(), [1; 32], limits);
    responder.rotate_cookie_secret([2; 32]);
    let mut hs = client();
    let init = hs.init_datagram().expect("init");
    let InitCheck::Answer(c) = responder.check_init(Duration::ZERO, addr(9), &init, 1400, me())
    else {
        panic!("cookie demanded");
    };
    let (h, body) = parse_header(&c, 1400).expect("parses");
    let mut cookie = read_cookie(&h, body).expect("cookie");
    cookie[0] ^= 0x10;
    cookie[1] ^= 0x10;
    hs.set_cookie(cookie);
    let forged = hs.init_datagram().expect("init");
    assert!(matches!(
        responder.check_init(Duration::ZERO, addr(9), &forged, 1400, me()),
        InitCheck::Answer(_)
    ));
}

#[test]
fn malformed_inits_are_dropped_and_counted_as_such() {
    let mut responder = Responder::new(cell_keys(), [1; 32], ResponderLimits::default());
    let mut bad = client().init_datagram().expect("init");
    bad.push(0);
    for _ in 0..2 {
        assert!(matches!(
            responder.check_init(Duration::ZERO, addr(9), &bad, 1400, me()),
            InitCheck::Drop(HandshakeError::Malformed(_))
        ));
    }
    let c = responder.counters();
    assert_eq!((c.malformed, c.inits, c.answered), (2, 0, 0));
}

#[test]
fn inits_and_re_sent_inits_are_counted() {
    let mut responder = Responder::new(cell_keys(), [1; 32], ResponderLimits::default());
    let init = client().init_datagram().expect("init");
    let InitCheck::Fresh(parsed) = responder.check_init(Duration::ZERO, addr(9), &init, 1400, me())
    else {
        panic!("fresh");
    };
    responder
        .answer(
            Duration::ZERO,
            &parsed,
            &secret(),
            &accepted(7),
            me(),
            [4; 32],
        )
        .expect("answers");
    for _ in 0..2 {
        assert!(matches!(
            responder.check_init(Duration::ZERO, addr(9), &init, 1400, me()),
            InitCheck::Answer(_)
        ));
    }
    let c = responder.counters();
    assert_eq!((c.inits, c.resent, c.answered), (3, 2, 1));
}
