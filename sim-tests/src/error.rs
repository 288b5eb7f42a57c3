//! Errors of this crate.

use thiserror::Error;

/// Reading, writing or validating a history, or writing a failure's files.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// A line could not be read.
    #[error("history line {line}: cannot read: {source}")]
    Read {
        /// 1-based line number.
        line: usize,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a history line of this schema.
    #[error("history line {line}: not a history record: {source}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
    /// A line parses but breaks a rule of the schema.
    #[error("history line {line}: {reason}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// Which rule.
        reason: String,
    },
    /// A line could not be encoded.
    #[error("cannot encode a history line: {0}")]
    Encode(serde_json::Error),
    /// The output could not be written.
    #[error("cannot write the history: {0}")]
    Write(std::io::Error),
    /// A failure's file could not be written.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
