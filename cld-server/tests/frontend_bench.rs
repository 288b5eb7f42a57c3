//! Rough figures for the front end (not a test: `#[ignore]`d, no assertions on time).
//! `cargo test -p cld-server --test frontend_bench -- --ignored --nocapture`
//! A 3-member in-process cell on loopback, fsync on, client and cell sharing the machine.

mod fe_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cldc::proto::OpenMode;
use fe_support::Cell;

const RW: OpenMode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);

#[test]
#[ignore]
fn figures() {
    let cell = Cell::start("febench", 3, "");
    cell.wait_master(Duration::from_secs(10));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = cell.session().await;
        let f = s.open_node("/lat", RW).await.unwrap();
        let data = vec![7u8; 256];
        let mut lat = Vec::new();
        for _ in 0..300 {
            let t = Instant::now();
            f.put(&data).await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "one session, 256 B put: median {:?}, p99 {:?}",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100]
        );
        // The per-user limit is 64 sessions, this one included.
        drop(f);
        let mut sessions = vec![Arc::new(s)];
        for _ in 0..63 {
            sessions.push(Arc::new(cell.session().await));
        }
        for (label, write) in [("durable 256 B puts/s", true), ("stat reads/s", false)] {
            let done = Arc::new(AtomicU64::new(0));
            let stop = Instant::now() + Duration::from_secs(5);
            let mut tasks = Vec::new();
            for (i, s) in sessions.iter().enumerate() {
                let s = s.clone();
                let done = done.clone();
                let data = data.clone();
                tasks.push(tokio::spawn(async move {
                    let f = s.open_node(&format!("/t{i}"), RW).await.unwrap();
                    while Instant::now() < stop {
                        if write {
                            f.put(&data).await.unwrap();
                        } else {
                            s.stat(&format!("/t{i}")).await.unwrap();
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            let start = Instant::now();
            for t in tasks {
                t.await.unwrap();
            }
            let n = done.load(Ordering::Relaxed);
            println!(
                "64 sessions, {label}: {:.0}",
                n as f64 / start.elapsed().as_secs_f64()
            );
        }
        for s in sessions {
            if let Ok(s) = Arc::try_unwrap(s) {
                s.close().await.unwrap();
            }
        }
    });
    let syncs: u64 = cell
        .members
        .iter()
        .map(|m| m.counter("requests_proposed"))
        .sum();
    println!("requests proposed: {syncs}");
    // Kill the master, time the first successful write after it (median of 5).
    let mut cell = cell;
    let s = rt.block_on(cell.session());
    let f = rt.block_on(s.open_node("/fo", RW)).unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        rt.block_on(f.put(b"x")).unwrap();
        let master = cell.wait_master(Duration::from_secs(10));
        let t = Instant::now();
        cell.members[master].kill();
        rt.block_on(f.put(b"y")).unwrap();
        times.push(t.elapsed());
        cell.restart(master);
        std::thread::sleep(Duration::from_millis(500));
    }
    times.sort();
    println!(
        "kill master -> first successful write: median {:?} of {times:?}",
        times[2]
    );
}
