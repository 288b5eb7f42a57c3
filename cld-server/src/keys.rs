//! The cell's key file (docs/protocol.md §12.1), through `cldc::keyfile` so client and
//! server agree on one format: one line `cld-cell-key-v1 <base64>`, mode 0600, never written
//! over an existing file, refused when group or others may read it.

use std::path::Path;

pub use cldc::keyfile::KeyFileError;
use cldc::proto::{CellKeys, CellPrivateKey, CellPublicKey};

use crate::env::{Entropy, OsEntropy};

/// Writes a new cell private key (32 bytes from the operating system's generator) to a new
/// file at `path` (mode 0600, fsynced; an existing file is never overwritten) and returns
/// its public key, which clients are configured with (`CellPublicKey::to_base64`).
pub fn write_new_cell_key(path: &Path) -> Result<CellPublicKey, KeyFileError> {
    write_new_cell_key_from(path, &OsEntropy)
}

/// As [`write_new_cell_key`], drawing the key from `entropy`.
pub fn write_new_cell_key_from(
    path: &Path,
    entropy: &dyn Entropy,
) -> Result<CellPublicKey, KeyFileError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    entropy.fill(bytes.as_mut());
    let key = CellPrivateKey::from_bytes(*bytes);
    cldc::keyfile::write_private_key(path, &key)?;
    Ok(key.public())
}

/// Reads the cell's private key file named by `[cell] key_file` (the error names the file).
pub fn read_cell_key(path: &Path) -> Result<CellPrivateKey, KeyFileError> {
    cldc::keyfile::read_private_key(path)
}

/// The responder's key set for one private key (no previous key).
pub fn cell_keys(key: CellPrivateKey) -> CellKeys {
    CellKeys::new(key, None)
}

/// A fresh user secret's text (what `cld gen-secret` prints): 43 characters of URL-safe
/// base64 of 32 random bytes.
pub fn new_secret_text(entropy: &dyn Entropy) -> zeroize::Zeroizing<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    entropy.fill(bytes.as_mut());
    cldc::keyfile::secret_text(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeededEntropy;

    #[test]
    fn a_written_key_reads_back_with_its_public_key_and_is_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("cld-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cell.key");
        let public = write_new_cell_key_from(&path, &SeededEntropy::new(7)).unwrap();
        let back = read_cell_key(&path).unwrap();
        assert_eq!(back.public(), public);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            write_new_cell_key(&path),
            Err(KeyFileError::Exists(_))
        ));
        // A file others can read is refused with a message naming it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_cell_key(&path).unwrap_err().to_string();
        assert!(
            err.contains("cell.key") && err.contains("readable"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
