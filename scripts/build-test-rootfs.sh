#!/usr/bin/env bash
# Builds the root filesystem that the systemd integration tests boot as throw-away hosts
# (test/helpers/sdhost.ts): a Debian bookworm minbase with systemd, dbus and the mount tools.
#
# Built ONCE into <repo>/.cache/rootfs (gitignored) and reused: every test host runs on an
# overlayfs whose lower layer is this directory, so the tree itself is never written at test time.
# Idempotent: a marker file written last says the build completed; with it present we only exit.
#
# Env: ROOTFS_DIR (default <repo>/.cache/rootfs), EXTRA_INCLUDE (more packages, comma-separated;
#      scripts/build-test-rootfs-pg.sh uses it), DEBIAN_MIRROR (default: the first Debian URI
#      in this machine's apt sources, else http://deb.debian.org/debian), FORCE=1 rebuilds.
# Needs root (debootstrap, chroot). Installs debootstrap with apt-get when it is missing.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOTFS=${ROOTFS_DIR:-$REPO/.cache/rootfs}
# Must match ROOTFS_MARKER in test/helpers/sdhost-rootfs.ts: the helper refuses to boot a root
# without it, which is also what keeps systemd from ever being started over this machine's "/".
MARKER=etc/ebs-failover-test-rootfs
SUITE=bookworm

log() { echo "build-test-rootfs: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap needs it)"

if [ "${FORCE:-0}" != 1 ] && [ -f "$ROOTFS/$MARKER" ]; then
  log "already built: $ROOTFS ($(cat "$ROOTFS/$MARKER"))"
  exit 0
fi

case "$ROOTFS" in
  /|/usr|/usr/*|/etc|/etc/*|/bin|/sbin|/lib|/lib64) die "refusing to build into $ROOTFS" ;;
esac

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri=""
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# A half-finished tree (interrupted earlier run, no marker) is not trusted: start over.
if [ -e "$ROOTFS" ]; then
  log "removing incomplete $ROOTFS"
  rm -rf --one-file-system "$ROOTFS"
fi
mkdir -p "$(dirname "$ROOTFS")"
TMP="$ROOTFS.partial"
rm -rf --one-file-system "$TMP"

MIRROR=$(mirror)
log "debootstrap $SUITE from $MIRROR into $TMP"
t0=$(date +%s)
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,util-linux,mount,e2fsprogs${EXTRA_INCLUDE:+,$EXTRA_INCLUDE} \
  "$SUITE" "$TMP" "$MIRROR" >"$(dirname "$ROOTFS")/debootstrap.log" 2>&1 \
  || { tail -n 30 "$(dirname "$ROOTFS")/debootstrap.log" >&2; die "debootstrap failed"; }

# Units that have no job in a headless test host; getty/console ones spin forever on a
# /dev/console that is /dev/null, timers would fire maintenance jobs mid-test.
for unit in console-getty.service container-getty@.service getty.target getty@tty1.service \
            serial-getty@.service systemd-firstboot.service systemd-pstore.service \
            apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
            e2scrub_reap.service fstrim.timer systemd-tmpfiles-clean.timer; do
  ln -sfn /dev/null "$TMP/etc/systemd/system/$unit"
done
rm -f "$TMP/etc/systemd/system/getty.target.wants/getty@tty1.service"

# Short stop timeout: a unit that ignores SIGTERM must not hold a test (or a host shutdown)
# for the default 90 s.
mkdir -p "$TMP/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultTimeoutStopSec=10s\nDefaultTimeoutStartSec=30s\n' \
  >"$TMP/etc/systemd/system.conf.d/50-ebs-failover-test.conf"

# Journal in memory only: hosts are throw-away and the upper layer stays small.
mkdir -p "$TMP/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$TMP/etc/systemd/journald.conf.d/50-ebs-failover-test.conf"

# Each host gets a fresh machine-id at boot (sdhost.ts); an empty file here means "none yet".
: >"$TMP/etc/machine-id"
rm -f "$TMP/var/lib/dbus/machine-id"
mkdir -p "$TMP/data"
rm -rf "$TMP"/var/cache/apt/archives/*.deb "$TMP"/var/lib/apt/lists/*

echo "$SUITE minbase built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - t0 ))s" >"$TMP/$MARKER"
mv "$TMP" "$ROOTFS"
log "done: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1), $(( $(date +%s) - t0 ))s)"
