//! The findings of the hostile review of the front end (team REVIEW-FE), each as a test of the
//! sans-IO core with a real namespace: the behaviour the review expects.

mod fe_harness;

use std::time::Duration;

use cld_server::frontend::FeRole;
use cldc::proto::{Kind, Request};
use fe_harness::{Harness, session};
use libpaxos_db::{Command, SessionId, WallTime};

fn kinds(h: &mut Harness, c: &fe_harness::Client) -> Vec<Kind> {
    c.drain(h).into_iter().map(|(hd, _)| hd.kind).collect()
}

/// Finding 1: a keepalive that arrives while the session's expiry is proposed gets no lease.
#[test]
fn no_keepalive_is_answered_while_the_sessions_expiry_is_in_flight() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let id = SessionId(c.session.0);
    h.tick(Duration::from_secs(15), 15_000);
    assert!(
        h.proposed.iter().any(
            |(_, cmd)| matches!(cmd, Command::ExpireSession { session, .. } if *session == id)
        ),
        "{:?}",
        h.proposed
    );
    h.sent.clear();
    h.feed(&c.seal(Kind::KeepAlive, 1, &[]));
    assert!(
        !kinds(&mut h, &c).contains(&Kind::KeepAliveReply),
        "a lease granted to a session being expired"
    );
    h.commit_at(15_000);
    assert!(h.ns.session(id).is_none());
    assert_eq!(h.counter("sessions_expired"), 1);
}

/// Finding 1, variant B: an expiry from the previous term applied at a new master that
/// still holds the session: the next keepalive is not answered with a lease.
#[test]
fn no_keepalive_is_answered_for_a_session_the_namespace_no_longer_has() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let id = SessionId(c.session.0);
    h.follow(2);
    h.role(FeRole {
        master: Some(3),
        epoch: 3,
        hint: Some(1),
    });
    h.epoch = 2;
    h.apply_reported(
        None,
        &Command::ExpireSession {
            session: id,
            time: WallTime(5_000),
        },
        5_000,
    );
    assert!(h.ns.session(id).is_none());
    h.sent.clear();
    c.epoch = 3;
    h.feed(&c.seal(Kind::KeepAlive, 1, &[]));
    assert!(
        !kinds(&mut h, &c).contains(&Kind::KeepAliveReply),
        "a lease granted to an ended session"
    );
    // Nor is a request served for it.
    h.feed(&c.request(2, &Request::Stat { path: "/".into() }));
    assert!(h.proposed.is_empty());
    assert!(!kinds(&mut h, &c).contains(&Kind::Reply) || h.ns.session(id).is_none());
}

/// Finding 2: a session created by the old term's tail, applied after this member became
/// master, is held with a fresh lease: it expires after lease + margin like any other.
#[test]
fn a_session_applied_after_take_over_is_held_and_expires() {
    let mut h = Harness::new();
    let c = session(&mut h);
    h.follow(2);
    h.role(FeRole {
        master: Some(3),
        epoch: 3,
        hint: Some(1),
    });
    let taken_over = h.now;
    h.epoch = 2;
    let s77 = SessionId(77);
    let create = Command::Client(libpaxos_db::ClientRequest {
        session: s77,
        seq: libpaxos_db::RequestSeq(1),
        time: WallTime(1),
        op: libpaxos_db::ClientOp::NewSession {
            user: fe_harness::USER.into(),
            lease: Duration::from_secs(12),
            keys: postcard::to_allocvec(&c.keys).unwrap(),
        },
    });
    h.apply_reported(None, &create, 5_000);
    assert!(h.ns.session(s77).is_some());
    h.epoch = 3;
    h.apply(libpaxos::Payload::Noop);
    // Well within lease + margin: not expired.
    h.tick(taken_over + Duration::from_secs(5), 10_000);
    assert!(h.proposed.is_empty(), "{:?}", h.proposed);
    let mut t = taken_over + Duration::from_secs(5);
    let mut expired = false;
    while t < taken_over + Duration::from_secs(20) && !expired {
        t += Duration::from_millis(20);
        h.tick(t, 10_000);
        expired = h.proposed.iter().any(
            |(_, cmd)| matches!(cmd, Command::ExpireSession { session, .. } if *session == s77),
        );
    }
    assert!(
        expired,
        "the session from the old term's tail never expires"
    );
}

fn open_write(c: &mut fe_harness::Client, h: &mut Harness, seq: u64, path: &str) -> u64 {
    h.feed(&c.request(
        seq,
        &Request::Open {
            path: path.into(),
            mode: cldc::proto::OpenMode(
                cldc::proto::OpenMode::READ.0
                    | cldc::proto::OpenMode::WRITE.0
                    | cldc::proto::OpenMode::LOCK.0
                    | cldc::proto::OpenMode::CREATE.0,
            ),
            events: cldc::proto::EventMask::NONE,
        },
    ));
    h.commit_all();
    match c.reply(h).1 {
        cldc::proto::Response::Ok(cldc::proto::Reply::Opened { handle, .. }) => handle.0,
        other => panic!("open: {other:?}"),
    }
}

/// Finding 3: an older-term proposal that applies as StaleEpoch is neither answered nor
/// cached while the client's re-sent copy of the same seq can still execute.
#[test]
fn a_stale_epoch_result_of_an_earlier_reign_is_never_answered_nor_cached() {
    use cldc::proto::{Reply, Response};
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let handle = open_write(&mut c, &mut h, 2, "/f");
    let put = Request::Put {
        handle: cldc::proto::HandleId(handle),
        cas: None,
        data: b"v".to_vec(),
    };
    h.feed(&c.request(3, &put));
    assert_eq!(h.proposed.len(), 1);
    let (t1, cmd1) = h.proposed.remove(0);
    // E2 takes office elsewhere; this member becomes master of E3 before slot 11 applies.
    h.follow(2);
    h.epoch = 2;
    h.apply(libpaxos::Payload::Noop);
    h.role(FeRole {
        master: Some(3),
        epoch: 3,
        hint: Some(1),
    });
    c.epoch = 3;
    h.sent.clear();
    h.feed(&c.request(3, &put));
    assert_eq!(h.proposed.len(), 1, "the retransmission is proposed again");
    let (t2, cmd2) = h.proposed.remove(0);
    h.sent.clear();
    // The E1 copy applies: StaleEpoch.
    h.epoch = 1;
    let a = h.apply_reported(Some(t1), &cmd1, 5_000);
    assert!(matches!(
        a.reply,
        Err(libpaxos_db::CmdError::StaleEpoch { .. })
    ));
    let replies: Vec<Response> = c
        .drain(&mut h)
        .into_iter()
        .filter(|(hd, _)| hd.kind == Kind::Reply)
        .map(|(_, b)| cldc::proto::decode_body(&b).unwrap())
        .collect();
    assert!(replies.is_empty(), "answered {replies:?}");
    // E3's no-op, then the re-sent copy executes and is answered Written.
    h.epoch = 3;
    h.apply(libpaxos::Payload::Noop);
    h.apply_reported(Some(t2), &cmd2, 5_000);
    let (hd, resp) = c.reply(&mut h);
    assert_eq!(hd.msg_seq, 3);
    assert!(
        matches!(resp, Response::Ok(Reply::Written { .. })),
        "{resp:?}"
    );
    // A further retransmission gets the same outcome from memory.
    h.feed(&c.request(3, &put));
    assert!(h.proposed.is_empty());
    let (_, resp) = c.reply(&mut h);
    assert!(
        matches!(resp, Response::Ok(Reply::Written { .. })),
        "{resp:?}"
    );
}

fn event_seqs(c: &fe_harness::Client, h: &mut Harness) -> Vec<(u64, cldc::proto::Event)> {
    c.drain(h)
        .into_iter()
        .filter(|(hd, _)| hd.kind == Kind::Event)
        .map(|(hd, b)| (hd.msg_seq, cldc::proto::decode_body(&b).unwrap()))
        .collect()
}

/// Finding 4: a full event queue stops queueing (no gap in the seqs the client waits for);
/// once there is room one MasterFailover ("events were lost, re-read") takes the next seq.
#[test]
fn event_overflow_leaves_no_gap_and_is_signalled_once_there_is_room() {
    use cldc::proto::{Event, EventMask, OpenMode};
    let mut h = Harness::new();
    let mut a = session(&mut h);
    let mut b = fe_harness::Client::handshake_with(&mut h, [9; 32]).unwrap();
    h.feed(&b.request(1, &Request::NewSession));
    h.commit_all();
    h.sent.clear();
    h.feed(&a.request(
        2,
        &Request::Open {
            path: "/d".into(),
            mode: OpenMode(OpenMode::READ.0 | OpenMode::CREATE.0 | OpenMode::DIRECTORY.0),
            events: EventMask::CHILD_ADDED,
        },
    ));
    h.commit_all();
    h.sent.clear();
    let total = cld_server::frontend::MAX_UNACKED_EVENTS as u64 + 76;
    let mut seq = 2;
    for i in 0..total {
        h.feed(&b.request(
            seq,
            &Request::Open {
                path: format!("/d/c{i}"),
                mode: OpenMode(OpenMode::READ.0 | OpenMode::CREATE.0),
                events: EventMask::NONE,
            },
        ));
        h.commit_all();
        h.sent
            .retain(|(_, dg)| cldc::proto::parse_header(dg, 1400).unwrap().0.session == b.session);
        let handle = match b.reply(&mut h).1 {
            cldc::proto::Response::Ok(cldc::proto::Reply::Opened { handle, .. }) => handle,
            other => panic!("open {i}: {other:?}"),
        };
        h.feed(&b.request(seq + 1, &Request::Close { handle }));
        h.commit_all();
        h.sent.clear();
        seq += 2;
    }
    h.sent.clear();
    // a never acked: a keepalive with ack 0 gets the held events re-sent, from seq 1 on.
    h.feed(&a.seal_ack(Kind::KeepAlive, 1, 0, &[]));
    let got = event_seqs(&a, &mut h);
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    let max = cld_server::frontend::MAX_UNACKED_EVENTS as u64;
    assert!(
        seqs == (1..=max).collect::<Vec<u64>>(),
        "a gap: {} events from {:?} to {:?}",
        seqs.len(),
        seqs.first(),
        seqs.last()
    );
    assert_eq!(h.counter("events_dropped"), 76);
    // Once a acknowledges them, the loss is signalled with the next seq.
    h.feed(&a.seal_ack(Kind::Ack, 2, max, &[]));
    let got = event_seqs(&a, &mut h);
    assert_eq!(
        got,
        [(
            max + 1,
            Event::MasterFailover {
                epoch: cldc::proto::Epoch(1)
            }
        )]
    );
    assert_eq!(h.counter("events_lost"), 1);
}

fn locker() -> cldc::proto::OpenMode {
    use cldc::proto::OpenMode;
    OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::LOCK.0 | OpenMode::CREATE.0)
}

fn new_client(h: &mut Harness, ephemeral: u8) -> fe_harness::Client {
    let mut c = fe_harness::Client::handshake_with(h, [ephemeral; 32]).unwrap();
    h.feed(&c.request(1, &Request::NewSession));
    h.commit_all();
    h.sent.clear();
    c
}

fn call(
    h: &mut Harness,
    c: &mut fe_harness::Client,
    seq: u64,
    req: &Request,
) -> cldc::proto::Response {
    h.feed(&c.request(seq, req));
    h.commit_all();
    h.sent
        .retain(|(_, dg)| cldc::proto::parse_header(dg, 1400).unwrap().0.session == c.session);
    c.reply(h).1
}

fn opened(r: cldc::proto::Response) -> cldc::proto::HandleId {
    match r {
        cldc::proto::Response::Ok(cldc::proto::Reply::Opened { handle, .. }) => handle,
        other => panic!("open: {other:?}"),
    }
}

/// Finding 5: a new master restarts every running lock-delay from its takeover on its own
/// wall clock (RestartLockDelays first), and proposes no lock request before it applied.
#[test]
fn a_new_master_restarts_lock_delays_on_its_own_clock_before_any_lock_request() {
    use cldc::proto::{EventMask, LockMode};
    let mut h = Harness::new();
    let mut a = session(&mut h);
    let mut b = new_client(&mut h, 9);
    let mut c = new_client(&mut h, 11);
    let ha = opened(call(
        &mut h,
        &mut a,
        2,
        &Request::OpenWith {
            path: "/l".into(),
            mode: locker(),
            events: EventMask::NONE,
            lock_delay: Duration::from_secs(30),
        },
    ));
    let lock = |handle, wait| Request::Lock {
        handle,
        mode: LockMode::Exclusive,
        wait,
    };
    let r = call(&mut h, &mut a, 3, &lock(ha, false));
    assert!(matches!(r, cldc::proto::Response::Ok(_)), "{r:?}");
    let open_l = Request::Open {
        path: "/l".into(),
        mode: locker(),
        events: EventMask::NONE,
    };
    let hb = opened(call(&mut h, &mut b, 2, &open_l));
    let hc = opened(call(&mut h, &mut c, 2, &open_l));
    h.feed(&b.request(3, &lock(hb, true)));
    h.commit_all();
    h.sent.clear();
    // The old master expires a at its wall 5 s: blocked until 35 s on its clock.
    h.apply_reported(
        None,
        &Command::ExpireSession {
            session: SessionId(a.session.0),
            time: WallTime(5_000),
        },
        5_000,
    );
    h.follow(2);
    h.become_master(2);
    h.proposed.clear();
    // The new master's wall clock reads 100 s.
    let t0 = h.now;
    h.tick(t0 + Duration::from_millis(20), 100_000);
    let cmds: Vec<&Command> = h.proposed.iter().map(|(_, c)| c).collect();
    assert!(
        !cmds
            .iter()
            .any(|c| matches!(c, Command::EndLockDelays { .. })),
        "the delay ended by another master's clock: {cmds:?}"
    );
    assert!(
        matches!(cmds.as_slice(), [Command::RestartLockDelays { time }] if time.0 == 100_000),
        "{cmds:?}"
    );
    // A lock request before the restart applied is not proposed.
    c.epoch = 2;
    h.sent.clear();
    h.feed(&c.request(3, &lock(hc, false)));
    assert_eq!(h.proposed.len(), 1, "only the restart: {:?}", h.proposed);
    h.commit_at(100_000);
    h.sent.clear();
    // Now blocked until 130 s on this master's clock.
    h.tick(t0 + Duration::from_millis(40), 129_000);
    assert!(
        !h.proposed
            .iter()
            .any(|(_, c)| matches!(c, Command::EndLockDelays { .. })),
        "{:?}",
        h.proposed
    );
    h.proposed.clear();
    h.feed(&c.request(3, &lock(hc, false)));
    assert_eq!(h.proposed.len(), 1, "the lock request now goes to the log");
    h.proposed.clear();
    h.tick(t0 + Duration::from_millis(60), 130_000);
    assert!(
        h.proposed
            .iter()
            .any(|(_, c)| matches!(c, Command::EndLockDelays { .. })),
        "{:?}",
        h.proposed
    );
}

/// Finding 7: a later copy of a barred seq is dropped, never answered.
#[test]
fn a_later_copy_of_a_barred_seq_is_dropped() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    h.feed(&c.request(3, &Request::Stat { path: "/".into() }));
    assert_eq!(h.proposed.len(), 1, "a barrier");
    h.can_read = false;
    h.commit_all();
    h.sent.clear();
    h.can_read = true;
    let stale = h.counter("stale_request");
    h.feed(&c.request(2, &Request::Delete { path: "/x".into() }));
    assert!(h.quiet(), "answered: {:?}", kinds(&mut h, &c));
    assert_eq!(h.counter("stale_request"), stale + 1);
}

/// Finding 8: an undecodable request goes through the seq checks: after a gap, a barrier is
/// logged before it is answered BadPacket.
#[test]
fn an_undecodable_request_after_a_gap_logs_a_barrier_first() {
    let mut h = Harness::new();
    let mut c = session(&mut h);
    h.feed(&c.seal(Kind::Request, 4, &[0xff]));
    assert!(h.sent.is_empty(), "answered before the barrier");
    assert_eq!(h.proposed.len(), 1);
    match &h.proposed[0].1 {
        Command::Client(r) => {
            assert_eq!(r.op, libpaxos_db::ClientOp::Barrier);
            assert_eq!(r.seq.0, 3);
        }
        other => panic!("{other:?}"),
    }
    h.commit_all();
    let (hd, resp) = c.reply(&mut h);
    assert_eq!(hd.msg_seq, 4);
    assert_eq!(
        resp,
        cldc::proto::Response::Err(cldc::proto::ErrorCode::BadPacket)
    );
    // Its copy gets the same answer; a stale copy of a lower seq nothing.
    h.feed(&c.seal(Kind::Request, 4, &[0xff]));
    assert_eq!(
        c.reply(&mut h).1,
        cldc::proto::Response::Err(cldc::proto::ErrorCode::BadPacket)
    );
    h.feed(&c.seal(Kind::Request, 2, &[0xff]));
    assert!(h.quiet());
}

/// Finding 11: an oversized reply is answered TooLarge, and so is its retransmission.
#[test]
fn a_retransmission_of_an_oversized_reply_is_answered_too_large_again() {
    use cldc::proto::{ErrorCode, EventMask, OpenMode, Response};
    let mut h = Harness::new();
    let mut c = session(&mut h);
    let mut seq = 2;
    let long = "n".repeat(200);
    for i in 0..1400 {
        let r = call(
            &mut h,
            &mut c,
            seq,
            &Request::Open {
                path: format!("/{long}{i}"),
                mode: OpenMode(OpenMode::READ.0 | OpenMode::CREATE.0),
                events: EventMask::NONE,
            },
        );
        let handle = opened(r);
        call(&mut h, &mut c, seq + 1, &Request::Close { handle });
        seq += 2;
    }
    let list = Request::ListDir { path: "/".into() };
    h.feed(&c.request(seq, &list));
    assert_eq!(c.reply(&mut h).1, Response::Err(ErrorCode::TooLarge));
    h.feed(&c.request(seq, &list));
    assert_eq!(c.reply(&mut h).1, Response::Err(ErrorCode::TooLarge));
}

/// Finding 9: unacknowledged events are re-sent at least every max_rto (2 s) even while new
/// events keep coming more often.
#[test]
fn new_events_do_not_postpone_the_resend_of_unacknowledged_ones() {
    use cldc::proto::{EventMask, OpenMode};
    let mut h = Harness::new();
    let mut a = session(&mut h);
    let mut b = new_client(&mut h, 9);
    opened(call(
        &mut h,
        &mut a,
        2,
        &Request::Open {
            path: "/d".into(),
            mode: OpenMode(OpenMode::READ.0 | OpenMode::CREATE.0 | OpenMode::DIRECTORY.0),
            events: EventMask::CHILD_ADDED,
        },
    ));
    h.sent.clear();
    let start = h.now;
    let mut seq = 2;
    let mut first_event_sends = 0;
    let mut next_write = start;
    let mut t = start;
    while t < start + Duration::from_secs(10) {
        if t >= next_write {
            next_write += Duration::from_secs(1);
            h.feed(&b.request(
                seq,
                &Request::Open {
                    path: format!("/d/c{seq}"),
                    mode: OpenMode(OpenMode::READ.0 | OpenMode::CREATE.0),
                    events: EventMask::NONE,
                },
            ));
            h.commit_all();
            seq += 1;
        }
        h.tick(t, 5_000);
        for (_, dg) in std::mem::take(&mut h.sent) {
            let hd = cldc::proto::parse_header(&dg, 1400).unwrap().0;
            if hd.session == a.session && hd.kind == Kind::Event && hd.msg_seq == 1 {
                first_event_sends += 1;
            }
        }
        t += Duration::from_millis(20);
    }
    assert!(
        first_event_sends >= 4,
        "event 1 sent {first_event_sends} times in 10 s"
    );
}

/// Finding 10: a datagram sealed under an older epoch for a session this master holds no
/// state for. Its only keys are a handshake this member accepted in an earlier reign of its
/// own (the client's `NewSession` left before the re-election): the entry is used once, so
/// it is no replay, and the session is born in the current epoch (docs/protocol.md 15.2
/// step 8). It was dropped (counted as `bad_body`), stalling the client's open until the
/// pending entry expired.
#[test]
fn a_new_session_proven_under_an_earlier_reigns_handshake_is_born_in_the_current_epoch() {
    use cldc::proto::{Epoch, Reply, Response, Role};
    let mut h = Harness::new();
    let mut c = fe_harness::Client::handshake(&mut h);
    assert_eq!(c.epoch, 1);
    h.follow(2);
    h.become_master(3);
    h.sent.clear();
    h.feed(&c.request(1, &Request::NewSession));
    assert_eq!(h.proposed.len(), 1, "the session is logged once proven");
    h.commit_all();
    let (hd, resp) = c.reply(&mut h);
    assert_eq!((hd.sender.role, hd.sender.epoch), (Role::Master, Epoch(3)));
    assert!(
        matches!(resp, Response::Ok(Reply::SessionCreated { .. })),
        "{resp:?}"
    );
    // The client adopts epoch 3 from the reply and is served under it.
    c.epoch = 3;
    h.feed(&c.request(2, &Request::Stat { path: "/".into() }));
    assert!(matches!(
        c.reply(&mut h).1,
        Response::Ok(Reply::Stat { .. })
    ));
}

/// Finding 10, the other cases: with no keys at all (the pending entry expired) the master
/// stays silent and counts `unknown_session`; for a session it holds the record of, an
/// older-epoch request gets `Retry` in the master role and is not executed.
#[test]
fn an_older_epoch_datagram_is_answered_retry_with_a_record_and_nothing_without_keys() {
    let mut h = Harness::new();
    let mut gone = fe_harness::Client::handshake_with(&mut h, [9; 32]).expect("accepted");
    let mut c = session(&mut h);
    h.tick(h.now + Duration::from_secs(11), 5_000);
    h.follow(2);
    h.become_master(3);
    h.sent.clear();
    h.proposed.clear();
    let unknown = h.counter("unknown_session");
    h.feed(&gone.request(1, &Request::NewSession));
    assert!(h.quiet(), "answered a session without keys");
    assert_eq!(h.counter("unknown_session"), unknown + 1);
    h.feed(&c.request(2, &Request::Delete { path: "/x".into() }));
    assert!(h.proposed.is_empty(), "an older-epoch request executed");
    let answers: Vec<_> = c.drain(&mut h);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0.kind, Kind::Retry);
    assert_eq!(answers[0].0.sender.epoch.0, 3);
}
