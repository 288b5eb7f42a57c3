//! The wire protocol between `cldc` and `cld-server`, as specified in `docs/protocol.md`.
//!
//! Everything here is `no_std` + `alloc` and free of I/O, clocks and randomness (the caller
//! passes random bytes in), so the server reuses it with `cldc`'s default features off.
//!
//! - A session starts with a Noise `NKpsk0` handshake ([`ClientHandshake`] on the client;
//!   [`Responder`] with [`CellKeys`] on the cell, which keeps the bounded table of pending
//!   handshakes and the cookies) and yields [`SessionKeys`], the record a new master needs.
//! - Every later datagram is a fixed [`Header`] (associated data), a ChaCha20-Poly1305
//!   sealed slice of a postcard-encoded message body, and a [`TAG_LEN`]-byte tag, sealed
//!   under the [`SealingKey`] of its [`Sender`] ([`SessionKeys::sealing_key`]). Use
//!   [`encode_message`] to turn one message into sealed datagrams, [`open_packet`] to check
//!   and open one, [`ReplayWindow`] against replays, and [`Reassembler`] to join fragments.

mod bounded;
mod error;
mod frag;
mod handshake;
mod header;
mod ids;
mod keys;
mod messages;
mod packet;
mod path;
mod replay;
mod seal;
mod secret;

pub use error::{DecodeError, ErrorCode};
pub use frag::{ReassembleError, Reassembled, Reassembler, ReassemblerLimits};
pub use handshake::{
    COOKIE_LEN, CellKeys, ClientHandshake, HandshakeError, HandshakeInit, HandshakeOutcome,
    INIT_BODY_LEN, InitCheck, NOISE_PATTERN, ProvenSession, REPLY_BODY_LEN, Responder,
    ResponderCounters, ResponderLimits, cookie_datagram, read_cookie, respond,
};
pub use header::{Header, HeaderError, Kind, Role, Sender, UserName};
pub use ids::{
    ContentGeneration, Epoch, EventSeq, HandleId, InstanceNumber, LockGeneration, PacketSeq,
    RequestSeq, SessionId,
};
pub use keys::{
    CellPrivateKey, CellPublicKey, KeyError, PRIVATE_KEY_TAG, decode_base64, encode_base64,
};
pub use messages::{
    CellStatus, DirEntry, Event, EventMask, KeepAliveReply, LockMode, MAX_LOCK_DELAY, MemberStatus,
    NodeFlags, NodeMeta, NotMaster, OpenMode, Reply, Request, Response, Sequencer, StatusCounter,
    VersionReject,
};
pub use packet::{
    EncodeError, OpenedPacket, PacketMeta, decode_body, encode_body, encode_message, open_packet,
    parse_header, seal_datagram,
};
pub use path::{PathError, validate_path};
pub use replay::ReplayWindow;
pub use seal::{SealingKey, SessionKeys};
pub use secret::{MAX_SECRET, MIN_SECRET, Secret, SecretError};

/// The 4 bytes every datagram starts with: ASCII `CLDr`.
pub const MAGIC: [u8; 4] = *b"CLDr";
/// The protocol version this library speaks (byte 4 of every datagram).
pub const VERSION: u8 = 2;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 60;
/// Size of the Poly1305 tag at the end of every sealed datagram.
pub const TAG_LEN: usize = 16;
/// Default and maximum datagram size: small enough to avoid IP fragmentation.
pub const DEFAULT_MAX_DATAGRAM: usize = 1400;
/// Smallest datagram size a node may be configured with (room for a header, a tag and
/// 512 body bytes per fragment, so no message needs more than [`MAX_FRAGMENTS`]).
pub const MIN_DATAGRAM: usize = HEADER_LEN + TAG_LEN + 512;
/// Every client datagram is padded to at least this size, which is at least the size of
/// any answer a member sends to a datagram that has not passed a replay window
/// (`NotMaster` with an IPv6 hint is 97 bytes), so that replays and spoofed sources cannot
/// amplify traffic.
pub const MIN_CLIENT_DATAGRAM: usize = 100;
/// Default limit on file contents (CLD's 128 KiB).
pub const DEFAULT_MAX_FILE: usize = 128 * 1024;
/// Hard upper limit on file contents a server may be configured with.
pub const MAX_FILE_LIMIT: usize = 256 * 1024;
/// Longest path in bytes.
pub const MAX_PATH: usize = 256;
/// Longest user name in bytes.
pub const MAX_USER: usize = 32;
/// Room for the message fields around the file data in a reassembled body.
pub const MESSAGE_OVERHEAD: usize = 4096;
/// Largest reassembled message body a node ever accepts (max file limit plus overhead).
pub const MAX_MESSAGE: usize = MAX_FILE_LIMIT + MESSAGE_OVERHEAD;
/// Largest number of fragments one message may have.
pub const MAX_FRAGMENTS: u16 = 1024;
