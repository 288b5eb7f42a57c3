#!/usr/bin/env bash
# The whole test suite: formatting, lints, every crate's tests, and the no_std proof for cldc.
# This is the command README.md names and .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test --workspace"
cargo test --workspace

if [ -f scripts/check-no-std.sh ]; then
  echo "== cldc builds without std"
  bash scripts/check-no-std.sh
fi
