#!/usr/bin/env bash
# Builds the root filesystem of the REAL hosts (test/helpers/realhost.ts, npm run demo:real): the
# host-test root (scripts/build-test-rootfs.sh) plus Debian's PostgreSQL 15, psql, procps and iproute2.
# Built ONCE into <repo>/.cache/rootfs-pg (gitignored) and reused as the lower layer of every host.
# Idempotent: its own marker, written last, says the whole build (debootstrap + the steps below) completed.
#
# Env: ROOTFS_PG_DIR (default <repo>/.cache/rootfs-pg), DEBIAN_MIRROR, FORCE=1 rebuilds. Needs root.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOTFS=${ROOTFS_PG_DIR:-$REPO/.cache/rootfs-pg}
# Must match PG_ROOTFS_MARKER in test/helpers/realhost.ts.
MARKER=etc/ebs-failover-test-rootfs-pg
log() { echo "build-test-rootfs-pg: $*" >&2; }

if [ "${FORCE:-0}" != 1 ] && [ -f "$ROOTFS/$MARKER" ]; then
  log "already built: $ROOTFS ($(cat "$ROOTFS/$MARKER"))"
  exit 0
fi
t0=$(date +%s)
# No pg marker: whatever is there is incomplete, so the base build runs from scratch (FORCE=1).
FORCE=1 ROOTFS_DIR="$ROOTFS" EXTRA_INCLUDE=postgresql,postgresql-client,procps,iproute2 \
  "$REPO/scripts/build-test-rootfs.sh"

# postgresql-common's postinst made cluster 15/main and enabled postgresql.service: the hosts run
# PostgreSQL only through units/postgres@.service, with PGDATA on the volume.
rm -rf "$ROOTFS/etc/postgresql/15/main" "$ROOTFS/var/lib/postgresql/15/main"
for unit in postgresql.service postgresql@.service; do
  ln -sfn /dev/null "$ROOTFS/etc/systemd/system/$unit"
done
rm -rf "$ROOTFS/etc/systemd/system/multi-user.target.wants/postgresql.service"
[ -x "$ROOTFS/usr/lib/postgresql/15/bin/postgres" ] || { log "postgres binary missing"; exit 1; }
# Mount point of the volume, and where the project and node are bound read-only at boot.
mkdir -p "$ROOTFS/data/postgres" "$ROOTFS/opt/ebs-failover" "$ROOTFS/etc/ebs-failover" "$ROOTFS/opt/fleet"
echo "bookworm minbase + postgresql $(ls "$ROOTFS/usr/lib/postgresql") built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - t0 ))s" >"$ROOTFS/$MARKER"
log "done: $(cat "$ROOTFS/$MARKER") ($(du -sh "$ROOTFS" | cut -f1))"
