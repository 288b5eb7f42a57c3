//! The session handshake: Noise `NKpsk0_25519_ChaChaPoly_SHA256` (through `snow`), the
//! user's secret as the pre-shared key, the cell's static key known to the client; plus the
//! cell side's bounded pre-authentication machinery (pending handshakes, cookies).
//! docs/protocol.md §12.2-12.3.
//!
//! ```text
//! NKpsk0:
//!   <- s                 (the client is configured with the cell's public key)
//!   ...
//!   -> psk, e, es        HandshakeInit: proves the user's secret, no answer needed to check
//!   <- e, ee             HandshakeReply: the cell's fresh ephemeral; carries the outcome
//! ```
//!
//! Both sides then split into two 32-byte root keys ([`SessionKeys`]); datagrams are sealed
//! with keys derived from them (`seal.rs`). Randomness (the ephemeral keys) comes from the
//! caller: this module is `no_std` and has no RNG.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use snow::params::NoiseParams;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use zeroize::Zeroizing;

use super::{
    CellPrivateKey, CellPublicKey, DecodeError, Epoch, ErrorCode, EventSeq, HEADER_LEN, Header,
    Kind, MAX_USER, PacketSeq, Role, SealingKey, Secret, Sender, SessionId, SessionKeys, UserName,
    parse_header,
};

/// The Noise protocol name (also hashed into every handshake).
pub const NOISE_PATTERN: &str = "Noise_NKpsk0_25519_ChaChaPoly_SHA256";
/// Length of the Noise part of a `HandshakeInit`: the client's ephemeral key and the tag
/// of its empty payload.
pub const INIT_NOISE_LEN: usize = 32 + 16;
/// Length of a `HandshakeInit` body: user (32), cell key id (8), cookie (16), Noise (48).
pub const INIT_BODY_LEN: usize = MAX_USER + 8 + COOKIE_LEN + INIT_NOISE_LEN;
/// Length of the (padded) outcome inside a `HandshakeReply`.
pub const OUTCOME_LEN: usize = 24;
/// Length of a `HandshakeReply` body: the cell's ephemeral key, the sealed outcome, its tag.
pub const REPLY_BODY_LEN: usize = 32 + OUTCOME_LEN + 16;
/// Length of a cookie.
pub const COOKIE_LEN: usize = 16;

/// Why a handshake step failed. Each cause is counted separately by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The datagram did not parse (bad length, header fields, user name).
    #[error("malformed handshake datagram: {0}")]
    Malformed(DecodeError),
    /// The init names a cell key this cell does not hold.
    #[error("handshake names an unknown cell key")]
    UnknownCellKey,
    /// The Noise message did not authenticate (wrong secret, wrong cell key, forged).
    #[error("handshake message did not authenticate")]
    BadNoise,
    /// The reply's outcome did not decode.
    #[error("handshake outcome malformed")]
    BadOutcome,
    /// snow refused a parameter (cannot happen with this module's fixed parameters).
    #[error("handshake state could not be built")]
    Internal,
}

/// What the cell answers a handshake with (sealed inside the `HandshakeReply`, so only the
/// client that sent the init can read it and nobody can forge it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeOutcome {
    /// A pending session: prove the handshake by sending `NewSession` (request seq 1) sealed
    /// under the new keys, to this member, with this epoch.
    Accepted {
        /// The session id the cell chose.
        session: SessionId,
        /// The master's epoch: the client seals under this epoch's key.
        epoch: Epoch,
    },
    /// This member is not the master; try `hint` (or the next member).
    NotMaster {
        /// The member believed to be master.
        hint: Option<SocketAddr>,
    },
    /// The cell refuses a session (e.g. [`ErrorCode::TooManySessions`], [`ErrorCode::Busy`]).
    Refused {
        /// Why.
        code: ErrorCode,
    },
}

impl HandshakeOutcome {
    fn encode(&self) -> Result<[u8; OUTCOME_LEN], HandshakeError> {
        let mut buf = [0u8; OUTCOME_LEN];
        postcard::to_slice(self, &mut buf).map_err(|_| HandshakeError::Internal)?;
        Ok(buf)
    }

    fn decode(buf: &[u8]) -> Result<HandshakeOutcome, HandshakeError> {
        match postcard::take_from_bytes::<HandshakeOutcome>(buf) {
            // The padding must be zeros: one outcome, one encoding.
            Ok((v, rest)) if rest.iter().all(|&b| b == 0) => Ok(v),
            _ => Err(HandshakeError::BadOutcome),
        }
    }
}

/// Feeds snow exactly the caller's 32 random bytes, once (one ephemeral key per handshake).
struct CallerRandom(Zeroizing<[u8; 32]>, bool);

impl Random for CallerRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        if self.1 || dest.len() > 32 {
            return Err(snow::Error::Rng);
        }
        dest.copy_from_slice(&self.0[..dest.len()]);
        self.1 = true;
        Ok(())
    }
}

/// snow's default primitives with the caller's randomness.
struct Resolver(Zeroizing<[u8; 32]>);

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(CallerRandom(self.0.clone(), false)))
    }
    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

fn params() -> Result<NoiseParams, HandshakeError> {
    NOISE_PATTERN.parse().map_err(|_| HandshakeError::Internal)
}

/// The prologue both sides hash in: `"cld v2" || user (32, zero-padded) || cell key id (8)`.
fn prologue(user: &UserName, key_id: &[u8; 8]) -> [u8; 6 + MAX_USER + 8] {
    let mut p = [0u8; 6 + MAX_USER + 8];
    p[..6].copy_from_slice(b"cld v2");
    p[6..6 + MAX_USER].copy_from_slice(&user.to_wire());
    p[6 + MAX_USER..].copy_from_slice(key_id);
    p
}

fn handshake_header(kind: Kind, session: SessionId, sender: Sender) -> [u8; HEADER_LEN] {
    let h = Header {
        kind,
        session,
        packet_seq: PacketSeq(0),
        msg_seq: 0,
        ack: EventSeq(0),
        sender,
        frag_index: 0,
        frag_count: 1,
        pad: 0,
    };
    let mut b = [0u8; HEADER_LEN];
    h.write(&mut b);
    b
}

/// The client's side of one handshake. Holds its ephemeral private key (zeroed on drop) so
/// that it can re-send the very same init and read any reply to it.
pub struct ClientHandshake {
    user: UserName,
    psk: Zeroizing<[u8; 32]>,
    cell: CellPublicKey,
    ephemeral: Zeroizing<[u8; 32]>,
    cookie: [u8; COOKIE_LEN],
}

impl ClientHandshake {
    /// A handshake of `user` (with `secret`) with the cell whose public key is `cell`;
    /// `ephemeral_random` must be 32 fresh bytes from a cryptographic RNG.
    pub fn new(
        user: UserName,
        secret: &Secret,
        cell: CellPublicKey,
        ephemeral_random: [u8; 32],
    ) -> ClientHandshake {
        ClientHandshake {
            user,
            psk: secret.psk(&user),
            cell,
            ephemeral: Zeroizing::new(ephemeral_random),
            cookie: [0; COOKIE_LEN],
        }
    }

    fn state(&self) -> Result<snow::HandshakeState, HandshakeError> {
        let prologue = prologue(&self.user, &self.cell.key_id());
        snow::Builder::with_resolver(params()?, Box::new(Resolver(self.ephemeral.clone())))
            .psk(0, &self.psk)
            .and_then(|b| b.prologue(&prologue))
            .and_then(|b| b.remote_public_key(self.cell.as_bytes()))
            .and_then(|b| b.build_initiator())
            .map_err(|_| HandshakeError::Internal)
    }

    /// Remembers the cookie a cell under load asked for; the next init carries it.
    pub fn set_cookie(&mut self, cookie: [u8; COOKIE_LEN]) {
        self.cookie = cookie;
    }

    /// The `HandshakeInit` datagram. The same bytes every time (for one cookie), so that a
    /// cell recognizes a re-send and answers it from its pending entry.
    pub fn init_datagram(&self) -> Result<Vec<u8>, HandshakeError> {
        let mut hs = self.state()?;
        let mut noise = [0u8; INIT_NOISE_LEN];
        let n = hs
            .write_message(&[], &mut noise)
            .map_err(|_| HandshakeError::Internal)?;
        if n != INIT_NOISE_LEN {
            return Err(HandshakeError::Internal);
        }
        let mut dg = Vec::with_capacity(HEADER_LEN + INIT_BODY_LEN);
        dg.extend_from_slice(&handshake_header(
            Kind::HandshakeInit,
            SessionId(0),
            Sender::client(Epoch(0)),
        ));
        dg.extend_from_slice(&self.user.to_wire());
        dg.extend_from_slice(&self.cell.key_id());
        dg.extend_from_slice(&self.cookie);
        dg.extend_from_slice(&noise);
        Ok(dg)
    }

    /// Reads a `HandshakeReply` (its header already parsed): the outcome, and for
    /// [`HandshakeOutcome::Accepted`] the session's keys. Fails for anything that is not
    /// the cell's answer to this very init.
    pub fn read_reply(
        &self,
        header: &Header,
        body: &[u8],
    ) -> Result<(HandshakeOutcome, Option<SessionKeys>), HandshakeError> {
        if header.kind != Kind::HandshakeReply || body.len() != REPLY_BODY_LEN {
            return Err(HandshakeError::Malformed(DecodeError::BadBody));
        }
        let mut hs = self.state()?;
        let mut noise = [0u8; INIT_NOISE_LEN];
        hs.write_message(&[], &mut noise)
            .map_err(|_| HandshakeError::Internal)?;
        let mut payload = Zeroizing::new([0u8; REPLY_BODY_LEN]);
        let n = hs
            .read_message(body, payload.as_mut())
            .map_err(|_| HandshakeError::BadNoise)?;
        let outcome = HandshakeOutcome::decode(&payload[..n])?;
        let keys = match outcome {
            HandshakeOutcome::Accepted { session, .. } if session == header.session => {
                let (c2s, s2c) = hs.dangerously_get_raw_split();
                Some(SessionKeys::from_split(c2s, s2c))
            }
            HandshakeOutcome::Accepted { .. } => return Err(HandshakeError::BadOutcome),
            _ => None,
        };
        Ok((outcome, keys))
    }
}

impl core::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ClientHandshake({:?})", self.user)
    }
}

/// A parsed `HandshakeInit` (cheap: no cryptography yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeInit {
    /// The user whose secret the init claims to prove.
    pub user: UserName,
    /// Which cell key the client used ([`CellPublicKey::key_id`]).
    pub key_id: [u8; 8],
    /// The cookie, all zeros for none.
    pub cookie: [u8; COOKIE_LEN],
    noise: [u8; INIT_NOISE_LEN],
}

impl HandshakeInit {
    /// Parses a whole `HandshakeInit` datagram. Every header field but magic, version,
    /// kind, role (client) and fragment (0 of 1) must be zero, and the body exactly
    /// [`INIT_BODY_LEN`] bytes: one init, one encoding.
    pub fn parse(datagram: &[u8], max_datagram: usize) -> Result<HandshakeInit, HandshakeError> {
        let (h, body) = parse_header(datagram, max_datagram).map_err(HandshakeError::Malformed)?;
        let malformed = HandshakeError::Malformed(DecodeError::BadBody);
        if h.kind != Kind::HandshakeInit
            || datagram[..HEADER_LEN]
                != handshake_header(Kind::HandshakeInit, SessionId(0), Sender::client(Epoch(0)))
            || body.len() != INIT_BODY_LEN
        {
            return Err(malformed);
        }
        let mut user = [0u8; MAX_USER];
        user.copy_from_slice(&body[..MAX_USER]);
        let user = UserName::from_wire(&user)
            .map_err(|e| HandshakeError::Malformed(DecodeError::BadHeader(e)))?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&body[MAX_USER..MAX_USER + 8]);
        let mut cookie = [0u8; COOKIE_LEN];
        cookie.copy_from_slice(&body[MAX_USER + 8..MAX_USER + 8 + COOKIE_LEN]);
        let mut noise = [0u8; INIT_NOISE_LEN];
        noise.copy_from_slice(&body[MAX_USER + 8 + COOKIE_LEN..]);
        Ok(HandshakeInit {
            user,
            key_id,
            cookie,
            noise,
        })
    }

    /// The client's ephemeral public key (in the clear): names the handshake, so that a
    /// re-sent (or replayed) init finds its pending entry.
    pub fn ephemeral(&self) -> [u8; 32] {
        let mut e = [0u8; 32];
        e.copy_from_slice(&self.noise[..32]);
        e
    }
}

/// The cell's key pair(s): the current key and, during a rotation, the previous one.
/// Inits name the key they used by its id.
pub struct CellKeys {
    current: CellPrivateKey,
    previous: Option<CellPrivateKey>,
}

impl CellKeys {
    /// One key, or a rotation's new and old key.
    pub fn new(current: CellPrivateKey, previous: Option<CellPrivateKey>) -> CellKeys {
        CellKeys { current, previous }
    }

    fn find(&self, key_id: &[u8; 8]) -> Option<&CellPrivateKey> {
        core::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.public().key_id() == *key_id)
    }
}

/// The cell's half of a handshake: authenticates the init with the user's `secret` and the
/// cell key it names, and writes the `HandshakeReply` carrying `outcome`, sealed under
/// keys that include the fresh ephemeral made from `ephemeral_random` (32 fresh bytes from a
/// cryptographic RNG). `sender` is the answering member (its role is set to stateless).
/// Returns the reply datagram and, for [`HandshakeOutcome::Accepted`], the session keys.
/// Costs three X25519 operations; an init that does not authenticate costs one and gets no
/// answer.
pub fn respond(
    keys: &CellKeys,
    init: &HandshakeInit,
    secret: &Secret,
    outcome: &HandshakeOutcome,
    sender: Sender,
    ephemeral_random: [u8; 32],
) -> Result<(Vec<u8>, Option<SessionKeys>), HandshakeError> {
    let key = keys
        .find(&init.key_id)
        .ok_or(HandshakeError::UnknownCellKey)?;
    let psk = secret.psk(&init.user);
    let prologue = prologue(&init.user, &init.key_id);
    let mut hs = snow::Builder::with_resolver(
        params()?,
        Box::new(Resolver(Zeroizing::new(ephemeral_random))),
    )
    .psk(0, &psk)
    .and_then(|b| b.prologue(&prologue))
    .and_then(|b| b.local_private_key(key.as_bytes()))
    .and_then(|b| b.build_responder())
    .map_err(|_| HandshakeError::Internal)?;
    let mut empty = [0u8; INIT_NOISE_LEN];
    let n = hs
        .read_message(&init.noise, &mut empty)
        .map_err(|_| HandshakeError::BadNoise)?;
    if n != 0 {
        return Err(HandshakeError::BadNoise);
    }
    let payload = outcome.encode()?;
    let mut body = [0u8; REPLY_BODY_LEN];
    let n = hs
        .write_message(&payload, &mut body)
        .map_err(|_| HandshakeError::Internal)?;
    if n != REPLY_BODY_LEN {
        return Err(HandshakeError::Internal);
    }
    let session = match outcome {
        HandshakeOutcome::Accepted { session, .. } => *session,
        _ => SessionId(0),
    };
    let sender = Sender {
        role: Role::Stateless,
        ..sender
    };
    let mut dg = Vec::with_capacity(HEADER_LEN + REPLY_BODY_LEN);
    dg.extend_from_slice(&handshake_header(Kind::HandshakeReply, session, sender));
    dg.extend_from_slice(&body);
    let session_keys = match outcome {
        HandshakeOutcome::Accepted { .. } => {
            let (c2s, s2c) = hs.dangerously_get_raw_split();
            Some(SessionKeys::from_split(c2s, s2c))
        }
        _ => None,
    };
    Ok((dg, session_keys))
}

/// A `Cookie` datagram (unsealed, 76 bytes: smaller than the init it answers).
pub fn cookie_datagram(cookie: &[u8; COOKIE_LEN], sender: Sender) -> Vec<u8> {
    let sender = Sender {
        role: Role::Stateless,
        ..sender
    };
    let mut dg = Vec::with_capacity(HEADER_LEN + COOKIE_LEN);
    dg.extend_from_slice(&handshake_header(Kind::Cookie, SessionId(0), sender));
    dg.extend_from_slice(cookie);
    dg
}

/// Reads a `Cookie` datagram's cookie (header already parsed).
pub fn read_cookie(header: &Header, body: &[u8]) -> Option<[u8; COOKIE_LEN]> {
    (header.kind == Kind::Cookie && body.len() == COOKIE_LEN).then(|| {
        let mut c = [0u8; COOKIE_LEN];
        c.copy_from_slice(body);
        c
    })
}

/// Bounds of a [`Responder`] (docs/protocol.md §12.3 gives the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponderLimits {
    /// Most pending handshakes held (the oldest is evicted first).
    pub max_pending: usize,
    /// Most pending handshakes held per user (that user's oldest is evicted first).
    pub max_pending_per_user: usize,
    /// How long a pending handshake waits for the client's first sealed datagram.
    pub pending_ttl: Duration,
    /// From this many pending handshakes on, an init must carry a valid cookie.
    pub cookie_threshold: usize,
}

impl Default for ResponderLimits {
    fn default() -> Self {
        ResponderLimits {
            max_pending: 1024,
            max_pending_per_user: 16,
            pending_ttl: Duration::from_secs(10),
            cookie_threshold: 256,
        }
    }
}

/// What a [`Responder`] did, for the operators' counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponderCounters {
    /// Inits that parsed.
    pub inits: u64,
    /// Inits dropped as malformed.
    pub malformed: u64,
    /// Inits answered from a pending entry (client re-sends and replays).
    pub resent: u64,
    /// Cookie datagrams sent (an init without a valid cookie under load).
    pub cookies_sent: u64,
    /// Inits that did not authenticate (wrong secret or cell key, forged, unknown user).
    pub bad_inits: u64,
    /// Inits naming a cell key the cell does not hold.
    pub unknown_cell_key: u64,
    /// Replies written (each cost three X25519 operations).
    pub answered: u64,
    /// Pending handshakes that expired unproven.
    pub expired: u64,
    /// Pending handshakes evicted to make room.
    pub evicted: u64,
    /// Pending handshakes proven by the client's first sealed datagram.
    pub completed: u64,
}

struct Pending {
    ephemeral: [u8; 32],
    session: SessionId,
    user: UserName,
    epoch: Epoch,
    keys: SessionKeys,
    reply: Vec<u8>,
    expires: Duration,
}

/// What to do with a `HandshakeInit` after the cheap checks of [`Responder::check_init`].
#[derive(Debug)]
pub enum InitCheck {
    /// Send this datagram back to the source (a pending entry's reply, or a cookie);
    /// no expensive work was done.
    Answer(Vec<u8>),
    /// A new handshake: look up `init.user`'s secret, decide the outcome, and call
    /// [`Responder::answer`].
    Fresh(HandshakeInit),
    /// Drop it (counted).
    Drop(HandshakeError),
}

/// A completed handshake: what the server writes to the log as the new session's record.
#[derive(Debug)]
pub struct ProvenSession {
    /// The session id the cell chose.
    pub session: SessionId,
    /// Its user.
    pub user: UserName,
    /// The epoch it was accepted in.
    pub epoch: Epoch,
    /// Its root keys.
    pub keys: SessionKeys,
}

/// The cell side's pre-authentication state, for one member: cell keys, cookie secrets and
/// the bounded table of pending handshakes. Nothing here touches the replicated log: a
/// pending handshake becomes a session only through [`Responder::complete`], once the
/// client's first sealed datagram proved it holds the keys (and so the cell's fresh
/// ephemeral contribution). Time is the caller's monotonic clock.
pub struct Responder {
    keys: CellKeys,
    cookie_secrets: [Zeroizing<[u8; 32]>; 2],
    pending: Vec<Pending>,
    limits: ResponderLimits,
    counters: ResponderCounters,
}

impl Responder {
    /// A responder with `keys`, a cookie secret from 32 fresh random bytes, and `limits`.
    pub fn new(keys: CellKeys, cookie_random: [u8; 32], limits: ResponderLimits) -> Responder {
        Responder {
            keys,
            cookie_secrets: [Zeroizing::new(cookie_random), Zeroizing::new(cookie_random)],
            pending: Vec::new(),
            limits,
            counters: ResponderCounters::default(),
        }
    }

    /// Replaces the limits (e.g. from a reloaded configuration; `cookie_threshold: 0`
    /// demands cookies from everyone).
    pub fn set_limits(&mut self, limits: ResponderLimits) {
        self.limits = limits;
    }

    /// Replaces the cell keys (a rotation: the new key and the old one).
    pub fn set_keys(&mut self, keys: CellKeys) {
        self.keys = keys;
    }

    /// Starts a new cookie secret (every 2 minutes); cookies of the previous one stay valid
    /// until the next rotation.
    pub fn rotate_cookie_secret(&mut self, random: [u8; 32]) {
        self.cookie_secrets.swap(0, 1);
        self.cookie_secrets[0] = Zeroizing::new(random);
    }

    /// The counters so far.
    pub fn counters(&self) -> ResponderCounters {
        self.counters
    }

    /// Pending handshakes held now.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Pending handshakes of `user` held now (they count toward its session limit).
    pub fn pending_for(&self, user: &UserName) -> usize {
        self.pending.iter().filter(|p| p.user == *user).count()
    }

    fn cookie(secret: &[u8; 32], from: SocketAddr, ephemeral: &[u8; 32]) -> [u8; COOKIE_LEN] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
        match from {
            SocketAddr::V4(a) => {
                mac.update(&[4]);
                mac.update(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                mac.update(&[6]);
                mac.update(&a.ip().octets());
            }
        }
        mac.update(&from.port().to_le_bytes());
        mac.update(ephemeral);
        let d = mac.finalize().into_bytes();
        let mut c = [0u8; COOKIE_LEN];
        c.copy_from_slice(&d[..COOKIE_LEN]);
        c
    }

    fn cookie_ok(&self, from: SocketAddr, init: &HandshakeInit) -> bool {
        let e = init.ephemeral();
        let mut ok = 0u8;
        for s in &self.cookie_secrets {
            let want = Self::cookie(s, from, &e);
            let diff = want
                .iter()
                .zip(&init.cookie)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            ok |= u8::from(diff == 0);
        }
        ok == 1
    }

    /// Forgets pending handshakes older than their time to live (counted).
    pub fn expire(&mut self, now: Duration) {
        let before = self.pending.len();
        self.pending.retain(|p| p.expires > now);
        self.counters.expired += (before - self.pending.len()) as u64;
    }

    /// The cheap checks of an init, before any X25519 operation: parse it, answer a re-sent
    /// (or replayed) init from its pending entry, and under load (at least
    /// `cookie_threshold` pending) ask for a cookie unless the init carries a valid one.
    /// `sender` is this member (epoch, id, boot) for the answer's header.
    pub fn check_init(
        &mut self,
        now: Duration,
        from: SocketAddr,
        datagram: &[u8],
        max_datagram: usize,
        sender: Sender,
    ) -> InitCheck {
        self.expire(now);
        let init = match HandshakeInit::parse(datagram, max_datagram) {
            Ok(i) => i,
            Err(e) => {
                self.counters.malformed += 1;
                return InitCheck::Drop(e);
            }
        };
        self.counters.inits += 1;
        let e = init.ephemeral();
        if let Some(p) = self.pending.iter().find(|p| p.ephemeral == e) {
            self.counters.resent += 1;
            return InitCheck::Answer(p.reply.clone());
        }
        if self.pending.len() >= self.limits.cookie_threshold && !self.cookie_ok(from, &init) {
            self.counters.cookies_sent += 1;
            let cookie = Self::cookie(&self.cookie_secrets[0], from, &e);
            return InitCheck::Answer(cookie_datagram(&cookie, sender));
        }
        InitCheck::Fresh(init)
    }

    /// The expensive part: [`respond`], and for an accepted session a pending entry that
    /// answers re-sends with the same reply and waits `pending_ttl` for the client's first
    /// sealed datagram. The caller chose `outcome` (the session id: unpredictable, never
    /// used before; the per-user limit counting [`Responder::pending_for`]).
    pub fn answer(
        &mut self,
        now: Duration,
        init: &HandshakeInit,
        secret: &Secret,
        outcome: &HandshakeOutcome,
        sender: Sender,
        ephemeral_random: [u8; 32],
    ) -> Result<Vec<u8>, HandshakeError> {
        let answered = respond(&self.keys, init, secret, outcome, sender, ephemeral_random);
        let (reply, keys) = match answered {
            Ok(r) => r,
            Err(e) => {
                match e {
                    HandshakeError::UnknownCellKey => self.counters.unknown_cell_key += 1,
                    _ => self.counters.bad_inits += 1,
                }
                return Err(e);
            }
        };
        self.counters.answered += 1;
        if let (Some(keys), HandshakeOutcome::Accepted { session, epoch }) = (keys, outcome) {
            if self.pending_for(&init.user) >= self.limits.max_pending_per_user
                && let Some(i) = self.pending.iter().position(|p| p.user == init.user)
            {
                self.pending.remove(i);
                self.counters.evicted += 1;
            }
            if self.pending.len() >= self.limits.max_pending.max(1) {
                self.pending.remove(0);
                self.counters.evicted += 1;
            }
            self.pending.push(Pending {
                ephemeral: init.ephemeral(),
                session: *session,
                user: init.user,
                epoch: *epoch,
                keys,
                reply: reply.clone(),
                expires: now.saturating_add(self.limits.pending_ttl),
            });
        }
        Ok(reply)
    }

    /// The key a pending session's client seals its first datagrams with, if `header`
    /// names a pending session and the epoch it was accepted in.
    pub fn pending_key(&self, header: &Header) -> Option<SealingKey> {
        let p = self.pending.iter().find(|p| p.session == header.session)?;
        let sender = Sender::client(p.epoch);
        (header.sender == sender).then(|| p.keys.sealing_key(&sender))
    }

    /// True if `session` is pending (so the cell must not choose it for another session).
    pub fn is_pending(&self, session: SessionId) -> bool {
        self.pending.iter().any(|p| p.session == session)
    }

    /// Turns a pending handshake into a session, after a datagram opened with
    /// [`Responder::pending_key`] authenticated: returns what the new session's replicated
    /// record must hold. The entry is gone afterwards, so a replay of the init is a new
    /// handshake whose reply nobody can use.
    pub fn complete(&mut self, session: SessionId) -> Option<ProvenSession> {
        let i = self.pending.iter().position(|p| p.session == session)?;
        let p = self.pending.remove(i);
        self.counters.completed += 1;
        Some(ProvenSession {
            session: p.session,
            user: p.user,
            epoch: p.epoch,
            keys: p.keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_decodes_only_with_zero_padding() {
        let o = HandshakeOutcome::Accepted {
            session: SessionId(5),
            epoch: Epoch(1),
        };
        let mut buf = o.encode().expect("encodes");
        assert_eq!(HandshakeOutcome::decode(&buf), Ok(o));
        buf[OUTCOME_LEN - 1] = 1;
        assert_eq!(
            HandshakeOutcome::decode(&buf),
            Err(HandshakeError::BadOutcome)
        );
    }
}
