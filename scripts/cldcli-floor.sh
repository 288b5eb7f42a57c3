#!/bin/sh
# Measures the server issue's floor table (issue 10) with `cldcli bench` against a 3-member
# `cld dev` cell on loopback. Prints each row's command and its result.
#
#   scripts/cldcli-floor.sh            # release build, 10 s per row
#   DUR=5s PROFILE=test scripts/cldcli-floor.sh
#
# The kill -9 fail-over row and the 10,000 idle sessions row are not bench workloads here:
# the cell allows 64 sessions per user (see docs/cldcli.md, bench).
set -eu
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
DUR=${DUR:-10s}
case "$PROFILE" in
release) BIN=target/release ;;
*) BIN=target/debug ;;
esac
cargo build --profile "$PROFILE" -p cld-server --bin cld -p cld-cli --bin cldcli >&2
DIR=$(mktemp -d /tmp/cldcli-floor.XXXXXX)
"$BIN/cld" dev --nodes 3 --dir "$DIR/cell" >"$DIR/dev.out" 2>&1 &
DEV=$!
trap 'kill "$DEV" 2>/dev/null; wait "$DEV" 2>/dev/null; rm -rf "$DIR"' EXIT INT TERM
i=0
while [ ! -s "$DIR/cell/cell.pub" ]; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || { echo "cld dev did not start:" >&2; cat "$DIR/dev.out" >&2; exit 1; }
    sleep 0.1
done
CLD_CELL=$(sed -n 's/^client = "\(.*\)"/\1/p' "$DIR/cell/cell.toml" | paste -sd, -)
CLD_CELL_KEY=$(cat "$DIR/cell/cell.pub")
CLD_USER=dev
CLD_SECRET_FILE="$DIR/cell/dev.secret"
export CLD_CELL CLD_CELL_KEY CLD_USER CLD_SECRET_FILE
i=0
until "$BIN/cldcli" --timeout 2s status >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -lt 60 ] || { echo "the cell never answered" >&2; exit 1; }
    sleep 0.5
done
"$BIN/cldcli" status | head -6
# A user may hold 64 sessions, live and pending: let the sessions of the start-up probes above
# (and of each row) end or expire before the next row opens its 64.
sleep 14
row() {
    echo
    echo "## $1"
    shift
    echo "cldcli $*"
    "$BIN/cldcli" "$@"
    sleep 14
}
row "durable 256 B puts/s, 64 sessions" bench --workload put --sessions 64 --size 256 --duration "$DUR"
row "one session's put, median latency" bench --workload put --sessions 1 --size 256 --duration "$DUR"
row "linearizable reads/s, 64 sessions" bench --workload get --sessions 64 --size 256 --duration "$DUR"
row "exclusive lock+unlock pairs/s, 64 sessions, 64 locks" bench --workload lock --sessions 64 --duration "$DUR"
row "lock hand-offs/s, 64 sessions on one lock" bench --workload lock-contended --sessions 64 --duration "$DUR"
row "idle sessions (64, the per-user limit)" bench --workload idle-sessions --sessions 64 --duration "$DUR"
