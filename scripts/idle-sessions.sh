#!/bin/sh
# N idle sessions (default 10,000) against a real 3-member cell on loopback, and the CPU the
# master spends keeping them alive.
#
#   scripts/idle-sessions.sh                 # release build, 10,000 sessions held 60 s
#   N=2000 DUR=30 PROFILE=test scripts/idle-sessions.sh
#
# Starts three `cld` members (their own config: `[cell] sessions_per_user = N + 1000`,
# default timing: 12 s session lease), runs `cldcli bench --workload idle-sessions
# --sessions N --duration DUR`, and samples every member's CPU (utime + stime from
# /proc/PID/stat) every SAMPLE seconds. Prints the samples, the master's steady-state CPU
# (the samples after every session was open), the bench's JSON, and the sessions expired as
# counted by the members' metrics (should be 0).
set -eu
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
N=${N:-10000}
DUR=${DUR:-60}
SAMPLE=${SAMPLE:-5}
case "$PROFILE" in
release) BIN=target/release ;;
*) BIN=target/debug ;;
esac
cargo build --profile "$PROFILE" -p cld-server --bin cld -p cld-cli --bin cldcli >&2
DIR=$(mktemp -d /tmp/idle-sessions.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

# Loopback ports: ask the kernel for free ones through Python, all distinct.
PORTS=$(python3 -c '
import socket
socks, ports = [], []
while len(ports) < 9:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p))
    except OSError:
        continue
    socks += [s, u]
    ports.append(p)
print(" ".join(map(str, ports)))
')
set -- $PORTS
CELL_KEY=$("$BIN/cld" keygen --out "$DIR/cell.key")
SECRET=$("$BIN/cld" gen-secret)
printf '%s' "$SECRET" >"$DIR/user.secret"
chmod 600 "$DIR/user.secret"
{
    echo "[cell]"
    echo "name = \"idle\""
    echo "secret = \"$("$BIN/cld" gen-secret)\""
    echo "key_file = \"cell.key\""
    echo "sessions_per_user = $((N + 1000))"
    for id in 1 2 3; do
        eval client=\${$id}
        eval peer=\${$((id + 3))}
        echo "[[member]]"
        echo "id = $id"
        echo "client = \"127.0.0.1:$client\""
        echo "peer = \"127.0.0.1:$peer\""
    done
    echo "[[user]]"
    echo "name = \"bench\""
    echo "secret = \"$SECRET\""
} >"$DIR/cell.toml"
chmod 600 "$DIR/cell.toml"
CELL="127.0.0.1:$1,127.0.0.1:$2,127.0.0.1:$3"
METRICS="$7 $8 $9"
for id in 1 2 3; do
    eval m=\${$((id + 6))}
    "$BIN/cld" --config "$DIR/cell.toml" --id "$id" --data-dir "$DIR/data$id" \
        --metrics "127.0.0.1:$m" 2>"$DIR/member$id.log" &
    PIDS="$PIDS $!"
done
set -- $PIDS
export CLD_CELL="$CELL" CLD_CELL_KEY="$CELL_KEY" CLD_USER=bench CLD_SECRET_FILE="$DIR/user.secret"
i=0
until master=$("$BIN/cldcli" --timeout 2s --json status 2>/dev/null |
    python3 -c 'import json,sys; m=json.load(sys.stdin)["master"]; assert m; print(m)' 2>/dev/null); do
    i=$((i + 1))
    [ "$i" -lt 60 ] || { echo "no master:" >&2; cat "$DIR"/member*.log >&2; exit 1; }
    sleep 0.5
done
eval MASTER_PID=\${$master}
echo "cell: 3 members ($PROFILE build), master member $master (pid $MASTER_PID), sessions_per_user $((N + 1000))"
expired() {
    total=0
    for m in $METRICS; do
        v=$(python3 -c '
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1]).read().decode()
print(int(float(next(l.split()[-1] for l in body.splitlines() if l.startswith("cld_sessions_expired_total")))))
' "$m")
        total=$((total + v))
    done
    echo "$total"
}
EXPIRED_BEFORE=$(expired)
TICKS=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "cldcli bench --workload idle-sessions --sessions $N --duration ${DUR}s"
START=$(date +%s)
"$BIN/cldcli" --timeout 30s --json bench --workload idle-sessions --sessions "$N" \
    --duration "${DUR}s" >"$DIR/bench.json" 2>"$DIR/bench.err" &
BENCH=$!
echo "  t(s)  sessions  master %cpu  (member1 member2 member3 %cpu)"
prev_t=$(date +%s.%N)
prev1=$(cpu "$1") prev2=$(cpu "$2") prev3=$(cpu "$3")
STEADY=""
while kill -0 "$BENCH" 2>/dev/null; do
    sleep "$SAMPLE"
    kill -0 "$BENCH" 2>/dev/null || break
    now=$(date +%s.%N)
    c1=$(cpu "$1") c2=$(cpu "$2") c3=$(cpu "$3")
    sessions=$("$BIN/cldcli" --timeout 5s --json status 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions"])' 2>/dev/null || echo "?")
    line=$(python3 -c '
import sys
dt, ticks = float(sys.argv[1]) - float(sys.argv[2]), float(sys.argv[3])
d = [(float(a) - float(b)) / ticks / dt * 100 for a, b in zip(sys.argv[4:7], sys.argv[7:10])]
print(" ".join("%.1f" % x for x in d))
' "$now" "$prev_t" "$TICKS" "$c1" "$c2" "$c3" "$prev1" "$prev2" "$prev3")
    set -- $PIDS
    m=$(echo "$line" | cut -d' ' -f"$master")
    printf '%6d  %8s  %11s  (%s)\n' "$(($(date +%s) - START))" "$sessions" "$m" "$line"
    # Steady state: every session open (one more: the status call's own).
    if [ "$sessions" != "?" ] && [ "$sessions" -ge "$N" ]; then STEADY="$STEADY $m"; fi
    prev_t=$now prev1=$c1 prev2=$c2 prev3=$c3
done
wait "$BENCH" || { echo "bench failed:" >&2; cat "$DIR/bench.err" >&2; exit 1; }
echo "bench: $(cat "$DIR/bench.json")"
echo "wall time of the bench: $(($(date +%s) - START)) s"
echo "sessions expired (sum of the members' cld_sessions_expired_total): $(($(expired) - EXPIRED_BEFORE))"
if [ -n "$STEADY" ]; then
    echo "master CPU with all $N sessions open (% of one core, per ${SAMPLE} s sample):$STEADY"
fi
