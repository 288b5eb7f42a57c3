//! A member whose data dir fills up (a small tmpfs) stops acknowledging when its free space
//! falls below the reserve, reports it (counter, gauge, /healthz) and steps down, while the
//! rest of the cell serves on; after space is freed and it is restarted, it recovers from its
//! disk (not corrupted) and catches up.
//!
//! Needs root to mount a tmpfs; without it the test says so and does nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use cld_server::ServerHandle;
use cld_server::config::{CellConfig, TimingOverrides};
use common::inproc_cell::{Member, free_port, request, start, wait_master};
use common::{SECRET, TempDir, write_file};
use libpaxos_db::{ClientOp, Command, EventMask, OpenMode, Response};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "cannot mount a tmpfs ({}): this test needs root",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(path.to_path_buf()))
    }

    fn grow(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn open_and_put(
    client: &tokio::runtime::Runtime,
    h: &ServerHandle,
    session: u64,
    seq: &mut u64,
    path: &str,
    data: Vec<u8>,
) -> Result<(), cld_server::SubmitError> {
    // Each attempt takes a fresh request seq before it is sent: a submit that fails (the
    // member stopped) may still have committed, and the session answers a repeated seq from
    // its record (a retry under the old seq got the earlier put's `Written` as its open).
    let open_seq = *seq;
    *seq += 1;
    let open = client.block_on(
        h.submit(request(
            session,
            open_seq,
            ClientOp::Open {
                path: path.into(),
                mode: OpenMode::READ
                    .union(OpenMode::WRITE)
                    .union(OpenMode::CREATE),
                events: EventMask::NONE,
            },
        )),
    )?;
    let Ok(Response::Opened { handle, .. }) = open.reply else {
        panic!("open {path}: {:?}", open.reply)
    };
    let put_seq = *seq;
    *seq += 1;
    let put = client.block_on(h.submit(request(
        session,
        put_seq,
        ClientOp::Put {
            handle,
            data,
            cas: None,
        },
    )))?;
    assert!(matches!(put.reply, Ok(Response::Written { .. })), "{put:?}");
    Ok(())
}

const CHUNK: usize = 100 * 1024;

#[test]
fn a_member_on_a_full_disk_steps_down_reports_it_and_recovers_after_restart() {
    // If the reserve check failed, the member's sled would hit ENOSPC and could hang in a
    // flush forever (holding sled's process-wide lock, so the other in-process members too):
    // fail the test instead of hanging CI.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(180));
        eprintln!("disk_full: no progress after 180 s (a member hung on a full disk?)");
        std::process::exit(101);
    });
    let tmp = TempDir::new("diskfull");
    let mut text = format!(
        "[cell]\nname = \"diskfull\"\nsecret = \"{SECRET}\"\ndisk_reserve_mb = 40\n[timing]\npaxos_lease_ms = 200\nsnapshot_every = 100000\n"
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
    // Member 3's data dir is a small tmpfs.
    let Some(fs) = Tmpfs::mount(&tmp.path().join("m3"), "64m") else {
        return;
    };
    let mut members: Vec<Member> = (1..=3).map(|id| start(&config, id, tmp.path())).collect();
    let mut m = wait_master(&members, Duration::from_secs(10));
    let full = 2;

    // Write until member 3's disk fills up; every write is still acknowledged by the cell.
    let session = 1;
    let mut seq = 1;
    let created = client
        .block_on(members[m].handle.submit(request(
            session,
            seq,
            ClientOp::NewSession {
                user: "app".into(),
                lease: Duration::from_secs(60),
                keys: vec![7; 64],
            },
        )))
        .unwrap();
    assert_eq!(created.reply, Ok(Response::SessionCreated));
    seq += 1;
    let mut written = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while members[full].metrics.gauges.disk_full.get() == 0 {
        assert!(Instant::now() < deadline, "the disk never filled up");
        assert!(
            written < 500,
            "64 MiB never filled up after {written} writes"
        );
        let data = vec![(written % 251) as u8; CHUNK];
        match open_and_put(
            &client,
            &members[m].handle,
            session,
            &mut seq,
            &format!("/f{written}"),
            data.clone(),
        ) {
            Ok(()) => written += 1,
            // The full member was master: another takes over; the write is retried there.
            Err(err) => {
                eprintln!("write {written}: {err}; finding the new master");
                m = wait_master(&members, Duration::from_secs(10));
            }
        }
    }
    eprintln!("member 3's disk filled up after {written} writes");
    let f = &members[full];
    assert!(f.metrics.counters.disk_full.get() >= 1);
    assert!(
        !f.metrics.serving.load(std::sync::atomic::Ordering::Relaxed),
        "/healthz unhealthy"
    );
    assert!(!f.leased_master());
    // It still answers status, refuses work, and never becomes master again.
    let st = client.block_on(f.handle.status()).unwrap();
    assert_eq!(st.role.master, None);
    assert!(client.block_on(f.handle.submit(Command::Noop)).is_err());
    assert!(client.block_on(f.handle.read(|_| ())).is_err());

    // The other two serve on.
    m = wait_master(&members, Duration::from_secs(10));
    assert_ne!(m, full);
    for _ in 0..5 {
        open_and_put(
            &client,
            &members[m].handle,
            session,
            &mut seq,
            &format!("/f{written}"),
            vec![(written % 251) as u8; CHUNK],
        )
        .unwrap();
        written += 1;
    }
    // Longer than the peers' silence limit: the stopped member keeps sending progress frames,
    // so no peer takes its links for dead and closes them.
    std::thread::sleep(cld_server::peer::PEER_SILENCE + Duration::from_millis(500));
    assert!(!members[full].leased_master(), "the full member stays down");
    assert_eq!(members[full].metrics.gauges.is_master.get(), 0);
    for member in members.iter() {
        assert_eq!(member.metrics.counters.peer_silent_closes.get(), 0);
    }

    // Space freed, member restarted: it opens its data dir and catches up.
    members[full].kill();
    fs.grow("256m");
    members[full] = start(&config, 3, tmp.path());
    let target = client
        .block_on(members[m].handle.submit(Command::Noop))
        .unwrap()
        .slot;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = client.block_on(members[full].handle.status()).unwrap();
        if st.applied >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member 3 stuck after restart: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(members[full].metrics.gauges.disk_full.get(), 0);
    // The cell now needs member 3 (the third is down): it writes, and every write is there.
    let other = (0..3).find(|&i| i != m && i != full).unwrap();
    members[other].kill();
    let m = wait_master(&members, Duration::from_secs(10));
    open_and_put(
        &client,
        &members[m].handle,
        session,
        &mut seq,
        &format!("/f{written}"),
        vec![(written % 251) as u8; CHUNK],
    )
    .unwrap();
    written += 1;
    // A lease read: on a loaded machine the two live members may lose the lease for a
    // moment (NotMaster), so ask the master of the moment until one answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sizes = loop {
        let m = wait_master(&members, Duration::from_secs(10));
        match client.block_on(members[m].handle.read(move |ns| {
            (0..written)
                .map(|i| ns.stat(&format!("/f{i}")).map(|node| node.size).ok())
                .collect::<Vec<_>>()
        })) {
            Ok(sizes) => break sizes,
            Err(err) => {
                assert!(Instant::now() < deadline, "no lease read answered: {err:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!(sizes.iter().all(|s| *s == Some(CHUNK as u32)), "{sizes:?}");
    for member in &mut members {
        member.kill();
    }
    drop(fs);
}
