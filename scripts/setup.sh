#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: the servers the tests and the demo start
# (etcd, and debootstrap + loop-device tools for the real-systemd host tests), the npm dependencies,
# and the cached root filesystem that the host-agent tests boot systemd on. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# Node >= 20 (package.json "engines"): ESM, AbortSignal.timeout, fetch and the test runner need it.
if ! command -v node >/dev/null; then
  echo "setup: Node.js >= 20 is required and no 'node' is on PATH (https://nodejs.org, or NodeSource's nodejs package)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js >= 20 is required, found $(node --version)" >&2
  exit 1
fi

need=()
command -v etcd >/dev/null || need+=(etcd-server)
# etcdctl (for looking at the keyspace by hand, and `failover etcd-roles` lines) is Debian's etcd-client.
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v losetup >/dev/null || need+=(util-linux)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ "${#need[@]}" -gt 0 ] || [ "${CI:-}" = true ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq etcd-server etcd-client debootstrap util-linux e2fsprogs systemd >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# The host-agent tests boot a real systemd over this cached root (never over this machine's /).
if [ -x scripts/build-test-rootfs.sh ] && [ "$(id -u)" = 0 ]; then
  scripts/build-test-rootfs.sh
fi
# The real-host tests (issue 11): a root with PostgreSQL, and the real fleet v1.0.0 built once from
# ../shared/fleet (both cached under .cache/, keyed by marker / tarball hash; skipped when absent).
if [ "$(id -u)" = 0 ]; then
  # Not fatal: without them the real-host suites skip, saying why, and everything else still runs.
  scripts/build-test-rootfs-pg.sh || echo "setup: WARNING: PostgreSQL test root not built; real-host tests will skip" >&2
  scripts/build-fleet.sh || echo "setup: WARNING: fleet not built; real-fleet tests will skip" >&2
fi
echo "setup: ok (etcd $(etcd --version | head -1 | awk '{print $3}'), node $(node --version))"
