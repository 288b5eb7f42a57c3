//! Session keys and the sealing of datagrams (ChaCha20-Poly1305; docs/protocol.md §12.4).
//!
//! A handshake yields two 32-byte root keys, one per direction ([`SessionKeys`]). Nobody
//! seals with a root key: each sealing party derives its own key from the root of its
//! direction and its [`Sender`] (role, epoch, member, boot), and numbers its datagrams under
//! that key from its own counter (the AEAD nonce). Two parties never share a derived key,
//! and one party never reuses a number, so no (key, nonce) pair ever repeats: not across
//! masters of successive epochs, not between a master and a non-master sealing `NotMaster`,
//! not across a member's restarts (its boot number changes), and not between directions.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{PacketSeq, Role, Sender, TAG_LEN};

/// The root keys of one session, from its handshake: what the replicated session record
/// holds so that any later master can serve the session without a new handshake. Secret:
/// zeroed on drop; `Debug` does not print it. Serialized (postcard) as two 32-byte arrays.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Root of the client-to-server direction.
    c2s: [u8; 32],
    /// Root of the server-to-client direction.
    s2c: [u8; 32],
}

impl SessionKeys {
    /// Root keys from a handshake's split (initiator-to-responder, responder-to-initiator).
    pub(crate) fn from_split(c2s: [u8; 32], s2c: [u8; 32]) -> SessionKeys {
        SessionKeys { c2s, s2c }
    }

    /// The key `sender` seals with (and that a receiver opens its datagrams with):
    /// `HKDF-Expand(PRK = root, info = "cld v2 seal" || role || epoch || member || boot, 32)`
    /// where root is the client-to-server root for [`Role::Client`] and the
    /// server-to-client root otherwise; integers little-endian (8, 4 and 4 bytes).
    pub fn sealing_key(&self, sender: &Sender) -> SealingKey {
        let root = match sender.role {
            Role::Client => &self.c2s,
            Role::Master | Role::Stateless => &self.s2c,
        };
        let mut info = [0u8; 11 + 1 + 8 + 4 + 4];
        info[..11].copy_from_slice(b"cld v2 seal");
        info[11] = sender.role as u8;
        info[12..20].copy_from_slice(&sender.epoch.0.to_le_bytes());
        info[20..24].copy_from_slice(&sender.member.to_le_bytes());
        info[24..28].copy_from_slice(&sender.boot.to_le_bytes());
        let mut key = SealingKey {
            key: [0u8; 32],
            sender: *sender,
        };
        // A 32-byte PRK is always long enough for SHA-256, and 32 bytes of output are far
        // below the limit, so neither step can fail.
        if let Ok(hk) = Hkdf::<Sha256>::from_prk(root) {
            let _ = hk.expand(&info, &mut key.key);
        }
        key
    }
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

/// One party's sealing key (derived by [`SessionKeys::sealing_key`]). Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SealingKey {
    key: [u8; 32],
    #[zeroize(skip)]
    sender: Sender,
}

impl SealingKey {
    /// The party this key belongs to.
    pub fn sender(&self) -> Sender {
        self.sender
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.key))
    }

    /// Encrypts `buf` in place with `aad` authenticated; returns the 16-byte tag.
    pub(crate) fn seal(&self, seq: PacketSeq, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .cipher()
            .encrypt_in_place_detached(&nonce(seq), aad, buf)
            // Only fails for buffers above ChaCha20's 256 GiB limit; datagrams are < 64 KiB.
            .unwrap_or_default();
        tag.into()
    }

    /// Checks the tag and decrypts `buf` in place; false (and `buf` unspecified) if forged.
    pub(crate) fn open(&self, seq: PacketSeq, aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        self.cipher()
            .decrypt_in_place_detached(&nonce(seq), aad, buf, Tag::from_slice(tag))
            .is_ok()
    }
}

impl core::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SealingKey({:?})", self.sender)
    }
}

/// The AEAD nonce of packet `seq`: its 8 bytes little-endian, then 4 zero bytes.
fn nonce(seq: PacketSeq) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&seq.0.to_le_bytes());
    Nonce::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Epoch;

    fn keys() -> SessionKeys {
        SessionKeys::from_split([1; 32], [2; 32])
    }

    fn s(role: Role, epoch: u64, member: u32, boot: u32) -> Sender {
        Sender {
            role,
            epoch: Epoch(epoch),
            member,
            boot,
        }
    }

    #[test]
    fn every_party_gets_its_own_key() {
        let k = keys();
        let parties = [
            s(Role::Client, 1, 0, 0),
            s(Role::Client, 2, 0, 0),
            s(Role::Master, 1, 1, 1),
            s(Role::Master, 2, 1, 1),
            s(Role::Master, 1, 2, 1),
            s(Role::Master, 1, 1, 2),
            s(Role::Stateless, 1, 1, 1),
        ];
        for (i, a) in parties.iter().enumerate() {
            for b in &parties[i + 1..] {
                assert_ne!(k.sealing_key(a).key, k.sealing_key(b).key, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn a_record_round_trips_through_postcard() {
        let k = keys();
        let bytes = postcard::to_allocvec(&k).expect("encodes");
        assert_eq!(bytes.len(), 64);
        let back: SessionKeys = postcard::from_bytes(&bytes).expect("decodes");
        assert!(back == k);
    }
}
