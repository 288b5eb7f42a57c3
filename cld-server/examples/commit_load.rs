//! Durable write throughput and latency of a 3-member cell on loopback, through the replica
//! loop's `ServerHandle` (no client front end yet: this measures consensus, group commit,
//! fsync and the peer transport, not UDP sessions).
//!
//! ```sh
//! cargo run --release -p cld-server --example commit_load -- [SECONDS] [WRITERS]
//! ```
//! Runs three rounds and prints each and the median: puts/s with WRITERS concurrent
//! sessions (each a 256-byte put to its own file, durable on a majority before it is
//! acknowledged), then the median latency of one session's sequential puts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cld_server::config::{CellConfig, TimingOverrides};
use cld_server::env::{OsEntropy, SystemClock};
use cld_server::metrics::Metrics;
use cld_server::peer::TokioNet;
use cld_server::{ServerHandle, ServerOptions};
use libpaxos::{NodeId, Role};
use libpaxos_db::{
    ClientOp, ClientRequest, Command, EventMask, HandleId, OpenMode, RequestSeq, Response,
    SessionId, WallTime,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request(session: u64, seq: u64, op: ClientOp) -> Command {
    Command::Client(ClientRequest {
        session: SessionId(session),
        seq: RequestSeq(seq),
        time: WallTime(1),
        op,
    })
}

async fn open_file(h: &ServerHandle, session: u64) -> HandleId {
    let created = h
        .submit(request(
            session,
            1,
            ClientOp::NewSession {
                user: "bench".into(),
                lease: Duration::from_secs(12),
                keys: vec![7; 64],
            },
        ))
        .await
        .unwrap();
    assert_eq!(created.reply, Ok(Response::SessionCreated));
    let opened = h
        .submit(request(
            session,
            2,
            ClientOp::Open {
                path: format!("/f{session}"),
                mode: OpenMode::READ
                    .union(OpenMode::WRITE)
                    .union(OpenMode::CREATE),
                events: EventMask::NONE,
            },
        ))
        .await
        .unwrap();
    match opened.reply {
        Ok(Response::Opened { handle, .. }) => handle,
        other => panic!("open: {other:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let writers: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir: PathBuf = std::env::temp_dir().join(format!("cld-commit-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = format!(
        "[cell]\nname = \"bench\"\nsecret = \"{}\"\n",
        "0123456789abcdef0123456789abcdef"
    );
    for id in 1..=3 {
        text.push_str(&format!(
            "[[member]]\nid = {id}\nclient = \"127.0.0.1:{}\"\npeer = \"127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ));
    }
    let path = dir.join("cell.toml");
    std::fs::write(&path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();

    // Each member on its own runtime, as separate processes would be.
    let mut runtimes = Vec::new();
    let mut handles = Vec::new();
    for id in 1..=3u64 {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(cld_server::start(
                ServerOptions {
                    config: config.clone(),
                    id: NodeId(id),
                    data_dir: dir.join(format!("m{id}")),
                    inline_jobs: false,
                    bugs: Default::default(),
                },
                Arc::new(TokioNet),
                Arc::new(SystemClock::new()),
                Arc::new(OsEntropy),
                Metrics::new(),
            ))
            .unwrap();
        handles.push(server.handle);
        runtimes.push(rt);
    }
    let client = tokio::runtime::Runtime::new().unwrap();
    let master = loop {
        if let Some(h) = handles.iter().find(|h| {
            let v = *h.roles().borrow();
            matches!(v.role, Role::Master { .. }) && v.lease
        }) {
            break h.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let mut rates = Vec::new();
    let mut next_session = 1u64;
    for round in 0..3 {
        let before = client.block_on(master.status()).unwrap().syncs;
        let (done, elapsed) = client.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            let start = Instant::now();
            let deadline = start + Duration::from_secs(seconds);
            for _ in 0..writers {
                let h = master.clone();
                let session = next_session;
                next_session += 1;
                set.spawn(async move {
                    let handle = open_file(&h, session).await;
                    let mut seq = 3;
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let put = ClientOp::Put {
                            handle,
                            data: vec![seq as u8; 256],
                            cas: None,
                        };
                        let applied = h.submit(request(session, seq, put)).await.unwrap();
                        assert!(matches!(applied.reply, Ok(Response::Written { .. })));
                        seq += 1;
                        n += 1;
                    }
                    n
                });
            }
            let mut total = 0;
            while let Some(n) = set.join_next().await {
                total += n.unwrap();
            }
            (total, start.elapsed())
        });
        let syncs = client.block_on(master.status()).unwrap().syncs - before;
        let rate = done as f64 / elapsed.as_secs_f64();
        println!(
            "round {round}: {done} durable 256 B puts in {:.1} s with {writers} sessions = {rate:.0} puts/s ({syncs} master syncs, {:.1} puts per sync)",
            elapsed.as_secs_f64(),
            done as f64 / syncs.max(1) as f64
        );
        rates.push(rate);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!("median: {:.0} puts/s", rates[1]);

    // One session's sequential puts: latency.
    let session = next_session;
    let mut lat = client.block_on(async {
        let handle = open_file(&master, session).await;
        let mut lat = Vec::new();
        for seq in 3..2003u64 {
            let put = ClientOp::Put {
                handle,
                data: vec![1; 256],
                cas: None,
            };
            let t = Instant::now();
            master.submit(request(session, seq, put)).await.unwrap();
            lat.push(t.elapsed());
        }
        lat
    });
    lat.sort();
    println!(
        "one session, 2000 sequential puts: median {:?}, p99 {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    drop(runtimes);
    let _ = std::fs::remove_dir_all(&dir);
}
