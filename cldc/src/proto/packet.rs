//! Whole datagrams: header + sealed body fragment + tag; and the unsealed handshake ones.

use alloc::vec::Vec;
use serde::{Serialize, de::DeserializeOwned};

use super::{
    DecodeError, EventSeq, HEADER_LEN, Header, Kind, MAGIC, MAX_FRAGMENTS, MAX_MESSAGE,
    MIN_CLIENT_DATAGRAM, MIN_DATAGRAM, PacketSeq, Role, SealingKey, SessionId, TAG_LEN, VERSION,
};

/// Everything in a header except the per-datagram numbers (packet seq and fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// What the message is.
    pub kind: Kind,
    /// Its session.
    pub session: SessionId,
    /// Request seq, nonce or event seq.
    pub msg_seq: u64,
    /// Cumulative acknowledgement (see [`Header::ack`]).
    pub ack: EventSeq,
}

/// Why a message could not be turned into datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body is above [`MAX_MESSAGE`] or would need more than [`MAX_FRAGMENTS`] fragments.
    #[error("message too large")]
    TooLarge,
    /// The configured datagram size is below [`MIN_DATAGRAM`].
    #[error("datagram size below the protocol minimum")]
    DatagramTooSmall,
    /// serde refused the value (cannot happen for this crate's message types).
    #[error("message could not be serialized")]
    Serialize,
    /// The kind is not sealed (handshake kinds have their own encoders).
    #[error("handshake kinds are not sealed messages")]
    Unsealed,
    /// The key's role cannot send this kind.
    #[error("this sender's role cannot send this kind")]
    WrongRole,
}

/// Serializes a body with postcard.
pub fn encode_body<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    postcard::to_allocvec(value).map_err(|_| EncodeError::Serialize)
}

/// Deserializes a whole body with postcard; trailing bytes are an error.
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        _ => Err(DecodeError::BadBody),
    }
}

/// Splits `body` into datagrams of at most `max_datagram` bytes sealed with `key` (whose
/// [`Sender`](super::header::Sender) goes into every header), numbering them from `next_seq`, which is advanced
/// past the last one used. The caller must never hand the same key the same numbers twice.
pub fn encode_message(
    meta: &PacketMeta,
    body: &[u8],
    max_datagram: usize,
    key: &SealingKey,
    next_seq: &mut PacketSeq,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    if meta.kind.is_unsealed() {
        return Err(EncodeError::Unsealed);
    }
    if max_datagram < MIN_DATAGRAM {
        return Err(EncodeError::DatagramTooSmall);
    }
    if body.len() > MAX_MESSAGE {
        return Err(EncodeError::TooLarge);
    }
    let room = max_datagram - HEADER_LEN - TAG_LEN;
    let count = body.len().div_ceil(room).max(1);
    if count > MAX_FRAGMENTS as usize {
        return Err(EncodeError::TooLarge);
    }
    let sender = key.sender();
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        let chunk = body
            .get(index * room..body.len().min((index + 1) * room))
            .unwrap_or(&[]);
        let short = (MIN_CLIENT_DATAGRAM).saturating_sub(HEADER_LEN + chunk.len() + TAG_LEN);
        let pad = if sender.role == Role::Client {
            short
        } else {
            0
        };
        let header = Header {
            kind: meta.kind,
            session: meta.session,
            packet_seq: *next_seq,
            msg_seq: meta.msg_seq,
            ack: meta.ack,
            sender,
            frag_index: index as u16,
            frag_count: count as u16,
            pad: pad as u8,
        };
        out.push(seal_datagram(&header, chunk, key)?);
        *next_seq = next_seq.next();
    }
    Ok(out)
}

/// One sealed datagram: `header || ChaCha20-Poly1305(chunk || header.pad zero bytes) || tag`,
/// the header being the associated data and its packet seq the nonce.
pub fn seal_datagram(
    header: &Header,
    chunk: &[u8],
    key: &SealingKey,
) -> Result<Vec<u8>, EncodeError> {
    if header.kind.is_unsealed() {
        return Err(EncodeError::Unsealed);
    }
    let mut h = [0u8; HEADER_LEN];
    header.write(&mut h);
    // Refuse what no receiver would accept (e.g. a client role sealing a reply).
    Header::read(&h).map_err(|_| EncodeError::WrongRole)?;
    let pad = usize::from(header.pad);
    let mut dg = Vec::with_capacity(HEADER_LEN + chunk.len() + pad + TAG_LEN);
    dg.extend_from_slice(&h);
    dg.extend_from_slice(chunk);
    dg.resize(HEADER_LEN + chunk.len() + pad, 0);
    let tag = key.seal(header.packet_seq, &h, &mut dg[HEADER_LEN..]);
    dg.extend_from_slice(&tag);
    Ok(dg)
}

/// A sealed datagram whose tag checked out, with its body fragment decrypted.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedPacket {
    /// Its header.
    pub header: Header,
    /// Its slice of the message body, decrypted.
    pub payload: Vec<u8>,
}

/// The checks every datagram goes through before anything else (docs/protocol.md §15,
/// steps 1-4): length, magic, version, header. Returns the header and the bytes after it.
/// A version-reject datagram is reported as [`DecodeError::BadVersion`]`(0)`.
pub fn parse_header(datagram: &[u8], max_datagram: usize) -> Result<(Header, &[u8]), DecodeError> {
    if datagram.len() > max_datagram {
        return Err(DecodeError::TooLong);
    }
    if datagram.len() < 5 {
        return Err(DecodeError::TooShort);
    }
    if datagram[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if datagram[4] != VERSION {
        return Err(DecodeError::BadVersion(datagram[4]));
    }
    if datagram.len() < HEADER_LEN {
        return Err(DecodeError::TooShort);
    }
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&datagram[..HEADER_LEN]);
    let header = Header::read(&h).map_err(DecodeError::BadHeader)?;
    Ok((header, &datagram[HEADER_LEN..]))
}

/// Checks and opens one sealed datagram. `key_for` maps the header to the key its sender
/// must have sealed it with (`None`: no keys for this session or sender, reported as
/// [`DecodeError::UnknownKey`]). Nothing is allocated beyond the datagram's own size, and
/// only once the header parsed and a key was found.
pub fn open_packet(
    datagram: &[u8],
    max_datagram: usize,
    key_for: impl FnOnce(&Header) -> Option<SealingKey>,
) -> Result<OpenedPacket, DecodeError> {
    let (header, rest) = parse_header(datagram, max_datagram)?;
    if header.kind.is_unsealed() {
        return Err(DecodeError::Unsealed);
    }
    if rest.len() < TAG_LEN {
        return Err(DecodeError::TooShort);
    }
    let key = key_for(&header).ok_or(DecodeError::UnknownKey)?;
    if key.sender() != header.sender {
        return Err(DecodeError::UnknownKey);
    }
    let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut payload = sealed.to_vec();
    if !key.open(
        header.packet_seq,
        &datagram[..HEADER_LEN],
        &mut payload,
        tag,
    ) {
        return Err(DecodeError::BadTag);
    }
    // Padding is authenticated (its length is in the header, its bytes sealed); it must
    // fit and be zeros: one body, one encoding.
    let body_len = payload
        .len()
        .checked_sub(usize::from(header.pad))
        .ok_or(DecodeError::BadHeader(super::HeaderError::BadPadding))?;
    if payload[body_len..].iter().any(|&b| b != 0) {
        return Err(DecodeError::BadHeader(super::HeaderError::BadPadding));
    }
    payload.truncate(body_len);
    Ok(OpenedPacket { header, payload })
}
