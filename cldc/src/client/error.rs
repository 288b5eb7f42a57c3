//! [`Error`]: everything an async call can fail with, one variant per cause.

use crate::core::{CallError, ConfigError};
use crate::proto::{ErrorCode, PathError, SecretError};

/// Why a call on a [`super::Session`] or [`super::Handle`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not decode the request.
    #[error("server could not decode the request")]
    BadPacket,
    /// The cell does not know the session (it expired).
    #[error("the cell does not know this session")]
    UnknownSession,
    /// The random session id collided with an existing session.
    #[error("session id already in use")]
    SessionExists,
    /// The server answered that it is not the master.
    #[error("server is not the master")]
    NotMaster,
    /// The node does not exist.
    #[error("no such node")]
    NoSuchNode,
    /// The node already exists (create + exclusive).
    #[error("node already exists")]
    Exists,
    /// Not a directory.
    #[error("not a directory")]
    NotADirectory,
    /// Is a directory.
    #[error("is a directory")]
    IsADirectory,
    /// The directory has children.
    #[error("directory not empty")]
    DirectoryNotEmpty,
    /// Contents or request above the limit.
    #[error("contents or request too large")]
    TooLarge,
    /// The server rejected the path.
    #[error("server rejected the path")]
    BadPath,
    /// The handle's open mode forbids the operation.
    #[error("operation not allowed by the handle's open mode")]
    ModeForbids,
    /// `try_lock` found a conflicting holder.
    #[error("conflicting lock held")]
    LockConflict,
    /// A lock request is already queued on this handle.
    #[error("lock request already queued on this handle")]
    LockPending,
    /// The handle holds no lock.
    #[error("handle holds no lock")]
    NotLocked,
    /// `put_if` lost the compare-and-swap.
    #[error("content generation changed (compare-and-swap failed)")]
    StaleCas,
    /// The sequencer no longer describes a held lock.
    #[error("sequencer is stale")]
    StaleSequencer,
    /// The request straddled a change of master; retry.
    #[error("stale master epoch")]
    StaleEpoch,
    /// The handle is not open (closed, or its node deleted).
    #[error("invalid handle")]
    BadHandle,
    /// No reply within the call timeout.
    #[error("timed out")]
    Timeout,
    /// The server does not know the user.
    #[error("unknown user")]
    UnknownUser,
    /// The session expired: its lease and grace period ran out. Locks are lost.
    #[error("session expired")]
    SessionExpired,
    /// The server does not support the request.
    #[error("operation not supported by the server")]
    Unsupported,
    /// The server is overloaded.
    #[error("server busy")]
    Busy,
    /// The parent directory does not exist.
    #[error("parent directory does not exist")]
    NoParent,
    /// The server failed internally.
    #[error("internal server error")]
    Internal,
    /// The server sent an error code this library does not know.
    #[error("unrecognized server error code {0}")]
    Unrecognized(u16),
    /// The session was closed, or could not be established.
    #[error("session closed")]
    SessionClosed,
    /// Too many calls are waiting.
    #[error("too many calls queued")]
    QueueFull,
    /// A waiting `lock` was cancelled by `unlock` or `close` on its handle.
    #[error("lock request cancelled")]
    LockCancelled,
    /// The path breaks the path rules (checked before sending).
    #[error("invalid path: {0}")]
    InvalidPath(#[from] PathError),
    /// The user name is empty, too long or contains NUL.
    #[error("invalid user name")]
    InvalidUser,
    /// The secret is shorter than 32 or longer than 128 bytes.
    #[error("invalid secret: {0}")]
    InvalidSecret(#[from] SecretError),
    /// [`super::SessionOptions::cell_key`] was not set: a session needs the cell's public key.
    #[error("no cell public key given (SessionOptions::cell_key; `cld keygen` prints it)")]
    MissingCellKey,
    /// The user already has as many sessions as the cell allows.
    #[error("too many sessions for this user")]
    TooManySessions,
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    Config(#[from] ConfigError),
    /// The local socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered with a reply of the wrong type.
    #[error("unexpected reply from server")]
    UnexpectedReply,
    /// The contents do not match the checksum in their metadata.
    #[error("contents do not match their checksum")]
    ChecksumMismatch,
    /// The session's background task is gone (the runtime is shutting down).
    #[error("session task stopped")]
    TaskStopped,
    /// Cell discovery through DNS failed.
    #[cfg(feature = "dns")]
    #[error("cell discovery failed: {0}")]
    Discovery(#[from] crate::dns::DiscoveryError),
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Error {
        match code {
            ErrorCode::BadPacket | ErrorCode::BadSignature => Error::BadPacket,
            ErrorCode::UnknownSession => Error::UnknownSession,
            ErrorCode::SessionExists => Error::SessionExists,
            ErrorCode::NotMaster => Error::NotMaster,
            ErrorCode::NoSuchNode => Error::NoSuchNode,
            ErrorCode::Exists => Error::Exists,
            ErrorCode::NotADirectory => Error::NotADirectory,
            ErrorCode::IsADirectory => Error::IsADirectory,
            ErrorCode::DirectoryNotEmpty => Error::DirectoryNotEmpty,
            ErrorCode::TooLarge => Error::TooLarge,
            ErrorCode::BadPath => Error::BadPath,
            ErrorCode::ModeForbids => Error::ModeForbids,
            ErrorCode::LockConflict => Error::LockConflict,
            ErrorCode::LockPending => Error::LockPending,
            ErrorCode::NotLocked => Error::NotLocked,
            ErrorCode::StaleCas => Error::StaleCas,
            ErrorCode::StaleSequencer => Error::StaleSequencer,
            ErrorCode::StaleEpoch => Error::StaleEpoch,
            ErrorCode::BadHandle => Error::BadHandle,
            ErrorCode::Timeout => Error::Timeout,
            ErrorCode::UnknownUser => Error::UnknownUser,
            ErrorCode::SessionExpired => Error::SessionExpired,
            ErrorCode::Unsupported => Error::Unsupported,
            ErrorCode::Busy => Error::Busy,
            ErrorCode::NoParent => Error::NoParent,
            ErrorCode::Internal => Error::Internal,
            ErrorCode::TooManySessions => Error::TooManySessions,
            ErrorCode::Unrecognized(c) => Error::Unrecognized(c),
        }
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Server(code) => code.into(),
            CallError::Timeout => Error::Timeout,
            CallError::SessionExpired => Error::SessionExpired,
            CallError::SessionEnded => Error::SessionClosed,
            CallError::QueueFull => Error::QueueFull,
            CallError::Cancelled => Error::LockCancelled,
            CallError::TooLarge => Error::TooLarge,
        }
    }
}
