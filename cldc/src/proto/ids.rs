//! Newtypes for the numbers that travel on the wire, so they cannot be mixed up.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A session, chosen at random by the client when it creates the session.
    SessionId
);
id_type!(
    /// A handle on an open node, allocated by the server per session.
    HandleId
);
id_type!(
    /// A datagram's number in one direction of one session; never reused, used against replays.
    PacketSeq
);
id_type!(
    /// A request's number within its session: the server executes each (session, seq) once.
    RequestSeq
);
id_type!(
    /// An event's number within a session and master epoch, acknowledged cumulatively.
    EventSeq
);
id_type!(
    /// The master's term: it rises with every change of master.
    Epoch
);
id_type!(
    /// Changes every time a path is created anew, so old handles cannot reach a new node.
    InstanceNumber
);
id_type!(
    /// Rises with every write of a node's contents; the compare-and-swap token of `Put`.
    ContentGeneration
);
id_type!(
    /// Rises with every exclusive grant of a node's lock; the fencing number of sequencers.
    LockGeneration
);

impl PacketSeq {
    /// The sequence number after this one.
    pub fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

impl RequestSeq {
    /// The sequence number after this one.
    pub fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}
