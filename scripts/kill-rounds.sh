#!/usr/bin/env bash
# The kill -9 test of cld-server/tests/cell_clients.rs with many rounds: a 3-member cell of
# real `cld` processes; each round kills the master with -9 while one client holds an
# exclusive lock, another waits for it and a third writes. Checks every round that the
# holder's session and lock survive, the waiter is not granted, a new master serves within
# seconds; at the end that no acknowledged write was lost. CI runs 3 rounds.
# Usage: scripts/kill-rounds.sh [ROUNDS]   (default 60: 20 per member)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-60}
cargo test -p cld-server --test cell_clients --no-run
start=$(date +%s)
CLD_KILL_ROUNDS=$rounds cargo test -p cld-server --test cell_clients -- --include-ignored \
  --nocapture kill9_of_the_master 2>&1 | grep -E '^(test |kill -9|[0-9]+ writes|test result)|panicked'
echo "kill-rounds: $rounds rounds in $(( $(date +%s) - start )) s"
