//! The wire protocol between `cldc` and `cld-server`, as specified in `docs/protocol.md`.
//!
//! Everything here is `no_std` + `alloc` and free of I/O and clocks, so the server can reuse
//! it with `cldc`'s default features off. A datagram is a fixed [`Header`], a slice of a
//! postcard-encoded message body, and an HMAC-SHA256 [`TAG_LEN`]-byte tag. Use
//! [`encode_message`] to turn one message into signed datagrams, [`open_packet`] to check and
//! parse one datagram, and [`Reassembler`] to join fragments back into a message body.

mod auth;
mod bounded;
mod error;
mod frag;
mod header;
mod ids;
mod messages;
mod packet;
mod path;
mod replay;

pub use auth::{MAX_SECRET, Secret, SecretError, sign, verify};
pub use error::{DecodeError, ErrorCode};
pub use frag::{ReassembleError, Reassembled, Reassembler, ReassemblerLimits};
pub use header::{Header, HeaderError, Kind, UserName};
pub use ids::{
    ContentGeneration, Epoch, EventSeq, HandleId, InstanceNumber, LockGeneration, PacketSeq,
    RequestSeq, SessionId,
};
pub use messages::{
    CellStatus, DirEntry, Event, EventMask, KeepAliveReply, LockMode, MemberStatus, NodeFlags,
    NodeMeta, NotMaster, OpenMode, Reply, Request, Response, Sequencer, VersionReject,
};
pub use packet::{
    EncodeError, OpenedPacket, PacketMeta, decode_body, encode_body, encode_message, open_packet,
};
pub use path::{PathError, validate_path};
pub use replay::ReplayWindow;

/// The 4 bytes every datagram starts with: ASCII `CLDr`.
pub const MAGIC: [u8; 4] = *b"CLDr";
/// The protocol version this library speaks (byte 4 of every datagram).
pub const VERSION: u8 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 84;
/// Size of the HMAC-SHA256 tag at the end of every datagram (the full, untruncated MAC).
pub const TAG_LEN: usize = 32;
/// Default and maximum datagram size: small enough to avoid IP fragmentation.
pub const DEFAULT_MAX_DATAGRAM: usize = 1400;
/// Smallest datagram size a node may be configured with (room for a header, a tag and
/// 512 body bytes per fragment, so no message needs more than [`MAX_FRAGMENTS`]).
pub const MIN_DATAGRAM: usize = HEADER_LEN + TAG_LEN + 512;
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
