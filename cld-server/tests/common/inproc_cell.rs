//! A cell of in-process members (each on its own one-thread runtime, real TCP peers, sled
//! with fsync), for tests that drive `ServerHandle` directly.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cld_server::config::CellConfig;
use cld_server::env::{OsEntropy, SystemClock, TokioUdp};
use cld_server::metrics::Metrics;
use cld_server::peer::TokioNet;
use cld_server::{ServerHandle, ServerOptions};
use libpaxos::{NodeId, Role};
use libpaxos_db::{ClientOp, ClientRequest, Command, MemKv, RequestSeq, SessionId, WallTime};

#[allow(unused_imports)]
pub use super::ports::free_port;

pub struct Member {
    pub rt: Option<tokio::runtime::Runtime>,
    pub handle: ServerHandle,
    pub metrics: Metrics,
}

pub fn start(config: &CellConfig, id: u64, dir: &Path) -> Member {
    start_on(config, id, dir, None, false)
}

/// `start` with the member's database in `kv` (`cld_server::start_on_kv`) instead of sled.
#[allow(dead_code)]
pub fn start_on_memkv(config: &CellConfig, id: u64, dir: &Path, kv: MemKv) -> Member {
    start_on(config, id, dir, Some(kv), false)
}

/// [`start`], with `ServerOptions::inline_jobs` as given (snapshot and install jobs on the
/// replica loop's task, snapshot streams on async tasks).
#[allow(dead_code)]
pub fn start_with_inline_jobs(config: &CellConfig, id: u64, dir: &Path, inline: bool) -> Member {
    start_on(config, id, dir, None, inline)
}

fn start_on(config: &CellConfig, id: u64, dir: &Path, kv: Option<MemKv>, inline: bool) -> Member {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let metrics = Metrics::new();
        let options = ServerOptions {
            config: config.clone(),
            id: NodeId(id),
            data_dir: dir.join(format!("m{id}")),
            inline_jobs: inline,
            bugs: Default::default(),
        };
        let (net, clock, entropy) = (
            Arc::new(TokioNet),
            Arc::new(SystemClock::new()),
            Arc::new(OsEntropy),
        );
        let result = match &kv {
            None => rt.block_on(cld_server::start(
                options,
                net,
                clock,
                entropy,
                metrics.clone(),
            )),
            Some(kv) => rt.block_on(cld_server::start_on_kv(
                options,
                kv.clone(),
                net,
                &TokioUdp,
                clock,
                entropy,
                metrics.clone(),
            )),
        };
        match result {
            Ok(server) => {
                return Member {
                    rt: Some(rt),
                    handle: server.handle,
                    metrics,
                };
            }
            // A killed member's runtime lets go of its files and ports a little later.
            Err(
                err @ (cld_server::StartError::Database { .. }
                | cld_server::StartError::Bind { .. }
                | cld_server::StartError::ClientBind { .. }),
            ) if Instant::now() < deadline => {
                eprintln!("retrying start of member {id}: {err}");
                rt.shutdown_background();
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(err) => panic!("member {id} did not start: {err}"),
        }
    }
}

impl Member {
    pub fn kill(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// A counter of this member's metrics, by name.
    pub fn counter(&self, name: &str) -> u64 {
        self.metrics
            .counters
            .values()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    pub fn leased_master(&self) -> bool {
        let view = *self.handle.roles().borrow();
        self.rt.is_some() && matches!(view.role, Role::Master { .. }) && view.lease
    }
}

pub fn wait_master(members: &[Member], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let masters: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].leased_master())
            .collect();
        if masters.len() == 1 {
            return masters[0];
        }
        assert!(Instant::now() < deadline, "no single master: {masters:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn request(session: u64, seq: u64, op: ClientOp) -> Command {
    Command::Client(ClientRequest {
        session: SessionId(session),
        seq: RequestSeq(seq),
        time: WallTime(1),
        op,
    })
}
