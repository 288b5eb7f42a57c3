//! The data dir's identity: which cell and which member it belongs to, in which format, and
//! whether this member is a full voter or still rejoining.
//!
//! The file `DIR/cld-member.toml` is written on first start, durably (temp file, fsync,
//! rename, fsync of the directory). A data dir of another member or another cell, or of a
//! format this build does not know, is refused before anything else is opened.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use libpaxos::NodeId;
use serde::{Deserialize, Serialize};

/// The identity file's name inside the data dir.
pub const IDENTITY_FILE: &str = "cld-member.toml";
/// The member's boot number (a decimal u32 and a newline), incremented and fsynced at every start.
pub const BOOT_FILE: &str = "boot";
/// The data dir format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Whether this member may vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Created from an empty data dir; not yet known whether the cell is new.
    Fresh,
    /// The cell has history this member lost (or never had): it neither promises nor
    /// accepts until it has caught up and seen a complete Paxos instance begun after it
    /// rejoined.
    Rejoining,
    /// A full member.
    Voter,
}

/// The identity recorded in the data dir.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The data dir format.
    pub format: u32,
    /// The cell's name.
    pub cell: String,
    /// The member id.
    pub member: u64,
    /// Voting state.
    pub state: MemberState,
}

/// Why a data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Creating, reading or writing failed.
    #[error("data dir {path}: {what}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The identity file does not parse.
    #[error("data dir {path}: {IDENTITY_FILE} is damaged: {message}")]
    Damaged {
        /// The data dir.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An unknown format version.
    #[error(
        "data dir {path}: format version {found} is unknown to this cld (it knows {FORMAT}); use a cld that knows it"
    )]
    UnknownFormat {
        /// The data dir.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// Another cell's data dir.
    #[error("data dir {path} belongs to cell {found:?}, not to cell {expected:?}")]
    OtherCell {
        /// The data dir.
        path: PathBuf,
        /// The cell it belongs to.
        found: String,
        /// The cell configured.
        expected: String,
    },
    /// Another member's data dir.
    #[error("data dir {path} belongs to member {found} of cell {cell:?}, not to member {expected}")]
    OtherMember {
        /// The data dir.
        path: PathBuf,
        /// The cell.
        cell: String,
        /// The member it belongs to.
        found: u64,
        /// The member started.
        expected: u64,
    },
    /// The boot number file does not hold a number.
    #[error("data dir {path}: {BOOT_FILE} is damaged: {text:?} is not a boot number")]
    BadBoot {
        /// The data dir.
        path: PathBuf,
        /// What the file holds (first bytes).
        text: String,
    },
    /// The boot number would wrap (docs/protocol.md §12.4: a member whose boot number would
    /// wrap refuses to start, or it would reuse its sealing keys).
    #[error(
        "data dir {path}: boot number {boot} would wrap; this member id cannot start again (give the machine a new member id)"
    )]
    BootExhausted {
        /// The data dir.
        path: PathBuf,
        /// The last boot number.
        boot: u32,
    },
    /// Files but no identity: not a data dir this cld made.
    #[error(
        "data dir {path} is not empty but has no {IDENTITY_FILE}: not a cld data dir (or damaged); refusing to use it"
    )]
    Foreign {
        /// The data dir.
        path: PathBuf,
    },
}

/// An opened data dir.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    identity: Identity,
    created: bool,
}

fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> DataDirError {
    let path = path.to_path_buf();
    move |source| DataDirError::Io { path, what, source }
}

/// Writes `bytes` to `dir/name` durably: temp file, fsync, rename, fsync of the directory.
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

impl DataDir {
    /// Opens (or, when empty or absent, creates) the data dir of member `member` of `cell`.
    pub fn open(path: &Path, cell: &str, member: NodeId) -> Result<DataDir, DataDirError> {
        fs::create_dir_all(path).map_err(io(path, "create"))?;
        let file = path.join(IDENTITY_FILE);
        match fs::read_to_string(&file) {
            Ok(text) => {
                let identity = Self::parse(path, &text)?;
                if identity.cell != cell {
                    return Err(DataDirError::OtherCell {
                        path: path.to_path_buf(),
                        found: identity.cell,
                        expected: cell.to_string(),
                    });
                }
                if identity.member != member.0 {
                    return Err(DataDirError::OtherMember {
                        path: path.to_path_buf(),
                        cell: identity.cell,
                        found: identity.member,
                        expected: member.0,
                    });
                }
                Ok(DataDir {
                    path: path.to_path_buf(),
                    identity,
                    created: false,
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let mut entries = fs::read_dir(path).map_err(io(path, "list"))?;
                if entries.next().is_some() {
                    return Err(DataDirError::Foreign {
                        path: path.to_path_buf(),
                    });
                }
                // It will hold session keys: only this member's user may read it.
                {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                        .map_err(io(path, "restrict to mode 0700"))?;
                }
                let mut dir = DataDir {
                    path: path.to_path_buf(),
                    identity: Identity {
                        format: FORMAT,
                        cell: cell.to_string(),
                        member: member.0,
                        state: MemberState::Fresh,
                    },
                    created: true,
                };
                dir.store()?;
                Ok(dir)
            }
            Err(err) => Err(io(path, "read identity")(err)),
        }
    }

    /// Checks, without creating or changing anything, that `path` could be opened as member
    /// `member` of `cell` (absent and empty directories pass).
    pub fn check(path: &Path, cell: &str, member: NodeId) -> Result<(), DataDirError> {
        match fs::read_dir(path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(io(path, "list")(err)),
            Ok(mut entries) => {
                if entries.next().is_none() {
                    return Ok(());
                }
            }
        }
        match fs::read_to_string(path.join(IDENTITY_FILE)) {
            Ok(text) => {
                let identity = Self::parse(path, &text)?;
                if identity.cell != cell {
                    return Err(DataDirError::OtherCell {
                        path: path.to_path_buf(),
                        found: identity.cell,
                        expected: cell.to_string(),
                    });
                }
                if identity.member != member.0 {
                    return Err(DataDirError::OtherMember {
                        path: path.to_path_buf(),
                        cell: identity.cell,
                        found: identity.member,
                        expected: member.0,
                    });
                }
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(DataDirError::Foreign {
                path: path.to_path_buf(),
            }),
            Err(err) => Err(io(path, "read identity")(err)),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Identity, DataDirError> {
        // The format is read first on its own, so a future format with other keys is
        // refused as unknown rather than as damaged.
        #[derive(Deserialize)]
        struct FormatOnly {
            format: u32,
        }
        let damaged = |err: toml::de::Error| DataDirError::Damaged {
            path: path.to_path_buf(),
            message: err.message().replace('\n', " "),
        };
        let format: FormatOnly = toml::from_str(text).map_err(damaged)?;
        if format.format != FORMAT {
            return Err(DataDirError::UnknownFormat {
                path: path.to_path_buf(),
                found: format.format,
            });
        }
        toml::from_str(text).map_err(damaged)
    }

    fn store(&mut self) -> Result<(), DataDirError> {
        let text = toml::to_string(&self.identity).map_err(|err| DataDirError::Damaged {
            path: self.path.clone(),
            message: err.to_string(),
        })?;
        write_durably(&self.path, IDENTITY_FILE, text.as_bytes())
            .map_err(io(&self.path, "write identity"))
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Whether this start created the data dir.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The data dir's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the database lives.
    pub fn db_dir(&self) -> PathBuf {
        self.path.join("db")
    }

    /// Increments the member's boot number and stores it durably (fsynced) before returning
    /// it: the member seals client datagrams under keys that include it (docs/protocol.md
    /// §12.4), so a restart never reuses a (key, nonce) pair. The first boot is 1.
    pub fn next_boot(&mut self) -> Result<u32, DataDirError> {
        let last = match fs::read_to_string(self.path.join(BOOT_FILE)) {
            Ok(text) => text
                .trim()
                .parse::<u32>()
                .map_err(|_| DataDirError::BadBoot {
                    path: self.path.clone(),
                    text: text.chars().take(32).collect(),
                })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
            Err(err) => return Err(io(&self.path, "read boot number")(err)),
        };
        let boot = last.checked_add(1).ok_or(DataDirError::BootExhausted {
            path: self.path.clone(),
            boot: last,
        })?;
        write_durably(&self.path, BOOT_FILE, format!("{boot}\n").as_bytes())
            .map_err(io(&self.path, "write boot number"))?;
        Ok(boot)
    }

    /// Records a new voting state durably.
    pub fn set_state(&mut self, state: MemberState) -> Result<(), DataDirError> {
        if self.identity.state != state {
            self.identity.state = state;
            self.store()?;
        }
        Ok(())
    }
}
