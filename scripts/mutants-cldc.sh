#!/usr/bin/env bash
# Mutation run over cldc's receive path, handshake and replay code (issue 7). Long: run it by
# hand, not from CI. Needs `cargo install cargo-mutants` (27.x). Mutates the tree in place
# (uses the warm target dir; do not edit cldc while it runs) and writes reports under
# ${OUT:-/tmp/mutants-cldc}/{A,B,C}/mutants.out. Each part is capped by BUDGET seconds
# (default 900); the sum is the run's budget.
#
#   A: handshake (responder's cheap checks, pending table, client reply reading)
#   B: the client core's receive path (datagram checks, handshake answers, ended answers)
#   C: the replay window, datagram opening, Retry and the resend bound
set -euo pipefail
if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install --locked cargo-mutants --version "${MUTANTS_VERSION:-27.1.0}"
fi
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/mutants-cldc}"
budget="${BUDGET:-900}"
tests=(--lib --test core_session --test threats --test vectors --test proto_props
       --test receive_checks --test handshake_checks)
run() {
    local name="$1"; shift
    echo "== mutants $name (budget ${budget}s)"
    timeout -s INT "$budget" cargo mutants --in-place --baseline skip --timeout 120 \
        --output "$out/$name" "$@" -- "${tests[@]}" || true
    for f in caught missed timeout unviable; do
        printf '%s %s: %s\n' "$name" "$f" "$(wc -l < "$out/$name/mutants.out/$f.txt" 2>/dev/null || echo 0)"
    done
}
run A --file cldc/src/proto/handshake.rs \
    --re 'check_init|cookie_ok|pending_key|Responder::complete|Responder::expire|read_reply|HandshakeOutcome::decode|HandshakeInit::parse|read_cookie'
run B --file cldc/src/core/session/receive.rs \
    --re 'handle_datagram|server_key|handshake_answer|ended_answer|Session::retry|resend_now'
run C --file cldc/src/proto/replay.rs --file cldc/src/proto/packet.rs \
    --file cldc/src/core/session/receive.rs \
    --re 'ReplayWindow|open_packet|parse_header|Session::retry|resend_now'
git checkout -- cldc/tests/proto_props.proptest-regressions 2>/dev/null || true
