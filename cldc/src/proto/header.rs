//! The fixed 60-byte datagram header (layout in `docs/protocol.md` §2).

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
    /// Client to server, not sealed: the first handshake message ([`super::HandshakeInit`]).
    HandshakeInit = 8,
    /// Server to client, not sealed (the Noise message authenticates itself): the second
    /// handshake message, carrying a [`super::HandshakeOutcome`].
    HandshakeReply = 9,
    /// Server to client, not sealed: a cookie to repeat in the next `HandshakeInit`
    /// (the cell is under a handshake flood).
    Cookie = 10,
    /// Server to client: "re-send under my epoch": the master of a newer epoch answers a
    /// datagram sealed under an older epoch's key this way and acts on nothing else.
    Retry = 11,
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
            8 => Kind::HandshakeInit,
            9 => Kind::HandshakeReply,
            10 => Kind::Cookie,
            11 => Kind::Retry,
            _ => return None,
        })
    }

    /// True for kinds only a client sends.
    pub fn is_client_to_server(self) -> bool {
        matches!(
            self,
            Kind::Request | Kind::KeepAlive | Kind::Ack | Kind::HandshakeInit
        )
    }

    /// True for the kinds that are not sealed with session keys (the handshake).
    pub fn is_unsealed(self) -> bool {
        matches!(
            self,
            Kind::HandshakeInit | Kind::HandshakeReply | Kind::Cookie
        )
    }
}

/// A user name: 1 to 32 bytes of UTF-8 without NUL, zero-padded to 32 bytes on the wire
/// (in the clear part of a `HandshakeInit`, where it selects the user's secret).
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

    /// Parses the zero-padded wire form.
    pub fn from_wire(field: &[u8; MAX_USER]) -> Result<UserName, HeaderError> {
        let len = field.iter().position(|&b| b == 0).unwrap_or(MAX_USER);
        if len == 0 || field[len..].iter().any(|&b| b != 0) {
            return Err(HeaderError::BadUser);
        }
        let name = core::str::from_utf8(&field[..len]).map_err(|_| HeaderError::BadUser)?;
        UserName::new(name)
    }

    /// The zero-padded wire form.
    pub fn to_wire(&self) -> [u8; MAX_USER] {
        self.bytes
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
    /// Padding on a datagram that may not carry any (only client datagrams are padded).
    #[error("padding on a datagram that may not carry any")]
    BadPadding,
    /// The role byte is not a known [`Role`], or does not fit the kind.
    #[error("unknown role or role does not fit the kind")]
    BadRole,
    /// The user field is empty, not UTF-8, or has bytes after the padding starts.
    #[error("bad user name")]
    BadUser,
    /// Fragment count is 0 or above the limit, or the index is not below the count.
    #[error("bad fragment index or count")]
    BadFragment,
}

/// Which kind of party sealed a datagram; part of the key derivation (docs/protocol.md §12.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Role {
    /// The session's client (and every handshake datagram).
    Client = 0,
    /// The master of the header's epoch, with the session's own packet counter.
    Master = 1,
    /// A member answering without per-session state: `NotMaster` from a non-master or a
    /// deposed master, and answers for ended sessions, numbered from one counter per
    /// (member, boot) shared by every session; also the (unsealed) handshake answers.
    Stateless = 2,
}

impl Role {
    fn from_u8(b: u8) -> Option<Role> {
        Some(match b {
            0 => Role::Client,
            1 => Role::Master,
            2 => Role::Stateless,
            _ => return None,
        })
    }
}

/// Who sealed a datagram: the inputs of its sealing key besides the session's root key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sender {
    /// Client, master or stateless member.
    pub role: Role,
    /// Server: the sender's master epoch (its view, for a non-master). Client: the highest
    /// epoch the client has seen, which selects the client's sealing key.
    pub epoch: Epoch,
    /// Server: the sending member's id. Client: 0.
    pub member: u32,
    /// Server: the sending member's boot number (never the same twice for one member).
    /// Client: 0.
    pub boot: u32,
}

impl Sender {
    /// The client of a session, sealing under `epoch`'s key.
    pub fn client(epoch: Epoch) -> Sender {
        Sender {
            role: Role::Client,
            epoch,
            member: 0,
            boot: 0,
        }
    }
}

/// The fixed header of every datagram. In sealed datagrams all of it is associated data:
/// authenticated, not encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the datagram carries.
    pub kind: Kind,
    /// The session this datagram belongs to (0 in a `HandshakeInit`; chosen by the cell).
    pub session: SessionId,
    /// The sender's packet number under its sealing key: the AEAD nonce; never reused.
    pub packet_seq: PacketSeq,
    /// Request seq, keepalive nonce or event seq, depending on [`Kind`].
    pub msg_seq: u64,
    /// Client: highest event seq received without gaps. Server: highest request seq answered.
    pub ack: EventSeq,
    /// Who sealed it (role, epoch, member, boot).
    pub sender: Sender,
    /// This fragment's index, from 0.
    pub frag_index: u16,
    /// How many fragments the message has (at least 1).
    pub frag_count: u16,
    /// Zero bytes at the end of the sealed part that are not body (client datagrams only):
    /// a client pads every datagram to at least [`super::MIN_CLIENT_DATAGRAM`] bytes, so
    /// that no answer to it is larger (docs/protocol.md §2.2).
    pub pad: u8,
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.kind as u8;
        out[6] = self.sender.role as u8;
        out[7] = self.pad;
        out[8..16].copy_from_slice(&self.session.0.to_le_bytes());
        out[16..24].copy_from_slice(&self.packet_seq.0.to_le_bytes());
        out[24..32].copy_from_slice(&self.msg_seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.ack.0.to_le_bytes());
        out[40..48].copy_from_slice(&self.sender.epoch.0.to_le_bytes());
        out[48..52].copy_from_slice(&self.sender.member.to_le_bytes());
        out[52..56].copy_from_slice(&self.sender.boot.to_le_bytes());
        out[56..58].copy_from_slice(&self.frag_index.to_le_bytes());
        out[58..60].copy_from_slice(&self.frag_count.to_le_bytes());
    }

    /// Parses a header whose magic and version were already checked.
    pub fn read(b: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        let kind = Kind::from_u8(b[5]).ok_or(HeaderError::UnknownKind(b[5]))?;
        let role = Role::from_u8(b[6]).ok_or(HeaderError::BadRole)?;
        if b[7] != 0 && (role != Role::Client || kind == Kind::HandshakeInit) {
            return Err(HeaderError::BadPadding);
        }
        // Clients send only client kinds; a master only its session's answers; the
        // stateless role only redirects, ended-session answers and handshake answers.
        let fits = match role {
            Role::Client => kind.is_client_to_server(),
            Role::Master => matches!(
                kind,
                Kind::Reply | Kind::KeepAliveReply | Kind::Event | Kind::Retry
            ),
            Role::Stateless => matches!(
                kind,
                Kind::NotMaster | Kind::Reply | Kind::HandshakeReply | Kind::Cookie
            ),
        };
        if !fits {
            return Err(HeaderError::BadRole);
        }
        let frag_index = u16_at(b, 56);
        let frag_count = u16_at(b, 58);
        if frag_count == 0 || frag_count > MAX_FRAGMENTS || frag_index >= frag_count {
            return Err(HeaderError::BadFragment);
        }
        Ok(Header {
            kind,
            session: SessionId(u64_at(b, 8)),
            packet_seq: PacketSeq(u64_at(b, 16)),
            msg_seq: u64_at(b, 24),
            ack: EventSeq(u64_at(b, 32)),
            sender: Sender {
                role,
                epoch: Epoch(u64_at(b, 40)),
                member: u32_at(b, 48),
                boot: u32_at(b, 52),
            },
            frag_index,
            frag_count,
            pad: b[7],
        })
    }
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u16_at(b: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
