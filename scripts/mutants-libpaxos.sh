#!/usr/bin/env bash
# Mutation run over the files of libpaxos that decide safety, with cargo-mutants.
#
#   bash scripts/mutants-libpaxos.sh [SHARD...]   # SHARD like 0/10 (default: all mutants)
#
# Several shards run one after the other, each with its own results directory
# ($OUT/shard-K-of-N) and its own counts and wall time; the tests are checked once, on the
# unmutated code, before the first (cargo-mutants' baseline), not again per shard.
#
# It copies libpaxos into a scratch one-crate workspace (so the mutants never touch this
# checkout and the build stays small), then runs every libpaxos test for each mutant with the
# simulation lowered to SIM_SEEDS (default 150) seeds. The fault-switch tests (`catches_*`)
# are skipped: they test the checker, not the core. In place in the scratch copy, so one
# mutant at a time (as -j 1), 120 s test timeout. Only test targets are built and run
# (`cargo test --tests`: the library's unit tests and tests/*.rs; not the example, and not the
# doc tests, of which libpaxos has none that run).
# Results land in $OUT (default /tmp/libpaxos-mutants/mutants.out).
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo-mutants is not a dependency of the workspace: install the pinned version if missing.
if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants --version "${MUTANTS_VERSION:-27.1.0}"
fi
shards=("$@")
work="${WORK:-/tmp/libpaxos-mutants}"
out="${OUT:-$work}"
export SIM_SEEDS="${SIM_SEEDS:-150}"
mkdir -p "$work/src"
rm -rf "$work/src/libpaxos"
cp -r libpaxos Cargo.lock "$work/src/"
sed 's/^members = .*/members = ["libpaxos"]/' Cargo.toml > "$work/src/Cargo.toml"
cd "$work/src"
cargo test -p libpaxos --tests --no-run -q
common=(--in-place --timeout 120
  --file libpaxos/src/election.rs --file libpaxos/src/replication.rs
  --file libpaxos/src/lease.rs --file libpaxos/src/catchup.rs --file libpaxos/src/replica.rs)
status=0
run() { # run SHARD OUTDIR BASELINE
  local shard="$1" dir="$2" baseline="$3" args start end kind f
  args=("${common[@]}" --output "$dir" --baseline "$baseline")
  if [ -n "$shard" ]; then
    args+=(--shard "$shard" --sharding round-robin)
  fi
  mkdir -p "$dir"
  start=$(date +%s)
  cargo mutants "${args[@]}" -- --tests -- --skip catches_ || status=$?
  end=$(date +%s)
  echo "wall time: $((end - start)) s (SIM_SEEDS=$SIM_SEEDS, shard ${shard:-all})"
  for kind in caught missed timeout unviable; do
    f="$dir/mutants.out/$kind.txt"
    echo "$kind: $( [ -f "$f" ] && wc -l < "$f" || echo 0)"
  done
}
if [ "${#shards[@]}" -eq 0 ]; then
  run "" "$out" run
else
  baseline=run
  for shard in "${shards[@]}"; do
    run "$shard" "$out/shard-${shard/\//-of-}" "$baseline"
    baseline=skip
  done
fi
exit "$status"
