#!/usr/bin/env bash
# Builds the real fleet v1.0.0 (fleetd, fleetctl) ONCE into <repo>/.cache/fleet/<sha256 of the source
# tarball>/ and reuses it: the real-host tests and the fleet contract suite run these binaries.
# The tarball and its build.sh live in ../shared/fleet (FLEET_SRC_DIR overrides); without them this
# script says so and exits 0, and the suites that need real fleetd skip with that reason.
#
# Env: FLEET_SRC_DIR (default <repo>/../shared/fleet), FLEET_CACHE (default <repo>/.cache/fleet), FORCE=1.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SRC=${FLEET_SRC_DIR:-$REPO/../shared/fleet}
CACHE=${FLEET_CACHE:-$REPO/.cache/fleet}
log() { echo "build-fleet: $*" >&2; }

tarball="$SRC/fleet-1.0.0-src.tar.gz"
if [ ! -f "$tarball" ] || [ ! -x "$SRC/build.sh" ]; then
  log "no fleet source at $SRC: skipping (real-fleet tests will skip)"
  exit 0
fi
key=$(sha256sum "$tarball" | cut -c1-16)
out="$CACHE/$key"
if [ "${FORCE:-0}" != 1 ] && [ -x "$out/fleetd" ] && [ -x "$out/fleetctl" ] && [ -f "$out/BUILT" ]; then
  log "already built: $out ($(cat "$out/BUILT"))"
  ln -sfn "$key" "$CACHE/current"
  exit 0
fi
rm -rf "$out.partial"
t0=$(date +%s)
log "building fleet v1.0.0 into $out"
"$SRC/build.sh" "$out.partial" >&2
echo "fleet v1.0.0 from $(basename "$tarball") sha256:$key built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - t0 ))s" >"$out.partial/BUILT"
rm -rf "$out"; mv "$out.partial" "$out"
ln -sfn "$key" "$CACHE/current"
log "done: $(cat "$out/BUILT")"
