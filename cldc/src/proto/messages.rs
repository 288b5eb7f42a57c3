//! The message bodies: requests, replies, events and their parts (`docs/protocol.md` §4-6).

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bounded;
use super::{
    ContentGeneration, Epoch, ErrorCode, HandleId, InstanceNumber, LockGeneration, RequestSeq,
};

macro_rules! flags {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $flag:ident = $bit:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u32);

        impl $name {
            $($(#[$fdoc])* pub const $flag: $name = $name($bit);)*
            /// No flags.
            pub const NONE: $name = $name(0);
            /// Every flag defined by this protocol version.
            pub const ALL: $name = $name(0 $(| $bit)*);

            /// True if every flag of `other` is set in `self`.
            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// True if bits outside [`Self::ALL`] are set (the server rejects these).
            pub fn has_unknown_bits(self) -> bool {
                self.0 & !Self::ALL.0 != 0
            }
        }

        impl core::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
    };
}

flags!(
    /// How a handle is opened; the values are CLD's `COM_*` bits plus ephemeral.
    OpenMode {
        /// Reading contents is allowed.
        READ = 0x01,
        /// Writing contents is allowed.
        WRITE = 0x02,
        /// Locking is allowed.
        LOCK = 0x04,
        /// Create the node if it is missing.
        CREATE = 0x10,
        /// With `CREATE`: fail with `Exists` if the node exists.
        EXCLUSIVE = 0x20,
        /// The node is, or is created as, a directory.
        DIRECTORY = 0x40,
        /// A node created by this open is deleted when the creating session ends.
        EPHEMERAL = 0x80,
    }
);

flags!(
    /// Which optional events a handle wants. `NodeDeleted` and `LockAcquired` are always sent.
    EventMask {
        /// The node's contents were written.
        CONTENTS_MODIFIED = 0x01,
        /// A child was created in this directory.
        CHILD_ADDED = 0x02,
        /// A child of this directory was deleted.
        CHILD_REMOVED = 0x04,
        /// Another session asked for a lock that conflicts with one this handle holds.
        LOCK_CONFLICT = 0x08,
    }
);

flags!(
    /// Properties of a node.
    NodeFlags {
        /// The node is a directory.
        DIRECTORY = 0x01,
        /// The node is deleted when the session that created it ends.
        EPHEMERAL = 0x02,
    }
);

/// Shared or exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockMode {
    /// Many holders at once, none exclusive.
    Shared,
    /// One holder, no shared holders.
    Exclusive,
}

/// A node's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// Changes when the path is created anew.
    pub instance: InstanceNumber,
    /// Rises with every write of the contents.
    pub content_generation: ContentGeneration,
    /// Rises with every exclusive grant of the lock.
    pub lock_generation: LockGeneration,
    /// Creation time, since the Unix epoch, as stamped by the master in the command.
    pub created: Duration,
    /// Last contents change, since the Unix epoch.
    pub modified: Duration,
    /// Contents size in bytes (0 for directories).
    pub size: u32,
    /// [`NodeMeta::checksum_of`] the contents.
    pub checksum: u64,
    /// Directory, ephemeral.
    pub flags: NodeFlags,
}

impl NodeMeta {
    /// The checksum of contents: the first 8 bytes of their SHA-256, little-endian.
    pub fn checksum_of(data: &[u8]) -> u64 {
        let d = Sha256::digest(data);
        let mut x = [0u8; 8];
        x.copy_from_slice(&d[..8]);
        u64::from_le_bytes(x)
    }
}

/// One child in a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The child's name (one path component).
    pub name: String,
    /// The child's metadata.
    pub meta: NodeMeta,
}

/// Proof of holding a lock, checkable by any server (fencing for downstream services).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sequencer {
    /// The locked node's path.
    pub path: String,
    /// The mode in which the lock is held.
    pub mode: LockMode,
    /// The node's lock generation at the grant.
    pub lock_generation: LockGeneration,
    /// The node's instance number at the grant.
    pub instance: InstanceNumber,
}

/// A client's request (body of a [`super::Kind::Request`] datagram).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Create the session named in the header. Must be request seq 1.
    NewSession,
    /// End the session: close its handles, release its locks, delete its ephemeral nodes.
    EndSession,
    /// Open (and maybe create) a node.
    Open {
        /// Absolute path.
        path: String,
        /// Open mode.
        mode: OpenMode,
        /// Optional events wanted on this handle.
        events: EventMask,
    },
    /// Close a handle, releasing its lock and queued lock request.
    Close {
        /// The handle.
        handle: HandleId,
    },
    /// Read contents and metadata. Needs `READ`.
    GetContentsAndStat {
        /// The handle.
        handle: HandleId,
    },
    /// Metadata of a path; no handle needed.
    Stat {
        /// Absolute path.
        path: String,
    },
    /// Children of a directory, with their metadata.
    ListDir {
        /// Absolute path of a directory.
        path: String,
    },
    /// Replace the contents. Needs `WRITE`. With `cas`, only if the generation still matches.
    Put {
        /// The handle.
        handle: HandleId,
        /// Compare-and-swap: the content generation the writer last saw.
        cas: Option<ContentGeneration>,
        /// The new contents.
        #[serde(with = "bounded::bytes")]
        data: Vec<u8>,
    },
    /// Delete a node by path; a directory must be empty.
    Delete {
        /// Absolute path.
        path: String,
    },
    /// Take the handle's lock. Needs `LOCK`.
    Lock {
        /// The handle.
        handle: HandleId,
        /// Shared or exclusive.
        mode: LockMode,
        /// On conflict: queue (reply `LockQueued`, event `LockAcquired` later) or fail.
        wait: bool,
    },
    /// Release the handle's lock, or cancel its queued request.
    Unlock {
        /// The handle.
        handle: HandleId,
    },
    /// The sequencer of the lock the handle holds.
    GetSequencer {
        /// The handle.
        handle: HandleId,
    },
    /// Is this sequencer still current?
    CheckSequencer {
        /// The sequencer to check.
        sequencer: Sequencer,
    },
    /// The cell's view, for operators.
    Status,
    /// Open as [`Request::Open`] does; a node this open creates carries `lock_delay` (at
    /// most 60 s; Chubby's lock-delay): when a holder's session expires, its lock is granted
    /// to nobody else until the delay has passed. Opening an existing node leaves its delay
    /// unchanged. (Variant 14: added after `Status`, so earlier encodings are unchanged.)
    OpenWith {
        /// Absolute path.
        path: String,
        /// Open mode.
        mode: OpenMode,
        /// Optional events wanted on this handle.
        events: EventMask,
        /// The lock-delay of a node this open creates.
        lock_delay: Duration,
    },
}

/// The longest lock-delay a node may carry ([`Request::OpenWith`]).
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

/// A successful reply; each request has its own variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// `NewSession` succeeded; the lease runs from when the server received the request.
    SessionCreated {
        /// Lease granted.
        lease: Duration,
    },
    /// `EndSession` succeeded.
    SessionEnded,
    /// `Open` succeeded.
    Opened {
        /// The new handle.
        handle: HandleId,
        /// The node's metadata.
        meta: NodeMeta,
    },
    /// `Close` succeeded.
    Closed,
    /// `GetContentsAndStat` result.
    Contents {
        /// Metadata.
        meta: NodeMeta,
        /// The whole contents.
        #[serde(with = "bounded::bytes")]
        data: Vec<u8>,
    },
    /// `Stat` result.
    Stat {
        /// Metadata.
        meta: NodeMeta,
    },
    /// `ListDir` result, sorted by name.
    Listing {
        /// The children.
        #[serde(with = "bounded::seq")]
        entries: Vec<DirEntry>,
    },
    /// `Put` succeeded.
    Written {
        /// Metadata after the write.
        meta: NodeMeta,
    },
    /// `Delete` succeeded.
    Deleted,
    /// `Lock` granted.
    Locked {
        /// The new lock's sequencer.
        sequencer: Sequencer,
    },
    /// `Lock` with `wait` queued; a `LockAcquired` event follows the grant.
    LockQueued,
    /// `Unlock` succeeded.
    Unlocked,
    /// `GetSequencer` result.
    Sequencer {
        /// The sequencer.
        sequencer: Sequencer,
    },
    /// `CheckSequencer`: the sequencer is current.
    SequencerValid,
    /// `Status` result.
    Status(CellStatus),
}

/// The answer to a request (body of a [`super::Kind::Reply`] datagram).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Success.
    Ok(Reply),
    /// Failure, with its code.
    Err(ErrorCode),
}

/// Body of a [`super::Kind::KeepAliveReply`] datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepAliveReply {
    /// The lease, counted from when the server received the keepalive.
    pub lease: Duration,
}

/// Body of a [`super::Kind::NotMaster`] datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotMaster {
    /// The client address of the member this server believes is master, if it knows one.
    pub hint: Option<SocketAddr>,
}

/// An event the server sends on a session (body of a [`super::Kind::Event`] datagram).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The node's contents were written (mask `CONTENTS_MODIFIED`).
    ContentsModified {
        /// The watching handle.
        handle: HandleId,
        /// The generation after the write.
        generation: ContentGeneration,
    },
    /// A child was created (mask `CHILD_ADDED`).
    ChildAdded {
        /// The watching handle (on the directory).
        handle: HandleId,
        /// The child's name.
        name: String,
    },
    /// A child was deleted (mask `CHILD_REMOVED`).
    ChildRemoved {
        /// The watching handle (on the directory).
        handle: HandleId,
        /// The child's name.
        name: String,
    },
    /// The node was deleted; the handle is now useless (always sent).
    NodeDeleted {
        /// The handle.
        handle: HandleId,
    },
    /// A queued lock request was granted (always sent).
    LockAcquired {
        /// The handle that now holds the lock.
        handle: HandleId,
        /// The new lock's sequencer.
        sequencer: Sequencer,
    },
    /// Another session wants a lock that conflicts with one this handle holds
    /// (mask `LOCK_CONFLICT`).
    LockConflict {
        /// The holding handle.
        handle: HandleId,
    },
    /// A new master took over; events not yet acknowledged may have been lost.
    MasterFailover {
        /// The new master's epoch.
        epoch: Epoch,
    },
}

/// One member in a [`CellStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Member id in the cell configuration.
    pub id: u64,
    /// Its client address.
    pub addr: SocketAddr,
    /// Whether it is the master.
    pub is_master: bool,
    /// Whether the answering server can currently reach it.
    pub reachable: bool,
    /// Its commit index, as last known.
    pub commit_index: u64,
    /// Its applied index, as last known.
    pub applied_index: u64,
}

/// The cell as the answering server sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellStatus {
    /// The current master epoch.
    pub epoch: Epoch,
    /// The members.
    #[serde(with = "bounded::seq")]
    pub members: Vec<MemberStatus>,
    /// Open sessions.
    pub sessions: u64,
    /// The highest request seq answered for the asking session.
    pub last_request: RequestSeq,
    /// The answering master's operator counters by name (drops by cause, replays, pending
    /// handshakes, cookies sent, ...; docs/protocol.md §5.6), in name order.
    #[serde(with = "bounded::seq")]
    pub counters: Vec<StatusCounter>,
}

/// One named counter in [`CellStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounter {
    /// The counter's name, e.g. `bad_tag`.
    pub name: String,
    /// Its value.
    pub value: u64,
}

/// The unsigned 8-byte datagram a node sends back when it gets a version it does not speak:
/// magic, a 0 version byte, then the lowest and highest versions it speaks, then 2 zero bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionReject {
    /// Lowest version the sender speaks.
    pub min: u8,
    /// Highest version the sender speaks.
    pub max: u8,
}

impl VersionReject {
    /// Wire size.
    pub const LEN: usize = 8;

    /// The datagram.
    pub fn encode(&self) -> [u8; 8] {
        let m = super::MAGIC;
        [m[0], m[1], m[2], m[3], 0, self.min, self.max, 0]
    }

    /// Parses a datagram; `None` if it is not a version reject.
    pub fn decode(b: &[u8]) -> Option<VersionReject> {
        if b.len() != Self::LEN || b[..4] != super::MAGIC || b[4] != 0 || b[7] != 0 {
            return None;
        }
        Some(VersionReject {
            min: b[5],
            max: b[6],
        })
    }
}
