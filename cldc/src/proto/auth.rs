//! HMAC-SHA256 signing of datagrams with the user's secret.

use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::TAG_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Longest secret accepted, in bytes.
pub const MAX_SECRET: usize = 128;

/// A user's shared secret: 1 to [`MAX_SECRET`] arbitrary bytes. Equality is checked in
/// time independent of where the bytes differ; `Debug` does not print them.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        if self.0.len() != other.0.len() {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(&other.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        core::hint::black_box(diff) == 0
    }
}

impl Eq for Secret {}

/// Why a secret was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Secrets must not be empty.
    #[error("secret is empty")]
    Empty,
    /// Secrets are at most 128 bytes.
    #[error("secret longer than 128 bytes")]
    TooLong,
}

impl Secret {
    /// Checks and wraps a secret.
    pub fn new(bytes: &[u8]) -> Result<Secret, SecretError> {
        if bytes.is_empty() {
            return Err(SecretError::Empty);
        }
        if bytes.len() > MAX_SECRET {
            return Err(SecretError::TooLong);
        }
        Ok(Secret(bytes.to_vec()))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The tag of `data` under `secret`: the full 32-byte HMAC-SHA256.
pub fn sign(secret: &Secret, data: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = secret.mac();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// True if `tag` is the tag of `data` under `secret` (compared in constant time).
pub fn verify(secret: &Secret, data: &[u8], tag: &[u8]) -> bool {
    let mut mac = secret.mac();
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_equal_exactly_when_their_bytes_are() {
        let s = |b: &[u8]| Secret::new(b).expect("valid secret");
        assert_eq!(s(b"abc"), s(b"abc"));
        assert_ne!(s(b"abc"), s(b"abd"));
        assert_ne!(s(b"abc"), s(b"abcd"));
    }

    #[test]
    fn a_tag_of_the_wrong_length_never_verifies() {
        let k = Secret::new(b"k").expect("valid secret");
        let tag = sign(&k, b"data");
        assert!(verify(&k, b"data", &tag));
        assert!(!verify(&k, b"data", &tag[..16]));
        assert!(!verify(&k, b"data", &[]));
    }
}
