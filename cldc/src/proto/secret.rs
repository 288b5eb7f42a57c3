//! Users' shared secrets and the handshake pre-shared key derived from them.

use alloc::vec::Vec;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::UserName;

/// Shortest secret accepted, in bytes (`cld gen-secret` prints 43 characters).
pub const MIN_SECRET: usize = 32;
/// Longest secret accepted, in bytes.
pub const MAX_SECRET: usize = 128;

/// A user's shared secret: [`MIN_SECRET`] to [`MAX_SECRET`] arbitrary bytes. Equality is
/// checked in time independent of where the bytes differ; `Debug` does not print them; the
/// bytes are zeroed when the value is dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        if self.0.len() != other.0.len() {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        core::hint::black_box(diff) == 0
    }
}

impl Eq for Secret {}

/// Why a secret was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Secrets must have at least [`MIN_SECRET`] bytes, so that they cannot be guessed.
    #[error("secret shorter than 32 bytes (use `cld gen-secret` for a fresh one)")]
    TooShort,
    /// Secrets are at most [`MAX_SECRET`] bytes.
    #[error("secret longer than 128 bytes")]
    TooLong,
}

impl Secret {
    /// Checks and wraps a secret.
    pub fn new(bytes: &[u8]) -> Result<Secret, SecretError> {
        if bytes.len() < MIN_SECRET {
            return Err(SecretError::TooShort);
        }
        if bytes.len() > MAX_SECRET {
            return Err(SecretError::TooLong);
        }
        Ok(Secret(Zeroizing::new(bytes.to_vec())))
    }

    /// The 32-byte Noise pre-shared key of `user` with this secret:
    /// `HKDF-SHA256(salt = "cld v2 psk", ikm = secret, info = user name)`
    /// (docs/protocol.md §12.2). Binding the name means one secret shared by two users
    /// still gives each a different key.
    pub fn psk(&self, user: &UserName) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"cld v2 psk"), &self.0);
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so this cannot fail.
        let _ = hk.expand(user.as_str().as_bytes(), out.as_mut());
        out
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_equal_exactly_when_their_bytes_are() {
        let s = |b: &[u8]| Secret::new(b).expect("valid secret");
        let a = [b'a'; 40];
        let mut b = a;
        b[39] = b'b';
        assert_eq!(s(&a), s(&a));
        assert_ne!(s(&a), s(&b));
        assert_ne!(s(&a), s(&a[..39]));
    }

    #[test]
    fn short_and_long_secrets_are_refused() {
        assert_eq!(Secret::new(&[1u8; 31]), Err(SecretError::TooShort));
        assert_eq!(Secret::new(b"x"), Err(SecretError::TooShort));
        assert!(Secret::new(&[1u8; 32]).is_ok());
        assert!(Secret::new(&[1u8; 128]).is_ok());
        assert_eq!(Secret::new(&[1u8; 129]), Err(SecretError::TooLong));
    }

    #[test]
    fn the_psk_depends_on_the_user_and_the_secret() {
        let s1 = Secret::new(&[1u8; 32]).expect("valid");
        let s2 = Secret::new(&[2u8; 32]).expect("valid");
        let alice = UserName::new("alice").expect("valid");
        let bob = UserName::new("bob").expect("valid");
        assert_ne!(*s1.psk(&alice), *s1.psk(&bob));
        assert_ne!(*s1.psk(&alice), *s2.psk(&alice));
        assert_eq!(*s1.psk(&alice), *s1.psk(&alice));
    }
}
