//! Path syntax (DESIGN §4): absolute, `/`-separated, at most 256 bytes.

use serde::{Deserialize, Serialize};

/// The longest path accepted, in bytes (CLD's `CLD_INODE_NAME_MAX`).
pub const MAX_PATH_LEN: usize = 256;

/// Why a path was refused; one variant per rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum PathError {
    /// The empty string.
    #[error("path is empty")]
    Empty,
    /// Does not start with `/`.
    #[error("path is not absolute (must start with '/')")]
    NotAbsolute,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("path is {0} bytes, longer than the limit of 256")]
    TooLong(usize),
    /// Contains a NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// Ends in `/` and is not the root.
    #[error("path ends in '/'")]
    TrailingSlash,
    /// Contains `//`, an empty component.
    #[error("path contains '//'")]
    DoubleSlash,
    /// A component is `.` or `..`.
    #[error("path has a '.' or '..' component")]
    DotComponent,
}

/// Checks every rule of DESIGN §4.
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong(path.len()));
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(PathError::TrailingSlash);
    }
    for component in path[1..].split('/') {
        match component {
            "" => return Err(PathError::DoubleSlash),
            "." | ".." => return Err(PathError::DotComponent),
            _ => {}
        }
    }
    Ok(())
}

/// The parent of a valid path; `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of a valid path (empty for the root).
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// The prefix every descendant of `dir` starts with.
pub fn child_prefix(dir: &str) -> String {
    if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_root_and_nested_paths() {
        assert_eq!(validate("/"), Ok(()));
        assert_eq!(validate("/a/b-c/d.e"), Ok(()));
    }

    #[test]
    fn each_rule_has_its_own_error() {
        assert_eq!(validate(""), Err(PathError::Empty));
        assert_eq!(validate("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(validate("/a\0b"), Err(PathError::Nul));
        assert_eq!(validate("/a/"), Err(PathError::TrailingSlash));
        assert_eq!(validate("/a//b"), Err(PathError::DoubleSlash));
        assert_eq!(validate("/a/./b"), Err(PathError::DotComponent));
        assert_eq!(validate("/a/.."), Err(PathError::DotComponent));
        let long = format!("/{}", "x".repeat(256));
        assert_eq!(validate(&long), Err(PathError::TooLong(257)));
        assert_eq!(validate(&long[..256]), Ok(()));
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(name("/a/b"), "b");
        assert_eq!(child_prefix("/"), "/");
        assert_eq!(child_prefix("/a"), "/a/");
    }
}
