//! What a failing run leaves behind: its history, its timeline and its verdicts with the
//! command that replays it, under `target/sim-failures/`.

use std::path::{Path, PathBuf};

use crate::check::Report;
use crate::error::HistoryError;
use crate::history::History;
use crate::timeline::render_html;

/// The files written for one failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureFiles {
    /// The history, as JSON lines.
    pub history: PathBuf,
    /// The HTML timeline.
    pub timeline: PathBuf,
    /// The verdicts and the replay command.
    pub report: PathBuf,
}

/// `$CARGO_TARGET_DIR/sim-failures`, or the workspace's `target/sim-failures`.
pub fn failure_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("sim-failures"),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("sim-failures"),
    }
}

fn write(path: PathBuf, contents: &[u8]) -> Result<PathBuf, HistoryError> {
    std::fs::write(&path, contents).map_err(|source| HistoryError::WriteFile {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Writes `NAME.jsonl`, `NAME.html` and `NAME.txt` into `dir` (created if missing).
pub fn write_failure(
    dir: &Path,
    name: &str,
    history: &History,
    report: &Report,
    replay: &str,
) -> Result<FailureFiles, HistoryError> {
    std::fs::create_dir_all(dir).map_err(|source| HistoryError::WriteFile {
        path: dir.to_path_buf(),
        source,
    })?;
    let text = format!("replay: {replay}\n\n{report}");
    Ok(FailureFiles {
        history: write(
            dir.join(format!("{name}.jsonl")),
            history.to_jsonl().as_bytes(),
        )?,
        timeline: write(
            dir.join(format!("{name}.html")),
            render_html(history, report, name).as_bytes(),
        )?,
        report: write(dir.join(format!("{name}.txt")), text.as_bytes())?,
    })
}
