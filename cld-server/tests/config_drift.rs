//! cell.toml timing that breaks the lease safety bound of docs/protocol.md 10.1
//! (`2ρ·lease < lease_margin + expiry_margin`, ρ = 0.01, client lease_margin 250 ms) or sets
//! no expiry margin is refused at start with a message naming the keys (REVIEW-FE 6).

mod common;

use std::path::Path;

use cld_server::config::{CellConfig, ConfigError, TimingOverrides};
use common::{SECRET, TempDir, write_file};

fn load(dir: &Path, timing: &str) -> Result<CellConfig, ConfigError> {
    let text = format!(
        "[cell]\nname = \"prod\"\nsecret = \"{SECRET}\"\n[timing]\n{timing}\n[[member]]\nid = 1\nclient = \"127.0.0.1:8081\"\npeer = \"127.0.0.1:8082\"\n"
    );
    let path = write_file(dir, "cell.toml", &text, 0o600);
    CellConfig::load(&path, &TimingOverrides::default())
}

#[test]
fn a_lease_too_long_for_the_expiry_margin_is_refused_naming_both_keys() {
    let dir = TempDir::new("cfg-drift");
    // 2 × 0.01 × 120 s = 2.4 s, not below 0.25 s + 2 s.
    let err = load(
        dir.path(),
        "session_lease_ms = 120000\nexpiry_margin_ms = 2000",
    )
    .expect_err("refused")
    .to_string();
    assert!(
        err.contains("session_lease_ms") && err.contains("expiry_margin_ms"),
        "{err}"
    );
    // Just inside the bound: 2 × 0.01 × 100 s = 2 s < 2.25 s.
    load(
        dir.path(),
        "session_lease_ms = 100000\nexpiry_margin_ms = 2000",
    )
    .unwrap();
    // A 600 s lease with a 0 margin.
    let err = load(
        dir.path(),
        "session_lease_ms = 600000\nexpiry_margin_ms = 0",
    )
    .expect_err("refused")
    .to_string();
    assert!(err.contains("expiry_margin_ms"), "{err}");
}

#[test]
fn a_zero_expiry_margin_is_refused() {
    let dir = TempDir::new("cfg-margin0");
    // 2 × 0.01 × 5 s = 0.1 s < 0.25 s would pass the bound; the margin must still be > 0.
    let err = load(dir.path(), "session_lease_ms = 5000\nexpiry_margin_ms = 0")
        .expect_err("refused")
        .to_string();
    assert!(err.contains("expiry_margin_ms"), "{err}");
}
