#!/usr/bin/env bash
# The whole test suite: formatting, lints, rustdoc links, every crate's tests, and the no_std
# proof for cldc.
# This is the command README.md names and .ci/run runs. It ends with one summary line,
# "tests: N passed, N failed", counted over every cargo test binary.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test dependencies (fuse3, strace)"
bash scripts/install-test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo doc (the workspace's own crates, warnings are errors: no broken links)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

echo "== cargo test --workspace"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

if [ -f scripts/check-no-std.sh ]; then
  echo "== cldc builds without std"
  bash scripts/check-no-std.sh
fi

passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
