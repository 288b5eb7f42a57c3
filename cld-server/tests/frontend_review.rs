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
