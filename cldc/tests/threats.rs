//! One test per row of the threat table (docs/protocol.md §18). Each fails on v1's
//! behaviour; the row and the comment at each test say how v1 failed.

mod support;

use cldc::core::{CallError, Output, SessionEvent, State, Time};
use cldc::proto::*;
use cldc::{Credentials, Session as ApiSession};
use std::net::SocketAddr;
use std::time::Duration;
use support::fake_cell::FakeCell;
use support::{SECRET, ServerEnd, USER, addr, cell_key, cell_keys, handshaken, secret, user};
use tokio::net::UdpSocket;

const LEASE: Duration = Duration::from_secs(12);
const RW: OpenMode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);
const MARKER: &[u8] = b"TOP-SECRET-CONTENTS-0123456789";

async fn session(cell: &FakeCell) -> ApiSession {
    let creds = Credentials::new(USER, SECRET).expect("valid credentials");
    ApiSession::open(cell.addr, creds, support::options())
        .await
        .expect("session opens")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Sends `dg` to `to` from the attacker's socket and collects every answer for 300 ms.
async fn exchange(attacker: &UdpSocket, to: SocketAddr, dg: &[u8]) -> Vec<Vec<u8>> {
    attacker.send_to(dg, to).await.expect("send");
    let mut got = vec![];
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(300), attacker.recv_from(&mut buf)).await
    {
        got.push(buf[..n].to_vec());
    }
    got
}

fn kind_of(dg: &[u8]) -> Option<Kind> {
    dg.get(5).and_then(|k| Kind::from_u8(*k))
}

fn executed(cell: &FakeCell) -> usize {
    cell.seen().executed.len()
}

// Row 1 — v1 sent bodies in the clear: the marker was in the datagrams.
#[tokio::test(start_paused = true)]
async fn an_eavesdropper_sees_no_contents() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let path = "/secret-path-name";
    let h = s.open_node(path, RW).await.expect("open");
    h.put(MARKER).await.expect("put");
    let back = h.get().await.expect("get");
    assert_eq!(back.data, MARKER);
    let seen = cell.seen();
    assert!(seen.raw_in.len() >= 4);
    for (_, dg) in &seen.raw_in {
        assert!(!contains(dg, MARKER), "contents in the clear");
        assert!(!contains(dg, path.as_bytes()), "path in the clear");
        assert!(!contains(dg, SECRET), "secret in the clear");
    }
}

// Row 2 — v1: a replayed NewSession created the session again.
#[test]
fn a_replayed_handshake_never_becomes_a_session() {
    let mut responder = Responder::new(cell_keys(), [1; 32], ResponderLimits::default());
    let me = ServerEnd::new(SessionId(7), 1).master();
    let from = addr(9);
    let hs = ClientHandshake::new(user(), &secret(), cell_key(), [3; 32]);
    let init = hs.init_datagram().expect("init");
    let accept = |id| HandshakeOutcome::Accepted {
        session: SessionId(id),
        epoch: Epoch(1),
    };
    let InitCheck::Fresh(parsed) = responder.check_init(Duration::ZERO, from, &init, 1400, me)
    else {
        panic!("fresh init");
    };
    let reply = responder
        .answer(Duration::ZERO, &parsed, &secret(), &accept(7), me, [4; 32])
        .expect("answers");
    // The client's own re-send gets the same answer, with no new work.
    let InitCheck::Answer(again) = responder.check_init(Duration::ZERO, from, &init, 1400, me)
    else {
        panic!("answered from the pending entry");
    };
    assert_eq!(again, reply);
    assert_eq!(responder.counters().answered, 1);
    // The client proves the handshake: its NewSession opens under the pending keys.
    let (h, body) = parse_header(&reply, 1400).expect("parses");
    let (_, keys) = hs.read_reply(&h, body).expect("reads");
    let keys = keys.expect("accepted");
    let meta = PacketMeta {
        kind: Kind::Request,
        session: SessionId(7),
        msg_seq: 1,
        ack: EventSeq(0),
    };
    let ns = encode_message(
        &meta,
        &encode_body(&Request::NewSession).expect("encodes"),
        1400,
        &keys.sealing_key(&Sender::client(Epoch(1))),
        &mut PacketSeq(1),
    )
    .expect("seals")
    .remove(0);
    let (nh, _) = parse_header(&ns, 1400).expect("parses");
    let key = responder.pending_key(&nh).expect("pending");
    assert!(open_packet(&ns, 1400, |_| Some(key)).is_ok());
    assert!(responder.complete(SessionId(7)).is_some());
    // Later the attacker replays the init and the NewSession.
    let t = Duration::from_secs(60);
    let InitCheck::Fresh(parsed) = responder.check_init(t, from, &init, 1400, me) else {
        panic!("the replay is a new handshake");
    };
    let reply2 = responder
        .answer(t, &parsed, &secret(), &accept(8), me, [5; 32])
        .expect("answers");
    assert_ne!(reply2, reply, "a fresh ephemeral: a different reply");
    // The old NewSession names the completed session: no pending entry, no session.
    assert!(responder.pending_key(&nh).is_none());
    // Re-pointed at the new pending session it does not open (other keys, other header).
    let mut forged = ns.clone();
    forged[8..16].copy_from_slice(&8u64.to_le_bytes());
    let (fh, _) = parse_header(&forged, 1400).expect("parses");
    let key = responder.pending_key(&fh).expect("pending 8");
    assert_eq!(
        open_packet(&forged, 1400, |_| Some(key)),
        Err(DecodeError::BadTag)
    );
    // The pending entry expires unproven, counted; it never became a session.
    responder.expire(t + Duration::from_secs(11));
    assert_eq!(responder.pending_count(), 0);
    assert_eq!(responder.counters().expired, 1);
    assert_eq!(responder.counters().completed, 1);
}

// Row 3 — v1: replaying an ended session's datagrams re-created it and re-ran its Puts.
#[tokio::test(start_paused = true)]
async fn replayed_datagrams_of_an_ended_session_execute_nothing() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/f", RW).await.expect("open");
    h.put(b"one").await.expect("put");
    h.close().await.expect("close");
    s.close().await.expect("end");
    let ran = executed(&cell);
    let captured = cell.seen().raw_in;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for (_, dg) in &captured {
        for answer in exchange(&attacker, cell.addr, dg).await {
            assert!(answer.len() <= dg.len(), "no amplification");
        }
    }
    assert_eq!(executed(&cell), ran, "nothing executed again");
}

// Row 4 — v1: the reply address followed any authentic datagram, replays included.
#[tokio::test(start_paused = true)]
async fn a_replayed_datagram_does_not_move_the_reply_address() {
    let cell = FakeCell::start(LEASE).await;
    let watcher = session(&cell).await;
    let mut events = watcher.events().expect("events");
    let _w = watcher
        .open_node_with_events("/w", RW, EventMask::CONTENTS_MODIFIED)
        .await
        .expect("open");
    // Capture the watcher's latest datagram (its Open request).
    let (from, dg) = cell.seen().raw_in.last().expect("captured").clone();
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    assert_ne!(attacker.local_addr().expect("addr"), from);
    assert!(exchange(&attacker, cell.addr, &dg).await.is_empty());
    // An event for the watcher goes to the watcher, not to the attacker.
    let writer = session(&cell).await;
    writer
        .open_node("/w", RW)
        .await
        .expect("open")
        .put(b"x")
        .await
        .expect("put");
    assert!(matches!(
        events.next().await,
        Some(SessionEvent::Server(Event::ContentsModified { .. }))
    ));
    let mut buf = [0u8; 2048];
    let stray = tokio::time::timeout(Duration::from_secs(1), attacker.recv_from(&mut buf)).await;
    assert!(
        stray.is_err(),
        "the attacker received the watcher's traffic"
    );
}

// Row 5 — v1: a replayed GetContentsAndStat made the cell send the whole file to the
// replayer's (spoofable) source.
#[tokio::test(start_paused = true)]
async fn answers_to_unproven_datagrams_are_never_larger_than_them() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/big", RW).await.expect("open");
    h.put(&vec![7u8; 100_000]).await.expect("put");
    h.get().await.expect("get");
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let check = async |label: &str| {
        let captured = cell.seen().raw_in;
        let mut answered = 0;
        for (_, dg) in captured.iter().rev().take(40) {
            let answers = exchange(&attacker, cell.addr, dg).await;
            let total: usize = answers.iter().map(Vec::len).sum();
            assert!(
                total <= dg.len(),
                "{label}: {total} bytes for a {}-byte datagram",
                dg.len()
            );
            answered += answers.len();
        }
        answered
    };
    // A live session: replays die in the window (no answer at all).
    assert_eq!(check("live").await, 0);
    // A non-master (stateless NotMaster answers) and a cell under a handshake flood.
    cell.faults(|f| f.not_master = Some(Some("[::1]:9".parse().expect("addr"))));
    assert!(check("not master").await > 0);
    cell.faults(|f| {
        f.not_master = None;
        f.demand_cookies = true;
    });
    check("cookies").await;
    // A newer epoch (Retry answers), then an ended session (tombstone answers).
    cell.faults(|f| {
        f.demand_cookies = false;
        f.epoch = Some(5);
    });
    assert!(check("retry").await > 0);
    cell.faults(|f| f.forget_sessions = true);
    assert!(check("ended").await > 0);
}

// Row 6 — v1: a new master started a fresh window and acted on replayed datagrams.
#[tokio::test(start_paused = true)]
async fn a_datagram_replayed_to_a_new_master_is_answered_with_retry_only() {
    let cell = FakeCell::start(LEASE).await;
    let s = session(&cell).await;
    let h = s.open_node("/f", RW).await.expect("open");
    let before = cell.seen().raw_in.len();
    h.put(b"once").await.expect("put");
    // The Put's datagram, captured.
    let put = cell.seen().raw_in[before..]
        .iter()
        .find(|(_, d)| kind_of(d) == Some(Kind::Request))
        .expect("put captured")
        .1
        .clone();
    let ran = executed(&cell);
    cell.faults(|f| f.epoch = Some(2));
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let answers = exchange(&attacker, cell.addr, &put).await;
    assert_eq!(answers.len(), 1);
    assert_eq!(kind_of(&answers[0]), Some(Kind::Retry));
    assert_eq!(executed(&cell), ran, "not executed");
    assert_eq!(cell.seen().retries, 1);
    // The real client carries on with the new master.
    h.put(b"twice").await.expect("put at the new master");
    assert_eq!(executed(&cell), ran + 1);
}

// Row 7 — v1: the user's secret keyed both directions, so a colleague could forge the
// master: a fake Locked, an endless lease, epoch u64::MAX.
#[test]
fn the_users_secret_alone_cannot_forge_the_masters_datagrams() {
    let (mut victim, server) = handshaken(3);
    // The colleague holds the secret and completes handshakes of its own with the cell
    // (other ephemeral keys): it knows those sessions' keys, not the victim's.
    let theirs = support::test_keys();
    let master_max = Sender {
        role: Role::Master,
        epoch: Epoch(u64::MAX),
        member: 1,
        boot: 1,
    };
    let forged_meta = |kind, msg_seq| PacketMeta {
        kind,
        session: server.session,
        msg_seq,
        ack: EventSeq(0),
    };
    let mut seq = PacketSeq(1);
    let mut forge = |kind, msg_seq, body: &[u8], sender: Sender| {
        encode_message(
            &forged_meta(kind, msg_seq),
            body,
            1400,
            &theirs.sealing_key(&sender),
            &mut seq,
        )
        .expect("seals")
        .remove(0)
    };
    let created = encode_body(&Response::Ok(Reply::SessionCreated {
        lease: Duration::from_secs(u64::MAX / 4),
    }))
    .expect("encodes");
    let fake_fail_over = encode_body(&Event::MasterFailover {
        epoch: Epoch(u64::MAX),
    })
    .expect("encodes");
    let forged = [
        forge(Kind::Reply, 1, &created, master_max),
        forge(Kind::Event, 1, &fake_fail_over, master_max),
        forge(Kind::Reply, 1, &created, server.master()),
    ];
    for dg in &forged {
        victim.handle_datagram(Time::default(), addr(1), dg);
    }
    assert_eq!(victim.counters().bad_tag, 3);
    assert_eq!(victim.epoch(), Epoch(1), "the forged epoch was not adopted");
    assert_eq!(victim.state(), State::Connecting, "no forged session grant");
    while let Some(o) = victim.poll_output() {
        assert!(matches!(o, Output::Transmit { .. }), "{o:?}");
    }
}

// Row 8 — v1 had no cell key: anyone who answered first was "the cell".
#[test]
fn a_handshake_answered_without_the_cell_key_is_refused() {
    let hs = ClientHandshake::new(user(), &secret(), cell_key(), [3; 32]);
    let init = hs.init_datagram().expect("init");
    let mut parsed = HandshakeInit::parse(&init, 1400).expect("parses");
    let impostor = CellPrivateKey::from_bytes([0x66; 32]);
    let impostor_id = impostor.public().key_id();
    let outcome = HandshakeOutcome::Accepted {
        session: SessionId(1),
        epoch: Epoch(1),
    };
    let me = ServerEnd::new(SessionId(1), 1).master();
    // With the secret but another cell key, the impostor cannot even read the init...
    parsed.key_id = impostor_id;
    let got = respond(
        &CellKeys::new(impostor, None),
        &parsed,
        &secret(),
        &outcome,
        me,
        [4; 32],
    );
    assert_eq!(got.map(|_| ()), Err(HandshakeError::BadNoise));
    // ...and a genuine reply to some other init does not fit this client's handshake.
    let other = ClientHandshake::new(user(), &secret(), cell_key(), [9; 32]);
    let other_init =
        HandshakeInit::parse(&other.init_datagram().expect("init"), 1400).expect("parses");
    let (reply, _) =
        respond(&cell_keys(), &other_init, &secret(), &outcome, me, [4; 32]).expect("answers");
    let (h, body) = parse_header(&reply, 1400).expect("parses");
    assert_eq!(
        hs.read_reply(&h, body).map(|_| ()),
        Err(HandshakeError::BadNoise)
    );
}

// Row 9 — v1 answered anything signed with the user's secret; without it, v2's init does
// not authenticate and gets no answer.
#[test]
fn an_init_without_the_secret_is_dropped_unanswered() {
    let mut responder = Responder::new(cell_keys(), [1; 32], ResponderLimits::default());
    let me = ServerEnd::new(SessionId(7), 1).master();
    let wrong = Secret::new(&[b'w'; 32]).expect("valid");
    let hs = ClientHandshake::new(user(), &wrong, cell_key(), [3; 32]);
    let init = hs.init_datagram().expect("init");
    let InitCheck::Fresh(parsed) = responder.check_init(Duration::ZERO, addr(9), &init, 1400, me)
    else {
        panic!("fresh");
    };
    let outcome = HandshakeOutcome::Accepted {
        session: SessionId(7),
        epoch: Epoch(1),
    };
    let got = responder.answer(Duration::ZERO, &parsed, &secret(), &outcome, me, [4; 32]);
    assert_eq!(got, Err(HandshakeError::BadNoise));
    assert_eq!(responder.counters().bad_inits, 1);
    assert_eq!(responder.pending_count(), 0);
}

// Row 10 — v1 logged a session for every NewSession; v2 asks for a cookie under load
// before any X25519 operation, and keeps the pending table bounded.
#[test]
fn under_a_flood_inits_without_a_cookie_cost_no_key_exchange() {
    let limits = ResponderLimits {
        cookie_threshold: 0,
        ..ResponderLimits::default()
    };
    let mut responder = Responder::new(cell_keys(), [1; 32], limits);
    let me = ServerEnd::new(SessionId(7), 1).master();
    let mut hs = ClientHandshake::new(user(), &secret(), cell_key(), [3; 32]);
    let init = hs.init_datagram().expect("init");
    let InitCheck::Answer(cookie_dg) =
        responder.check_init(Duration::ZERO, addr(9), &init, 1400, me)
    else {
        panic!("a cookie is demanded");
    };
    assert!(cookie_dg.len() < init.len());
    assert_eq!(responder.counters().cookies_sent, 1);
    assert_eq!(responder.counters().answered, 0, "no key exchange");
    let (h, body) = parse_header(&cookie_dg, 1400).expect("parses");
    hs.set_cookie(read_cookie(&h, body).expect("cookie"));
    let with_cookie = hs.init_datagram().expect("init");
    // From another source the cookie is worth nothing.
    assert!(matches!(
        responder.check_init(Duration::ZERO, addr(10), &with_cookie, 1400, me),
        InitCheck::Answer(_)
    ));
    // From the source it was made for, the init goes on to the real handshake.
    assert!(matches!(
        responder.check_init(Duration::ZERO, addr(9), &with_cookie, 1400, me),
        InitCheck::Fresh(_)
    ));
    // A rotation keeps the previous cookie valid, two do not.
    responder.rotate_cookie_secret([2; 32]);
    assert!(matches!(
        responder.check_init(Duration::ZERO, addr(9), &with_cookie, 1400, me),
        InitCheck::Fresh(_)
    ));
    responder.rotate_cookie_secret([3; 32]);
    assert!(matches!(
        responder.check_init(Duration::ZERO, addr(9), &with_cookie, 1400, me),
        InitCheck::Answer(_)
    ));
    assert_eq!(responder.counters().answered, 0);
}

#[test]
fn pending_handshakes_stay_bounded() {
    let limits = ResponderLimits {
        max_pending: 8,
        max_pending_per_user: 3,
        cookie_threshold: usize::MAX,
        ..ResponderLimits::default()
    };
    let mut responder = Responder::new(cell_keys(), [1; 32], limits);
    let me = ServerEnd::new(SessionId(7), 1).master();
    let users = ["alice", "bob", "carol", "dave"];
    for i in 0..40u8 {
        let u = UserName::new(users[usize::from(i) % 4]).expect("valid");
        let hs = ClientHandshake::new(u, &secret(), cell_key(), [i; 32]);
        let init = hs.init_datagram().expect("init");
        let InitCheck::Fresh(parsed) =
            responder.check_init(Duration::ZERO, addr(9), &init, 1400, me)
        else {
            panic!("fresh");
        };
        let outcome = HandshakeOutcome::Accepted {
            session: SessionId(100 + u64::from(i)),
            epoch: Epoch(1),
        };
        responder
            .answer(Duration::ZERO, &parsed, &secret(), &outcome, me, [i; 32])
            .expect("answers");
        assert!(responder.pending_count() <= 8);
        for u in users {
            assert!(responder.pending_for(&UserName::new(u).expect("valid")) <= 3);
        }
    }
    assert_eq!(responder.pending_count(), 8);
    assert_eq!(responder.counters().evicted, 32);
    responder.expire(Duration::from_secs(10));
    assert_eq!(responder.pending_count(), 0);
    assert_eq!(responder.counters().expired, 8);
}

// Row 11 — v1 gave any signed datagram reassembly memory under any session id it named.
#[tokio::test(start_paused = true)]
async fn fragments_for_made_up_sessions_cost_no_reassembly() {
    // Client side: fragments of another session (sealed with someone's real keys) are
    // dropped before reassembly.
    let (mut client, _) = handshaken(1);
    let mut stranger = ServerEnd::new(SessionId(0xbad), 1);
    stranger.keys = Some(support::test_keys());
    let body = vec![1u8; 5000];
    for dg in stranger.datagrams(Kind::Event, 1, &body).iter().skip(1) {
        client.handle_datagram(Time::default(), addr(1), dg);
    }
    assert_eq!(client.reassembly_bytes(), 0);
    assert!(client.counters().unknown_session >= 3);
    // Cell side: fragments for made-up session ids are dropped unopened.
    let cell = FakeCell::start(LEASE).await;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut n = 0;
    for (i, dg) in stranger.datagrams(Kind::Event, 2, &body).iter().enumerate() {
        let mut d = dg.clone();
        d[5] = Kind::Request as u8;
        d[6] = Role::Client as u8;
        d[8..16].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        assert!(exchange(&attacker, cell.addr, &d).await.is_empty());
        n += 1;
    }
    assert_eq!(cell.seen().dropped, n);
}

// Row 12 — v1: an ack from before a fail-over cleared the new master's events.
#[tokio::test(start_paused = true)]
async fn an_ack_from_a_lower_epoch_clears_nothing() {
    let cell = FakeCell::start(LEASE).await;
    let watcher = session(&cell).await;
    let mut events = watcher.events().expect("events");
    let _w = watcher
        .open_node_with_events("/w", RW, EventMask::CONTENTS_MODIFIED)
        .await
        .expect("open");
    let writer = session(&cell).await;
    let h = writer.open_node("/w", RW).await.expect("open");
    h.put(b"1").await.expect("put");
    assert!(events.next().await.is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The watcher's ack of event 1 in epoch 1, captured.
    let ack = cell
        .seen()
        .raw_in
        .iter()
        .rev()
        .find(|(_, d)| kind_of(d) == Some(Kind::Ack) && d[32] >= 1)
        .expect("an ack of event 1")
        .1
        .clone();
    // Fail-over: the new master's MasterFailover events cannot reach the clients.
    cell.faults(|f| {
        f.drop_events = true;
        f.epoch = Some(2);
    });
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = cell.seen().unacked;
    assert!(before >= 2, "MasterFailover pending for both sessions");
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    assert!(exchange(&attacker, cell.addr, &ack).await.is_empty());
    assert_eq!(cell.seen().unacked, before, "the old ack cleared nothing");
}

// Row 13 (client half) — a request given up keeps its seq; the next takes the next one,
// so the server's barrier rule can bar the given-up one.
#[test]
fn a_given_up_request_keeps_its_seq_and_the_next_takes_the_next() {
    let mut cfg = support::config(vec![addr(1)]);
    cfg.call_timeout = Duration::from_secs(3);
    let (mut s, mut server) = support::handshaken_with(cfg);
    let created = server.reply(1, &Response::Ok(Reply::SessionCreated { lease: LEASE }));
    for dg in &created {
        s.handle_datagram(Time::default(), addr(1), dg);
    }
    assert_eq!(s.state(), State::Active);
    let mut sent = vec![];
    let mut replies = vec![];
    let t0 = Time::default();
    let given_up = s
        .submit(t0, &Request::Delete { path: "/a".into() })
        .expect("queued");
    drain(&mut s, &mut sent, &mut replies);
    let t1 = t0.plus(Duration::from_secs(3));
    s.poll_timeout(t1);
    drain(&mut s, &mut sent, &mut replies);
    let next = s
        .submit(t1, &Request::Stat { path: "/a".into() })
        .expect("queued");
    drain(&mut s, &mut sent, &mut replies);
    let seqs: Vec<(Kind, u64)> = sent
        .iter()
        .filter_map(|d| server.receive(d))
        .map(|r| (r.header.kind, r.header.msg_seq))
        .filter(|(k, _)| *k == Kind::Request)
        .collect();
    assert!(seqs.iter().any(|(_, q)| *q == 2));
    assert_eq!(seqs.last(), Some(&(Kind::Request, 3)));
    assert!(replies.contains(&(given_up, Err(CallError::Timeout))));
    // A late reply to the given-up seq is a stray; the next call is still waiting.
    for dg in server.reply(2, &Response::Ok(Reply::Deleted)) {
        s.handle_datagram(t1, addr(1), &dg);
    }
    drain(&mut s, &mut sent, &mut replies);
    assert!(!replies.iter().any(|(c, _)| *c == next));
    assert_eq!(s.counters().stray_replies, 1);
}

type Replies = Vec<(cldc::core::CallId, Result<Reply, CallError>)>;

fn drain(s: &mut cldc::core::Session, sent: &mut Vec<Vec<u8>>, replies: &mut Replies) {
    while let Some(o) = s.poll_output() {
        match o {
            Output::Transmit { datagram, .. } => sent.push(datagram),
            Output::Reply { call, result } => replies.push((call, result)),
            Output::Event(_) => {}
        }
    }
}

// Row 17 — only a sealed answer for an ended session that echoes something outstanding
// ends a session; nothing unsealed or foreign does.
#[test]
fn an_unsealed_or_foreign_answer_cannot_end_a_live_session() {
    let (mut s, mut server) = handshaken(1);
    for dg in server.reply(1, &Response::Ok(Reply::SessionCreated { lease: LEASE })) {
        s.handle_datagram(Time::default(), addr(1), &dg);
    }
    let now = Time::default();
    s.submit(now, &Request::Status).expect("queued");
    while s.poll_output().is_some() {}
    let unknown = Response::Err(ErrorCode::UnknownSession);
    // A v1-style unsealed answer: a header with an HMAC-sized tail.
    let mut unsealed = server.ended(2, &unknown).remove(0);
    unsealed[4] = 1;
    s.handle_datagram(now, addr(1), &unsealed);
    // Sealed under another session's keys.
    let mut other = ServerEnd::new(server.session, 1);
    other.keys = Some(support::test_keys());
    for dg in other.ended(2, &unknown) {
        s.handle_datagram(now, addr(1), &dg);
    }
    // Sealed correctly but echoing nothing outstanding.
    for dg in server.ended(77, &unknown) {
        s.handle_datagram(now, addr(1), &dg);
    }
    // A handshake kind with garbage.
    let mut hs = server.ended(2, &unknown).remove(0);
    hs[5] = Kind::HandshakeReply as u8;
    s.handle_datagram(now, addr(1), &hs);
    assert_eq!(s.state(), State::Active);
    let c = s.counters();
    assert_eq!(
        (c.bad_version, c.bad_tag, c.stray_ended),
        (1, 1, 1),
        "{c:?}"
    );
    // The genuine answer for an ended session does end it (positive control).
    for dg in server.ended(2, &unknown) {
        s.handle_datagram(now, addr(1), &dg);
    }
    assert_eq!(s.state(), State::Expired);
}

// Row 18 — no (key, nonce) pair repeats across the parties sealing one session.
#[test]
fn no_key_and_nonce_pair_repeats_across_parties() {
    let keys = support::test_keys();
    let s = |role, epoch, member, boot| Sender {
        role,
        epoch: Epoch(epoch),
        member,
        boot,
    };
    let parties = [
        Sender::client(Epoch(1)),
        Sender::client(Epoch(2)),
        s(Role::Master, 1, 1, 1),
        s(Role::Master, 2, 2, 1),
        s(Role::Master, 3, 1, 1),
        s(Role::Master, 2, 1, 2),
        s(Role::Stateless, 1, 1, 1),
        s(Role::Stateless, 1, 2, 1),
        s(Role::Stateless, 2, 2, 2),
    ];
    // With an all-zero plaintext the ciphertext is the key stream of (key, nonce): equal
    // streams would mean a repeated pair.
    let zeros = vec![0u8; 64];
    let mut streams = std::collections::HashSet::new();
    for p in parties {
        let kind = if p.role == Role::Client {
            Kind::Request
        } else if p.role == Role::Stateless {
            Kind::NotMaster
        } else {
            Kind::Event
        };
        let meta = PacketMeta {
            kind,
            session: SessionId(9),
            msg_seq: 1,
            ack: EventSeq(0),
        };
        let mut seq = PacketSeq(1);
        for _ in 0..3 {
            let dg = encode_message(&meta, &zeros, 1400, &keys.sealing_key(&p), &mut seq)
                .expect("seals")
                .remove(0);
            let stream = dg[HEADER_LEN..HEADER_LEN + 64].to_vec();
            assert!(streams.insert(stream), "repeated (key, nonce) for {p:?}");
        }
    }
    assert_eq!(streams.len(), 27);
}
