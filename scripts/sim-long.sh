#!/usr/bin/env bash
# The long libpaxos simulation: SEEDS seeds (default 20000) of the randomized run, built with
# optimisation and debug assertions on (the `sim` profile), then the mutation catch counts.
# Prints the wall time. Usage: bash scripts/sim-long.sh [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-20000}"
start=$(date +%s)
echo "== libpaxos simulation: ${seeds} seeds (profile sim: opt-level 3, debug assertions on)"
SIM_SEEDS="$seeds" cargo test --profile sim -p libpaxos --test simulation \
  randomized_seeds_keep_every_invariant_and_recover -- --nocapture
end=$(date +%s)
echo "wall time: $((end - start)) s for ${seeds} seeds"
