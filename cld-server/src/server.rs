//! Starting a member: data dir, database, replica loop and peer transport, wired together.

use std::path::PathBuf;
use std::sync::Arc;

use libpaxos::{LogStore, NodeId, Time};
use libpaxos_db::{
    DbConfig, DbError, DbReplica, DynKv, GlueError, KvLogStore, KvStore, SledLogStore,
};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{CellConfig, ConfigError};
use crate::datadir::{DataDir, DataDirError, MemberState};
use crate::env::{Clock, Datagrams, Entropy, TokioUdp};
use crate::frontend::{Frontend, FrontendConfig};
use crate::metrics::Metrics;
use crate::peer::{self, Net, PeerIdentity};
use crate::replica_loop::{self, LoopError, ReplicaLoop, ServerHandle};

/// What a member needs to start.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The cell's configuration.
    pub config: CellConfig,
    /// This member's id.
    pub id: NodeId,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// Run snapshot and install jobs on the replica loop's task and stream snapshots from
    /// async tasks, using no blocking thread ([`ReplicaLoop::with_inline_jobs`]): for the
    /// whole-cell simulation. `false` for a real member.
    pub inline_jobs: bool,
    /// Test-only bugs, all off for a real member (`cld` never sets them): the whole-cell
    /// simulation turns one on to show its checkers catch it.
    pub bugs: Bugs,
}

/// Ways to break a member on purpose, for the whole-cell simulation's checker tests
/// (docs/testing.md). Every one is off by default and in `cld`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// A master that loses its lease goes on acting as master (until it hears of another)
    /// and serves reads (and keepalives) without a lease: a deposed master answers with
    /// stale data.
    pub read_without_lease: bool,
    /// A master that loses its lease goes on acting as master (until it hears of another)
    /// and answers keepalives without a lease (reads still need one): a deposed master
    /// extends sessions the new master expires.
    pub keepalive_without_lease: bool,
    /// Expire a session a quarter of the way through its lease, without the expiry margin:
    /// its locks go to others while the client still believes it holds them.
    pub early_expiry: bool,
}

/// Why a member could not start. Each is a one-line message naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The data dir.
    #[error("{0}")]
    DataDir(#[from] DataDirError),
    /// The database could not be opened.
    #[error("database in {dir}: {source}")]
    Database {
        /// Where.
        dir: PathBuf,
        /// Why.
        source: GlueError,
    },
    /// The cell's key file could not be read.
    #[error("[cell] key_file: {0}")]
    Key(#[from] cldc::keyfile::KeyFileError),
    /// A user's secret is not usable by the wire protocol (32 to 128 bytes).
    #[error("user {user:?}: {source}")]
    UserSecret {
        /// The user.
        user: String,
        /// Why.
        source: cldc::proto::SecretError,
    },
    /// The client port could not be bound.
    #[error("client address {addr}: {source}")]
    ClientBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why (e.g. in use).
        source: std::io::Error,
    },
    /// The peer port could not be bound.
    #[error("peer address {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why (e.g. in use).
        source: std::io::Error,
    },
}

/// A running member.
#[derive(Debug)]
pub struct Server {
    /// The handle to its replica loop.
    pub handle: ServerHandle,
    /// The loop's task: `Err` means the member failed and the process must exit.
    pub task: JoinHandle<Result<(), LoopError>>,
}

/// Starts member `options.id` with these peer sockets, clock and randomness, and tokio's UDP
/// for clients.
pub async fn start<N: Net, C: Clock, E: Entropy>(
    options: ServerOptions,
    net: Arc<N>,
    clock: Arc<C>,
    entropy: Arc<E>,
    metrics: Metrics,
) -> Result<Server, StartError> {
    start_with(options, net, &TokioUdp, clock, entropy, metrics).await
}

/// Starts member `options.id` with these peer and client sockets, clock and randomness, its
/// database on sled in the data dir. Without `[cell] key_file` the member runs no client
/// front end (it replicates only).
pub async fn start_with<N: Net, D: Datagrams, C: Clock, E: Entropy>(
    options: ServerOptions,
    net: Arc<N>,
    udp: &D,
    clock: Arc<C>,
    entropy: Arc<E>,
    metrics: Metrics,
) -> Result<Server, StartError> {
    start_member(options, OnSled, net, udp, clock, entropy, metrics).await
}

/// [`start_with`], the member's database (namespace and Paxos log) kept in `kv` instead of
/// sled: the deterministic simulation's [`MemKv`](libpaxos_db::MemKv), whose `crash` is a
/// power cut. Everything else is as `start_with`: the data dir (identity, boot number) and the
/// snapshot files (`DATA_DIR/db/snapshots`) are real files. A voter whose store holds no tree
/// (a wiped store, the data dir kept) rejoins without a vote, as a member whose sled directory
/// was deleted does.
pub async fn start_on_kv<N: Net, D: Datagrams, C: Clock, E: Entropy, K: KvStore>(
    options: ServerOptions,
    kv: K,
    net: Arc<N>,
    udp: &D,
    clock: Arc<C>,
    entropy: Arc<E>,
    metrics: Metrics,
) -> Result<Server, StartError> {
    let store = OnKv(DynKv::new(kv));
    start_member(options, store, net, udp, clock, entropy, metrics).await
}

/// Where a member keeps its database.
trait MemberStore {
    /// The Paxos log store.
    type Log: LogStore + Send + 'static;
    /// Whether the database is missing (a voter's data dir without it lost its promises).
    fn missing(&self, db_dir: &std::path::Path) -> Result<bool, DbError>;
    /// Opens the member's replica.
    fn open(
        self,
        paxos: libpaxos::Config,
        db_config: DbConfig,
        now: Time,
    ) -> Result<DbReplica<Self::Log, DynKv>, GlueError>;
}

/// sled in the data dir's `db` directory.
struct OnSled;

impl MemberStore for OnSled {
    type Log = SledLogStore;

    fn missing(&self, db_dir: &std::path::Path) -> Result<bool, DbError> {
        Ok(!db_dir.exists())
    }

    fn open(
        self,
        paxos: libpaxos::Config,
        db_config: DbConfig,
        now: Time,
    ) -> Result<DbReplica<SledLogStore, DynKv>, GlueError> {
        DbReplica::open_dyn(paxos, db_config, now)
    }
}

/// A store handed in (`start_on_kv`).
struct OnKv(DynKv);

impl MemberStore for OnKv {
    type Log = KvLogStore<DynKv>;

    fn missing(&self, _db_dir: &std::path::Path) -> Result<bool, DbError> {
        let names = self.0.tree_names().map_err(|e| DbError::Sled {
            doing: e.doing,
            reason: e.reason,
        })?;
        Ok(names.is_empty())
    }

    fn open(
        self,
        paxos: libpaxos::Config,
        db_config: DbConfig,
        now: Time,
    ) -> Result<DbReplica<KvLogStore<DynKv>, DynKv>, GlueError> {
        DbReplica::open_on(paxos, db_config, self.0, now)
    }
}

/// The body of `start_with` and `start_on_kv`.
async fn start_member<N: Net, D: Datagrams, C: Clock, E: Entropy, M: MemberStore>(
    options: ServerOptions,
    store: M,
    net: Arc<N>,
    udp: &D,
    clock: Arc<C>,
    entropy: Arc<E>,
    metrics: Metrics,
) -> Result<Server, StartError> {
    let config = &options.config;
    let member = config.member(options.id)?.clone();
    // The data dir is checked first (a wrong one is the more useful message), then the port
    // is bound, and only then is anything written: a port in use changes nothing on disk.
    DataDir::check(&options.data_dir, &config.name, options.id)?;
    let listener = net
        .bind(member.peer)
        .await
        .map_err(|source| StartError::Bind {
            addr: member.peer,
            source,
        })?;
    let cell_key = match &config.key_file {
        Some(path) => Some(crate::keys::read_cell_key(path)?),
        None => None,
    };
    let mut users = std::collections::HashMap::new();
    for user in &config.users {
        let secret = cldc::proto::Secret::new(user.secret.expose()).map_err(|source| {
            StartError::UserSecret {
                user: user.name.clone(),
                source,
            }
        })?;
        users.insert(user.name.clone(), secret);
    }
    let client_socket = match &cell_key {
        Some(_) => {
            Some(
                udp.bind(member.client)
                    .await
                    .map_err(|source| StartError::ClientBind {
                        addr: member.client,
                        source,
                    })?,
            )
        }
        None => None,
    };
    let mut data_dir = DataDir::open(&options.data_dir, &config.name, options.id)?;
    // Before this member seals anything (docs/protocol.md §12.4).
    let boot = data_dir.next_boot()?;
    let missing = store
        .missing(&data_dir.db_dir())
        .map_err(|source| StartError::Database {
            dir: data_dir.db_dir(),
            source: GlueError::Db(source),
        })?;
    if data_dir.identity().state == MemberState::Voter && missing {
        // The identity survived but the database did not: this member lost its promises.
        warn!("the database is missing from a voter's data dir: rejoining without a vote");
        data_dir.set_state(MemberState::Rejoining)?;
    }
    info!(
        cell = %config.name,
        member = options.id.0,
        dir = %options.data_dir.display(),
        state = ?data_dir.identity().state,
        created = data_dir.created(),
        "data dir opened"
    );
    let entropy_dyn: Arc<dyn Entropy> = entropy.clone();
    let mut paxos = config.paxos_config(options.id);
    paxos.seed = entropy.next_u64();
    let db_config = config.db_config(data_dir.db_dir());
    let replica = store
        .open(paxos, db_config, clock.now())
        .map_err(|source| StartError::Database {
            dir: data_dir.db_dir(),
            source,
        })?;
    let channels = replica_loop::channels(data_dir.identity().state, metrics.clone());
    let identity = PeerIdentity::new(
        &config.name,
        config.secret.expose(),
        options.id,
        config.members.iter().map(|m| (m.id, m.peer)).collect(),
    )
    .with_entropy(entropy.clone());
    let peers = peer::start(
        net,
        listener,
        identity,
        channels.sink.clone(),
        metrics.counters.clone(),
        entropy,
    );
    let handle = channels.handle.clone();
    let mut lp = ReplicaLoop::new(replica, clock, peers, data_dir, channels, metrics.clone())
        .with_disk_reserve(config.disk_reserve)
        .with_inline_jobs(options.inline_jobs)
        .with_bugs(options.bugs);
    if let (Some(key), Some(socket)) = (cell_key, client_socket) {
        let client_addrs: std::collections::BTreeMap<u64, std::net::SocketAddr> =
            config.members.iter().map(|m| (m.id.0, m.client)).collect();
        let fe_config = FrontendConfig {
            member: u32::try_from(options.id.0).unwrap_or(u32::MAX),
            boot,
            lease: config.timing.session_lease,
            expiry_margin: config.timing.expiry_margin,
            max_datagram: cldc::proto::DEFAULT_MAX_DATAGRAM,
            users,
            client_addrs: client_addrs.clone(),
            max_sessions_per_user: config.sessions_per_user,
            tombstone_ttl: std::time::Duration::from_secs(120),
            max_rto: std::time::Duration::from_secs(2),
            bugs: options.bugs,
        };
        let core = Frontend::new(
            fe_config,
            crate::keys::cell_keys(key),
            entropy_dyn,
            metrics.counters.clone(),
        );
        let edge = crate::frontend::edge::start(socket, metrics.counters.clone());
        lp = lp.with_frontend(core, edge.inbound, edge.outbound, client_addrs);
        info!(member = options.id.0, client = %member.client, boot, "client front end on");
    } else {
        warn!("no [cell] key_file: this member runs no client front end");
    }
    let task = tokio::spawn(lp.run());
    info!(member = options.id.0, peer = %member.peer, "member started");
    Ok(Server { handle, task })
}
