//! Session expiry at the master: a client that stops its keepalives (its process dies: the
//! session is dropped without EndSession) loses its lock and its ephemeral node after the
//! lease plus the expiry margin; the waiter is granted the lock with a LockAcquired event.

mod fe_support;

use std::time::{Duration, Instant};

use cldc::Error;
use cldc::proto::{LockMode, OpenMode};
use fe_support::Cell;

const LOCKABLE: OpenMode =
    OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::LOCK.0 | OpenMode::CREATE.0);

#[test]
fn a_silent_session_expires_its_lock_goes_to_the_waiter_and_its_ephemeral_node_goes() {
    let cell = Cell::start(
        "feexp",
        1,
        "session_lease_ms = 1500\nexpiry_margin_ms = 300\n",
    );
    cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = cell.session().await;
        let b = cell.session().await;
        let la = a.open_node("/l", LOCKABLE).await.unwrap();
        la.lock(LockMode::Exclusive).await.unwrap();
        a.open_node("/a-eph", OpenMode(LOCKABLE.0 | OpenMode::EPHEMERAL.0))
            .await
            .unwrap();
        let lb = b.open_node("/l", LOCKABLE).await.unwrap();
        let waiter = tokio::spawn(async move {
            let s = lb.lock(LockMode::Exclusive).await;
            (lb, s)
        });
        // While a keeps its session alive (several leases), b waits.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert!(!waiter.is_finished(), "granted while the holder is alive");
        b.stat("/a-eph").await.unwrap();
        // a's process dies: no EndSession, no more keepalives.
        let died = Instant::now();
        drop(la);
        drop(a);
        let (_lb, granted) = tokio::time::timeout(Duration::from_secs(15), waiter)
            .await
            .expect("the waiter is granted once the holder expires")
            .unwrap();
        granted.unwrap();
        let waited = died.elapsed();
        // Not before lease + margin counted from the last keepalive (at most lease/3 before
        // the drop): 1.5 + 0.3 - 0.5 s.
        assert!(
            waited >= Duration::from_millis(1300),
            "expired after {waited:?}"
        );
        assert!(matches!(b.stat("/a-eph").await, Err(Error::NoSuchNode)));
        let status = b.status().await.unwrap();
        assert_eq!(status.sessions, 1);
        b.close().await.unwrap();
    });
    assert_eq!(cell.counter("sessions_expired"), 1);
}

#[test]
fn an_expired_holders_lock_is_withheld_for_the_nodes_lock_delay() {
    let cell = Cell::start(
        "fedelay",
        1,
        "session_lease_ms = 1500\nexpiry_margin_ms = 300\n",
    );
    cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let a = cell.session().await;
        let b = cell.session().await;
        let delay = Duration::from_millis(2500);
        let la = a
            .open_node_with_lock_delay("/d", LOCKABLE, cldc::proto::EventMask::NONE, delay)
            .await
            .unwrap();
        la.lock(LockMode::Exclusive).await.unwrap();
        let lb = b.open_node("/d", LOCKABLE).await.unwrap();
        let waiter = tokio::spawn(async move {
            let s = lb.lock(LockMode::Exclusive).await;
            (lb, s)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        let died = Instant::now();
        drop(la);
        drop(a);
        let (_lb, granted) = tokio::time::timeout(Duration::from_secs(20), waiter)
            .await
            .expect("the waiter is granted after the lock-delay")
            .unwrap();
        granted.unwrap();
        let waited = died.elapsed();
        // Expiry comes after at least lease + margin - lease/3 (1.3 s); the delay then
        // withholds the lock for 2.5 s more.
        assert!(
            waited >= Duration::from_millis(3800),
            "granted after {waited:?}"
        );
        // A delay above 60 s is refused.
        assert!(
            b.open_node_with_lock_delay(
                "/e",
                LOCKABLE,
                cldc::proto::EventMask::NONE,
                Duration::from_secs(61)
            )
            .await
            .is_err()
        );
        b.close().await.unwrap();
    });
    assert_eq!(cell.counter("sessions_expired"), 1);
}
