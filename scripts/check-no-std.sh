#!/usr/bin/env bash
# Proves that `cldc` with default features off (the wire protocol and the session core)
# builds without the standard library. Installs nothing. Two independent checks:
#
# 1. Host probe (always): a tiny `#![no_std]` crate that defines its own `#[panic_handler]`
#    and uses cldc's no_std API. If cldc or any of its dependencies links `std`, rustc
#    fails with "duplicate lang item `panic_impl`" (std defines the same lang item).
# 2. Bare-metal build (when a no_std target such as thumbv7em-none-eabihf is already
#    installed): `cargo build -p cldc --no-default-features --target <it>`. That target has
#    no std at all, so any use of std fails to compile.
#
# Exit status is non-zero if either check fails. Usage: scripts/check-no-std.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT

mkdir -p "$probe/src"
cat > "$probe/Cargo.toml" <<TOML
[package]
name = "cldc-no-std-probe"
version = "0.0.0"
edition = "2024"
publish = false

[lib]
path = "src/lib.rs"

[dependencies]
cldc = { path = "$root/cldc", default-features = false }

[workspace]
TOML
cat > "$probe/src/lib.rs" <<'RS'
#![no_std]
extern crate alloc;

use cldc::core::{Config, Session, Time};
use cldc::proto::{
    CellKeys, CellPrivateKey, HandshakeInit, HandshakeOutcome, Request, Responder,
    ResponderLimits, Secret, Sender, SessionId, Epoch, UserName, encode_body,
};
use core::net::SocketAddr;
use core::time::Duration;

/// Touches the protocol, the handshake (both ends) and the session core so that they are
/// really linked in.
pub fn probe() -> usize {
    let user = UserName::new("probe").ok();
    let secret = Secret::new(&[b'k'; 32]).ok();
    let (Some(user), Some(secret)) = (user, secret) else { return 0 };
    let cell = CellPrivateKey::from_bytes([1; 32]);
    let member = SocketAddr::from(([127, 0, 0, 1], 1));
    let cfg = Config::new(user, secret.clone(), cell.public(), alloc::vec![member]);
    let mut n = encode_body(&Request::Status).map(|b| b.len()).unwrap_or(0);
    let mut responder = Responder::new(CellKeys::new(cell, None), [2; 32], ResponderLimits::default());
    if let Ok(mut s) = Session::new(cfg, Time::default(), [3; 32]) {
        while let Some(out) = s.poll_output() {
            n += 1;
            if let cldc::core::Output::Transmit { datagram, .. } = out
                && let Ok(init) = HandshakeInit::parse(&datagram, 1400)
            {
                let outcome = HandshakeOutcome::Accepted { session: SessionId(5), epoch: Epoch(1) };
                let sender = Sender::client(Epoch(1));
                n += responder
                    .answer(Duration::ZERO, &init, &secret, &outcome, sender, [4; 32])
                    .map(|r| r.len())
                    .unwrap_or(0);
            }
        }
    }
    n
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
RS
# Pin dependency versions to the workspace's.
cp "$root/Cargo.lock" "$probe/Cargo.lock"

echo "no_std check 1/2: host probe crate with its own panic handler"
if ! CARGO_TARGET_DIR="$target_dir/no-std-probe" cargo build --quiet --manifest-path "$probe/Cargo.toml"; then
    echo "FAIL: cldc (default features off) pulls in std" >&2
    exit 1
fi

bare=""
for t in thumbv7em-none-eabihf thumbv7m-none-eabi riscv32imac-unknown-none-elf; do
    if rustup target list --installed 2>/dev/null | grep -qx "$t"; then
        bare="$t"
        break
    fi
done
if [ -n "$bare" ]; then
    echo "no_std check 2/2: cargo build -p cldc --no-default-features --target $bare"
    if ! (cd "$root" && CARGO_TARGET_DIR="$target_dir" cargo build --quiet -p cldc --no-default-features --target "$bare"); then
        echo "FAIL: cldc (default features off) does not build for $bare" >&2
        exit 1
    fi
else
    echo "no_std check 2/2: skipped (no bare-metal target installed; check 1 still applies)"
fi
echo "no_std check passed"
