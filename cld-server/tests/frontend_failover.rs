//! Fail-over as Chubby does it, in a 3-member in-process cell on real UDP: the master is
//! killed while a client holds a lock and another waits for it. The new master gives every
//! session a fresh lease and a MasterFailover event; the holder's session and lock survive,
//! the waiter is not granted, and the holder's next request succeeds.

mod fe_support;

use std::time::Duration;

use cldc::core::SessionEvent;
use cldc::proto::{Event, LockMode, OpenMode};
use fe_support::Cell;

const LOCKABLE: OpenMode =
    OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::LOCK.0 | OpenMode::CREATE.0);

#[test]
fn the_holder_keeps_its_lock_across_a_master_kill_and_the_waiter_keeps_waiting() {
    let mut cell = Cell::start("fefo", 3, "");
    let first = cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b, la, waiter, seq_a, mut a_events) = rt.block_on(async {
        let a = cell.session().await;
        let b = cell.session().await;
        let a_events = a.events().unwrap();
        let la = a.open_node("/l", LOCKABLE).await.unwrap();
        la.put(b"before").await.unwrap();
        let seq_a = la.lock(LockMode::Exclusive).await.unwrap();
        let lb = b.open_node("/l", LOCKABLE).await.unwrap();
        let waiter = tokio::spawn(async move {
            let s = lb.lock(LockMode::Exclusive).await;
            (lb, s)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        (a, b, la, waiter, seq_a, a_events)
    });
    let epoch_before = rt.block_on(a.status()).unwrap().epoch;
    cell.members[first].kill();
    let second = cell.wait_master(Duration::from_secs(10));
    assert_ne!(first, second);
    rt.block_on(async {
        // The holder's next request succeeds, under the new master.
        let written = tokio::time::timeout(Duration::from_secs(10), la.put(b"after"))
            .await
            .expect("the holder's request is served by the new master")
            .unwrap();
        assert!(written.content_generation.0 >= 2);
        assert_eq!(la.get().await.unwrap().data, b"after");
        // Its lock survived: the sequencer is still current, and it is still the holder.
        a.check_sequencer(&seq_a).await.unwrap();
        assert_eq!(la.sequencer().await.unwrap(), seq_a);
        // It was told of the fail-over.
        let failover = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match a_events.next().await {
                    Some(SessionEvent::Server(Event::MasterFailover { epoch })) => return epoch,
                    Some(_) => {}
                    None => panic!("events closed"),
                }
            }
        })
        .await
        .expect("MasterFailover within 10 s");
        assert!(failover > epoch_before);
        let status = a.status().await.unwrap();
        assert_eq!(status.epoch, failover);
        assert_eq!(status.sessions, 2, "both sessions survived");
        // The waiter was not granted across the fail-over...
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiter.is_finished(), "the waiter must not be granted");
        // ...and is granted once the holder unlocks.
        la.unlock().await.unwrap();
        let (_lb, granted) = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("granted after the unlock")
            .unwrap();
        assert!(granted.unwrap().lock_generation > seq_a.lock_generation);
        a.close().await.unwrap();
        b.close().await.unwrap();
    });
    assert!(cell.counter("sessions_expired") == 0);
}

/// A writer keeps writing while the master is killed and restarted, round after round (each
/// member in turn): every acknowledged write is kept, and the writer's session survives.
#[test]
fn acknowledged_writes_survive_repeated_master_kills() {
    let mut cell = Cell::start("fekill", 3, "");
    cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let session = rt.block_on(cell.session());
    let file = rt.block_on(session.open_node("/w", LOCKABLE)).unwrap();
    let (acked_tx, acked_rx) = std::sync::mpsc::channel::<u64>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                match file.put(n.to_string().as_bytes()).await {
                    Ok(_) => acked_tx.send(n).unwrap(),
                    Err(e) => panic!("write {n} failed: {e}"),
                }
            }
            file
        })
    };
    let mut last_acked = 0;
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        let master = cell.wait_master(Duration::from_secs(10));
        cell.members[master].kill();
        let next = cell.wait_master(Duration::from_secs(10));
        assert_ne!(master, next, "round {round}");
        // Writes resume under the new master.
        let before = acked_rx
            .try_iter()
            .last()
            .unwrap_or(last_acked)
            .max(last_acked);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(n) = acked_rx.try_iter().last() {
                last_acked = n;
                if n > before {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no write acknowledged after round {round}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        cell.restart(master);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let file = rt.block_on(writer).unwrap();
    last_acked = acked_rx
        .try_iter()
        .last()
        .unwrap_or(last_acked)
        .max(last_acked);
    let got = rt.block_on(file.get()).unwrap();
    let value: u64 = String::from_utf8(got.data).unwrap().parse().unwrap();
    assert_eq!(
        value, last_acked,
        "the last acknowledged write is the value"
    );
    // A new node has content generation 0; each write raises it by one.
    assert_eq!(
        got.meta.content_generation.0, last_acked,
        "each write ran exactly once"
    );
    rt.block_on(session.close()).unwrap();
}

/// A minority down: the cell serves. A majority down: calls fail with a timeout. Members
/// back: the same session's calls succeed again and nothing acknowledged was lost.
#[test]
fn a_majority_down_times_calls_out_and_the_cell_serves_again_when_it_returns() {
    let mut cell = Cell::start("femaj", 3, "");
    let master = cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = cldc::SessionOptions {
        call_timeout: Duration::from_secs(3),
        ..cell.options()
    };
    let s = rt.block_on(cell.session_with(options));
    let f = rt.block_on(s.open_node("/m", LOCKABLE)).unwrap();
    rt.block_on(f.put(b"one")).unwrap();
    // One follower down: still served.
    let followers: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    cell.members[followers[0]].kill();
    rt.block_on(f.put(b"two")).unwrap();
    // Both followers down: the master cannot commit; the call times out.
    cell.members[followers[1]].kill();
    let err = rt.block_on(f.put(b"three")).unwrap_err();
    assert!(matches!(err, cldc::Error::Timeout), "{err}");
    // They return: the session carries on, "two" (or the timed-out "three") is there.
    cell.restart(followers[0]);
    cell.restart(followers[1]);
    cell.wait_master(Duration::from_secs(15));
    let got = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(15), async {
                loop {
                    match f.get().await {
                        Ok(c) => return c,
                        Err(cldc::Error::Timeout) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .await
        })
        .expect("served again");
    assert!(got.data == b"two" || got.data == b"three", "{:?}", got.data);
    rt.block_on(f.put(b"four")).unwrap();
    assert_eq!(rt.block_on(f.get()).unwrap().data, b"four");
}

/// The holder dies together with the master: the new master gives its session a fresh
/// lease, expires it when no keepalive comes, and grants the lock to the waiter.
#[test]
fn a_holder_that_dies_with_the_master_expires_at_the_new_master_and_the_waiter_is_granted() {
    let mut cell = Cell::start(
        "fedual",
        3,
        "session_lease_ms = 1500\nexpiry_margin_ms = 300\n",
    );
    let first = cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, la, waiter, b) = rt.block_on(async {
        let a = cell.session().await;
        let b = cell.session().await;
        let la = a.open_node("/l", LOCKABLE).await.unwrap();
        la.lock(LockMode::Exclusive).await.unwrap();
        let lb = b.open_node("/l", LOCKABLE).await.unwrap();
        let waiter = tokio::spawn(async move {
            let s = lb.lock(LockMode::Exclusive).await;
            (lb, s)
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished());
        (a, la, waiter, b)
    });
    drop(la);
    drop(a);
    cell.members[first].kill();
    cell.wait_master(Duration::from_secs(10));
    let (_lb, granted) = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), waiter).await })
        .expect("the waiter is granted by the new master")
        .unwrap();
    granted.unwrap();
    let status = rt.block_on(b.status()).unwrap();
    assert_eq!(status.sessions, 1, "the dead holder's session expired");
    assert_eq!(cell.counter("sessions_expired"), 1);
}
