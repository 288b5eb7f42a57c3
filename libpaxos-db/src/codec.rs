//! Checksummed record encoding shared by the log and the namespace trees: postcard bytes
//! followed by a CRC-32 (IEEE) of them, so a flipped bit on disk becomes a typed error instead
//! of a wrong value.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The bound on counters that commands increment by one (instance numbers, content and lock
/// generations, handle ids): a snapshot record at or above it is refused, so incrementing a
/// counter read from a snapshot cannot overflow (the apply paths also saturate).
pub const COUNTER_LIMIT: u64 = 1 << 63;

/// Why a stored record could not be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the checksum itself.
    #[error("record is {0} bytes, shorter than its 4-byte checksum")]
    Short(usize),
    /// The bytes do not match their checksum.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// The checksum found in the record.
        stored: u32,
        /// The checksum of the bytes found.
        computed: u32,
    },
    /// The key is not a valid key of its tree.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// A counter that commands increment is at or above [`COUNTER_LIMIT`]:
    /// no sequence of commands reaches it, so the record was crafted or damaged.
    #[error("counter {0} is at or above 2^63, which no sequence of commands reaches")]
    CounterExhausted(&'static str),
    /// The checksum matches but the bytes are not a valid record of the expected type.
    #[error("record does not decode: {0}")]
    Postcard(String),
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE 802.3, the zlib one) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// Encodes `value` as postcard followed by its CRC-32, little-endian.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain data types into a Vec cannot fail: postcard only errors on
    // writer exhaustion or types serde cannot express, and we use neither.
    let mut bytes = postcard::to_allocvec(value).expect("postcard encodes plain data into a Vec");
    let crc = crc32(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Checks the CRC and decodes a record written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < 4 {
        return Err(DecodeError::Short(bytes.len()));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc32(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    postcard::from_bytes(body).map_err(|e| DecodeError::Postcard(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error() {
        let mut bytes = encode(&(7u64, String::from("x")));
        bytes[0] ^= 1;
        assert!(matches!(
            decode::<(u64, String)>(&bytes),
            Err(DecodeError::Checksum { .. })
        ));
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&(7u64, String::from("x")));
        assert_eq!(decode::<(u64, String)>(&bytes), Ok((7, "x".into())));
    }
}
