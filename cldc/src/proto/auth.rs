//! HMAC-SHA256 signing of datagrams with the user's secret.

use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::TAG_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Longest secret accepted, in bytes.
pub const MAX_SECRET: usize = 128;

/// A user's shared secret: 1 to [`MAX_SECRET`] arbitrary bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

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
