#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, when it is missing:
#   fuse3  - fusermount3, which the power-loss test (libpaxos-db/tests/power_loss.rs) needs to
#            mount its crash-simulating FUSE file system;
#   strace - the fsync audit (libpaxos-db/tests/fsync_audit.rs) counts syscalls with it.
# Uses apt-get (Debian/Ubuntu). Without root or apt-get it says so and returns 0: the tests
# that need these then say loudly that they were skipped.
set -uo pipefail

missing=()
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v strace >/dev/null 2>&1 || missing+=(strace)

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: fuse3 and strace are present"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: WARNING: missing ${missing[*]} and cannot install (needs apt-get as root);" \
    "the tests that need them will be SKIPPED" >&2
  exit 0
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1 || true
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    echo "install-test-deps: WARNING: apt-get could not install ${missing[*]};" \
      "the tests that need them will be SKIPPED" >&2
  fi
fi
exit 0
