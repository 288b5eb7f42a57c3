//! `cell.toml`: the cell's configuration, the same file on every member.
//!
//! [`CellConfig::load`] reads and checks it; every problem is a [`ConfigError`] that names the
//! key (`member[2].peer`, `timing.heartbeat_ms`) and says what is wrong with it. Unknown keys
//! are refused, so a typo never silently falls back to a default.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libpaxos::NodeId;
use serde::Deserialize;

/// The shortest secret accepted (cell secret and user secrets), in characters.
pub const MIN_SECRET_LEN: usize = 32;
/// The most members a cell may have.
pub const MAX_MEMBERS: usize = 7;
/// The longest cell name.
pub const MAX_CELL_NAME: usize = 64;
/// The default free space a member keeps in its data dir's file system (`disk_reserve_mb`).
pub const DEFAULT_DISK_RESERVE_MB: u64 = 64;
/// The default number of sessions one user may hold, live and pending (`sessions_per_user`;
/// docs/protocol.md §12.3).
pub const DEFAULT_SESSIONS_PER_USER: usize = 64;
/// The largest `sessions_per_user` accepted (the namespace holds at most 100,000 sessions).
pub const MAX_SESSIONS_PER_USER: usize = 100_000;
/// The largest `disk_reserve_mb` accepted (1 TiB).
pub const MAX_DISK_RESERVE_MB: u64 = 1 << 20;

/// A secret string. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One member of the cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its id (1 to 65535).
    pub id: NodeId,
    /// UDP address for clients.
    pub client: SocketAddr,
    /// TCP address for the other members.
    pub peer: SocketAddr,
}

/// A user allowed to open sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user's name (1 to 32 bytes, no control characters).
    pub name: String,
    /// The user's secret.
    pub secret: Secret,
}

/// The `[timing]` table. Every value is optional in the file; these are the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The Paxos master lease (`paxos_lease_ms`, default 400 ms).
    pub paxos_lease: Duration,
    /// Silence before a follower stands for election (`election_timeout_ms`, default
    /// 1.25 × lease).
    pub election_timeout: Duration,
    /// The master's heartbeat period (`heartbeat_ms`, default lease / 4).
    pub heartbeat: Duration,
    /// The lease given to client sessions (`session_lease_ms`, default 12 s).
    pub session_lease: Duration,
    /// How long after a session's lease the master waits before proposing its expiry
    /// (`expiry_margin_ms`, default 2 s).
    pub expiry_margin: Duration,
    /// Take a snapshot every this many applied entries (`snapshot_every`, default 10 000).
    pub snapshot_every: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        let lease = Duration::from_millis(400);
        Timing {
            paxos_lease: lease,
            election_timeout: lease + lease / 4,
            heartbeat: lease / 4,
            session_lease: Duration::from_secs(12),
            expiry_margin: Duration::from_secs(2),
            snapshot_every: 10_000,
        }
    }
}

/// The checked configuration of a cell.
#[derive(Clone, Debug)]
pub struct CellConfig {
    /// The cell's name; the data dir remembers it.
    pub name: String,
    /// The secret members authenticate each other with.
    pub secret: Secret,
    /// The cell's private key file (wire protocol v2), if configured.
    pub key_file: Option<PathBuf>,
    /// The members, sorted by id.
    pub members: Vec<Member>,
    /// The users.
    pub users: Vec<User>,
    /// Timing.
    pub timing: Timing,
    /// Free space, in bytes, below which a member stops writing and steps down
    /// (`cell.disk_reserve_mb`, default 64 MiB; 0 turns the check off).
    pub disk_reserve: u64,
    /// Sessions one user may hold, live and pending (`cell.sessions_per_user`, default 64).
    pub sessions_per_user: usize,
}

/// Timing given on the command line; each overrides the file's value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimingOverrides {
    /// `--paxos-lease-ms`.
    pub paxos_lease: Option<Duration>,
    /// `--election-timeout-ms`.
    pub election_timeout: Option<Duration>,
    /// `--heartbeat-ms`.
    pub heartbeat: Option<Duration>,
    /// `--session-lease-ms`.
    pub session_lease: Option<Duration>,
    /// `--expiry-margin-ms`.
    pub expiry_margin: Option<Duration>,
    /// `--snapshot-every`.
    pub snapshot_every: Option<u64>,
}

/// What is wrong with a configuration. Each names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        /// The key that named the file (`--config` for the file itself).
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{path}: line {line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// The parser's message (it names the key).
        message: String,
    },
    /// A required key is missing.
    #[error("{0}: missing")]
    Missing(String),
    /// Two keys that exclude each other are both set.
    #[error("{0} and {1}: give one, not both")]
    Both(String, String),
    /// A secret is shorter than [`MIN_SECRET_LEN`].
    #[error("{key}: secret is {len} characters, at least {MIN_SECRET_LEN} are required")]
    SecretTooShort {
        /// The key.
        key: String,
        /// Its length.
        len: usize,
    },
    /// A secret file may be read by group or others.
    #[error(
        "{key}: {path} has mode {mode:03o}; it must not be accessible by group or others (chmod 600)"
    )]
    SecretFileMode {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// An address does not parse.
    #[error("{key}: {value:?} is not an address (IPv4 a.b.c.d:port or IPv6 [addr]:port)")]
    BadAddress {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// An address is used twice.
    #[error("{key}: {addr} is already used by another member")]
    DuplicateAddress {
        /// The key.
        key: String,
        /// The address.
        addr: SocketAddr,
    },
    /// A name is empty, too long or has characters that are not allowed.
    #[error("{key}: {value:?} is not a valid name ({rule})")]
    BadName {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is allowed.
        rule: &'static str,
    },
    /// A user name appears twice.
    #[error("{key}: user {name:?} is defined twice")]
    DuplicateUser {
        /// The key.
        key: String,
        /// The name.
        name: String,
    },
    /// The member count is outside 1..=7.
    #[error("member: {0} members configured, between 1 and {MAX_MEMBERS} are required")]
    MemberCount(usize),
    /// A member id is 0, too large, or used twice.
    #[error("{key}: member id {id} {why}")]
    BadMemberId {
        /// The key.
        key: String,
        /// The id.
        id: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// `--id` names no member of the file.
    #[error("--id: {0} is not a member of the cell (see [[member]] in the config)")]
    NotAMember(u64),
    /// A timing value is out of range or contradicts another.
    #[error("{key}: {why}")]
    Timing {
        /// The key.
        key: &'static str,
        /// What is wrong.
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    cell: RawCell,
    #[serde(default)]
    member: Vec<RawMember>,
    #[serde(default)]
    user: Vec<RawUser>,
    #[serde(default)]
    timing: RawTiming,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCell {
    name: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    users_file: Option<PathBuf>,
    disk_reserve_mb: Option<u64>,
    sessions_per_user: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    id: Option<u64>,
    client: Option<String>,
    peer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsersFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    paxos_lease_ms: Option<u64>,
    election_timeout_ms: Option<u64>,
    heartbeat_ms: Option<u64>,
    session_lease_ms: Option<u64>,
    expiry_margin_ms: Option<u64>,
    snapshot_every: Option<u64>,
}

fn read_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|source| ConfigError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|err| {
        let line = err
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message: err.message().replace('\n', " "),
        }
    })
}

/// Resolves a path named in the config relative to the config file's directory.
fn relative_to(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Reads a secret file: refused when group or others may access it; the trailing newline is
/// not part of the secret.
pub fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    check_private(key, path)?;
    let text = read_file(key, path)?;
    let secret = text.trim_end_matches(['\n', '\r']).to_string();
    check_secret(key, &secret)?;
    Ok(Secret(secret))
}

/// Refuses a file that group or others may access.
pub fn check_private(key: &str, path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|source| ConfigError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::SecretFileMode {
            key: key.to_string(),
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn check_secret(key: &str, secret: &str) -> Result<(), ConfigError> {
    let len = secret.chars().count();
    if len < MIN_SECRET_LEN {
        return Err(ConfigError::SecretTooShort {
            key: key.to_string(),
            len,
        });
    }
    Ok(())
}

fn secret_of(
    base: &Path,
    key: &str,
    secret: Option<String>,
    file: Option<PathBuf>,
) -> Result<Secret, ConfigError> {
    match (secret, file) {
        (Some(_), Some(_)) => Err(ConfigError::Both(
            format!("{key}.secret"),
            format!("{key}.secret_file"),
        )),
        (Some(secret), None) => {
            check_secret(&format!("{key}.secret"), &secret)?;
            Ok(Secret(secret))
        }
        (None, Some(path)) => {
            read_secret_file(&format!("{key}.secret_file"), &relative_to(base, &path))
        }
        (None, None) => Err(ConfigError::Missing(format!("{key}.secret"))),
    }
}

fn check_name(key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadName {
            key: key.to_string(),
            value: value.to_string(),
            rule: "1 to the maximum length of ASCII letters, digits, '-', '_', '.', '@'",
        })
    }
}

fn address(key: String, value: Option<String>) -> Result<SocketAddr, ConfigError> {
    let value = value.ok_or_else(|| ConfigError::Missing(key.clone()))?;
    value
        .parse()
        .map_err(|_| ConfigError::BadAddress { key, value })
}

fn users_of(base: &Path, raw: Vec<RawUser>, what: &str) -> Result<Vec<User>, ConfigError> {
    let mut users = Vec::with_capacity(raw.len());
    for (i, user) in raw.into_iter().enumerate() {
        let key = format!("{what}[{i}]");
        let name = user
            .name
            .ok_or_else(|| ConfigError::Missing(format!("{key}.name")))?;
        check_name(
            &format!("{key}.name"),
            &name,
            libpaxos_db::command::MAX_USER_NAME,
        )?;
        let secret = secret_of(base, &key, user.secret, user.secret_file)?;
        users.push(User { name, secret });
    }
    Ok(users)
}

fn ms(value: Option<u64>) -> Option<Duration> {
    value.map(Duration::from_millis)
}

impl CellConfig {
    /// Reads and checks `path` (paths inside it are relative to its directory), applies the
    /// command line's timing overrides, and validates the result.
    pub fn load(path: &Path, overrides: &TimingOverrides) -> Result<CellConfig, ConfigError> {
        let text = read_file("--config", path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let config = CellConfig::parse(base, path, &text, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a config's text (`path` is for messages, `base` resolves relative paths).
    /// [`load`](Self::load) also validates.
    pub fn parse(
        base: &Path,
        path: &Path,
        text: &str,
        overrides: &TimingOverrides,
    ) -> Result<CellConfig, ConfigError> {
        let raw: RawFile = parse_toml(path, text)?;
        let name = raw
            .cell
            .name
            .ok_or_else(|| ConfigError::Missing("cell.name".into()))?;
        let secret = secret_of(base, "cell", raw.cell.secret, raw.cell.secret_file)?;
        let mut members = Vec::with_capacity(raw.member.len());
        for (i, m) in raw.member.into_iter().enumerate() {
            let key = format!("member[{i}]");
            let id =
                m.id.ok_or_else(|| ConfigError::Missing(format!("{key}.id")))?;
            members.push(Member {
                id: NodeId(id),
                client: address(format!("{key}.client"), m.client)?,
                peer: address(format!("{key}.peer"), m.peer)?,
            });
        }
        let mut users = users_of(base, raw.user, "user")?;
        if let Some(file) = raw.cell.users_file {
            let file = relative_to(base, &file);
            let text = read_file("cell.users_file", &file)?;
            let more: RawUsersFile = parse_toml(&file, &text)?;
            users.extend(users_of(base, more.user, "cell.users_file: user")?);
        }
        let d = Timing::default();
        let t = raw.timing;
        let paxos_lease = overrides
            .paxos_lease
            .or(ms(t.paxos_lease_ms))
            .unwrap_or(d.paxos_lease);
        let timing = Timing {
            paxos_lease,
            election_timeout: overrides
                .election_timeout
                .or(ms(t.election_timeout_ms))
                .unwrap_or(paxos_lease + paxos_lease / 4),
            heartbeat: overrides
                .heartbeat
                .or(ms(t.heartbeat_ms))
                .unwrap_or(paxos_lease / 4),
            session_lease: overrides
                .session_lease
                .or(ms(t.session_lease_ms))
                .unwrap_or(d.session_lease),
            expiry_margin: overrides
                .expiry_margin
                .or(ms(t.expiry_margin_ms))
                .unwrap_or(d.expiry_margin),
            snapshot_every: overrides
                .snapshot_every
                .or(t.snapshot_every)
                .unwrap_or(d.snapshot_every),
        };
        let disk_reserve_mb = raw.cell.disk_reserve_mb.unwrap_or(DEFAULT_DISK_RESERVE_MB);
        if disk_reserve_mb > MAX_DISK_RESERVE_MB {
            return Err(ConfigError::Timing {
                key: "cell.disk_reserve_mb",
                why: format!("{disk_reserve_mb} is above the limit of {MAX_DISK_RESERVE_MB}"),
            });
        }
        let sessions_per_user = raw
            .cell
            .sessions_per_user
            .unwrap_or(DEFAULT_SESSIONS_PER_USER);
        if !(1..=MAX_SESSIONS_PER_USER).contains(&sessions_per_user) {
            return Err(ConfigError::Timing {
                key: "cell.sessions_per_user",
                why: format!("{sessions_per_user} is not between 1 and {MAX_SESSIONS_PER_USER}"),
            });
        }
        let mut config = CellConfig {
            disk_reserve: disk_reserve_mb << 20,
            sessions_per_user,
            name,
            secret,
            key_file: raw.cell.key_file.map(|p| relative_to(base, &p)),
            members,
            users,
            timing,
        };
        config.members.sort_by_key(|m| m.id);
        Ok(config)
    }

    /// Checks every rule: names, member count and ids, distinct addresses, distinct users,
    /// timing ranges and their relations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_name("cell.name", &self.name, MAX_CELL_NAME)?;
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return Err(ConfigError::MemberCount(self.members.len()));
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let key = format!("member[{i}]");
            if m.id.0 == 0 || m.id.0 >= NodeId::LIMIT {
                return Err(ConfigError::BadMemberId {
                    key: format!("{key}.id"),
                    id: m.id.0,
                    why: "is out of range (1 to 65535)",
                });
            }
            if !ids.insert(m.id) {
                return Err(ConfigError::BadMemberId {
                    key: format!("{key}.id"),
                    id: m.id.0,
                    why: "is used twice",
                });
            }
            for (field, addr) in [("client", m.client), ("peer", m.peer)] {
                if !addrs.insert(addr) {
                    return Err(ConfigError::DuplicateAddress {
                        key: format!("{key}.{field}"),
                        addr,
                    });
                }
            }
        }
        let mut names = BTreeSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if !names.insert(u.name.as_str()) {
                return Err(ConfigError::DuplicateUser {
                    key: format!("user[{i}].name"),
                    name: u.name.clone(),
                });
            }
        }
        self.validate_timing()
    }

    fn validate_timing(&self) -> Result<(), ConfigError> {
        let t = &self.timing;
        let range = |key: &'static str, v: Duration, lo: u64, hi: u64| {
            let ms = v.as_millis();
            if ms < u128::from(lo) || ms > u128::from(hi) {
                Err(ConfigError::Timing {
                    key,
                    why: format!("{ms} ms is outside {lo}..={hi} ms"),
                })
            } else {
                Ok(())
            }
        };
        range("timing.paxos_lease_ms", t.paxos_lease, 20, 60_000)?;
        range("timing.heartbeat_ms", t.heartbeat, 5, 60_000)?;
        range(
            "timing.election_timeout_ms",
            t.election_timeout,
            20,
            120_000,
        )?;
        range("timing.session_lease_ms", t.session_lease, 1_000, 600_000)?;
        range("timing.expiry_margin_ms", t.expiry_margin, 0, 600_000)?;
        if t.expiry_margin.is_zero() {
            return Err(ConfigError::Timing {
                key: "timing.expiry_margin_ms",
                why: "must be above 0 (docs/protocol.md 10.1)".into(),
            });
        }
        // docs/protocol.md 10.1: 2ρ·lease < lease_margin + expiry_margin, ρ = 0.01 and the
        // client's lease_margin 250 ms; in ms: lease / 50 < 250 + margin.
        let (lease_ms, margin_ms) = (t.session_lease.as_millis(), t.expiry_margin.as_millis());
        if lease_ms >= 50 * (250 + margin_ms) {
            return Err(ConfigError::Timing {
                key: "timing.session_lease_ms",
                why: format!(
                    "a lease of {lease_ms} ms needs timing.expiry_margin_ms above {} ms \
                     (2 x 1% drift x lease must stay below the client's 250 ms margin + \
                     expiry_margin_ms, docs/protocol.md 10.1); it is {margin_ms} ms",
                    lease_ms / 50 - 250
                ),
            });
        }
        if t.heartbeat >= t.paxos_lease {
            return Err(ConfigError::Timing {
                key: "timing.heartbeat_ms",
                why: format!(
                    "heartbeat {} ms must be shorter than the paxos lease {} ms",
                    t.heartbeat.as_millis(),
                    t.paxos_lease.as_millis()
                ),
            });
        }
        if t.election_timeout < t.paxos_lease {
            return Err(ConfigError::Timing {
                key: "timing.election_timeout_ms",
                why: format!(
                    "election timeout {} ms must be at least the paxos lease {} ms",
                    t.election_timeout.as_millis(),
                    t.paxos_lease.as_millis()
                ),
            });
        }
        if t.snapshot_every == 0 {
            return Err(ConfigError::Timing {
                key: "timing.snapshot_every",
                why: "must be at least 1".into(),
            });
        }
        if let Err(err) = self.db_config(PathBuf::new()).validate() {
            return Err(ConfigError::Timing {
                key: "timing.snapshot_every",
                why: err.to_string(),
            });
        }
        if let Err(err) = self.paxos_config(self.members[0].id).validate() {
            return Err(ConfigError::Timing {
                key: "timing",
                why: err.to_string(),
            });
        }
        Ok(())
    }

    /// The member with this id.
    pub fn member(&self, id: NodeId) -> Result<&Member, ConfigError> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .ok_or(ConfigError::NotAMember(id.0))
    }

    /// The database configuration for a data dir's `db` directory: `snapshot_every` from the
    /// timing, and a log tail kept below each snapshot of `min(1000, snapshot_every / 2)`
    /// entries (for peers that lag a little).
    pub fn db_config(&self, dir: PathBuf) -> libpaxos_db::DbConfig {
        let mut db = libpaxos_db::DbConfig::new(dir);
        db.snapshot_every = self.timing.snapshot_every;
        db.keep_tail = db.keep_tail.min(self.timing.snapshot_every / 2);
        db
    }

    /// The libpaxos configuration for member `id`.
    pub fn paxos_config(&self, id: NodeId) -> libpaxos::Config {
        let mut config = libpaxos::Config::new(id, self.members.iter().map(|m| m.id).collect())
            .with_lease(self.timing.paxos_lease);
        config.heartbeat_interval = self.timing.heartbeat;
        config.election_timeout = self.timing.election_timeout;
        config
    }
}
