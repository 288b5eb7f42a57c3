//! Commands (the only way the namespace changes), their replies and the events they cause.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::mode::{EventMask, LockMode, OpenMode};
use crate::node::{HandleRef, Node};
use crate::path::PathError;
use crate::types::{
    ContentGeneration, HandleId, Instance, LockGeneration, RequestSeq, SessionId, WallTime,
};
use libpaxos::Slot;

/// The longest user name `NewSession` accepts (CLD's `CLD_MAX_USERNAME`, and the wire
/// protocol's user field).
pub const MAX_USER_NAME: usize = 32;

/// The length of a session's key material in `ClientOp::NewSession::keys` (the postcard of
/// cldc's `SessionKeys`, opaque here).
pub const SESSION_KEYS_LEN: usize = 64;

/// The longest lock-delay a node may carry (Chubby's bound).
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

/// One replicated command, postcard-encoded into `libpaxos::Payload::Command`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A client's request, deduplicated by `(session, seq)`.
    Client(ClientRequest),
    /// The master decided that a session's lease ran out: release its locks, close its
    /// handles, delete its ephemeral nodes.
    ExpireSession {
        /// The session.
        session: SessionId,
        /// When the master decided it.
        time: WallTime,
    },
    /// Changes nothing (a barrier).
    Noop,
    /// Lock-delays ended: every lock whose delay ended at or before `time` is unblocked and
    /// its waiters promoted (and told). The master proposes it when a delay it knows of ends;
    /// a lock request after the end also unblocks its lock.
    EndLockDelays {
        /// The master's wall clock when it proposed this.
        time: WallTime,
    },
    /// Removes the tombstones of sessions that ended before `before` (their ids may then be
    /// created again).
    PurgeTombstones {
        /// Tombstones with `ended_at < before` go.
        before: WallTime,
    },
    /// A new master restarts every running lock-delay from its takeover, on its own wall
    /// clock: each blocked lock's end becomes `max(end, time + the node's delay)`. Proposed
    /// first in its epoch, before any lock request, so a delay never ends by comparing the
    /// wall clocks of two masters (docs/database.md). (Last variant: older logs decode.)
    RestartLockDelays {
        /// The new master's wall clock when it proposed this.
        time: WallTime,
    },
}

impl Command {
    /// The bytes to propose.
    pub fn encode(&self) -> Vec<u8> {
        // Commands carry no checksum: the log record around them has one.
        postcard::to_allocvec(self).expect("postcard encodes plain data into a Vec")
    }

    /// Decodes proposed bytes.
    pub fn decode(bytes: &[u8]) -> Result<Command, codec::DecodeError> {
        postcard::from_bytes(bytes).map_err(|e| codec::DecodeError::Postcard(e.to_string()))
    }
}

/// A client request as the master stamped it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The requesting session.
    pub session: SessionId,
    /// The request's number in that session; a retry reuses it.
    pub seq: RequestSeq,
    /// The master's wall clock when it proposed the request.
    pub time: WallTime,
    /// What to do.
    pub op: ClientOp,
}

/// The operations a client can ask for that change state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Create the session `ClientRequest::session`.
    NewSession {
        /// The authenticated user.
        user: String,
        /// The lease granted.
        lease: Duration,
        /// The session's key material: [`SESSION_KEYS_LEN`] bytes (the postcard of cldc's
        /// `SessionKeys`, opaque here), kept in the session record and its tombstone.
        keys: Vec<u8>,
    },
    /// End the session: as expiry, but asked for.
    EndSession,
    /// Open (and maybe create) a node.
    Open {
        /// Absolute path.
        path: String,
        /// Open mode.
        mode: OpenMode,
        /// Events wanted on this handle.
        events: EventMask,
    },
    /// Close a handle, releasing its lock or queued request.
    Close {
        /// The handle.
        handle: HandleId,
    },
    /// Replace a file's contents, optionally only if its content generation is `cas`.
    Put {
        /// A handle opened with `WRITE`.
        handle: HandleId,
        /// The new contents.
        data: Vec<u8>,
        /// Compare-and-swap: the content generation the writer last saw.
        cas: Option<ContentGeneration>,
    },
    /// Delete a node by path (a directory must be empty).
    Delete {
        /// Absolute path.
        path: String,
    },
    /// Take a lock on the handle's node.
    Lock {
        /// A handle opened with `LOCK`.
        handle: HandleId,
        /// Shared or exclusive.
        mode: LockMode,
        /// Queue on conflict (`true`) or fail at once (`false`).
        wait: bool,
    },
    /// Release the handle's lock, or withdraw its queued request.
    Unlock {
        /// The handle.
        handle: HandleId,
    },
    /// Is this sequencer still the current holder's?
    CheckSequencer {
        /// The sequencer to check.
        sequencer: Sequencer,
    },
    /// Open as [`ClientOp::Open`] does (a later variant, so older logs decode unchanged); if this open creates the node, it carries
    /// `lock_delay` (at most [`MAX_LOCK_DELAY`]). Opening an existing node leaves its delay
    /// unchanged.
    OpenWith {
        /// Absolute path.
        path: String,
        /// Open mode.
        mode: OpenMode,
        /// Events wanted on this handle.
        events: EventMask,
        /// The lock-delay of a node this open creates.
        lock_delay: Duration,
    },
    /// Bars the request numbered `ClientRequest::seq` (docs/protocol.md §9.2): if the session
    /// has not executed that seq yet, it is recorded as executed with the reply
    /// [`CmdError::Barred`], so the barred request, arriving later, is answered from the cache
    /// (or is too old) and never executes. Replies `Response::Noop`. (A later variant, so
    /// earlier encodings decode unchanged.)
    Barrier,
}

/// Proof of holding a lock, for fencing downstream services.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sequencer {
    /// The locked node.
    pub path: String,
    /// Its incarnation.
    pub instance: Instance,
    /// The mode held.
    pub mode: LockMode,
    /// The node's lock generation at the grant.
    pub generation: LockGeneration,
}

/// What a successful command returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The session exists now.
    SessionCreated,
    /// The session is gone, with its handles, locks and ephemeral nodes.
    SessionEnded,
    /// A handle was opened.
    Opened {
        /// The new handle.
        handle: HandleId,
        /// Whether this open created the node.
        created: bool,
        /// The node's metadata.
        node: Node,
    },
    /// The handle is closed.
    Closed,
    /// The contents were replaced.
    Written {
        /// The node's new metadata.
        node: Node,
    },
    /// The node is gone.
    Deleted,
    /// The lock is held.
    Locked {
        /// Proof of it.
        sequencer: Sequencer,
    },
    /// The request is queued; a `LockAcquired` event follows the grant.
    LockQueued,
    /// The lock or queued request is released.
    Unlocked,
    /// The sequencer is current.
    SequencerValid,
    /// Nothing happened (no-op command or log filler).
    Noop,
}

/// Which permission an operation needed that the handle's mode lacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// `READ`.
    Read,
    /// `WRITE`.
    Write,
    /// `LOCK`.
    Lock,
}

/// A combination of open flags that makes no sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModeRule {
    /// `EXCLUSIVE` without `CREATE`.
    ExclusiveWithoutCreate,
    /// `EPHEMERAL` without `CREATE`.
    EphemeralWithoutCreate,
    /// `EPHEMERAL` with `DIRECTORY`: only files can be ephemeral.
    EphemeralDirectory,
    /// `WRITE` with `DIRECTORY`: directories have no contents to write.
    WriteDirectory,
}

/// Why a command failed. One variant per cause; the reply carries it to the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CmdError {
    /// The path breaks a syntax rule.
    #[error("bad path: {0}")]
    BadPath(PathError),
    /// The committed bytes are not a command.
    #[error("the committed bytes do not decode as a command")]
    MalformedCommand,
    /// Proposed under an epoch older than the namespace's: not executed, retry.
    #[error("command from epoch {command} is older than the current epoch {current}")]
    StaleEpoch {
        /// The command's epoch.
        command: u64,
        /// The namespace's epoch.
        current: u64,
    },
    /// No such session.
    #[error("session {0} does not exist")]
    UnknownSession(SessionId),
    /// NewSession for a session that exists or has ended and left a tombstone (for a retry:
    /// under another user or with other keys).
    #[error("session {0} already exists")]
    SessionExists(SessionId),
    /// NewSession's user name is empty, longer than 32 bytes, or contains NUL.
    #[error("user name must be 1 to 32 bytes without NUL")]
    BadUserName,
    /// NewSession's key material is not [`SESSION_KEYS_LEN`] bytes.
    #[error("session keys must be {SESSION_KEYS_LEN} bytes, got {len}")]
    BadSessionKeys {
        /// The length received.
        len: usize,
    },
    /// A `ClientOp::Barrier` for this request's seq was applied first: it never executes.
    #[error("the request was barred by a later request")]
    Barred,
    /// The request number is older than the session's last one, whose reply is all we keep.
    #[error("request {seq} is older than the last one executed ({last}); its reply is gone")]
    RequestTooOld {
        /// The request's seq.
        seq: RequestSeq,
        /// The session's last seq.
        last: RequestSeq,
    },
    /// The session limit is reached.
    #[error("too many sessions (limit {0})")]
    TooManySessions(u64),
    /// The per-session handle limit is reached.
    #[error("too many open handles in this session (limit {0})")]
    TooManyHandles(u64),
    /// No such handle in this session.
    #[error("handle {0} is not open")]
    UnknownHandle(HandleId),
    /// The open flags contradict each other.
    #[error("invalid open mode: {0:?}")]
    BadMode(ModeRule),
    /// The handle's mode does not allow the operation.
    #[error("the handle was not opened with {0:?} permission")]
    ModeForbids(Permission),
    /// The node does not exist.
    #[error("no such node")]
    NoSuchNode,
    /// `CREATE | EXCLUSIVE` on an existing node.
    #[error("node already exists")]
    Exists,
    /// The parent of a node to create does not exist.
    #[error("parent directory does not exist")]
    ParentMissing,
    /// The parent of a node to create is a file.
    #[error("parent is a file, not a directory")]
    ParentNotDirectory,
    /// Opened with `DIRECTORY` but the node is a file.
    #[error("node is a file, not a directory")]
    NotADirectory,
    /// Opened without `DIRECTORY` but the node is a directory.
    #[error("node is a directory (open it with DIRECTORY)")]
    IsADirectory,
    /// The root cannot be deleted.
    #[error("the root directory cannot be deleted")]
    RootImmutable,
    /// Deleting a directory that has children.
    #[error("directory is not empty")]
    DirectoryNotEmpty,
    /// The contents exceed the file size limit.
    #[error("file of {size} bytes exceeds the limit of {limit}")]
    FileTooLarge {
        /// The size written.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Compare-and-swap lost.
    #[error("content generation is {actual}, not the expected {expected}")]
    CasConflict {
        /// What the writer expected.
        expected: ContentGeneration,
        /// What the node has.
        actual: ContentGeneration,
    },
    /// Try-lock found a conflicting holder or queue.
    #[error("the lock is held in a conflicting mode")]
    LockConflict,
    /// This handle already holds the lock (locks are not re-entrant).
    #[error("this handle already holds the lock")]
    AlreadyHeld,
    /// This handle is already queued for the lock.
    #[error("this handle is already waiting for the lock")]
    AlreadyWaiting,
    /// The per-node wait queue is full.
    #[error("too many waiters on this lock (limit {0})")]
    TooManyWaiters(u64),
    /// A shared grant would exceed the per-node holder limit.
    #[error("too many shared holders on this lock (limit {0})")]
    TooManyHolders(u64),
    /// Unlock of a handle that neither holds nor waits.
    #[error("this handle holds no lock and waits for none")]
    NotLocked,
    /// The sequencer's node, instance, mode or generation is no longer current.
    #[error("sequencer is stale")]
    StaleSequencer,
    /// A lock-delay above [`MAX_LOCK_DELAY`].
    #[error("lock-delay of {got_ms} ms exceeds the maximum of {max_ms} ms")]
    LockDelayTooLong {
        /// The maximum, in milliseconds.
        max_ms: u64,
        /// What was asked, in milliseconds.
        got_ms: u64,
    },
}

/// What a command answers.
pub type Reply = Result<Response, CmdError>;

/// What happened that some handle should hear about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// The file's contents were written (`EventMask::MODIFIED`).
    ContentModified,
    /// A child appeared in the directory (`EventMask::CHILDREN`).
    ChildAdded {
        /// Its name.
        name: String,
    },
    /// A child left the directory (`EventMask::CHILDREN`).
    ChildRemoved {
        /// Its name.
        name: String,
    },
    /// The node was deleted; the handle is closed. Always delivered.
    NodeDeleted,
    /// A queued lock request was granted. Always delivered.
    LockAcquired {
        /// Proof of it.
        sequencer: Sequencer,
    },
    /// Someone requested a lock conflicting with this handle's (`EventMask::LOCK_CONFLICT`).
    LockConflict,
}

/// An event for one handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Who must be told.
    pub to: HandleRef,
    /// What.
    pub event: EventKind,
}

/// The result of applying one committed slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The slot applied.
    pub slot: Slot,
    /// The client request answered, if the slot held one.
    pub request: Option<(SessionId, RequestSeq)>,
    /// The reply (for a retried request: the cached reply of its first execution).
    pub reply: Reply,
    /// Events caused, in a deterministic order.
    pub events: Vec<Notice>,
}
