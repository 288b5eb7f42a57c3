#!/usr/bin/env bash
# Mutation run over the files of libpaxos that decide safety, with cargo-mutants.
#
#   bash scripts/mutants-libpaxos.sh [SHARD]      # SHARD like 0/10 (default: all mutants)
#
# It copies libpaxos into a scratch one-crate workspace (so the mutants never touch this
# checkout and the build stays small), then runs every libpaxos test for each mutant with the
# simulation lowered to SIM_SEEDS (default 150) seeds. The fault-switch tests (`catches_*`)
# are skipped: they test the checker, not the core. In place in the scratch copy, so one
# mutant at a time (as -j 1), 120 s test timeout.
# Results land in $OUT (default /tmp/libpaxos-mutants/mutants.out).
set -euo pipefail
cd "$(dirname "$0")/.."
shard="${1:-}"
work="${WORK:-/tmp/libpaxos-mutants}"
out="${OUT:-$work}"
export SIM_SEEDS="${SIM_SEEDS:-150}"
mkdir -p "$work/src"
rm -rf "$work/src/libpaxos"
cp -r libpaxos Cargo.lock "$work/src/"
sed 's/^members = .*/members = ["libpaxos"]/' Cargo.toml > "$work/src/Cargo.toml"
cd "$work/src"
cargo test -p libpaxos --no-run -q
args=(--in-place --timeout 120 --output "$out"
  --file libpaxos/src/election.rs --file libpaxos/src/replication.rs
  --file libpaxos/src/lease.rs --file libpaxos/src/catchup.rs --file libpaxos/src/replica.rs)
if [ -n "$shard" ]; then
  args+=(--shard "$shard" --sharding round-robin)
fi
start=$(date +%s)
status=0
cargo mutants "${args[@]}" -- -- --skip catches_ || status=$?
end=$(date +%s)
echo "wall time: $((end - start)) s (SIM_SEEDS=$SIM_SEEDS, shard ${shard:-all})"
for kind in caught missed timeout unviable; do
  f="$out/mutants.out/$kind.txt"
  echo "$kind: $( [ -f "$f" ] && wc -l < "$f" || echo 0)"
done
exit "$status"
