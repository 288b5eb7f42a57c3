#!/usr/bin/env bash
# The long whole-cell simulation: SEEDS seeds (default 2000) of every scenario, real
# cld-server members and cldc clients on turmoil (sim-tests/tests/cell.rs), split into
# SHARDS processes (default 2, one per core) that run disjoint seed ranges. Each prints one
# line per scenario (seeds, operations, simulated seconds, wall time, speed); a failing seed
# prints its verdicts and replay command and leaves its files under target/sim-failures/.
# Usage: bash scripts/sim-cell-long.sh [SEEDS] [SHARDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-2000}"
shards="${2:-2}"
per=$(( (seeds + shards - 1) / shards ))
out="${OUT:-target/sim-cell-long}"
mkdir -p "$out"
cargo test -p sim-tests --test cell --no-run -q
start=$(date +%s)
echo "== whole-cell simulation: ${seeds} seeds per scenario in ${shards} shards of ${per}"
pids=()
for ((k = 0; k < shards; k++)); do
  first=$(( 1 + k * per ))
  SIM_SEEDS="$per" SIM_FIRST_SEED="$first" cargo test -q -p sim-tests --test cell -- \
    --test-threads 1 --nocapture partitions crashes network_clocks_and_pauses \
    > "$out/shard-$k.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
end=$(date +%s)
grep -h "seeds," "$out"/shard-*.log | sort
grep -h "failed runs\|seed [0-9]* failed" "$out"/shard-*.log || true
echo "wall time: $((end - start)) s for ${seeds} seeds of each scenario (status ${status})"
exit "$status"
