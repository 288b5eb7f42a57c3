//! The peer transport: one TCP connection per pair of members, mutually authenticated and
//! encrypted with a Noise handshake keyed by the cell secret.
//!
//! # Wire format (version [`PEER_WIRE_VERSION`])
//!
//! 1. The dialer (always the member with the *lower* id, so a pair has one connection) sends a
//!    clear hello: `"CLDP"`, the wire version (u8), the cell name's length (u8) and bytes, its
//!    own id and the id it means to reach (u64 big-endian each). The acceptor refuses, and
//!    counts, bad magic (random bytes), an unknown version, another cell's name, and ids that
//!    are not a lower member and itself.
//! 2. A Noise `NNpsk0_25519_ChaChaPoly_SHA256` handshake with the hello as prologue (so it
//!    cannot be altered) and `SHA-256("cld peer psk v1" || cell secret)` as PSK: fresh
//!    ephemeral keys from both sides; a process without the secret fails the first message
//!    (counted as `peer_auth_failures`). Each handshake message is `u16 length + bytes`
//!    and carries a [`Hello`] payload (the sender's voting state, see the rejoin rule, and
//!    whether it understands [`PeerBody::Progress`]; fields are only appended, so members of
//!    adjacent versions read each other's hellos).
//! 3. Records: `u16 length + ciphertext` (at most 65 535 bytes); each record's plaintext is a
//!    continuation byte (1: more records follow, 0: last) and a piece of a frame. A frame is
//!    `FRAME_VERSION (u8) + postcard(PeerBody)`, at most [`MAX_FRAME`] bytes; a larger one, a
//!    record that fails to decrypt, an unknown frame version or a body that does not decode
//!    closes the connection and is counted.
//!
//! Each member keeps one task per peer that owns two bounded queues (urgent: Paxos messages;
//! bulk: snapshot chunks). Urgent frames always go first, and a bulk frame is at most one
//! snapshot chunk, so a snapshot transfer never holds heartbeats back for longer than one
//! chunk's write. A frame that cannot be queued (queue full, no connection) is dropped and
//! counted: Paxos tolerates loss. Every frame write has a deadline; a missed deadline closes
//! the connection. The dialer reconnects with exponential backoff (50 ms to 2 s, jittered).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libpaxos::{Message, NodeId, Slot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::datadir::MemberState;
use crate::env::Entropy;
use crate::metrics::Counters;

/// The peer wire version (the hello and the handshake).
pub const PEER_WIRE_VERSION: u8 = 1;
/// The version byte that starts every frame.
pub const FRAME_VERSION: u8 = 1;
/// The largest frame, in bytes.
pub const MAX_FRAME: usize = 8 << 20;
const MAGIC: &[u8; 4] = b"CLDP";
const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";
const TAG_LEN: usize = 16;
const MAX_RECORD: usize = 65_535;
const MAX_PIECE: usize = MAX_RECORD - TAG_LEN - 1;
/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one frame's write may take before the connection is closed.
pub const SEND_DEADLINE: Duration = Duration::from_secs(2);
/// A connection to a peer that sends [`PeerBody::Progress`] (every [`PROGRESS_EVERY`]) and
/// brings no record for this long is dead or black-holed (a middlebox that drops its
/// packets, a half-open connection after a one-way cut): the reader closes it and the
/// connection is made again. Without this limit the reading side of such a connection never
/// notices, and the link stays down until the sender's TCP gives up, many minutes later.
/// Eight progress periods: a peer's loop that stalls this long has lost its Paxos lease
/// anyway, and a large snapshot frame still arrives as a stream of records.
pub const PEER_SILENCE: Duration = Duration::from_secs(2);
/// Handshakes in progress at once on the peer port; more connections are closed at once
/// (counted), so a flood costs a bounded amount of memory before authentication.
pub const MAX_HANDSHAKES: usize = 32;
/// Paxos messages queued per peer.
pub const URGENT_QUEUE: usize = 1024;
/// Snapshot frames queued per peer.
pub const BULK_QUEUE: usize = 4;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What members say to each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerBody {
    /// A libpaxos message.
    Paxos(Message),
    /// "Send me your newest snapshot" (answered with chunks from offset 0).
    SnapshotRequest,
    /// One chunk of a snapshot.
    SnapshotChunk {
        /// The slot the snapshot covers.
        applied: Slot,
        /// Its total size.
        total: u64,
        /// This chunk's offset.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The sender has no snapshot to send.
    SnapshotUnavailable,
    /// A rejoining member asks the master for an instance begun after its request.
    RejoinBarrier,
    /// The master's answer: its no-op at `slot` committed after the request arrived.
    RejoinBarrierDone {
        /// The slot.
        slot: Slot,
    },
    /// The sender's commit and applied index, sent every [`PROGRESS_EVERY`] to the peers
    /// whose [`Hello`] says they understand it (`Status` reports them, docs/protocol.md 5.6).
    /// The last variant: an older member never receives it, so it is added without a new
    /// frame version.
    Progress {
        /// The sender's commit index.
        commit: Slot,
        /// The sender's applied index.
        applied: Slot,
    },
}

/// How often a member tells its peers its commit and applied index ([`PeerBody::Progress`]).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The variant index of [`PeerBody::Progress`], the second byte of its frame: the peer task
/// reads it to hold the frame back from a peer that does not understand it.
const PROGRESS_TAG: u8 = 6;

/// Whether `frame` (as [`encode_frame`] made it) is a [`PeerBody::Progress`].
fn is_progress_frame(frame: &[u8]) -> bool {
    frame.get(1) == Some(&PROGRESS_TAG)
}

/// The payload of each handshake message.
///
/// Fields are only ever appended: an older member decodes the fields it knows and ignores
/// the rest (postcard leaves trailing bytes alone), and `decode_hello` reads an older
/// member's shorter hello with the later fields at their "not understood" default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's voting state.
    pub state: MemberState,
    /// The sender understands [`PeerBody::Progress`] frames (members before it close the
    /// connection on a frame they cannot decode, so none is sent to them).
    pub progress: bool,
}

/// The hello of members that did not know [`Hello::progress`].
#[derive(Deserialize)]
struct HelloV1 {
    state: MemberState,
}

/// Decodes a peer's hello, of this version or an older one.
fn decode_hello(bytes: &[u8]) -> Result<Hello, PeerError> {
    if let Ok(hello) = postcard::from_bytes::<Hello>(bytes) {
        return Ok(hello);
    }
    let old: HelloV1 = postcard::from_bytes(bytes).map_err(|_| PeerError::BadPayload)?;
    Ok(Hello {
        state: old.state,
        progress: false,
    })
}

/// Why a peer connection failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The first bytes are not a cld peer hello.
    #[error("not a cld peer (bad magic)")]
    BadMagic,
    /// The connection closed before a whole hello arrived.
    #[error("connection closed during the hello")]
    Truncated,
    /// Another wire version.
    #[error("peer speaks wire version {0}, this cld speaks {PEER_WIRE_VERSION}")]
    BadVersion(u8),
    /// Another cell.
    #[error("peer belongs to cell {0:?}")]
    OtherCell(String),
    /// The ids in the hello do not fit this cell.
    #[error("hello from {from} to {to} does not fit this member")]
    BadIds {
        /// The claimed sender.
        from: u64,
        /// The claimed receiver.
        to: u64,
    },
    /// The Noise handshake failed: the peer does not hold the cell secret (or bytes were
    /// altered).
    #[error("authentication failed (wrong cell secret?)")]
    Auth,
    /// A handshake payload did not decode.
    #[error("bad handshake payload")]
    BadPayload,
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
    /// A record failed to decrypt.
    #[error("record failed to decrypt")]
    Decrypt,
    /// A frame above [`MAX_FRAME`].
    #[error("frame larger than {MAX_FRAME} bytes")]
    TooLarge,
    /// An unknown frame version.
    #[error("frame version {0} is unknown (this cld knows {FRAME_VERSION})")]
    FrameVersion(u8),
    /// A frame body that does not decode.
    #[error("frame body does not decode: {0}")]
    Decode(String),
    /// An empty frame.
    #[error("empty frame")]
    Empty,
    /// Nothing came from a peer that sends progress frames for the silence limit.
    #[error("nothing came from the peer for {0:?} (dead or black-holed connection)")]
    Silent(Duration),
}

impl PeerError {
    fn count(&self, c: &Counters) {
        match self {
            PeerError::Io(_) => c.peer_io_errors.inc(),
            PeerError::BadMagic | PeerError::Truncated => c.peer_bad_hello.inc(),
            PeerError::BadVersion(_) => c.peer_bad_version.inc(),
            PeerError::OtherCell(_) => c.peer_other_cell.inc(),
            PeerError::BadIds { .. } => c.peer_bad_ids.inc(),
            PeerError::Auth | PeerError::BadPayload => c.peer_auth_failures.inc(),
            PeerError::Timeout => c.peer_handshake_timeouts.inc(),
            PeerError::Decrypt => c.peer_decrypt_failures.inc(),
            PeerError::TooLarge => c.peer_frames_too_large.inc(),
            PeerError::FrameVersion(_) => c.peer_bad_frame_version.inc(),
            PeerError::Decode(_) | PeerError::Empty => c.peer_bad_frames.inc(),
            PeerError::Silent(_) => c.peer_silent_closes.inc(),
        };
    }
}

/// Sockets for the peer transport, so a simulation can supply its own.
pub trait Net: Send + Sync + 'static {
    /// A connected stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A listener.
    type Listener: Send + 'static;
    /// Binds a listener.
    fn bind(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = std::io::Result<Self::Listener>> + Send;
    /// Accepts one connection.
    fn accept(
        &self,
        listener: &mut Self::Listener,
    ) -> impl Future<Output = std::io::Result<(Self::Stream, SocketAddr)>> + Send;
    /// Connects.
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

/// Tokio's TCP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioNet;

impl Net for TokioNet {
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> std::io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }

    async fn accept(
        &self,
        listener: &mut Self::Listener,
    ) -> std::io::Result<(Self::Stream, SocketAddr)> {
        let (stream, addr) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, addr))
    }

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Self::Stream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// The cell's identity as the transport needs it.
#[derive(Clone)]
pub struct PeerIdentity {
    /// The cell's name.
    pub cell: String,
    /// This member.
    pub me: NodeId,
    /// Every member and its peer address.
    pub members: Vec<(NodeId, SocketAddr)>,
    psk: [u8; 32],
    entropy: Arc<dyn Entropy>,
}

impl std::fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("cell", &self.cell)
            .field("me", &self.me)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl PeerIdentity {
    /// The identity of member `me` of `cell`, keyed by the cell `secret`.
    pub fn new(
        cell: &str,
        secret: &[u8],
        me: NodeId,
        members: Vec<(NodeId, SocketAddr)>,
    ) -> PeerIdentity {
        let mut h = Sha256::new();
        h.update(b"cld peer psk v1");
        h.update(secret);
        PeerIdentity {
            cell: cell.to_string(),
            me,
            members,
            psk: h.finalize().into(),
            entropy: Arc::new(crate::env::OsEntropy),
        }
    }

    /// Takes the handshake's ephemeral keys from `entropy` instead of the OS generator.
    pub fn with_entropy(mut self, entropy: Arc<dyn Entropy>) -> PeerIdentity {
        self.entropy = entropy;
        self
    }

    fn hello(&self, to: NodeId) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(PEER_WIRE_VERSION);
        out.push(self.cell.len() as u8);
        out.extend_from_slice(self.cell.as_bytes());
        out.extend_from_slice(&self.me.0.to_be_bytes());
        out.extend_from_slice(&to.0.to_be_bytes());
        out
    }
}

/// An established, authenticated connection's keys.
struct Keys {
    transport: StatelessTransportState,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").finish_non_exhaustive()
    }
}

async fn write_record<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut buf = Vec::with_capacity(2 + bytes.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
    w.write_all(&buf).await
}

async fn read_record<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    r.read_exact(buf).await?;
    Ok(())
}

/// Dials `to` over `stream`: hello, Noise handshake. Returns the keys and the peer's hello.
async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    id: &PeerIdentity,
    to: NodeId,
    stream: &mut S,
    mine: Hello,
) -> Result<(Keys, Hello), PeerError> {
    let hello = id.hello(to);
    stream.write_all(&hello).await?;
    let mut hs = with_builder(id, &hello, |b| b.build_initiator())?;
    let payload = postcard::to_allocvec(&mine).map_err(|_| PeerError::BadPayload)?;
    let mut msg = vec![0u8; MAX_RECORD];
    let n = hs
        .write_message(&payload, &mut msg)
        .map_err(|_| PeerError::Auth)?;
    write_record(stream, &msg[..n]).await?;
    let mut buf = Vec::new();
    read_record(stream, &mut buf).await?;
    let mut plain = vec![0u8; MAX_RECORD];
    let n = hs
        .read_message(&buf, &mut plain)
        .map_err(|_| PeerError::Auth)?;
    let theirs = decode_hello(&plain[..n])?;
    let transport = hs
        .into_stateless_transport_mode()
        .map_err(|_| PeerError::Auth)?;
    Ok((Keys { transport }, theirs))
}

/// A new X25519 key pair (private, public) from `entropy`, for `cld keygen`.
pub fn x25519_keypair(entropy: Arc<dyn Entropy>) -> Result<(Vec<u8>, Vec<u8>), snow::Error> {
    let params: snow::params::NoiseParams = "Noise_NK_25519_ChaChaPoly_SHA256"
        .parse()
        .map_err(|_| snow::Error::Init(snow::error::InitStage::GetDhImpl))?;
    let resolver = Resolver {
        entropy,
        inner: snow::resolvers::DefaultResolver,
    };
    let keypair = snow::Builder::with_resolver(params, Box::new(resolver)).generate_keypair()?;
    Ok((keypair.private, keypair.public))
}

/// Noise's randomness (ephemeral keys) from the server's [`Entropy`].
struct EntropyRng(Arc<dyn Entropy>);

impl snow::types::Random for EntropyRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

/// snow's default primitives, with randomness from [`Entropy`].
struct Resolver {
    entropy: Arc<dyn Entropy>,
    inner: snow::resolvers::DefaultResolver,
}

impl snow::resolvers::CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        Some(Box::new(EntropyRng(self.entropy.clone())))
    }

    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        self.inner.resolve_dh(choice)
    }

    fn resolve_hash(
        &self,
        choice: &snow::params::HashChoice,
    ) -> Option<Box<dyn snow::types::Hash>> {
        self.inner.resolve_hash(choice)
    }

    fn resolve_cipher(
        &self,
        choice: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        self.inner.resolve_cipher(choice)
    }
}

fn with_builder<T>(
    id: &PeerIdentity,
    prologue: &[u8],
    f: impl FnOnce(snow::Builder<'_>) -> Result<T, snow::Error>,
) -> Result<T, PeerError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(|_| PeerError::Auth)?;
    let resolver = Resolver {
        entropy: id.entropy.clone(),
        inner: snow::resolvers::DefaultResolver,
    };
    let builder = snow::Builder::with_resolver(params, Box::new(resolver))
        .psk(0, &id.psk)
        .and_then(|b| b.prologue(prologue))
        .map_err(|_| PeerError::Auth)?;
    f(builder).map_err(|_| PeerError::Auth)
}

/// Accepts a dial over `stream`. Returns who dialed, the keys and the peer's hello.
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    id: &PeerIdentity,
    stream: &mut S,
    mine: Hello,
) -> Result<(NodeId, Keys, Hello), PeerError> {
    let truncated = |_| PeerError::Truncated;
    let mut head = [0u8; 6];
    stream.read_exact(&mut head).await.map_err(truncated)?;
    if &head[..4] != MAGIC {
        return Err(PeerError::BadMagic);
    }
    if head[4] != PEER_WIRE_VERSION {
        return Err(PeerError::BadVersion(head[4]));
    }
    let mut name = vec![0u8; usize::from(head[5])];
    stream.read_exact(&mut name).await.map_err(truncated)?;
    let mut ids = [0u8; 16];
    stream.read_exact(&mut ids).await.map_err(truncated)?;
    if name != id.cell.as_bytes() {
        return Err(PeerError::OtherCell(
            String::from_utf8_lossy(&name).into_owned(),
        ));
    }
    let from = u64::from_be_bytes(ids[..8].try_into().map_err(|_| PeerError::BadMagic)?);
    let to = u64::from_be_bytes(ids[8..].try_into().map_err(|_| PeerError::BadMagic)?);
    let known = id.members.iter().any(|(m, _)| m.0 == from);
    if to != id.me.0 || !known || from >= id.me.0 {
        return Err(PeerError::BadIds { from, to });
    }
    let mut hello = Vec::with_capacity(6 + name.len() + 16);
    hello.extend_from_slice(&head);
    hello.extend_from_slice(&name);
    hello.extend_from_slice(&ids);
    let mut hs = with_builder(id, &hello, |b| b.build_responder())?;
    let mut buf = Vec::new();
    read_record(stream, &mut buf).await?;
    let mut plain = vec![0u8; MAX_RECORD];
    let n = hs
        .read_message(&buf, &mut plain)
        .map_err(|_| PeerError::Auth)?;
    let theirs = decode_hello(&plain[..n])?;
    let payload = postcard::to_allocvec(&mine).map_err(|_| PeerError::BadPayload)?;
    let mut msg = vec![0u8; MAX_RECORD];
    let n = hs
        .write_message(&payload, &mut msg)
        .map_err(|_| PeerError::Auth)?;
    write_record(stream, &msg[..n]).await?;
    let transport = hs
        .into_stateless_transport_mode()
        .map_err(|_| PeerError::Auth)?;
    Ok((NodeId(from), Keys { transport }, theirs))
}

/// Dials member `to` at `addr` as `identity.me` and runs the handshake, then closes: for
/// operators' checks and tests ("does this secret open that member's port?").
pub async fn probe(
    identity: &PeerIdentity,
    to: NodeId,
    addr: SocketAddr,
    state: MemberState,
) -> Result<Hello, PeerError> {
    let run = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mine = Hello {
            state,
            progress: true,
        };
        let (_, theirs) = initiate(identity, to, &mut stream, mine).await?;
        Ok(theirs)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .unwrap_or(Err(PeerError::Timeout))
}

/// Encodes a frame's plaintext: version byte and body.
pub fn encode_frame(body: &PeerBody) -> Vec<u8> {
    let out = vec![FRAME_VERSION];
    // postcard into a Vec fails only on types serde cannot express; PeerBody has none.
    match postcard::to_extend(body, out) {
        Ok(v) => v,
        Err(_) => vec![FRAME_VERSION],
    }
}

/// Decodes a frame's plaintext.
pub fn decode_frame(frame: &[u8]) -> Result<PeerBody, PeerError> {
    let (&version, body) = frame.split_first().ok_or(PeerError::Empty)?;
    if version != FRAME_VERSION {
        return Err(PeerError::FrameVersion(version));
    }
    postcard::from_bytes(body).map_err(|e| PeerError::Decode(e.to_string()))
}

/// Buffers a connection's writer reuses for every frame (one record's ciphertext, and the
/// records of the frames written together), so sealing a frame allocates nothing.
#[derive(Default)]
struct FrameWriter {
    ct: Vec<u8>,
    plain: Vec<u8>,
    out: Vec<u8>,
}

/// Most bytes of queued urgent frames written with one `write` (more wait for the next).
const BATCH_BYTES: usize = 256 * 1024;
/// A writer's batch buffer above this size (after a snapshot chunk) is given back.
const KEEP_BUFFER: usize = 1 << 20;

impl FrameWriter {
    /// Appends `frame`'s records, sealed, to the batch.
    fn seal(&mut self, keys: &Keys, nonce: &mut u64, frame: &[u8]) -> Result<(), PeerError> {
        if self.ct.len() < MAX_RECORD {
            self.ct.resize(MAX_RECORD, 0);
        }
        self.out
            .reserve(frame.len() + frame.len() / MAX_PIECE * 19 + 19);
        let mut pieces = frame.chunks(MAX_PIECE).peekable();
        loop {
            let piece = pieces.next().unwrap_or(&[]);
            self.plain.clear();
            self.plain.push(u8::from(pieces.peek().is_some()));
            self.plain.extend_from_slice(piece);
            let n = keys
                .transport
                .write_message(*nonce, &self.plain, &mut self.ct)
                .map_err(|_| PeerError::Decrypt)?;
            *nonce += 1;
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
            self.out.extend_from_slice(&self.ct[..n]);
            if pieces.peek().is_none() {
                return Ok(());
            }
        }
    }

    /// Writes the batch and empties it.
    async fn flush<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> Result<(), PeerError> {
        let result = w.write_all(&self.out).await;
        self.out.clear();
        if self.out.capacity() > KEEP_BUFFER {
            self.out = Vec::new();
        }
        if self.plain.capacity() > KEEP_BUFFER {
            self.plain = Vec::new();
        }
        result.map_err(PeerError::from)
    }
}

#[cfg(test)]
async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    keys: &Keys,
    nonce: &mut u64,
    frame: &[u8],
) -> Result<(), PeerError> {
    let mut writer = FrameWriter::default();
    writer.seal(keys, nonce, frame)?;
    writer.flush(w).await
}

/// Buffers a connection's reader reuses for every frame.
#[derive(Default)]
struct FrameReader {
    record: Vec<u8>,
    plain: Vec<u8>,
    frame: Vec<u8>,
    /// A record must come within this long ([`PEER_SILENCE`] for a peer that sends
    /// progress frames), else the connection fails with [`PeerError::Silent`].
    silence: Option<Duration>,
}

impl FrameReader {
    /// Reads and opens the next frame; the slice lives until the next call.
    async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        keys: &Keys,
        nonce: &mut u64,
    ) -> Result<&[u8], PeerError> {
        if self.plain.len() < MAX_RECORD {
            self.plain.resize(MAX_RECORD, 0);
        }
        if self.frame.capacity() > KEEP_BUFFER {
            self.frame = Vec::new();
        }
        self.frame.clear();
        loop {
            match self.silence {
                Some(limit) => tokio::time::timeout(limit, read_record(r, &mut self.record))
                    .await
                    .map_err(|_| PeerError::Silent(limit))??,
                None => read_record(r, &mut self.record).await?,
            }
            let n = keys
                .transport
                .read_message(*nonce, &self.record, &mut self.plain)
                .map_err(|_| PeerError::Decrypt)?;
            *nonce += 1;
            let Some((&more, piece)) = self.plain[..n].split_first() else {
                return Err(PeerError::Empty);
            };
            if self.frame.len() + piece.len() > MAX_FRAME {
                return Err(PeerError::TooLarge);
            }
            self.frame.extend_from_slice(piece);
            if more == 0 {
                return Ok(&self.frame);
            }
        }
    }
}

#[cfg(test)]
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    keys: &Keys,
    nonce: &mut u64,
) -> Result<Vec<u8>, PeerError> {
    let mut reader = FrameReader::default();
    reader.next(r, keys, nonce).await.map(<[u8]>::to_vec)
}

/// A frame from a peer, as the replica loop receives it.
#[derive(Debug)]
pub struct Inbound {
    /// The sender.
    pub from: NodeId,
    /// What it said.
    pub body: PeerBody,
}

/// Where inbound frames go, and what this member tells peers in handshakes.
pub trait InboundSink: Send + Sync + 'static {
    /// Delivers a frame (must not block; drop and count when full).
    fn deliver(&self, inbound: Inbound);
    /// This member's voting state, for the handshake.
    fn hello(&self) -> Hello;
    /// A peer's handshake said this.
    fn peer_hello(&self, from: NodeId, hello: Hello);
}

/// A peer's id with its urgent and bulk queues.
type Link = (NodeId, mpsc::Sender<Vec<u8>>, mpsc::Sender<Vec<u8>>);

/// The sending side of the transport: the queues of each peer.
#[derive(Clone)]
pub struct PeerSender {
    links: Arc<Vec<Link>>,
    counters: Counters,
}

impl std::fmt::Debug for PeerSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSender").finish_non_exhaustive()
    }
}

impl PeerSender {
    /// Queues an urgent frame (Paxos) for `to`; dropped and counted when its queue is full.
    pub fn send(&self, to: NodeId, body: &PeerBody) {
        self.queue(to, body, false);
    }

    /// Queues a bulk frame (snapshot chunk) for `to`.
    pub fn send_bulk(&self, to: NodeId, body: &PeerBody) {
        self.queue(to, body, true);
    }

    /// Queues a bulk frame, waiting for room (for snapshot streaming off the loop).
    pub async fn send_bulk_wait(&self, to: NodeId, body: &PeerBody) -> bool {
        let Some((_, _, bulk)) = self.links.iter().find(|(id, _, _)| *id == to) else {
            return false;
        };
        bulk.send(encode_frame(body)).await.is_ok()
    }

    fn queue(&self, to: NodeId, body: &PeerBody, bulk: bool) {
        let Some((_, urgent, slow)) = self.links.iter().find(|(id, _, _)| *id == to) else {
            self.counters.peer_send_unknown_member.inc();
            return;
        };
        let q = if bulk { slow } else { urgent };
        if q.try_send(encode_frame(body)).is_err() {
            self.counters.peer_queue_full_drops.inc();
        }
    }
}

/// A new authenticated connection handed to a peer's task.
struct Conn<S> {
    stream: S,
    keys: Keys,
    /// The peer's hello said it understands [`PeerBody::Progress`].
    progress: bool,
}

/// Starts the transport on a bound peer `listener` (see [`Net::bind`]) and spawns one task
/// per peer. Returns the sender half.
pub fn start<N: Net, E: Entropy>(
    net: Arc<N>,
    listener: N::Listener,
    identity: PeerIdentity,
    sink: Arc<dyn InboundSink>,
    counters: Counters,
    entropy: Arc<E>,
) -> PeerSender {
    let me = identity.me;
    let identity = Arc::new(identity);
    let mut links = Vec::new();
    let mut accept_routes = Vec::new();
    for &(peer, peer_addr) in identity.members.iter() {
        if peer == me {
            continue;
        }
        let (urgent_tx, urgent_rx) = mpsc::channel(URGENT_QUEUE);
        let (bulk_tx, bulk_rx) = mpsc::channel(BULK_QUEUE);
        let (conn_tx, conn_rx) = mpsc::channel(2);
        links.push((peer, urgent_tx, bulk_tx));
        if peer < me {
            accept_routes.push((peer, conn_tx));
        }
        let task = PeerTask {
            net: net.clone(),
            identity: identity.clone(),
            peer,
            peer_addr,
            dial: peer > me,
            urgent: urgent_rx,
            bulk: bulk_rx,
            conns: conn_rx,
            sink: sink.clone(),
            counters: counters.clone(),
            entropy: entropy.clone(),
        };
        tokio::spawn(task.run());
    }
    tokio::spawn(accept_loop(
        net,
        listener,
        identity,
        accept_routes,
        sink,
        counters.clone(),
    ));
    PeerSender {
        links: Arc::new(links),
        counters,
    }
}

async fn accept_loop<N: Net>(
    net: Arc<N>,
    mut listener: N::Listener,
    identity: Arc<PeerIdentity>,
    routes: Vec<(NodeId, mpsc::Sender<Conn<N::Stream>>)>,
    sink: Arc<dyn InboundSink>,
    counters: Counters,
) {
    let routes = Arc::new(routes);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (mut stream, addr) = match net.accept(&mut listener).await {
            Ok(x) => x,
            Err(err) => {
                counters.peer_io_errors.inc();
                warn!(%err, "peer listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            counters.peer_handshakes_refused.inc();
            drop(stream);
            continue;
        };
        let identity = identity.clone();
        let routes = routes.clone();
        let sink = sink.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let hello = sink.hello();
            let result =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, respond(&identity, &mut stream, hello))
                    .await
                    .unwrap_or(Err(PeerError::Timeout));
            match result {
                Ok((from, keys, theirs)) => {
                    sink.peer_hello(from, theirs);
                    let conn = Conn {
                        stream,
                        keys,
                        progress: theirs.progress,
                    };
                    if let Some((_, tx)) = routes.iter().find(|(id, _)| *id == from)
                        && tx.send(conn).await.is_err()
                    {
                        counters.peer_io_errors.inc();
                    }
                }
                Err(err) => {
                    err.count(&counters);
                    warn!(%addr, %err, "peer connection refused");
                }
            }
        });
    }
}

struct PeerTask<N: Net, E: Entropy> {
    net: Arc<N>,
    identity: Arc<PeerIdentity>,
    peer: NodeId,
    peer_addr: SocketAddr,
    dial: bool,
    urgent: mpsc::Receiver<Vec<u8>>,
    bulk: mpsc::Receiver<Vec<u8>>,
    conns: mpsc::Receiver<Conn<N::Stream>>,
    sink: Arc<dyn InboundSink>,
    counters: Counters,
    entropy: Arc<E>,
}

impl<N: Net, E: Entropy> PeerTask<N, E> {
    async fn dial(
        net: Arc<N>,
        identity: Arc<PeerIdentity>,
        sink: Arc<dyn InboundSink>,
        peer: NodeId,
        addr: SocketAddr,
        delay: Duration,
    ) -> Result<(Conn<N::Stream>, Hello), PeerError> {
        tokio::time::sleep(delay).await;
        let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, net.connect(addr))
            .await
            .map_err(|_| PeerError::Timeout)??;
        let hello = sink.hello();
        let (keys, theirs) = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            initiate(&identity, peer, &mut stream, hello),
        )
        .await
        .map_err(|_| PeerError::Timeout)??;
        let conn = Conn {
            stream,
            keys,
            progress: theirs.progress,
        };
        Ok((conn, theirs))
    }

    async fn run(mut self) {
        let mut backoff = Duration::ZERO;
        loop {
            // Obtain a connection; meanwhile, queued frames are dropped (counted).
            let conn = if self.dial {
                let dial = Self::dial(
                    self.net.clone(),
                    self.identity.clone(),
                    self.sink.clone(),
                    self.peer,
                    self.peer_addr,
                    backoff,
                );
                tokio::pin!(dial);
                loop {
                    // Biased (deterministic simulation): the dial first, as it completes once;
                    // the queues after it are only drained (and counted) meanwhile.
                    tokio::select! {
                        biased;
                        result = &mut dial => break result,
                        Some(_) = self.urgent.recv() => { self.counters.peer_dropped_no_connection.inc(); }
                        Some(_) = self.bulk.recv() => { self.counters.peer_dropped_no_connection.inc(); }
                    }
                }
                .map(|(conn, theirs)| {
                    self.sink.peer_hello(self.peer, theirs);
                    conn
                })
            } else {
                loop {
                    // Biased (deterministic simulation): the accepted connection first, as it
                    // comes once; the queues after it are only drained (and counted) meanwhile.
                    tokio::select! {
                        biased;
                        conn = self.conns.recv() => match conn {
                            Some(conn) => break Ok(conn),
                            None => return,
                        },
                        Some(_) = self.urgent.recv() => { self.counters.peer_dropped_no_connection.inc(); }
                        Some(_) = self.bulk.recv() => { self.counters.peer_dropped_no_connection.inc(); }
                    }
                }
            };
            let conn = match conn {
                Ok(conn) => conn,
                Err(err) => {
                    err.count(&self.counters);
                    self.counters.peer_connect_failures.inc();
                    debug!(peer = self.peer.0, %err, "peer dial failed");
                    backoff = self.next_backoff(backoff);
                    continue;
                }
            };
            backoff = Duration::ZERO;
            self.counters.peer_connects.inc();
            info!(peer = self.peer.0, "peer connected");
            let reason = self.serve(conn).await;
            info!(peer = self.peer.0, reason, "peer disconnected");
            if self.dial {
                backoff = self.next_backoff(BACKOFF_MIN / 2);
            }
        }
    }

    fn next_backoff(&self, current: Duration) -> Duration {
        let base = (current * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        let jitter = self.entropy.next_u64() % (base.as_millis() as u64 / 2 + 1);
        base + Duration::from_millis(jitter)
    }

    /// Runs one connection until it fails or is replaced; returns why it ended.
    async fn serve(&mut self, conn: Conn<N::Stream>) -> &'static str {
        let mut conn = conn;
        loop {
            let progress = conn.progress;
            let (reader, mut writer) = tokio::io::split(conn.stream);
            let keys = Arc::new(conn.keys);
            let (done_tx, mut done_rx) = oneshot::channel::<()>();
            let reader_task = tokio::spawn(read_loop(
                reader,
                progress.then_some(PEER_SILENCE),
                keys.clone(),
                self.peer,
                self.sink.clone(),
                self.counters.clone(),
                done_tx,
            ));
            let mut nonce = 0u64;
            let mut frames = FrameWriter::default();
            let outcome = loop {
                // Biased (deterministic simulation): a closed read side and a replacing
                // connection come once each; urgent (Paxos) frames before bulk (snapshot
                // chunks), which wait only while urgent frames keep coming, as intended.
                let frame = tokio::select! {
                    biased;
                    _ = &mut done_rx => break Err("read side closed"),
                    new = self.conns.recv(), if !self.dial => match new {
                        Some(new) => break Ok(new),
                        None => break Err("shutting down"),
                    },
                    Some(f) = self.urgent.recv() => f,
                    Some(f) = self.bulk.recv() => f,
                };
                if !progress && is_progress_frame(&frame) {
                    self.counters.peer_progress_held_back.inc();
                    continue;
                }
                // The urgent frames queued meanwhile go in the same write (one syscall, and
                // one wake-up of the peer's reader, for a Ready's worth of messages).
                let mut sealed = frames.seal(&keys, &mut nonce, &frame).map(|()| 1u64);
                while let Ok(n) = sealed {
                    if frames.out.len() >= BATCH_BYTES {
                        break;
                    }
                    let Ok(next) = self.urgent.try_recv() else {
                        break;
                    };
                    if !progress && is_progress_frame(&next) {
                        self.counters.peer_progress_held_back.inc();
                        continue;
                    }
                    sealed = frames.seal(&keys, &mut nonce, &next).map(|()| n + 1);
                }
                let n = match sealed {
                    Ok(n) => n,
                    Err(err) => {
                        err.count(&self.counters);
                        break Err("write failed");
                    }
                };
                let write = frames.flush(&mut writer);
                match tokio::time::timeout(SEND_DEADLINE, write).await {
                    Ok(Ok(())) => {
                        self.counters.peer_frames_out.inc_by(n);
                    }
                    Ok(Err(err)) => {
                        err.count(&self.counters);
                        break Err("write failed");
                    }
                    Err(_) => {
                        self.counters.peer_send_timeouts.inc();
                        break Err("send deadline missed");
                    }
                }
            };
            reader_task.abort();
            match outcome {
                Ok(new) => {
                    info!(peer = self.peer.0, "peer reconnected; replacing connection");
                    self.counters.peer_connects.inc();
                    conn = new;
                }
                Err(reason) => return reason,
            }
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    reader: R,
    silence: Option<Duration>,
    keys: Arc<Keys>,
    from: NodeId,
    sink: Arc<dyn InboundSink>,
    counters: Counters,
    done: oneshot::Sender<()>,
) {
    let mut nonce = 0u64;
    // Buffered: a record's length and body, and the records behind them, come in one read.
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    let mut frames = FrameReader {
        silence,
        ..FrameReader::default()
    };
    loop {
        let frame = match frames.next(&mut reader, &keys, &mut nonce).await {
            Ok(frame) => frame,
            Err(err) => {
                match err {
                    PeerError::Io(_) => {}
                    PeerError::Silent(_) => {
                        warn!(peer = from.0, %err, "peer link silent; closing the connection")
                    }
                    _ => warn!(peer = from.0, %err, "peer frame refused; closing the connection"),
                }
                err.count(&counters);
                break;
            }
        };
        match decode_frame(frame) {
            Ok(body) => {
                counters.peer_frames_in.inc();
                sink.deliver(Inbound { from, body });
            }
            Err(err) => {
                warn!(peer = from.0, %err, "peer frame refused; closing the connection");
                err.count(&counters);
                break;
            }
        }
    }
    let _ = done.send(());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeededEntropy;

    fn identity(secret: &[u8], me: u64, cell: &str) -> PeerIdentity {
        let members = (1..=3)
            .map(|i| {
                (
                    NodeId(i),
                    format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                )
            })
            .collect();
        PeerIdentity::new(cell, secret, NodeId(me), members)
            .with_entropy(Arc::new(SeededEntropy::new(me)))
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const VOTER: Hello = Hello {
        state: MemberState::Voter,
        progress: true,
    };

    async fn handshake(
        dialer: PeerIdentity,
        acceptor: PeerIdentity,
    ) -> (
        Result<(Keys, Hello), PeerError>,
        Result<(NodeId, Keys, Hello), PeerError>,
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
    ) {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let to = acceptor.me;
        // Each side gives up after a second, as the real ones do after HANDSHAKE_TIMEOUT (a
        // refusing acceptor closes the connection; here the other half stays open).
        let limit = Duration::from_secs(1);
        let (left, right) = tokio::join!(
            async {
                tokio::time::timeout(limit, initiate(&dialer, to, &mut a, VOTER))
                    .await
                    .unwrap_or(Err(PeerError::Timeout))
            },
            async {
                tokio::time::timeout(limit, respond(&acceptor, &mut b, VOTER))
                    .await
                    .unwrap_or(Err(PeerError::Timeout))
            }
        );
        (left, right, a, b)
    }

    #[tokio::test]
    async fn a_handshake_with_the_secret_carries_frames_of_any_size_both_ways() {
        let (left, right, mut a, mut b) =
            handshake(identity(SECRET, 1, "c"), identity(SECRET, 2, "c")).await;
        let (keys_a, theirs) = left.unwrap();
        let (from, keys_b, _) = right.unwrap();
        assert_eq!(from, NodeId(1));
        assert_eq!(theirs, VOTER);
        // One small frame and one that spans many records.
        let big = vec![7u8; 300_000];
        let (mut na, mut nb) = (0, 0);
        write_frame(&mut a, &keys_a, &mut na, b"hi").await.unwrap();
        write_frame(&mut a, &keys_a, &mut na, &big).await.unwrap();
        assert_eq!(read_frame(&mut b, &keys_b, &mut nb).await.unwrap(), b"hi");
        assert_eq!(read_frame(&mut b, &keys_b, &mut nb).await.unwrap(), big);
        let (mut na2, mut nb2) = (0, 0);
        write_frame(&mut b, &keys_b, &mut nb2, b"back")
            .await
            .unwrap();
        assert_eq!(
            read_frame(&mut a, &keys_a, &mut na2).await.unwrap(),
            b"back"
        );
        // A replayed or reordered record fails to decrypt.
        let mut replayed = 0;
        write_frame(&mut a, &keys_a, &mut replayed, b"again")
            .await
            .unwrap();
        assert!(matches!(
            read_frame(&mut b, &keys_b, &mut nb).await,
            Err(PeerError::Decrypt)
        ));
    }

    /// A link that keeps its socket open but brings nothing (black-holed, or half-open after
    /// a one-way cut) is closed by its reader after the silence limit and counted; a link
    /// that keeps bringing records (progress frames) stays open, and so does a link from a
    /// peer that sends no progress frames (no limit).
    #[tokio::test]
    async fn a_silent_link_is_closed_by_its_reader_and_a_live_one_stays_open() {
        async fn link(
            silence: Option<Duration>,
        ) -> (
            tokio::io::DuplexStream,
            Keys,
            Counters,
            oneshot::Receiver<()>,
            tokio::task::JoinHandle<()>,
        ) {
            let (left, right, a, b) =
                handshake(identity(SECRET, 1, "c"), identity(SECRET, 2, "c")).await;
            let (keys_a, _) = left.unwrap();
            let (_, keys_b, _) = right.unwrap();
            let sink = Arc::new(TestSink {
                progress: true,
                got: Default::default(),
            });
            let counters = Counters::default();
            let (done_tx, done_rx) = oneshot::channel();
            let reader = tokio::spawn(read_loop(
                b,
                silence,
                Arc::new(keys_b),
                NodeId(1),
                sink,
                counters.clone(),
                done_tx,
            ));
            (a, keys_a, counters, done_rx, reader)
        }
        let limit = Duration::from_millis(300);
        let progress = encode_frame(&PeerBody::Progress {
            commit: Slot(1),
            applied: Slot(1),
        });

        // Live: a frame every 50 ms for 1.5 s (five limits) keeps it open.
        let (mut a, keys, counters, mut done, reader) = link(Some(limit)).await;
        let mut nonce = 0;
        for _ in 0..30 {
            write_frame(&mut a, &keys, &mut nonce, &progress)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(done.try_recv().is_err(), "a live link was closed");
        }
        assert_eq!(counters.peer_silent_closes.get(), 0);
        // Silent from here on, the socket still open: closed and counted.
        tokio::time::timeout(Duration::from_secs(10), &mut done)
            .await
            .expect("a silent link stayed open")
            .unwrap();
        assert_eq!(counters.peer_silent_closes.get(), 1);
        assert_eq!(counters.peer_io_errors.get(), 0);
        reader.await.unwrap();
        drop(a);

        // No limit (a peer that sends no progress frames): silence closes nothing.
        let (a, _keys, counters, mut done, reader) = link(None).await;
        tokio::time::sleep(limit * 4).await;
        assert!(
            done.try_recv().is_err(),
            "a link without a limit was closed"
        );
        assert_eq!(counters.peer_silent_closes.get(), 0);
        reader.abort();
        drop(a);
    }

    #[tokio::test]
    async fn the_wrong_secret_fails_on_both_sides() {
        let (left, right, _, _) = handshake(
            identity(b"another secret of 32 characters..", 1, "c"),
            identity(SECRET, 2, "c"),
        )
        .await;
        assert!(matches!(right, Err(PeerError::Auth)), "{right:?}");
        assert!(left.is_err());
    }

    #[tokio::test]
    async fn hellos_that_do_not_fit_are_refused_by_kind() {
        // Another cell.
        let (_, right, _, _) = handshake(identity(SECRET, 1, "x"), identity(SECRET, 2, "c")).await;
        assert!(matches!(right, Err(PeerError::OtherCell(ref c)) if c == "x"));
        // A higher id dialing a lower one (the lower id dials).
        let (_, right, _, _) = handshake(identity(SECRET, 3, "c"), identity(SECRET, 2, "c")).await;
        assert!(matches!(right, Err(PeerError::BadIds { from: 3, to: 2 })));
        // Another wire version, and bytes that are not a hello at all.
        for (bytes, want_version) in [
            (&b"CLDP\x09\x01c"[..], true),
            (&b"GET / HTTP/1.0\r\n"[..], false),
        ] {
            let (mut a, mut b) = tokio::io::duplex(1024);
            a.write_all(bytes).await.unwrap();
            drop(a);
            let got = respond(&identity(SECRET, 2, "c"), &mut b, VOTER).await;
            if want_version {
                assert!(matches!(got, Err(PeerError::BadVersion(9))), "{got:?}");
            } else {
                assert!(matches!(got, Err(PeerError::BadMagic)), "{got:?}");
            }
        }
        // A connection closed mid-hello.
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"CLD").await.unwrap();
        drop(a);
        let got = respond(&identity(SECRET, 2, "c"), &mut b, VOTER).await;
        assert!(matches!(got, Err(PeerError::Truncated)), "{got:?}");
    }

    #[tokio::test]
    async fn a_frame_above_the_limit_is_refused_before_it_is_all_read() {
        let (left, right, mut a, mut b) =
            handshake(identity(SECRET, 1, "c"), identity(SECRET, 2, "c")).await;
        let (keys_a, _) = left.unwrap();
        let (_, keys_b, _) = right.unwrap();
        let writer = tokio::spawn(async move {
            let mut n = 0;
            let huge = vec![0u8; MAX_FRAME + MAX_PIECE];
            let _ = write_frame(&mut a, &keys_a, &mut n, &huge).await;
        });
        let mut n = 0;
        assert!(matches!(
            read_frame(&mut b, &keys_b, &mut n).await,
            Err(PeerError::TooLarge)
        ));
        drop(b);
        let _ = writer.await;
    }

    #[test]
    fn frames_round_trip_and_refuse_unknown_versions() {
        let body = PeerBody::RejoinBarrierDone { slot: Slot(7) };
        let frame = encode_frame(&body);
        assert_eq!(frame[0], FRAME_VERSION);
        assert_eq!(decode_frame(&frame).unwrap(), body);
        let mut bad = frame.clone();
        bad[0] = 9;
        assert!(matches!(
            decode_frame(&bad),
            Err(PeerError::FrameVersion(9))
        ));
        assert!(matches!(decode_frame(&[]), Err(PeerError::Empty)));
        assert!(matches!(
            decode_frame(&[FRAME_VERSION, 200, 200]),
            Err(PeerError::Decode(_))
        ));
    }

    #[test]
    fn progress_frames_are_told_apart_from_every_other_frame() {
        let progress = PeerBody::Progress {
            commit: Slot(9),
            applied: Slot(8),
        };
        assert!(is_progress_frame(&encode_frame(&progress)));
        assert_eq!(decode_frame(&encode_frame(&progress)).unwrap(), progress);
        let others = [
            PeerBody::Paxos(Message::CatchUpRequest { from: Slot(1) }),
            PeerBody::SnapshotRequest,
            PeerBody::SnapshotChunk {
                applied: Slot(1),
                total: 1,
                offset: 0,
                data: vec![6],
            },
            PeerBody::SnapshotUnavailable,
            PeerBody::RejoinBarrier,
            PeerBody::RejoinBarrierDone { slot: Slot(6) },
        ];
        for body in &others {
            assert!(!is_progress_frame(&encode_frame(body)), "{body:?}");
        }
    }

    #[test]
    fn hellos_are_read_across_versions() {
        #[derive(Serialize)]
        struct Old {
            state: MemberState,
        }
        // An older member's hello: no progress frames for it.
        let old = postcard::to_allocvec(&Old {
            state: MemberState::Rejoining,
        })
        .unwrap();
        assert_eq!(
            decode_hello(&old).unwrap(),
            Hello {
                state: MemberState::Rejoining,
                progress: false
            }
        );
        // This hello, read as an older member reads it (postcard ignores the rest).
        let new = postcard::to_allocvec(&VOTER).unwrap();
        let read: HelloV1 = postcard::from_bytes(&new).unwrap();
        assert_eq!(read.state, MemberState::Voter);
        assert_eq!(decode_hello(&new).unwrap(), VOTER);
        assert!(matches!(decode_hello(&[]), Err(PeerError::BadPayload)));
    }

    /// Collects what a peer delivers; its hello says whether it understands progress frames.
    struct TestSink {
        progress: bool,
        got: std::sync::Mutex<Vec<PeerBody>>,
    }

    impl InboundSink for TestSink {
        fn deliver(&self, inbound: Inbound) {
            self.got.lock().unwrap().push(inbound.body);
        }
        fn hello(&self) -> Hello {
            Hello {
                state: MemberState::Voter,
                progress: self.progress,
            }
        }
        fn peer_hello(&self, _: NodeId, _: Hello) {}
    }

    #[tokio::test]
    async fn progress_frames_are_held_back_from_a_peer_that_does_not_understand_them() {
        // Listeners stay bound for the whole test (no port is handed out twice).
        let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let members = vec![
            (NodeId(1), l1.local_addr().unwrap()),
            (NodeId(2), l2.local_addr().unwrap()),
        ];
        let id = |me: u64| {
            PeerIdentity::new("c", SECRET, NodeId(me), members.clone())
                .with_entropy(Arc::new(SeededEntropy::new(me)))
        };
        let new = Arc::new(TestSink {
            progress: true,
            got: Default::default(),
        });
        let old = Arc::new(TestSink {
            progress: false,
            got: Default::default(),
        });
        let (c1, c2) = (Counters::default(), Counters::default());
        let entropy = Arc::new(SeededEntropy::new(5));
        let s1 = start(
            Arc::new(TokioNet),
            l1,
            id(1),
            new.clone(),
            c1.clone(),
            entropy.clone(),
        );
        let s2 = start(Arc::new(TokioNet), l2, id(2), old.clone(), c2, entropy);
        let progress = PeerBody::Progress {
            commit: Slot(3),
            applied: Slot(2),
        };
        let marker = PeerBody::RejoinBarrierDone { slot: Slot(1) };
        for _ in 0..200 {
            if !old.got.lock().unwrap().is_empty() && !new.got.lock().unwrap().is_empty() {
                break;
            }
            s1.send(NodeId(2), &progress);
            s1.send(NodeId(2), &marker);
            s2.send(NodeId(1), &progress);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The older member got the other frames, never a progress frame, and its connection
        // stayed up; the newer one got the progress frames.
        let got_old = old.got.lock().unwrap().clone();
        assert!(got_old.contains(&marker), "{got_old:?}");
        assert!(!got_old.contains(&progress), "{got_old:?}");
        assert!(new.got.lock().unwrap().contains(&progress));
        assert!(c1.peer_progress_held_back.get() > 0);
        assert_eq!(c1.peer_connects.get(), 1, "the connection was not replaced");
    }

    /// The hand-over messages were appended to libpaxos's `Message`, so a frame of any
    /// earlier message is byte for byte what frame version 1 always carried (a member of the
    /// previous release decodes it), and the new ones take the next variant numbers.
    #[test]
    fn earlier_paxos_messages_keep_their_bytes_and_the_hand_over_ones_follow() {
        use libpaxos::Ballot;
        let ballot = Ballot {
            round: 1,
            node: NodeId(2),
        };
        let heartbeat = PeerBody::Paxos(Message::Heartbeat {
            ballot,
            seq: 3,
            commit: Slot(4),
        });
        // frame version, PeerBody::Paxos (0), Message::Heartbeat (7), round, node, seq, commit
        assert_eq!(encode_frame(&heartbeat), vec![1, 0, 7, 1, 2, 3, 4]);
        let snapshot_needed = PeerBody::Paxos(Message::SnapshotNeeded { slot: Slot(9) });
        assert_eq!(encode_frame(&snapshot_needed), vec![1, 0, 11, 9]);
        let release = PeerBody::Paxos(Message::LeaseRelease { ballot });
        assert_eq!(encode_frame(&release), vec![1, 0, 12, 1, 2]);
        let timeout_now = PeerBody::Paxos(Message::TimeoutNow {
            ballot,
            commit: Slot(5),
        });
        assert_eq!(encode_frame(&timeout_now), vec![1, 0, 13, 1, 2, 5]);
        for body in [release, timeout_now] {
            assert_eq!(decode_frame(&encode_frame(&body)).unwrap(), body);
        }
    }
}
