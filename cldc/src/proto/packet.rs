//! Whole datagrams: header + body fragment + tag.

use alloc::vec::Vec;
use serde::{Serialize, de::DeserializeOwned};

use super::{
    DecodeError, Epoch, EventSeq, HEADER_LEN, Header, Kind, MAGIC, MAX_FRAGMENTS, MAX_MESSAGE,
    MIN_DATAGRAM, PacketSeq, Secret, SessionId, TAG_LEN, UserName, VERSION, sign, verify,
};

/// Everything in a header except the per-datagram numbers (packet seq and fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// What the message is.
    pub kind: Kind,
    /// Its session.
    pub session: SessionId,
    /// Whose secret signs it.
    pub user: UserName,
    /// Request seq, nonce or event seq.
    pub msg_seq: u64,
    /// Cumulative acknowledgement (see [`Header::ack`]).
    pub ack: EventSeq,
    /// Master epoch (see [`Header::epoch`]).
    pub epoch: Epoch,
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

/// Splits `body` into signed datagrams of at most `max_datagram` bytes, numbering them from
/// `next_seq` (which is advanced past the last one used).
pub fn encode_message(
    meta: &PacketMeta,
    body: &[u8],
    max_datagram: usize,
    secret: &Secret,
    next_seq: &mut PacketSeq,
) -> Result<Vec<Vec<u8>>, EncodeError> {
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
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        let chunk = body
            .get(index * room..body.len().min((index + 1) * room))
            .unwrap_or(&[]);
        let header = Header {
            kind: meta.kind,
            session: meta.session,
            user: meta.user,
            packet_seq: *next_seq,
            msg_seq: meta.msg_seq,
            ack: meta.ack,
            epoch: meta.epoch,
            frag_index: index as u16,
            frag_count: count as u16,
        };
        *next_seq = next_seq.next();
        let mut dg = Vec::with_capacity(HEADER_LEN + chunk.len() + TAG_LEN);
        let mut h = [0u8; HEADER_LEN];
        header.write(&mut h);
        dg.extend_from_slice(&h);
        dg.extend_from_slice(chunk);
        let tag = sign(secret, &dg);
        dg.extend_from_slice(&tag);
        out.push(dg);
    }
    Ok(out)
}

/// A datagram whose tag checked out.
#[derive(Debug, PartialEq, Eq)]
pub struct OpenedPacket<'a> {
    /// Its header.
    pub header: Header,
    /// Its slice of the message body.
    pub payload: &'a [u8],
}

/// Checks and parses one datagram. `secret_for` maps the header to the key that must have
/// signed it (`None`: unknown user or session, reported as [`DecodeError::UnknownKey`]).
pub fn open_packet<'a, 's>(
    datagram: &'a [u8],
    max_datagram: usize,
    secret_for: impl FnOnce(&Header) -> Option<&'s Secret>,
) -> Result<OpenedPacket<'a>, DecodeError> {
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
    if datagram.len() < HEADER_LEN + TAG_LEN {
        return Err(DecodeError::TooShort);
    }
    let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&signed[..HEADER_LEN]);
    let header = Header::read(&h).map_err(DecodeError::BadHeader)?;
    let secret = secret_for(&header).ok_or(DecodeError::UnknownKey)?;
    if !verify(secret, signed, tag) {
        return Err(DecodeError::BadTag);
    }
    Ok(OpenedPacket {
        header,
        payload: &signed[HEADER_LEN..],
    })
}
