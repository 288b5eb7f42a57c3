//! Open modes, event masks and lock modes.

use core::ops::BitOr;

use serde::{Deserialize, Serialize};

/// How a handle was opened (CLD's `COM_*` flags plus Chubby's ephemeral bit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpenMode(u8);

impl OpenMode {
    /// No flags.
    pub const NONE: OpenMode = OpenMode(0);
    /// Reading contents and listing is allowed.
    pub const READ: OpenMode = OpenMode(0x01);
    /// Writing contents is allowed (files only).
    pub const WRITE: OpenMode = OpenMode(0x02);
    /// Locking and unlocking is allowed.
    pub const LOCK: OpenMode = OpenMode(0x04);
    /// Create the node if it does not exist.
    pub const CREATE: OpenMode = OpenMode(0x10);
    /// With `CREATE`: fail if the node exists.
    pub const EXCLUSIVE: OpenMode = OpenMode(0x20);
    /// The node is, or is to be created as, a directory.
    pub const DIRECTORY: OpenMode = OpenMode(0x40);
    /// With `CREATE`: a node created by this open is deleted when the session ends.
    pub const EPHEMERAL: OpenMode = OpenMode(0x80);

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// A mode from raw bits; `None` if an undefined bit (0x08) is set.
    pub const fn from_bits(bits: u8) -> Option<OpenMode> {
        if bits & 0x08 != 0 {
            None
        } else {
            Some(OpenMode(bits))
        }
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: OpenMode) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of flags (`|` in const context).
    pub const fn union(self, other: OpenMode) -> OpenMode {
        OpenMode(self.0 | other.0)
    }
}

impl BitOr for OpenMode {
    type Output = OpenMode;
    fn bitor(self, rhs: OpenMode) -> OpenMode {
        OpenMode(self.0 | rhs.0)
    }
}

/// Which optional events a handle wants. Node deletion and lock grants are always delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventMask(u8);

impl EventMask {
    /// No optional events.
    pub const NONE: EventMask = EventMask(0);
    /// The file's contents were written.
    pub const MODIFIED: EventMask = EventMask(0x01);
    /// A child was added to or removed from the directory.
    pub const CHILDREN: EventMask = EventMask(0x02);
    /// Someone asked for a lock that conflicts with the one this handle holds.
    pub const LOCK_CONFLICT: EventMask = EventMask(0x04);

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// A mask from raw bits; unknown bits are kept (they select nothing).
    pub const fn from_bits(bits: u8) -> EventMask {
        EventMask(bits)
    }

    /// Whether every event of `other` is selected.
    pub const fn contains(self, other: EventMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of events (`|` in const context).
    pub const fn union(self, other: EventMask) -> EventMask {
        EventMask(self.0 | other.0)
    }
}

impl BitOr for EventMask {
    type Output = EventMask;
    fn bitor(self, rhs: EventMask) -> EventMask {
        EventMask(self.0 | rhs.0)
    }
}

/// Shared or exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockMode {
    /// Many holders at once, none exclusive.
    Shared,
    /// One holder, nobody else.
    Exclusive,
}
