//! The cell's long-term X25519 key pair, its one-line text forms, and base64.
//!
//! Text forms (docs/protocol.md §12.1):
//! - public key: standard base64 (RFC 4648, with padding) of the 32 key bytes, 44 characters;
//! - private key file: one line `cld-cell-key-v1 <base64 of the 32 private key bytes>` and a
//!   newline. The file must not be readable by group or others (checked by
//!   [`crate::keyfile`], feature `std`).

use alloc::string::String;
use curve25519_dalek::montgomery::MontgomeryPoint;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The first word of a private key file's line.
pub const PRIVATE_KEY_TAG: &str = "cld-cell-key-v1";

/// Why a key's text form was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not valid base64 (standard alphabet, with padding).
    #[error("not valid base64")]
    BadBase64,
    /// The decoded key is not 32 bytes long.
    #[error("key is not 32 bytes long")]
    BadLength,
    /// A private key file's line does not start with `cld-cell-key-v1 `.
    #[error("not a cld cell key file (expected a line starting with `cld-cell-key-v1 `)")]
    BadFormat,
    /// The public key is a low-order point (no key exchange with it is secret).
    #[error("public key is a weak (low-order) point")]
    WeakKey,
}

/// The cell's public key: the one thing a client needs besides its user name and secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellPublicKey([u8; 32]);

impl CellPublicKey {
    /// Wraps 32 bytes, refusing the low-order points (with them every "shared" secret is
    /// predictable).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<CellPublicKey, KeyError> {
        // A clamped scalar is a multiple of the cofactor 8, so it sends exactly the
        // low-order points to the identity (u = 0).
        if MontgomeryPoint(bytes).mul_clamped([0x55; 32]).to_bytes() == [0u8; 32] {
            return Err(KeyError::WeakKey);
        }
        Ok(CellPublicKey(bytes))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the one-line base64 text form (surrounding whitespace is ignored).
    pub fn from_base64(text: &str) -> Result<CellPublicKey, KeyError> {
        let mut out = [0u8; 32];
        decode_base64(text.trim(), &mut out)?;
        CellPublicKey::from_bytes(out)
    }

    /// The one-line base64 text form (44 characters).
    pub fn to_base64(&self) -> String {
        encode_base64(&self.0)
    }

    /// The 8-byte id a `HandshakeInit` names the key by, so that a cell holding an old and a
    /// new key during a rotation knows which one the client used:
    /// the first 8 bytes of `SHA-256("cld v2 cell key id" || key)`.
    pub fn key_id(&self) -> [u8; 8] {
        let mut h = Sha256::new();
        h.update(b"cld v2 cell key id");
        h.update(self.0);
        let d = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        id
    }
}

impl core::fmt::Debug for CellPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CellPublicKey({})", self.to_base64())
    }
}

/// The cell's private key. Zeroed on drop; `Debug` does not print it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CellPrivateKey([u8; 32]);

impl CellPrivateKey {
    /// A key from 32 random bytes the caller drew from a cryptographic RNG (the `no_std`
    /// core has no randomness of its own). X25519 clamps them when the key is used.
    pub fn from_bytes(bytes: [u8; 32]) -> CellPrivateKey {
        CellPrivateKey(bytes)
    }

    /// The key's bytes (the Noise static private key).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The matching public key.
    pub fn public(&self) -> CellPublicKey {
        CellPublicKey(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }

    /// The private key file's contents: one line, `cld-cell-key-v1 <base64>` and a newline.
    /// The returned string is zeroed when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(64));
        s.push_str(PRIVATE_KEY_TAG);
        s.push(' ');
        s.push_str(&encode_base64(&self.0));
        s.push('\n');
        s
    }

    /// Parses a private key file's contents (one line; a trailing newline is allowed).
    pub fn from_text(text: &str) -> Result<CellPrivateKey, KeyError> {
        let line = text.strip_suffix('\n').unwrap_or(text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let b64 = line
            .strip_prefix(PRIVATE_KEY_TAG)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(KeyError::BadFormat)?;
        if b64.contains('\n') {
            return Err(KeyError::BadFormat);
        }
        let mut out = Zeroizing::new([0u8; 32]);
        decode_base64(b64, out.as_mut())?;
        Ok(CellPrivateKey(*out))
    }
}

impl core::fmt::Debug for CellPrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CellPrivateKey(public {})", self.public().to_base64())
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes standard padded base64 of exactly `out.len()` bytes into `out`; anything else
/// (wrong length, bad characters, non-canonical trailing bits) is refused.
pub fn decode_base64(text: &str, out: &mut [u8]) -> Result<(), KeyError> {
    let t = text.as_bytes();
    if t.is_empty() || !t.len().is_multiple_of(4) {
        return Err(if t.is_empty() {
            KeyError::BadLength
        } else {
            KeyError::BadBase64
        });
    }
    let pad = t.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return Err(KeyError::BadBase64);
    }
    let len = t.len() / 4 * 3 - pad;
    if len != out.len() {
        return Err(KeyError::BadLength);
    }
    let mut o = 0;
    for (ci, chunk) in t.chunks(4).enumerate() {
        let last = ci == t.len() / 4 - 1;
        let mut n = 0u32;
        let mut valid = 4;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if c == b'=' && last && i >= 4 - pad {
                valid = valid.min(i);
                0
            } else {
                b64_value(c).ok_or(KeyError::BadBase64)?
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let take = valid - 1;
        // Canonical form: the bits below the last whole byte must be zero.
        if bytes[take..].iter().any(|&b| b != 0) {
            return Err(KeyError::BadBase64);
        }
        out[o..o + take].copy_from_slice(&bytes[..take]);
        o += take;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_rfc4648() {
        assert_eq!(encode_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode_base64(b"fooba"), "Zm9vYmE=");
        assert_eq!(encode_base64(b"foob"), "Zm9vYg==");
        let mut out = [0u8; 4];
        decode_base64("Zm9vYg==", &mut out).expect("valid");
        assert_eq!(&out, b"foob");
        assert_eq!(
            decode_base64("Zm9vYh==", &mut out),
            Err(KeyError::BadBase64)
        );
        assert_eq!(decode_base64("Zm9v", &mut out), Err(KeyError::BadLength));
        assert_eq!(
            decode_base64("Zm9vY!==", &mut out),
            Err(KeyError::BadBase64)
        );
        assert_eq!(
            decode_base64("Zm=vYg==", &mut out),
            Err(KeyError::BadBase64)
        );
    }

    #[test]
    fn keys_round_trip_through_their_text_forms() {
        let k = CellPrivateKey::from_bytes([7u8; 32]);
        let text = k.to_text();
        assert!(text.starts_with("cld-cell-key-v1 ") && text.ends_with('\n'));
        let back = CellPrivateKey::from_text(&text).expect("parses");
        assert_eq!(back.as_bytes(), k.as_bytes());
        let p = k.public();
        let b64 = p.to_base64();
        assert_eq!(b64.len(), 44);
        assert_eq!(CellPublicKey::from_base64(&b64), Ok(p));
        assert_eq!(
            CellPrivateKey::from_text("cld-cell-key-v2 AAAA").map(|_| ()),
            Err(KeyError::BadFormat)
        );
    }

    #[test]
    fn weak_public_keys_are_refused() {
        assert_eq!(CellPublicKey::from_bytes([0u8; 32]), Err(KeyError::WeakKey));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(CellPublicKey::from_bytes(one), Err(KeyError::WeakKey));
    }
}
