//! Real members on the in-memory store: a three-member in-process cell started with
//! `cld_server::start_on_kv` on a `MemKv` each (TCP peers and UDP clients on loopback, as in
//! `inproc.rs`), served to a cldc client; a member power-cut (`MemKv::crash`) and restarted on
//! what its store kept catches up; a member whose store is wiped (data dir kept) rejoins
//! without a vote, as a member whose sled directory was deleted does.

mod fe_support;

use std::time::{Duration, Instant};

use cldc::Session;
use cldc::proto::OpenMode;
use fe_support::Cell;
use libpaxos_db::KvStore as _;

const RW: OpenMode = OpenMode(OpenMode::READ.0 | OpenMode::WRITE.0 | OpenMode::CREATE.0);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn write(s: &Session, path: &str, data: &[u8]) {
    let h = s.open_node(path, RW).await.expect("open");
    h.put(data).await.expect("put");
    h.close().await.expect("close");
}

async fn read(s: &Session, path: &str) -> Vec<u8> {
    let h = s.open_node(path, RW).await.expect("open");
    let data = h.get().await.expect("get").data;
    h.close().await.expect("close");
    data
}

/// Member `i`'s applied index.
fn applied(cell: &Cell, rt: &tokio::runtime::Runtime, i: usize) -> u64 {
    rt.block_on(cell.members[i].handle.status())
        .expect("status")
        .applied
        .0
}

/// Waits until member `i` has applied at least what member `of` has.
fn wait_caught_up(cell: &Cell, rt: &tokio::runtime::Runtime, i: usize, of: usize) -> u64 {
    let target = applied(cell, rt, of);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let at = applied(cell, rt, i);
        if at >= target {
            return at;
        }
        assert!(
            Instant::now() < deadline,
            "member {} stuck at {at}, the master is at {target}",
            i + 1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_cell_on_memkv_serves_a_client_and_a_power_cut_member_restarts_on_its_store_and_catches_up() {
    let mut cell = Cell::start_on_memkv("memkv-cell", 3, "");
    let rt = runtime();
    let master = cell.wait_master(Duration::from_secs(10));
    let s = rt.block_on(cell.session());
    for i in 0..5 {
        rt.block_on(write(
            &s,
            &format!("/before-{i}"),
            format!("v{i}").as_bytes(),
        ));
    }
    for i in 0..5 {
        assert_eq!(
            rt.block_on(read(&s, &format!("/before-{i}"))),
            format!("v{i}").into_bytes()
        );
    }
    // Every member's database is its MemKv: the writes are there, synced.
    for (i, kv) in cell.stores.iter().enumerate() {
        assert!(kv.counters().syncs > 0, "member {} synced its store", i + 1);
    }
    let cut = (master + 1) % 3;
    let other = (master + 2) % 3;
    // Power cut of a follower keeping nothing unsynced; the cell writes on without it.
    cell.power_cut(cut, 0);
    for i in 0..5 {
        rt.block_on(write(
            &s,
            &format!("/during-{i}"),
            format!("d{i}").as_bytes(),
        ));
    }
    cell.start_member(cut);
    let caught_up = wait_caught_up(&cell, &rt, cut, master);
    assert!(caught_up > 0);
    assert_eq!(
        cell.members[cut].metrics.gauges.rejoining.get(),
        0,
        "a power cut keeps the synced promises: the member votes at once"
    );
    // Now the majority needs the restarted member: the master and it.
    cell.members[other].kill();
    rt.block_on(write(&s, "/after", b"a"));
    // And once the old master is gone and the third member back, the restarted member and
    // the third serve everything written before, during and after its absence.
    cell.start_member(other);
    wait_caught_up(&cell, &rt, other, cut);
    cell.members[master].kill();
    cell.wait_master(Duration::from_secs(10));
    let s = rt.block_on(cell.session());
    for i in 0..5 {
        assert_eq!(
            rt.block_on(read(&s, &format!("/before-{i}"))),
            format!("v{i}").into_bytes()
        );
        assert_eq!(
            rt.block_on(read(&s, &format!("/during-{i}"))),
            format!("d{i}").into_bytes()
        );
    }
    assert_eq!(rt.block_on(read(&s, "/after")), b"a");
}

#[test]
fn a_member_whose_memkv_is_wiped_rejoins_without_a_vote_and_catches_up() {
    let mut cell = Cell::start_on_memkv("memkv-wipe", 3, "");
    let rt = runtime();
    let master = cell.wait_master(Duration::from_secs(10));
    let s = rt.block_on(cell.session());
    for i in 0..5 {
        rt.block_on(write(&s, &format!("/w-{i}"), b"x"));
    }
    let wiped = (master + 1) % 3;
    assert_eq!(cell.members[wiped].metrics.gauges.rejoining.get(), 0);
    cell.wipe_store(wiped);
    assert_eq!(
        cell.members[wiped].metrics.gauges.rejoining.get(),
        1,
        "a voter whose store holds nothing lost its promises: it rejoins without a vote"
    );
    rt.block_on(write(&s, "/w-last", b"y"));
    wait_caught_up(&cell, &rt, wiped, master);
    assert!(
        cell.stores[wiped]
            .tree_names()
            .expect("tree names")
            .iter()
            .any(|t| t.starts_with("ns")),
        "the wiped member's store holds the namespace again"
    );
}
