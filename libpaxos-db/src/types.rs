//! Newtypes for the identifiers and counters of the namespace.

use core::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
            Deserialize,
        )]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A client session, chosen by the server front end (never by this crate).
    SessionId,
    "s"
);
id_type!(
    /// A handle, numbered per session from 1.
    HandleId,
    "h"
);
id_type!(
    /// A client request's sequence number within its session; retries reuse it.
    RequestSeq,
    "seq"
);
id_type!(
    /// Identifies one incarnation of a path: re-creating a deleted path gives a new instance.
    /// Allocated from a counter in the replicated state.
    Instance,
    "i"
);
id_type!(
    /// Bumped by every write of a file's contents.
    ContentGeneration,
    "c"
);
id_type!(
    /// Bumped by every grant of an exclusive lock on a node.
    LockGeneration,
    "l"
);

/// Wall-clock time stamped on a command by the master that proposed it, in nanoseconds since
/// the Unix epoch. Replicas never read their own clock while applying.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct WallTime(pub u64);

/// A file's content checksum: the first 8 bytes of its SHA-256, big-endian.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Checksum(pub u64);

impl Checksum {
    /// The checksum of `data`.
    pub fn of(data: &[u8]) -> Checksum {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(data);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Checksum(u64::from_be_bytes(first))
    }
}
