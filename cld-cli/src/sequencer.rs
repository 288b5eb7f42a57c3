//! The text form of a sequencer: one printable line, what `lock` puts in `CLD_SEQUENCER`
//! and what `check-seq` reads.
//!
//! `cldseq1:<mode>:<lock generation>:<instance>:<path>` where mode is `x` (exclusive) or
//! `s` (shared) and the path is percent-encoded for `%`, spaces, control characters and
//! non-ASCII bytes, so the line has no whitespace and survives shells and environment
//! variables unchanged.

use cldc::proto::{InstanceNumber, LockGeneration, LockMode, Sequencer, validate_path};

const PREFIX: &str = "cldseq1:";

/// Why a sequencer's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequencerTextError {
    /// It does not start with `cldseq1:`.
    #[error("not a sequencer (it should start with {PREFIX:?}, as `lock` prints it)")]
    Prefix,
    /// A field is missing.
    #[error("sequencer has too few fields (mode:generation:instance:path)")]
    Fields,
    /// The mode is not `x` or `s`.
    #[error("sequencer mode {0:?} is not x or s")]
    Mode(String),
    /// A number does not parse.
    #[error("sequencer {field} {text:?} is not a number")]
    Number {
        /// Which field.
        field: &'static str,
        /// Its text.
        text: String,
    },
    /// A `%` escape is malformed or the path is not UTF-8.
    #[error("sequencer path has a bad %-escape")]
    Escape,
    /// The path breaks the protocol's rules.
    #[error("sequencer path: {0}")]
    Path(cldc::proto::PathError),
}

/// The one-line text of `seq`.
pub fn format_sequencer(seq: &Sequencer) -> String {
    let mode = match seq.mode {
        LockMode::Exclusive => 'x',
        LockMode::Shared => 's',
    };
    let mut path = String::new();
    for b in seq.path.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "{PREFIX}{mode}:{}:{}:{path}",
        seq.lock_generation.0, seq.instance.0
    )
}

/// Reads the text [`format_sequencer`] writes (surrounding whitespace ignored).
pub fn parse_sequencer(text: &str) -> Result<Sequencer, SequencerTextError> {
    let rest = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or(SequencerTextError::Prefix)?;
    let mut fields = rest.splitn(4, ':');
    let (Some(mode), Some(generation), Some(instance), Some(path)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SequencerTextError::Fields);
    };
    let mode = match mode {
        "x" => LockMode::Exclusive,
        "s" => LockMode::Shared,
        m => return Err(SequencerTextError::Mode(m.to_string())),
    };
    let number = |field: &'static str, text: &str| {
        text.parse::<u64>().map_err(|_| SequencerTextError::Number {
            field,
            text: text.to_string(),
        })
    };
    let lock_generation = LockGeneration(number("lock generation", generation)?);
    let instance = InstanceNumber(number("instance", instance)?);
    let path = unescape(path)?;
    validate_path(&path).map_err(SequencerTextError::Path)?;
    Ok(Sequencer {
        path,
        mode,
        lock_generation,
        instance,
    })
}

fn unescape(text: &str) -> Result<String, SequencerTextError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(SequencerTextError::Escape)?;
            let b = u8::from_str_radix(hex, 16).map_err(|_| SequencerTextError::Escape)?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SequencerTextError::Escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(path: &str, mode: LockMode) -> Sequencer {
        Sequencer {
            path: path.to_string(),
            mode,
            lock_generation: LockGeneration(42),
            instance: InstanceNumber(7),
        }
    }

    #[test]
    fn a_plain_path_reads_as_one_line() {
        let s = seq("/svc/leader", LockMode::Exclusive);
        assert_eq!(format_sequencer(&s), "cldseq1:x:42:7:/svc/leader");
        assert_eq!(parse_sequencer("cldseq1:x:42:7:/svc/leader\n"), Ok(s));
    }

    #[test]
    fn odd_paths_round_trip_without_whitespace() {
        let s = seq("/a b/100%/é:x\n", LockMode::Shared);
        let text = format_sequencer(&s);
        assert!(!text.contains(char::is_whitespace), "{text}");
        assert_eq!(parse_sequencer(&text), Ok(s));
    }

    #[test]
    fn malformed_text_is_refused_with_its_cause() {
        assert_eq!(parse_sequencer("hello"), Err(SequencerTextError::Prefix));
        assert_eq!(
            parse_sequencer("cldseq1:x:1"),
            Err(SequencerTextError::Fields)
        );
        assert!(matches!(
            parse_sequencer("cldseq1:q:1:2:/a"),
            Err(SequencerTextError::Mode(_))
        ));
        assert!(matches!(
            parse_sequencer("cldseq1:x:one:2:/a"),
            Err(SequencerTextError::Number {
                field: "lock generation",
                ..
            })
        ));
        assert_eq!(
            parse_sequencer("cldseq1:x:1:2:/a%zz"),
            Err(SequencerTextError::Escape)
        );
        assert_eq!(
            parse_sequencer("cldseq1:x:1:2:/a%"),
            Err(SequencerTextError::Escape)
        );
        assert!(matches!(
            parse_sequencer("cldseq1:x:1:2:rel"),
            Err(SequencerTextError::Path(_))
        ));
    }
}
