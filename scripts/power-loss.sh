#!/usr/bin/env bash
# Many seeds of libpaxos-db's power-loss test (tests/power_loss.rs): a one-member cell on a
# FUSE file system that drops, keeps or tears what was not fsynced at each of 3 power cuts per
# seed. CI runs 100 seeds; this runs more. Usage: scripts/power-loss.sh [SEEDS] [FIRST_SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
seeds=${1:-2000}
first=${2:-1}
start=$(date +%s)
LIBPAXOS_DB_REQUIRE_FUSE=1 LIBPAXOS_DB_POWER_LOSS_SEEDS=$seeds LIBPAXOS_DB_POWER_LOSS_FIRST_SEED=$first \
  cargo test -p libpaxos-db --test power_loss -- --nocapture 2>&1 | grep -v '^power-loss seed '
echo "power-loss: $seeds seeds from $first in $(( $(date +%s) - start )) s"
