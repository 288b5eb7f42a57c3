//! [`CliError`]: every way a command fails, and the exit status each one maps to.

use std::path::PathBuf;

/// The documented exit statuses (docs/cldcli.md). `lock -- COMMAND` otherwise exits with
/// COMMAND's own status (128 + N when a signal N ended it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The cell answered with an error (or a local file could not be read or written).
    CellError = 1,
    /// Bad command line, option, environment variable or input.
    Usage = 2,
    /// The cell could not be reached in time (or the session was lost).
    Unreachable = 3,
    /// `--try`: the lock is held elsewhere.
    LockHeld = 4,
    /// `check-seq`: the sequencer is stale.
    StaleSequencer = 5,
    /// `lock -- COMMAND`: the lock was lost while COMMAND ran.
    LockLost = 6,
}

impl Exit {
    /// The process status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Why a command failed. Each variant is one cause with a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or the environment is wrong.
    #[error("{0}")]
    Usage(String),
    /// The cell answered an operation on `path` with an error, or the call failed.
    #[error("{op} {path}: {source}")]
    Cell {
        /// The command (`put`, `ls`, ...).
        op: &'static str,
        /// The path it was about.
        path: String,
        /// The cause.
        source: cldc::Error,
    },
    /// A session with the cell could not be opened.
    #[error("cannot open a session with the cell at {cell}: {source}")]
    Connect {
        /// The cell as given (addresses or SRV name).
        cell: String,
        /// The cause.
        source: cldc::Error,
    },
    /// The cell did not answer within the timeout.
    #[error("{op}: the cell did not answer within {timeout}")]
    TimedOut {
        /// What was attempted.
        op: &'static str,
        /// The timeout, as given.
        timeout: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Local {
        /// The local file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--try` found the lock held by someone else.
    #[error("lock {0}: held elsewhere")]
    LockHeld(String),
    /// `check-seq`: the lock the sequencer describes is no longer held.
    #[error("sequencer for {0} is stale: the lock was released or re-granted")]
    StaleSequencer(String),
    /// The lock was lost while COMMAND ran; COMMAND's process group was terminated.
    #[error("lock {path} lost ({reason}); COMMAND's process group was sent SIGTERM, then SIGKILL")]
    LockLost {
        /// The locked path.
        path: String,
        /// Why it counts as lost.
        reason: String,
    },
    /// COMMAND could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `watch`: the session ended while watching.
    #[error("watch {0}: the session expired (the cell is unreachable)")]
    SessionLost(String),
}

impl CliError {
    /// Builds [`CliError::Cell`].
    pub fn cell(op: &'static str, path: &str, source: cldc::Error) -> CliError {
        CliError::Cell {
            op,
            path: path.to_string(),
            source,
        }
    }

    /// The exit status for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Cell { source, .. } => classify(source),
            CliError::Connect { source, .. } => match classify(source) {
                Exit::CellError if is_local_config(source) => Exit::Usage,
                other => other,
            },
            CliError::TimedOut { .. } | CliError::SessionLost(_) => Exit::Unreachable,
            CliError::Local { .. } | CliError::Spawn { .. } => Exit::CellError,
            CliError::LockHeld(_) => Exit::LockHeld,
            CliError::StaleSequencer(_) => Exit::StaleSequencer,
            CliError::LockLost { .. } => Exit::LockLost,
        }
    }
}

/// Whether a cldc error means "no answer from the cell" (3) or "the cell said no" (1).
pub fn classify(e: &cldc::Error) -> Exit {
    use cldc::Error as E;
    match e {
        E::Timeout
        | E::NotMaster
        | E::Io(_)
        | E::TaskStopped
        | E::SessionExpired
        | E::SessionClosed
        | E::UnknownSession
        | E::Discovery(_) => Exit::Unreachable,
        E::InvalidPath(_) => Exit::Usage,
        _ => Exit::CellError,
    }
}

fn is_local_config(e: &cldc::Error) -> bool {
    matches!(
        e,
        cldc::Error::InvalidUser
            | cldc::Error::InvalidSecret(_)
            | cldc::Error::MissingCellKey
            | cldc::Error::Config(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(source: cldc::Error) -> CliError {
        CliError::Connect {
            cell: "127.0.0.1:1".into(),
            source,
        }
    }

    #[test]
    fn each_failure_maps_to_its_documented_status() {
        let cases: Vec<(CliError, u8)> = vec![
            (CliError::Usage("x".into()), 2),
            (CliError::cell("cat", "/a", cldc::Error::NoSuchNode), 1),
            (CliError::cell("put", "/a", cldc::Error::StaleCas), 1),
            (CliError::cell("ls", "/a", cldc::Error::Timeout), 3),
            (CliError::cell("ls", "/a", cldc::Error::SessionExpired), 3),
            (connect(cldc::Error::Timeout), 3),
            (connect(cldc::Error::InvalidUser), 2),
            (connect(cldc::Error::TooManySessions), 1),
            (
                CliError::TimedOut {
                    op: "open",
                    timeout: "1s".into(),
                },
                3,
            ),
            (CliError::LockHeld("/l".into()), 4),
            (CliError::StaleSequencer("/l".into()), 5),
            (
                CliError::LockLost {
                    path: "/l".into(),
                    reason: "session in jeopardy".into(),
                },
                6,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit().code(), code, "{err}");
        }
    }

    #[test]
    fn cell_errors_name_the_command_the_path_and_the_cause() {
        let e = CliError::cell("cat", "/a/b", cldc::Error::NoSuchNode);
        assert_eq!(e.to_string(), "cat /a/b: no such node");
    }
}
