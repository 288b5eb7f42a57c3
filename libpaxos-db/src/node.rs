//! Nodes (files and directories), sessions and handles: the records of the namespace.

use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::Reply;
use crate::mode::{EventMask, OpenMode};
use crate::types::{
    Checksum, ContentGeneration, HandleId, Instance, LockGeneration, RequestSeq, SessionId,
    WallTime,
};

/// File or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeKind {
    /// Holds up to the configured file size limit of bytes.
    File,
    /// Holds children.
    Directory,
}

/// A node's metadata, which is also what Stat returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    /// File or directory.
    pub kind: NodeKind,
    /// This incarnation of the path.
    pub instance: Instance,
    /// Bumped by every write.
    pub content_generation: ContentGeneration,
    /// Bumped by every exclusive lock grant.
    pub lock_generation: LockGeneration,
    /// When it was created (the creating command's time).
    pub created: WallTime,
    /// When its contents last changed (the writing command's time).
    pub modified: WallTime,
    /// Content length in bytes (0 for directories).
    pub size: u32,
    /// Checksum of the contents.
    pub checksum: Checksum,
    /// The session whose end deletes this node, for ephemeral nodes.
    pub ephemeral_owner: Option<SessionId>,
}

/// A client session as the replicated state knows it. Keep-alives are not replicated: lease
/// tracking is the master's, and expiry arrives as a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who opened it.
    pub user: String,
    /// The lease the session was granted.
    pub lease: Duration,
    /// The session's key material as `NewSession` carried it (opaque here).
    pub keys: Vec<u8>,
    /// When it was created.
    pub created: WallTime,
    /// The next handle number to give out.
    pub next_handle: HandleId,
    /// The last request executed for this session.
    pub last_seq: RequestSeq,
    /// That request's reply, returned again to a retry.
    pub last_reply: Reply,
}

/// What remains of an ended session (docs/protocol.md §10.4, §17.1) until
/// `Command::PurgeTombstones` removes it: its id cannot be created again meanwhile, and the
/// front end can still authenticate the session's last messages with its keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Who owned the session.
    pub user: String,
    /// The session's key material.
    pub keys: Vec<u8>,
    /// When it ended (the ending command's time).
    pub ended_at: WallTime,
}

/// An open handle on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// The node's path.
    pub path: String,
    /// The incarnation it was opened on.
    pub instance: Instance,
    /// How it was opened.
    pub mode: OpenMode,
    /// Which optional events it wants.
    pub events: EventMask,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The child's name (last component).
    pub name: String,
    /// Its metadata.
    pub node: Node,
}

/// A session-and-handle pair: who holds or waits for a lock, who receives an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HandleRef {
    /// The session.
    pub session: SessionId,
    /// The handle within it.
    pub handle: HandleId,
}
