//! Key and secret files (feature `std`): the cell's private key file and users' secret
//! files. Formats in docs/protocol.md §12.1. Files that group or others can read are
//! refused, with a message saying so; keys are written with mode 0600 and never over an
//! existing file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::proto::{CellPrivateKey, KeyError, Secret, SecretError, encode_base64};

/// Why a key or secret file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be opened, read, created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file exists already (keys are never overwritten).
    #[error("{0}: exists already; not overwriting a key file")]
    Exists(PathBuf),
    /// Group or others may read the file: the secret in it may be known to others.
    #[error(
        "{path}: readable by group or others (mode {mode:o}); refusing it: run `chmod 600 {path}`"
    )]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The private key file's contents are not a cell key.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyError,
    },
    /// The secret file's contents are not a valid secret.
    #[error("{path}: {source}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: SecretError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `key` to a new file at `path` (mode 0600, fsynced), in the one-line format.
pub fn write_private_key(path: &Path, key: &CellPrivateKey) -> Result<(), KeyFileError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.to_path_buf())
        } else {
            io(path)(e)
        }
    })?;
    f.write_all(key.to_text().as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Opens a file holding a secret, refusing it if group or others may read it.
fn open_private(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let mut f = File::open(path).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f.metadata().map_err(io(path))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Readable {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    let mut text = Zeroizing::new(String::new());
    // A key or secret file is one short line; reading more is pointless.
    Read::by_ref(&mut f)
        .take(4096)
        .read_to_string(&mut text)
        .map_err(io(path))?;
    Ok(text)
}

/// Reads the cell's private key file (refused if group or others may read it).
pub fn read_private_key(path: &Path) -> Result<CellPrivateKey, KeyFileError> {
    let text = open_private(path)?;
    CellPrivateKey::from_text(&text).map_err(|source| KeyFileError::Format {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a user's secret file: its bytes without one trailing newline (refused if group or
/// others may read it, or if the secret is shorter than 32 bytes).
pub fn read_secret(path: &Path) -> Result<Secret, KeyFileError> {
    let text = open_private(path)?;
    let t = text.strip_suffix('\n').unwrap_or(&text);
    let t = t.strip_suffix('\r').unwrap_or(t);
    Secret::new(t.as_bytes()).map_err(|source| KeyFileError::Secret {
        path: path.to_path_buf(),
        source,
    })
}

/// A fresh user secret's text from 32 random bytes: 43 characters of URL-safe base64
/// without padding (256 bits). What `cld gen-secret` prints.
pub fn secret_text(random: &[u8; 32]) -> Zeroizing<String> {
    let std64 = Zeroizing::new(encode_base64(random));
    let t: String = std64
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    Zeroizing::new(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cldc-keyfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn a_written_key_reads_back_and_is_not_overwritten() {
        let path = tmp("key");
        let key = CellPrivateKey::from_bytes([9; 32]);
        write_private_key(&path, &key).expect("written");
        let back = read_private_key(&path).expect("read");
        assert_eq!(back.public(), key.public());
        assert!(matches!(
            write_private_key(&path, &key),
            Err(KeyFileError::Exists(_))
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[cfg(unix)]
    #[test]
    fn files_others_can_read_are_refused_with_a_message_saying_so() {
        use std::os::unix::fs::PermissionsExt;
        let path = tmp("readable");
        write_private_key(&path, &CellPrivateKey::from_bytes([9; 32])).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = read_private_key(&path).expect_err("refused");
        assert!(matches!(err, KeyFileError::Readable { mode: 0o640, .. }));
        assert!(err.to_string().contains("readable by group or others"));
        std::fs::write(&path, "x".repeat(40)).expect("written");
        assert!(matches!(
            read_secret(&path),
            Err(KeyFileError::Readable { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(read_secret(&path).is_ok());
        std::fs::write(&path, "short\n").expect("written");
        assert!(matches!(
            read_secret(&path),
            Err(KeyFileError::Secret {
                source: SecretError::TooShort,
                ..
            })
        ));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn generated_secrets_are_43_url_safe_characters_and_valid() {
        let t = secret_text(&[0xfb; 32]);
        assert_eq!(t.len(), 43);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(Secret::new(t.as_bytes()).is_ok());
    }
}
