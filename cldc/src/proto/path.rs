//! The path rules both ends enforce (DESIGN §4).

use super::MAX_PATH;

/// Why a path was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Paths start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
    /// Paths are at most 256 bytes.
    #[error("path longer than 256 bytes")]
    TooLong,
    /// Paths contain no NUL byte.
    #[error("path contains NUL")]
    Nul,
    /// No empty component (`//` or a trailing `/`), no `.` or `..`.
    #[error("path has an empty, `.` or `..` component")]
    BadComponent,
}

/// Checks a path: absolute, at most [`MAX_PATH`] bytes, no NUL, no `//`, no trailing `/`
/// except the root itself, no `.` or `..` components.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if path == "/" {
        return Ok(());
    }
    if path[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PathError::BadComponent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_root_and_nested_paths() {
        assert_eq!(validate_path("/"), Ok(()));
        assert_eq!(validate_path("/a/b.c"), Ok(()));
    }

    #[test]
    fn rejects_each_broken_rule() {
        assert_eq!(validate_path("a"), Err(PathError::NotAbsolute));
        assert_eq!(validate_path("/a//b"), Err(PathError::BadComponent));
        assert_eq!(validate_path("/a/"), Err(PathError::BadComponent));
        assert_eq!(validate_path("/a/../b"), Err(PathError::BadComponent));
        assert_eq!(validate_path("/a\0"), Err(PathError::Nul));
        let long = alloc::format!("/{}", "x".repeat(256));
        assert_eq!(validate_path(&long), Err(PathError::TooLong));
    }
}
