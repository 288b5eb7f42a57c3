#!/usr/bin/env bash
# Side-by-side throughput of libpaxos, raft-rs 0.7 and omnipaxos 0.2 (scripts/bench-compare/,
# outside the workspace, with its own lock file; the test suite never builds it).
# Usage: bash scripts/bench-compare.sh [TOTAL_COMMANDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/bench-compare"
cargo build --release --locked -q
exec ./target/release/bench-compare "$@"
