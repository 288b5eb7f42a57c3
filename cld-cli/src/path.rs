//! Paths typed by a user, resolved against the shell's working directory.

use cldc::proto::{PathError, validate_path};

/// Resolves `arg` against `cwd` (itself absolute and valid): a relative path is joined to
/// `cwd`, then `.` and `..` components are folded (`..` at `/` stays at `/`), repeated and
/// trailing slashes dropped. The result passes the protocol's path rules or is refused.
pub fn resolve(cwd: &str, arg: &str) -> Result<String, PathError> {
    let mut parts: Vec<&str> = Vec::new();
    let joined_cwd = if arg.starts_with('/') { "" } else { cwd };
    for component in joined_cwd.split('/').chain(arg.split('/')) {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let path = if parts.is_empty() {
        "/".to_string()
    } else {
        let mut p = String::new();
        for c in parts {
            p.push('/');
            p.push_str(c);
        }
        p
    };
    validate_path(&path)?;
    Ok(path)
}

/// The parent of an absolute valid path (`/` for a top-level node and for `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of an absolute path (empty for `/`).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_cwd() {
        assert_eq!(resolve("/a/b", "c").unwrap(), "/a/b/c");
        assert_eq!(resolve("/", "c/d").unwrap(), "/c/d");
        assert_eq!(resolve("/a", "./c").unwrap(), "/a/c");
    }

    #[test]
    fn absolute_paths_ignore_the_cwd() {
        assert_eq!(resolve("/a/b", "/x").unwrap(), "/x");
        assert_eq!(resolve("/a/b", "/").unwrap(), "/");
    }

    #[test]
    fn dot_dot_climbs_and_stops_at_the_root() {
        assert_eq!(resolve("/a/b", "..").unwrap(), "/a");
        assert_eq!(resolve("/a/b", "../../..").unwrap(), "/");
        assert_eq!(resolve("/a/b", "../c/../d").unwrap(), "/a/d");
    }

    #[test]
    fn extra_slashes_are_folded() {
        assert_eq!(resolve("/", "a//b/").unwrap(), "/a/b");
    }

    #[test]
    fn paths_breaking_the_protocol_rules_are_refused() {
        assert_eq!(resolve("/", "a\0b"), Err(PathError::Nul));
        let long = "x".repeat(300);
        assert_eq!(resolve("/", &long), Err(PathError::TooLong));
    }

    #[test]
    fn parent_and_file_name_split_a_path() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(file_name("/a/b"), "b");
        assert_eq!(file_name("/"), "");
    }
}
