//! A lagging member installs a large snapshot on a blocking thread: its replica loop keeps
//! answering heartbeats meanwhile, so a master whose lease depends on that member's acks
//! keeps its lease and its office through the install.

mod common;

use std::time::{Duration, Instant};

use cld_server::config::{CellConfig, TimingOverrides};
use common::inproc_cell::{Member, free_port, request, start, wait_master};
use common::{SECRET, TempDir, write_file};
use libpaxos_db::{ClientOp, Command, EventMask, OpenMode, Response};

/// Files written while the lagging member is down, and their size: about 24 MiB of
/// namespace, so installing it takes far longer than the 200 ms lease.
const FILES: u64 = 200;
const FILE_SIZE: usize = 120 * 1024;
/// Concurrent writers, one session each.
const WRITERS: u64 = 16;

#[test]
fn a_member_installing_a_large_snapshot_keeps_acking_so_the_master_keeps_its_lease() {
    let tmp = TempDir::new("install");
    let mut text = format!(
        "[cell]\nname = \"install\"\nsecret = \"{SECRET}\"\n[timing]\npaxos_lease_ms = 200\nsnapshot_every = 100\n"
    );
    for id in 1..=3 {
        text.push_str(&format!(
            "[[member]]\nid = {id}\nclient = \"127.0.0.1:{}\"\npeer = \"127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ));
    }
    let path = write_file(tmp.path(), "cell.toml", &text, 0o600);
    let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();
    let client = tokio::runtime::Runtime::new().unwrap();
    let mut members: Vec<Member> = (1..=3).map(|id| start(&config, id, tmp.path())).collect();
    let m = wait_master(&members, Duration::from_secs(10));
    let f = (m + 1) % 3;
    let g = (m + 2) % 3;
    members[f].kill();

    // While f is down the namespace grows large and the log is compacted past f's position.
    let h = members[m].handle.clone();
    client.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let h = h.clone();
            set.spawn(async move {
                let session = w + 1;
                let created = h
                    .submit(request(
                        session,
                        1,
                        ClientOp::NewSession {
                            user: "app".into(),
                            lease: Duration::from_secs(60),
                            keys: vec![7; 64],
                        },
                    ))
                    .await
                    .unwrap();
                assert_eq!(created.reply, Ok(Response::SessionCreated));
                let mut seq = 2;
                for i in (w..FILES).step_by(WRITERS as usize) {
                    let open = h
                        .submit(request(
                            session,
                            seq,
                            ClientOp::Open {
                                path: format!("/big{i}"),
                                mode: OpenMode::READ
                                    .union(OpenMode::WRITE)
                                    .union(OpenMode::CREATE),
                                events: EventMask::NONE,
                            },
                        ))
                        .await
                        .unwrap();
                    let Ok(Response::Opened { handle, .. }) = open.reply else {
                        panic!("open /big{i}: {:?}", open.reply)
                    };
                    let data = vec![(i % 251) as u8; FILE_SIZE];
                    let put = h
                        .submit(request(
                            session,
                            seq + 1,
                            ClientOp::Put {
                                handle,
                                data,
                                cas: None,
                            },
                        ))
                        .await
                        .unwrap();
                    assert!(matches!(put.reply, Ok(Response::Written { .. })), "{put:?}");
                    seq += 2;
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    let target = client.block_on(h.submit(Command::Noop)).unwrap().slot;

    members[f] = start(&config, (f + 1) as u64, tmp.path());
    let master_metrics = members[m].metrics.clone();
    let f_metrics = members[f].metrics.clone();
    let f_handle = members[f].handle.clone();

    // Wait for f's install to begin (in the background), then take g down: from then on the
    // master holds its lease only through f's heartbeat acks, sent while f installs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while f_metrics.gauges.installing.get() == 0 {
        let st = client.block_on(f_handle.status()).unwrap();
        assert_eq!(
            st.snapshots_installed, 0,
            "the install was not seen running"
        );
        assert!(
            Instant::now() < deadline,
            "f never began installing: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    members[g].kill();
    let window = Instant::now();
    let leases_lost = master_metrics.counters.leases_lost.get();
    let epoch = members[m].handle.roles().borrow().epoch;
    assert!(members[m].leased_master());
    let mut status_during_install = 0;
    loop {
        // f's loop answers while its install runs.
        let st = client.block_on(f_handle.status()).unwrap();
        if f_metrics.gauges.installing.get() == 1 {
            status_during_install += 1;
        }
        assert!(
            members[m].leased_master(),
            "the master lost its lease while f installed, after {:?}",
            window.elapsed()
        );
        if st.snapshots_installed >= 1 && st.applied >= target {
            break;
        }
        assert!(Instant::now() < deadline, "f stuck: {st:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let install_time = window.elapsed();
    eprintln!(
        "install window after g went down: {install_time:?}; f answered {status_during_install} status requests during it"
    );
    assert!(
        status_during_install > 0,
        "f's loop answered while its install ran"
    );
    assert_eq!(
        master_metrics.counters.leases_lost.get(),
        leases_lost,
        "the master kept its lease through the install"
    );
    assert!(members[m].leased_master());
    assert_eq!(members[m].handle.roles().borrow().epoch, epoch);

    // f holds the data: the master (leased only through f) reads it back after the install.
    let sizes = client
        .block_on(members[m].handle.read(|ns| {
            (0..FILES)
                .map(|i| ns.stat(&format!("/big{i}")).map(|node| node.size).ok())
                .collect::<Vec<_>>()
        }))
        .unwrap();
    assert!(
        sizes.iter().all(|s| *s == Some(FILE_SIZE as u32)),
        "{sizes:?}"
    );
    for member in &mut members {
        member.kill();
    }
}
