#!/bin/sh
# Profiles the master of a 3-member `cld dev` cell on loopback while `cldcli bench` runs one
# row of issue 10's floor table (docs/performance.md, "Where the time goes"). For each row
# asked for it records, in $OUT (default /tmp/profile-floor):
#   ROW.bench      cldcli bench's report, with `uptime` before and after
#   ROW.cpu        the master's CPU time over the run (utime + stime from /proc, % of one core)
#   ROW.data       `perf record -g` of the master (frame pointers; a profiling build)
#   ROW.children   `perf report --children` (inclusive %), top lines
#   ROW.self       `perf report --no-children` (self %), top lines
#   ROW.syscalls   `perf trace -s` of the master for 3 s after the perf record (counts and
#                  times of each syscall per thread: the fsyncs' durations are here)
# and for `put1` instead ROW.trace-master and ROW.trace-follower: a 1 s syscall timeline
# (`perf trace`, with the summary at the end for the master) of the master and one follower,
# to follow one put across the cell. The bench's figures include the slowdown of those last
# seconds of tracing: take the figures from a run with NOPERF=1.
#
#   scripts/profile-floor.sh                  # every unmet row, 10 s each
#   scripts/profile-floor.sh put1 handoff     # some rows
#   DUR=5s OUT=/tmp/p scripts/profile-floor.sh put64
#   NOPERF=1 scripts/profile-floor.sh         # figures only (no perf attached)
#
# Rows: put64 (durable 256 B puts, 64 sessions), put1 (one session's put latency), get64,
# lock64 (lock+unlock pairs, 64 sessions, 64 locks), handoff (64 sessions on one lock),
# idle (10,000 idle sessions, 60 s; the cell is started with sessions_per_user = 20000).
#
# The build is release with frame pointers and line tables (RUSTFLAGS and
# CARGO_PROFILE_RELEASE_DEBUG below) in target/release: the same binary measures and is
# profiled. It costs about 1 % against a build without frame pointers.
set -eu
cd "$(dirname "$0")/.."
DUR=${DUR:-10s}
OUT=${OUT:-/tmp/profile-floor}
ROWS=${*:-put64 put1 lock64 handoff idle}
# BIN=DIR NOBUILD=1 runs binaries kept elsewhere (a copy of an earlier build, to compare).
BIN=${BIN:-target/release}
export RUSTFLAGS="${RUSTFLAGS:--C force-frame-pointers=yes}"
export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-line-tables-only}
[ -n "${NOBUILD:-}" ] || cargo build --release -p cld-server --bin cld -p cld-cli --bin cldcli >&2
mkdir -p "$OUT"
secs=${DUR%s}

start_cell() {
    DIR=$(mktemp -d /tmp/profile-floor.XXXXXX)
    if [ "${1:-}" = idle ]; then
        # The cell's config is written on the first start; raise the per-user limit.
        "$BIN/cld" dev --nodes 3 --dir "$DIR/cell" >"$DIR/dev.out" 2>&1 &
        wait_file "$DIR/cell/cell.pub"
        kill "$!"; wait "$!" 2>/dev/null || true
        if grep -q '^sessions_per_user' "$DIR/cell/cell.toml"; then
            sed -i 's/^sessions_per_user.*/sessions_per_user = 20000/' "$DIR/cell/cell.toml"
        else
            sed -i 's/^\[cell\]$/[cell]\nsessions_per_user = 20000/' "$DIR/cell/cell.toml"
        fi
    fi
    "$BIN/cld" dev --nodes 3 --dir "$DIR/cell" >"$DIR/dev.out" 2>&1 &
    DEV=$!
    wait_file "$DIR/cell/cell.pub"
    CLD_CELL=$(sed -n 's/^client = "\(.*\)"/\1/p' "$DIR/cell/cell.toml" | paste -sd, -)
    CLD_CELL_KEY=$(cat "$DIR/cell/cell.pub")
    CLD_USER=dev
    CLD_SECRET_FILE="$DIR/cell/dev.secret"
    export CLD_CELL CLD_CELL_KEY CLD_USER CLD_SECRET_FILE
    i=0
    until "$BIN/cldcli" --timeout 2s status >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 60 ] || { echo "the cell never answered" >&2; cat "$DIR/dev.out" >&2; exit 1; }
        sleep 0.5
    done
    # The master: the member whose metrics say cld_is_master 1.
    MASTER=""
    FOLLOWER=""
    for m in $(sed -n 's/.*metrics http:\/\/\([^/]*\)\/metrics.* pid \([0-9]*\)$/\1=\2/p' "$DIR/dev.out"); do
        if curl -s "http://${m%=*}/metrics" | grep -q '^cld_is_master 1'; then
            MASTER=${m#*=}
        else
            FOLLOWER=${m#*=}
        fi
    done
    [ -n "$MASTER" ] || { echo "no master found" >&2; cat "$DIR/dev.out" >&2; exit 1; }
    # Let the probes' sessions end (64 per user) before the row opens its own.
    sleep 14
}

stop_cell() {
    kill "$DEV" 2>/dev/null || true
    wait "$DEV" 2>/dev/null || true
    rm -rf "$DIR"
}

wait_file() {
    i=0
    while [ ! -s "$1" ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { echo "cld dev did not start" >&2; exit 1; }
        sleep 0.1
    done
}

cpu_ticks() {
    # utime + stime of the process, in clock ticks.
    awk '{print $14 + $15}' "/proc/$1/stat"
}

profile_row() {
    row=$1
    shift
    {
        echo "# $row: cldcli $*"
        echo "# master pid $MASTER; uptime before: $(uptime)"
    } >"$OUT/$row.bench"
    t0=$(cpu_ticks "$MASTER")
    w0=$(date +%s.%N)
    if [ -z "${NOPERF:-}" ]; then
        # perf record over the first secs-4 s, then a syscall trace of 3 s (never both at
        # once: tracing every syscall slows the traced process several fold).
        (
            sleep 0.5
            perf record -g -F 499 -p "$MASTER" -o "$OUT/$row.data" -- sleep $((secs - 4)) \
                >/dev/null 2>"$OUT/$row.perf-record.log"
            if [ "$row" = put1 ]; then
                perf trace -S -p "$MASTER" -o "$OUT/$row.trace-master" -- sleep 1 >/dev/null 2>&1 &
                perf trace -p "$FOLLOWER" -o "$OUT/$row.trace-follower" -- sleep 1 >/dev/null 2>&1
                wait
            else
                perf trace -s -p "$MASTER" -o "$OUT/$row.syscalls" -- sleep 3 >/dev/null 2>&1
            fi
        ) &
        PERF=$!
    fi
    "$BIN/cldcli" "$@" >>"$OUT/$row.bench" 2>&1 || true
    t1=$(cpu_ticks "$MASTER")
    w1=$(date +%s.%N)
    hz=$(getconf CLK_TCK)
    echo "# uptime after: $(uptime)" >>"$OUT/$row.bench"
    awk -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v hz="$hz" 'BEGIN {
        printf "master CPU over the bench (incl. session set-up): %.1f %% of one core (%.1f s CPU in %.1f s)\n",
            100 * (t1 - t0) / hz / (w1 - w0), (t1 - t0) / hz, w1 - w0 }' >"$OUT/$row.cpu"
    if [ -z "${NOPERF:-}" ]; then
        wait "$PERF" 2>/dev/null || true
        perf report -i "$OUT/$row.data" --children --stdio --percent-limit 2 -g none \
            2>/dev/null | grep -v '^$' | head -60 >"$OUT/$row.children" || true
        perf report -i "$OUT/$row.data" --no-children --stdio --percent-limit 0.7 -g none \
            2>/dev/null | grep -v '^$' | head -60 >"$OUT/$row.self" || true
    fi
    cat "$OUT/$row.bench" "$OUT/$row.cpu"
}

idle_row() {
    # 10,000 sessions opened, then the steady state measured over the last 30 s.
    echo "# idle: cldcli bench --workload idle-sessions --sessions 10000 --duration 90s" >"$OUT/idle.bench"
    echo "# master pid $MASTER; uptime before: $(uptime)" >>"$OUT/idle.bench"
    "$BIN/cldcli" bench --workload idle-sessions --sessions 10000 --duration 90s \
        >>"$OUT/idle.bench" 2>&1 &
    BENCH=$!
    # Opening 10,000 sessions takes a while on 2 shared cores; wait until the master holds them.
    sleep 50
    t0=$(cpu_ticks "$MASTER")
    w0=$(date +%s.%N)
    if [ -z "${NOPERF:-}" ]; then
        perf record -g -F 499 -p "$MASTER" -o "$OUT/idle.data" -- sleep 20 \
            >/dev/null 2>"$OUT/idle.perf-record.log"
        perf trace -s -p "$MASTER" -o "$OUT/idle.syscalls" -- sleep 3 >/dev/null 2>&1 || true
    else
        sleep 23
    fi
    t1=$(cpu_ticks "$MASTER")
    w1=$(date +%s.%N)
    hz=$(getconf CLK_TCK)
    echo "# uptime (steady state): $(uptime)" >>"$OUT/idle.bench"
    awk -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v hz="$hz" 'BEGIN {
        printf "master CPU, steady state of idle sessions: %.1f %% of one core (%.1f s CPU in %.1f s)\n",
            100 * (t1 - t0) / hz / (w1 - w0), (t1 - t0) / hz, w1 - w0 }' >"$OUT/idle.cpu"
    curl -s "$(sed -n 's/.*metrics \(http:[^ ]*\) .* pid '"$MASTER"'$/\1/p' "$DIR/dev.out")" \
        | grep -E '^cld_(sessions|keepalives_answered)' >>"$OUT/idle.cpu" || true
    wait "$BENCH" || true
    if [ -z "${NOPERF:-}" ]; then
        perf report -i "$OUT/idle.data" --children --stdio --percent-limit 2 -g none \
            2>/dev/null | grep -v '^$' | head -60 >"$OUT/idle.children" || true
        perf report -i "$OUT/idle.data" --no-children --stdio --percent-limit 0.7 -g none \
            2>/dev/null | grep -v '^$' | head -60 >"$OUT/idle.self" || true
    fi
    cat "$OUT/idle.bench" "$OUT/idle.cpu"
}

for row in $ROWS; do
    echo "=== $row ($(date -u +%H:%M:%S) UTC)"
    case $row in
    idle)
        start_cell idle
        trap 'stop_cell' EXIT INT TERM
        idle_row
        ;;
    *)
        start_cell
        trap 'stop_cell' EXIT INT TERM
        case $row in
        put64) profile_row put64 bench --workload put --sessions 64 --size 256 --duration "$DUR" ;;
        put1) profile_row put1 bench --workload put --sessions 1 --size 256 --duration "$DUR" ;;
        get64) profile_row get64 bench --workload get --sessions 64 --size 256 --duration "$DUR" ;;
        lock64) profile_row lock64 bench --workload lock --sessions 64 --duration "$DUR" ;;
        handoff) profile_row handoff bench --workload lock-contended --sessions 64 --duration "$DUR" ;;
        *) echo "unknown row $row" >&2; exit 2 ;;
        esac
        ;;
    esac
    stop_cell
    trap - EXIT INT TERM
done
