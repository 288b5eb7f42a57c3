//! The front-end core without sockets or a replica: every receiver check of
//! docs/protocol.md §15.2 that drops a datagram is counted and sends and proposes nothing;
//! handshakes, the barrier rule, Retry after a change of epoch, tombstone answers and
//! redirects behave as specified. A real namespace (sled, temporary) applies what the core
//! proposes, as the replica loop would.

mod fe_harness;

use std::time::Duration;

use cld_server::frontend::{CellView, FeRole};
use cldc::proto::{
    CellPrivateKey, ClientHandshake, Epoch, EventSeq, HandshakeOutcome, Kind, PacketMeta, Reply,
    Request, Response, Role, Secret, Sender, UserName, decode_body, encode_message, open_packet,
    parse_header,
};
use fe_harness::*;
use libpaxos_db::Command;

#[test]
fn malformed_datagrams_are_counted_and_answered_with_nothing() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let good = c.request(2, &Request::Stat { path: "/".into() });
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("too_short", b"CLD".to_vec()),
        ("bad_magic", vec![0xab; 100]),
        ("bad_version", {
            let mut d = good.clone();
            d[4] = 9;
            d
        }),
        ("too_short", good[..40].to_vec()),
        ("too_long", vec![0; 1500]),
        ("bad_header", {
            let mut d = good.clone();
            d[5] = 99;
            d
        }),
        ("wrong_direction", {
            let mut d = good.clone();
            d[5] = Kind::Reply as u8;
            d[6] = Role::Master as u8;
            d[7] = 0;
            d
        }),
        ("bad_tag", {
            let mut d = good.clone();
            let n = d.len();
            d[n - 1] ^= 1;
            d
        }),
        ("bad_tag", {
            let mut d = good.clone();
            d[70] ^= 0x10;
            d
        }),
        ("unknown_session", {
            let mut d = good.clone();
            d[8] ^= 0xff;
            d
        }),
        ("handshake_malformed", {
            let mut d = good.clone();
            d[5] = Kind::HandshakeInit as u8;
            d[7] = 0;
            d
        }),
    ];
    for (counter, dg) in cases {
        let before = h.counter(counter);
        h.feed(&dg);
        assert_eq!(h.counter(counter), before + 1, "{counter}");
        assert!(h.quiet(), "{counter}: nothing sent or proposed");
    }
    // Random bytes never panic, never answer.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in [0usize, 1, 5, 59, 60, 61, 76, 100, 164, 1400] {
        let mut d = vec![0u8; len];
        for b in &mut d {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        if len >= 5 {
            d[..5].copy_from_slice(b"CLDr\x02");
        }
        h.feed(&d);
        assert!(h.quiet(), "random {len} bytes");
    }
    // The good datagram still works afterwards.
    h.feed(&good);
    let (_, resp) = c.reply(&mut h);
    assert!(matches!(resp, Response::Ok(Reply::Stat { .. })));
}

#[test]
fn a_replayed_datagram_is_dropped_and_a_retransmission_gets_the_cached_reply() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let open = c.request(
        2,
        &Request::Open {
            path: "/f".into(),
            mode: cldc::proto::OpenMode(0x13),
            events: cldc::proto::EventMask::NONE,
        },
    );
    h.feed(&open);
    assert_eq!(h.proposed.len(), 1);
    h.commit_all();
    let (hd, first) = c.reply(&mut h);
    assert_eq!(hd.msg_seq, 2);
    // The same bytes again: the window refuses them.
    h.feed(&open);
    assert_eq!(h.counter("replayed"), 1);
    assert!(h.quiet());
    // A retransmission (new packet number, same seq): the cached reply, not a second open.
    let again = c.request(
        2,
        &Request::Open {
            path: "/f".into(),
            mode: cldc::proto::OpenMode(0x13),
            events: cldc::proto::EventMask::NONE,
        },
    );
    h.feed(&again);
    assert!(h.proposed.is_empty(), "executed once");
    let (_, second) = c.reply(&mut h);
    assert_eq!(first, second);
    // A keepalive is answered from memory, never logged.
    h.feed(&c.seal(Kind::KeepAlive, 1, &[]));
    assert!(h.proposed.is_empty());
    assert_eq!(h.sent.len(), 1);
    assert_eq!(c.open(&h.sent[0].1).0.kind, Kind::KeepAliveReply);
    assert_eq!(h.counter("keepalives_answered"), 1);
}

#[test]
fn a_gap_before_a_read_logs_one_barrier_and_then_answers() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    // Seqs 2 and 3 were given up by the client; 4 is a read.
    h.feed(&c.request(4, &Request::Stat { path: "/".into() }));
    assert!(h.sent.is_empty(), "not answered before the barrier commits");
    assert_eq!(h.proposed.len(), 1);
    match &h.proposed[0].1 {
        Command::Client(r) => {
            assert_eq!(r.op, libpaxos_db::ClientOp::Barrier);
            assert_eq!(r.seq.0, 3, "the barrier bars everything below the read");
        }
        other => panic!("expected a barrier, got {other:?}"),
    }
    assert_eq!(h.counter("barriers_logged"), 1);
    h.commit_all();
    let (hd, resp) = c.reply(&mut h);
    assert_eq!(hd.msg_seq, 4);
    assert!(matches!(resp, Response::Ok(Reply::Stat { .. })));
    // No gap: a read costs no log entry.
    h.feed(&c.request(5, &Request::Stat { path: "/".into() }));
    assert!(h.proposed.is_empty());
    let (hd, _) = c.reply(&mut h);
    assert_eq!(hd.msg_seq, 5);
    // A late copy of a barred write, and a stale copy of a lower seq, are dropped: nothing
    // executes, nothing is answered.
    h.feed(&c.request(3, &Request::Delete { path: "/x".into() }));
    assert!(h.quiet());
    assert_eq!(h.counter("stale_request"), 1);
    h.feed(&c.request(3, &Request::Stat { path: "/".into() }));
    assert!(h.quiet());
    assert_eq!(h.counter("stale_request"), 2);
    assert_eq!(h.counter("barriers_logged"), 1);
}

#[test]
fn a_datagram_replayed_to_a_new_master_gets_retry_and_acts_on_nothing() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let put_open = c.request(
        2,
        &Request::Open {
            path: "/g".into(),
            mode: cldc::proto::OpenMode(0x13),
            events: cldc::proto::EventMask::NONE,
        },
    );
    let keepalive = c.seal(Kind::KeepAlive, 1, &[]);
    // A new master (epoch 2) takes over before these arrive.
    h.become_master(2);
    h.sent.clear();
    h.feed(&put_open);
    assert!(h.proposed.is_empty(), "nothing executed");
    assert_eq!(h.sent.len(), 1);
    let (hd, body) = c.open(&h.sent[0].1);
    assert_eq!(
        (hd.kind, hd.sender.epoch.0, hd.msg_seq),
        (Kind::Retry, 2, 2)
    );
    assert!(body.is_empty());
    assert_eq!(h.counter("retries_sent"), 1);
    // Within 100 ms, another one gets nothing (rate limit), still nothing executed.
    h.sent.clear();
    h.feed(&keepalive);
    assert!(h.quiet());
    assert_eq!(h.counter("stale_epoch"), 2);
    // The client adopts epoch 2: its request runs, and MasterFailover is its first event.
    c.epoch = 2;
    h.feed(&c.request(
        2,
        &Request::Open {
            path: "/g".into(),
            mode: cldc::proto::OpenMode(0x13),
            events: cldc::proto::EventMask::NONE,
        },
    ));
    assert_eq!(h.proposed.len(), 1);
    let events: Vec<cldc::proto::Event> = h
        .sent
        .iter()
        .map(|(_, d)| c.open(d))
        .filter(|(hd, _)| hd.kind == Kind::Event)
        .map(|(hd, b)| {
            assert_eq!(hd.msg_seq, 1);
            decode_body(&b).unwrap()
        })
        .collect();
    assert_eq!(
        events,
        [cldc::proto::Event::MasterFailover { epoch: Epoch(2) }]
    );
}

#[test]
fn an_ended_session_is_answered_unknown_session_in_the_stateless_role_and_nothing_runs() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    h.feed(&c.request(2, &Request::EndSession));
    h.commit_all();
    let (_, resp) = c.reply(&mut h);
    assert_eq!(resp, Response::Ok(Reply::SessionEnded));
    h.feed(&c.request(3, &Request::Delete { path: "/x".into() }));
    assert!(
        h.proposed.is_empty(),
        "nothing executes for an ended session"
    );
    assert_eq!(h.sent.len(), 1);
    let (hd, body) = c.open(&h.sent[0].1);
    assert_eq!(
        (hd.kind, hd.sender.role, hd.msg_seq),
        (Kind::Reply, Role::Stateless, 3)
    );
    assert_eq!(
        decode_body::<Response>(&body).unwrap(),
        Response::Err(cldc::proto::ErrorCode::UnknownSession)
    );
    assert_eq!(h.counter("ended_session"), 1);
}

#[test]
fn a_non_master_redirects_with_a_hint_and_changes_nothing() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    h.follow(2);
    h.sent.clear();
    h.feed(&c.request(2, &Request::Stat { path: "/".into() }));
    assert!(h.proposed.is_empty());
    assert_eq!(h.sent.len(), 1);
    let (hd, body) = c.open(&h.sent[0].1);
    assert_eq!(
        (hd.kind, hd.sender.role),
        (Kind::NotMaster, Role::Stateless)
    );
    let nm: cldc::proto::NotMaster = decode_body(&body).unwrap();
    assert_eq!(nm.hint, Some("127.0.0.1:8002".parse().unwrap()));
    // At most one per session per 100 ms; acks are never answered.
    h.sent.clear();
    h.feed(&c.request(2, &Request::Stat { path: "/".into() }));
    h.feed(&c.seal(Kind::Ack, 0, &[]));
    assert!(h.quiet());
    assert_eq!(h.counter("not_master_sent"), 1);
    // A handshake at a non-master gets NotMaster, and nothing pending.
    let hs = ClientHandshake::new(
        UserName::new(USER).unwrap(),
        &Secret::new(SECRET).unwrap(),
        CellPrivateKey::from_bytes([0x42; 32]).public(),
        [9; 32],
    );
    h.feed(&hs.init_datagram().unwrap());
    let (_, reply) = h.sent.pop().unwrap();
    let (header, body) = parse_header(&reply, 1400).unwrap();
    let (outcome, _) = hs.read_reply(&header, body).unwrap();
    assert!(matches!(outcome, HandshakeOutcome::NotMaster { .. }));
    assert_eq!(h.fe.pending_handshakes(), 0);
}

#[test]
fn unknown_users_and_wrong_secrets_get_no_answer() {
    let mut h = Harness::new();
    let hs = ClientHandshake::new(
        UserName::new("mallory").unwrap(),
        &Secret::new(SECRET).unwrap(),
        CellPrivateKey::from_bytes([0x42; 32]).public(),
        [3; 32],
    );
    h.feed(&hs.init_datagram().unwrap());
    assert!(h.quiet());
    assert_eq!(h.counter("handshake_unknown_user"), 1);
    let hs = ClientHandshake::new(
        UserName::new(USER).unwrap(),
        &Secret::new(b"not-alices-secret-not-alices-secret!").unwrap(),
        CellPrivateKey::from_bytes([0x42; 32]).public(),
        [4; 32],
    );
    h.feed(&hs.init_datagram().unwrap());
    assert!(h.quiet());
    assert_eq!(h.counter("handshake_bad"), 1);
    assert_eq!(h.fe.pending_handshakes(), 0);
}

#[test]
fn a_user_at_the_session_limit_is_refused_counting_live_and_pending_sessions() {
    let mut h = Harness::with_limit(2);
    let _live = session(&mut h);
    // One pending (accepted, not yet proven) handshake reaches the limit of 2.
    let _pending = Client::handshake_with(&mut h, [11; 32]).expect("second accepted");
    match Client::handshake_with(&mut h, [12; 32]) {
        Err(HandshakeOutcome::Refused { code }) => {
            assert_eq!(code, cldc::proto::ErrorCode::TooManySessions)
        }
        other => panic!(
            "expected TooManySessions, got {:?}",
            other.map(|c| c.session)
        ),
    }
    assert_eq!(h.counter("sessions_per_user_refused"), 1);
    assert!(h.proposed.is_empty());
}

#[test]
fn a_silent_session_is_expired_after_lease_and_margin_and_its_tombstone_purged_later() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    // Within lease + margin (12 s + 1 s) of the last keepalive: nothing.
    h.tick(Duration::from_secs(13), 13_000);
    assert!(h.proposed.is_empty());
    // A keepalive at 10 s moves the deadline.
    h.now = Duration::from_secs(10);
    h.feed(&c.seal(Kind::KeepAlive, 1, &[]));
    h.sent.clear();
    h.tick(Duration::from_secs(22), 22_000);
    assert!(h.proposed.is_empty(), "renewed by the keepalive");
    // Lease + margin after it: ExpireSession, once.
    h.tick(Duration::from_secs(24), 24_000);
    assert_eq!(h.proposed.len(), 1);
    assert!(matches!(h.proposed[0].1, Command::ExpireSession { .. }));
    h.tick(Duration::from_secs(25), 25_000);
    assert_eq!(h.proposed.len(), 1, "not proposed twice while in flight");
    h.commit_at(25_000);
    assert_eq!(h.counter("sessions_expired"), 1);
    assert!(h.ns.session(libpaxos_db::SessionId(c.session.0)).is_none());
    // Its datagrams now get the tombstone answer.
    h.feed(&c.request(2, &Request::Stat { path: "/".into() }));
    assert_eq!(h.counter("ended_session"), 1);
    h.sent.clear();
    // 120 s after it ended, the tombstone is purged through the log; then silence.
    h.tick(Duration::from_secs(100), 100_000);
    assert!(h.proposed.is_empty());
    h.tick(Duration::from_secs(150), 150_000);
    assert_eq!(h.proposed.len(), 1);
    assert!(matches!(h.proposed[0].1, Command::PurgeTombstones { .. }));
    h.commit_at(150_000);
    h.feed(&c.request(3, &Request::Stat { path: "/".into() }));
    assert!(h.quiet());
    assert_eq!(h.counter("unknown_session"), 1);
}

#[test]
fn with_a_tick_every_20_ms_a_silent_session_is_expired_at_the_first_tick_past_its_deadline() {
    // The tick looks at every session only once a second; between those sweeps a session
    // whose lease (renewed by a keepalive) ran out must still be seen at once.
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let mut expired_at = None;
    for ms in (0..30_000u64).step_by(20) {
        if ms == 10_000 {
            h.now = Duration::from_millis(ms);
            h.feed(&c.seal(Kind::KeepAlive, 1, &[]));
            h.sent.clear();
        }
        h.tick(Duration::from_millis(ms), ms);
        if expired_at.is_none() && !h.proposed.is_empty() {
            expired_at = Some(ms);
        }
    }
    // Lease 12 s + margin 1 s after the keepalive at 10 s: due after 23 s.
    assert_eq!(expired_at, Some(23_020));
    assert_eq!(h.proposed.len(), 1, "proposed once while in flight");
    assert!(matches!(h.proposed[0].1, Command::ExpireSession { .. }));
}

#[test]
fn an_epoch_once_left_is_never_served_again_so_no_master_nonce_repeats() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    h.follow(2);
    // The same epoch again (as a confused driver might report): refused.
    let cell = CellView {
        ns: &h.ns,
        can_read: true,
        members: &[],
    };
    h.fe.on_role(
        h.now,
        FeRole {
            master: Some(1),
            epoch: 1,
            hint: Some(1),
        },
        &cell,
    );
    h.collect();
    h.sent.clear();
    h.feed(&c.request(2, &Request::Stat { path: "/".into() }));
    assert!(h.proposed.is_empty());
    let kinds: Vec<Kind> = h.sent.iter().map(|(_, d)| c.open(d).0.kind).collect();
    assert_eq!(kinds, [Kind::NotMaster], "answers as a non-master only");
}

#[test]
fn a_barred_request_is_never_answered_nor_run_even_at_a_new_master() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    h.feed(&c.request(4, &Request::Stat { path: "/".into() }));
    h.commit_all();
    let _ = c.reply(&mut h);
    h.become_master(2);
    c.epoch = 2;
    h.sent.clear();
    // The given-up request 3 arrives late at the new master, whose `answered` starts at
    // last_seq = 3 (the barrier): dropped, unanswered, not run.
    h.feed(&c.request(3, &Request::Delete { path: "/".into() }));
    assert!(h.proposed.is_empty());
    let replies = h
        .sent
        .iter()
        .filter(|(_, d)| c.open(d).0.kind == Kind::Reply)
        .count();
    assert_eq!(replies, 0, "a barred request is never answered");
    assert_eq!(h.counter("stale_request"), 1);
}

impl Client {
    fn ack(&mut self, ack: u64) -> Vec<u8> {
        let key = self.keys.sealing_key(&Sender::client(Epoch(self.epoch)));
        let meta = PacketMeta {
            kind: Kind::Ack,
            session: self.session,
            msg_seq: 0,
            ack: EventSeq(ack),
        };
        encode_message(&meta, &[], 1400, &key, &mut self.packet)
            .unwrap()
            .remove(0)
    }
}

fn events_to(h: &Harness, c: &Client) -> Vec<(u64, cldc::proto::Event)> {
    h.sent
        .iter()
        .filter_map(|(_, d)| open_packet(d, 1400, |hd| Some(c.keys.sealing_key(&hd.sender))).ok())
        .filter(|p| p.header.kind == Kind::Event && p.header.session == c.session)
        .map(|p| (p.header.msg_seq, decode_body(&p.payload).unwrap()))
        .collect()
}

#[test]
fn events_are_resent_until_acknowledged_and_a_lower_epochs_ack_clears_nothing() {
    let mut h = Harness::new();
    let mut watcher = session(&mut h);
    let mut writer = Client::handshake_with(&mut h, [21; 32]).unwrap();
    h.feed(&writer.request(1, &Request::NewSession));
    h.commit_all();
    h.sent.clear();
    let open = |mask: u32| Request::Open {
        path: "/w".into(),
        mode: cldc::proto::OpenMode(0x13),
        events: cldc::proto::EventMask(mask),
    };
    h.feed(&watcher.request(2, &open(1)));
    h.commit_all();
    h.feed(&writer.request(2, &open(0)));
    h.commit_all();
    h.sent.clear();
    h.feed(&writer.request(
        3,
        &Request::Put {
            handle: cldc::proto::HandleId(1),
            cas: None,
            data: b"x".to_vec(),
        },
    ));
    h.commit_all();
    let first = events_to(&h, &watcher);
    assert_eq!(first.len(), 1);
    assert!(matches!(
        first[0],
        (1, cldc::proto::Event::ContentsModified { .. })
    ));
    // Unacknowledged: re-sent after max_rto (2 s).
    h.sent.clear();
    h.tick(Duration::from_millis(2000), 6_000);
    assert!(events_to(&h, &watcher).is_empty());
    h.tick(Duration::from_millis(3100), 7_000);
    assert_eq!(events_to(&h, &watcher), first);
    // Acknowledged: never again.
    h.feed(&watcher.ack(1));
    h.sent.clear();
    h.tick(Duration::from_millis(6000), 10_000);
    h.tick(Duration::from_millis(9000), 13_000);
    assert!(events_to(&h, &watcher).is_empty());
    // A new master: MasterFailover is event 1 again; an ack sealed under the old epoch
    // (even a large one) clears nothing.
    h.become_master(2);
    h.feed(&watcher.ack(50));
    assert!(h.sent.is_empty(), "acks are never answered");
    watcher.epoch = 2;
    h.feed(&watcher.seal(Kind::KeepAlive, 1, &[]));
    let after = events_to(&h, &watcher);
    assert_eq!(
        after,
        [(1, cldc::proto::Event::MasterFailover { epoch: Epoch(2) })]
    );
}

#[test]
fn a_full_sweep_expires_silent_sessions_in_session_id_order() {
    // The order of the expiries must not depend on hashing (the whole-cell simulation
    // compares runs byte for byte): the sweep walks the live sessions in id order.
    let mut h = Harness::new();
    let mut ids = Vec::new();
    for i in 0..12u8 {
        let mut c = Client::handshake_with(&mut h, [40 + i; 32]).expect("accepted");
        h.feed(&c.request(1, &Request::NewSession));
        h.commit_all();
        let (_, resp) = c.reply(&mut h);
        assert!(
            matches!(resp, Response::Ok(Reply::SessionCreated { .. })),
            "{resp:?}"
        );
        h.sent.clear();
        ids.push(c.session.0);
    }
    // The first tick is a full sweep; every lease (12 s + 1 s margin from 1 s) has run out.
    h.tick(Duration::from_secs(20), 20_000);
    let expired: Vec<u64> = h
        .proposed
        .iter()
        .filter_map(|(_, c)| match c {
            Command::ExpireSession { session, .. } => Some(session.0),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(expired, ids);
}
