//! The fixed 84-byte datagram header (layout in `docs/protocol.md` §2).

use super::{
    Epoch, EventSeq, HEADER_LEN, MAGIC, MAX_FRAGMENTS, MAX_USER, PacketSeq, SessionId, VERSION,
};

/// What a datagram carries; the body type follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Client to server: a [`super::Request`]; `msg_seq` is the request seq.
    Request = 1,
    /// Server to client: a [`super::Response`]; `msg_seq` echoes the request seq.
    Reply = 2,
    /// Client to server: keep the session alive; empty body; `msg_seq` is a keepalive nonce.
    KeepAlive = 3,
    /// Server to client: a [`super::KeepAliveReply`]; `msg_seq` echoes the nonce.
    KeepAliveReply = 4,
    /// Server to client: an [`super::Event`]; `msg_seq` is the event seq.
    Event = 5,
    /// Client to server: acknowledges events up to `ack`; empty body.
    Ack = 6,
    /// Server to client: a [`super::NotMaster`] redirect; `msg_seq` echoes the packet it answers.
    NotMaster = 7,
}

impl Kind {
    /// The kind with this wire number.
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Request,
            2 => Kind::Reply,
            3 => Kind::KeepAlive,
            4 => Kind::KeepAliveReply,
            5 => Kind::Event,
            6 => Kind::Ack,
            7 => Kind::NotMaster,
            _ => return None,
        })
    }

    /// True for kinds only a client sends.
    pub fn is_client_to_server(self) -> bool {
        matches!(self, Kind::Request | Kind::KeepAlive | Kind::Ack)
    }
}

/// A user name: 1 to 32 bytes of UTF-8 without NUL, zero-padded to 32 bytes on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserName {
    bytes: [u8; MAX_USER],
    len: u8,
}

impl UserName {
    /// Checks and wraps a user name.
    pub fn new(name: &str) -> Result<UserName, HeaderError> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_USER || b.contains(&0) {
            return Err(HeaderError::BadUser);
        }
        let mut bytes = [0u8; MAX_USER];
        bytes[..b.len()].copy_from_slice(b);
        Ok(UserName {
            bytes,
            len: b.len() as u8,
        })
    }

    fn from_wire(field: &[u8; MAX_USER]) -> Result<UserName, HeaderError> {
        let len = field.iter().position(|&b| b == 0).unwrap_or(MAX_USER);
        if len == 0 || field[len..].iter().any(|&b| b != 0) {
            return Err(HeaderError::BadUser);
        }
        let name = core::str::from_utf8(&field[..len]).map_err(|_| HeaderError::BadUser)?;
        UserName::new(name)
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        // Only ever built from a &str in `new`, so this cannot fail.
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl core::fmt::Debug for UserName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Why a header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The kind byte is not a known [`Kind`].
    #[error("unknown packet kind {0}")]
    UnknownKind(u8),
    /// The reserved bytes are not zero.
    #[error("reserved bytes not zero")]
    Reserved,
    /// The user field is empty, not UTF-8, or has bytes after the padding starts.
    #[error("bad user name")]
    BadUser,
    /// Fragment count is 0 or above the limit, or the index is not below the count.
    #[error("bad fragment index or count")]
    BadFragment,
}

/// The fixed header of every datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the datagram carries.
    pub kind: Kind,
    /// The session this datagram belongs to.
    pub session: SessionId,
    /// The user whose secret signs the datagram.
    pub user: UserName,
    /// The sender's packet number in this direction; never reused.
    pub packet_seq: PacketSeq,
    /// Request seq, keepalive nonce or event seq, depending on [`Kind`].
    pub msg_seq: u64,
    /// Client: highest event seq received without gaps. Server: highest request seq answered.
    pub ack: EventSeq,
    /// Server: its master epoch. Client: the highest epoch it has seen.
    pub epoch: Epoch,
    /// This fragment's index, from 0.
    pub frag_index: u16,
    /// How many fragments the message has (at least 1).
    pub frag_count: u16,
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.kind as u8;
        out[6..8].copy_from_slice(&[0, 0]);
        out[8..16].copy_from_slice(&self.session.0.to_le_bytes());
        out[16..48].copy_from_slice(&self.user.bytes);
        out[48..56].copy_from_slice(&self.packet_seq.0.to_le_bytes());
        out[56..64].copy_from_slice(&self.msg_seq.to_le_bytes());
        out[64..72].copy_from_slice(&self.ack.0.to_le_bytes());
        out[72..80].copy_from_slice(&self.epoch.0.to_le_bytes());
        out[80..82].copy_from_slice(&self.frag_index.to_le_bytes());
        out[82..84].copy_from_slice(&self.frag_count.to_le_bytes());
    }

    /// Parses a header whose magic and version were already checked.
    pub fn read(b: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        let kind = Kind::from_u8(b[5]).ok_or(HeaderError::UnknownKind(b[5]))?;
        if b[6] != 0 || b[7] != 0 {
            return Err(HeaderError::Reserved);
        }
        let mut user = [0u8; MAX_USER];
        user.copy_from_slice(&b[16..48]);
        let frag_index = u16_at(b, 80);
        let frag_count = u16_at(b, 82);
        if frag_count == 0 || frag_count > MAX_FRAGMENTS || frag_index >= frag_count {
            return Err(HeaderError::BadFragment);
        }
        Ok(Header {
            kind,
            session: SessionId(u64_at(b, 8)),
            user: UserName::from_wire(&user)?,
            packet_seq: PacketSeq(u64_at(b, 48)),
            msg_seq: u64_at(b, 56),
            ack: EventSeq(u64_at(b, 64)),
            epoch: Epoch(u64_at(b, 72)),
            frag_index,
            frag_count,
        })
    }
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn u16_at(b: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
