//! A member host: a real `cld-server` member on turmoil with an in-memory store that survives
//! the host's crashes the way a disk survives a power cut.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cld_server::config::{CellConfig, TimingOverrides};
use cld_server::env::SeededEntropy;
use cld_server::metrics::Metrics;
use cld_server::{ServerHandle, ServerOptions};
use libpaxos::{NodeId, Role};
use libpaxos_db::{Limits, MemKv, Namespace};

use super::env::{ClockControl, NetFaults, SimClock, SimNet, SimUdp};
use super::store::SimKv;
use super::{Shared, lock};

/// The cell's user.
pub const USER: &str = "sim";
/// Its secret.
pub const USER_SECRET: &str = "sim-user-secret-sim-user-secret-0123";
const CELL_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// What a run's hosts need of the cell: its config and public key.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The parsed config.
    pub config: CellConfig,
    /// The key clients pin.
    pub key: cldc::proto::CellPublicKey,
    /// The members' client addresses.
    pub clients: Vec<std::net::SocketAddr>,
}

/// Writes the run's config and key under `dir` for members at `ips`.
pub fn write_cell(dir: &Path, ips: &[IpAddr]) -> Result<Cell, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let private = cldc::proto::CellPrivateKey::from_bytes([0x5a; 32]);
    let key_path = dir.join("cell.key");
    cldc::keyfile::write_private_key(&key_path, &private).map_err(|e| e.to_string())?;
    let (peers, clients) = super::addrs(ips);
    let mut text = format!(
        "[cell]\nname = \"sim\"\nsecret = \"{CELL_SECRET}\"\nkey_file = \"cell.key\"\ndisk_reserve_mb = 0\n\
         [timing]\nsession_lease_ms = {}\nexpiry_margin_ms = 1000\nsnapshot_every = 300\n",
        super::SESSION_LEASE.as_millis()
    );
    for (i, (peer, client)) in peers.iter().zip(&clients).enumerate() {
        text.push_str(&format!(
            "[[member]]\nid = {}\nclient = \"{client}\"\npeer = \"{peer}\"\n",
            i + 1
        ));
    }
    text.push_str(&format!(
        "[[user]]\nname = \"{USER}\"\nsecret = \"{USER_SECRET}\"\n"
    ));
    let path = dir.join("cell.toml");
    std::fs::write(&path, &text).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    let config = CellConfig::load(&path, &TimingOverrides::default()).map_err(|e| e.to_string())?;
    Ok(Cell {
        config,
        key: private.public(),
        clients,
    })
}

struct SlotState {
    /// The store as the member's next incarnation finds it.
    kv: MemKv,
    handle: Option<ServerHandle>,
    metrics: Option<Metrics>,
    incarnation: u64,
}

/// One member of the run: its store, clock and the handle of its running incarnation.
#[derive(Clone)]
pub struct MemberSlot {
    /// Its id.
    pub id: u64,
    /// Its clock.
    pub clock: ClockControl,
    /// The clock's rate error at the start (a heal goes back to it).
    pub initial_rate_ppm: i64,
    seed: u64,
    switches: super::Switches,
    state: Arc<Mutex<SlotState>>,
}

impl MemberSlot {
    pub(crate) fn new(
        id: u64,
        clock: ClockControl,
        seed: u64,
        switches: super::Switches,
    ) -> MemberSlot {
        MemberSlot {
            id,
            initial_rate_ppm: clock.rate_ppm(),
            clock,
            seed,
            switches,
            state: Arc::new(Mutex::new(SlotState {
                kv: MemKv::new(),
                handle: None,
                metrics: None,
                incarnation: 0,
            })),
        }
    }

    /// Registers the host `m<id>` on `sim`: each (re)start runs a new incarnation of the member
    /// on the store its last one left.
    pub(crate) fn register(
        &self,
        sim: &mut turmoil::Sim<'_>,
        cell: Arc<OnceLock<Cell>>,
        dir: PathBuf,
        net: NetFaults,
        shared: Arc<Shared>,
    ) {
        let slot = self.clone();
        sim.host(format!("m{}", self.id).as_str(), move || {
            let slot = slot.clone();
            let cell = cell.clone();
            let dir = dir.clone();
            let net = net.clone();
            let shared = shared.clone();
            async move {
                let Some(cell) = cell.get() else {
                    return Err("the cell config was not written".into());
                };
                let (kv, incarnation) = {
                    let mut s = lock(&slot.state);
                    s.incarnation += 1;
                    s.handle = None;
                    (s.kv.clone(), s.incarnation)
                };
                let entropy = SeededEntropy::new(
                    slot.seed ^ slot.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (incarnation << 40),
                );
                let options = ServerOptions {
                    config: cell.config.clone(),
                    id: NodeId(slot.id),
                    data_dir: dir.join(format!("m{}", slot.id)),
                    inline_jobs: true,
                    bugs: slot.switches.server,
                };
                let metrics = Metrics::new();
                lock(&slot.state).metrics = Some(metrics.clone());
                let started = cld_server::server::start_on_kv(
                    options,
                    SimKv::new(kv, slot.switches.ack_before_sync),
                    Arc::new(SimNet),
                    &SimUdp { faults: net },
                    Arc::new(SimClock::new(slot.clock.clone())),
                    Arc::new(entropy),
                    metrics,
                )
                .await;
                let server = match started {
                    Ok(server) => server,
                    Err(err) => {
                        lock(&shared.member_errors).push((slot.id, format!("start: {err}")));
                        return Ok(());
                    }
                };
                lock(&slot.state).handle = Some(server.handle.clone());
                match server.task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        lock(&shared.member_errors).push((slot.id, format!("stopped: {err}")))
                    }
                    Err(err) => {
                        lock(&shared.member_errors).push((slot.id, format!("panicked: {err}")))
                    }
                }
                Ok(())
            }
        });
    }

    /// A power cut: the next incarnation finds the durable store plus `kept` unsynced batches,
    /// or (`wipe`) an empty store (its data dir, with its identity, survives).
    pub(crate) fn power_cut(&self, kept: usize, wipe: bool) {
        let mut s = lock(&self.state);
        s.handle = None;
        s.kv = if wipe { MemKv::new() } else { s.kv.crash(kept) };
    }

    /// `(id, epoch)` if this member is master with a lease now.
    pub(crate) fn leased_master(&self) -> Option<(u64, u64)> {
        let s = lock(&self.state);
        let handle = s.handle.as_ref()?;
        let view = *handle.roles().borrow();
        match view.role {
            Role::Master { .. } if view.lease => Some((self.id, view.epoch.map_or(0, |e| e.0))),
            _ => None,
        }
    }

    /// A counter of the running incarnation's metrics, by name.
    fn counter_locked(&self, s: &SlotState, name: &str) -> Option<u64> {
        s.metrics
            .as_ref()?
            .counters
            .values()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// Whether the running incarnation is a voter (not fresh or rejoining).
    pub(crate) fn voter(&self) -> bool {
        let s = lock(&self.state);
        s.handle
            .as_ref()
            .is_some_and(|h| h.roles().borrow().state == cld_server::datadir::MemberState::Voter)
    }

    /// How the member sees its role now, for traces.
    pub(crate) fn view(&self) -> String {
        let s = lock(&self.state);
        match s.handle.as_ref() {
            None => "down".to_owned(),
            Some(h) => {
                let v = *h.roles().borrow();
                let count = |name| self.counter_locked(&s, name).unwrap_or(0);
                format!(
                    "{:?} epoch {:?} master {:?} lease {} prevotes {}/{} refused elections {} \
                     stale {} by-lease {} quiet {}",
                    v.role,
                    v.epoch,
                    v.master,
                    v.lease,
                    count("prevotes_started"),
                    count("prevotes_refused"),
                    count("elections_started"),
                    count("paxos_stale_ballot"),
                    count("paxos_refused_by_lease"),
                    count("paxos_refused_while_quiet"),
                )
            }
        }
    }

    /// The member's applied index and namespace digest (hex), read from its store.
    pub(crate) fn digest(&self) -> Option<(u64, String)> {
        let s = lock(&self.state);
        s.handle.as_ref()?;
        let ns = Namespace::open_on(&s.kv, Limits::default()).ok()?;
        let digest = ns.digest().ok()?;
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some((ns.applied().0, hex))
    }
}
