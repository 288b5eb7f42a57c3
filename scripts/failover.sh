#!/usr/bin/env bash
# Fail-over time: kills the master of a 3-member cell of real `cld` processes (release build,
# fsync on) under a write load, KILLS times, and prints the median time from the kill to the
# first acknowledged write issued after it (cld-server/examples/failover.rs).
# With `--mode term` the master is stopped with SIGTERM instead (it hands mastership over,
# waits for the new master, and must exit 0): the cost of a planned restart.
# Usage: scripts/failover.sh [KILLS] [extra example args, e.g. --paxos-lease-ms 200, --mode term]
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-10}
shift || true
cargo build --release -p cld-server --bin cld --example failover
target=${CARGO_TARGET_DIR:-target}
"$target/release/examples/failover" --kills "$kills" --cld "$target/release/cld" "$@"
