/**
 * The bash program that runs as PID 1 of a fresh pid/mount/uts/ipc/net/cgroup namespace set and ends by
 * exec'ing systemd chrooted into the host's overlay root. Kept as a string so that the harness is one
 * TypeScript module plus this file (no extra script on disk to keep executable).
 *
 * Arguments: $1 = host name, $2 = merged overlay dir (the future "/"), $3 = marker path inside the root.
 *
 * Why each step:
 * - The merged dir must be our overlay and carry the marker: systemd over this machine's own "/" would
 *   run its tmpfiles step and wipe /tmp, so every check below fails closed.
 * - sysfs read-only: systemd then knows there is no udev and does not make mount units wait for
 *   `dev-xvdf.device` (which would never appear); the mount starts as soon as the node exists.
 * - /proc/sys and /proc/sysrq-trigger read-only: systemd's sysctl step must not change the machine's.
 * - cgroup2 mounted from inside the cgroup namespace: the host's own subtree becomes systemd's root.
 * - A private /dev tmpfs with the basic char devices; disks are mknod'ed into it later from outside.
 * - /dev/console is /dev/null: there is no terminal; getty units are masked in the rootfs build.
 */
export const INIT_SCRIPT = String.raw`
set -eu
NAME=$1; M=$2; MARK=$3
die() { echo "sdhost-init: $*" >&2; exit 97; }
[ $$ -eq 1 ] || die "not pid 1 of a new pid namespace"
mountpoint -q "$M" || die "$M is not a mount point"
[ -f "$M/$MARK" ] || die "marker $MARK missing in $M"
[ "$(stat -c %d:%i "$M")" != "$(stat -c %d:%i /)" ] || die "$M is this machine's root"
mount -t proc -o nosuid,nodev,noexec proc "$M/proc"
mount --bind "$M/proc/sys" "$M/proc/sys"
mount -o remount,bind,ro "$M/proc/sys"
if [ -e "$M/proc/sysrq-trigger" ]; then
  mount --bind "$M/proc/sysrq-trigger" "$M/proc/sysrq-trigger"
  mount -o remount,bind,ro "$M/proc/sysrq-trigger"
fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$M/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$M/sys/fs/cgroup"
mount -t tmpfs -o mode=755,nosuid,size=8m devtmp "$M/dev"
for spec in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
  set -- $spec
  mknod -m 666 "$M/dev/$1" c "$2" "$3"
done
mkdir -p "$M/dev/pts" "$M/dev/shm" "$M/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$M/dev/pts"
ln -s pts/ptmx "$M/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$M/dev/shm"
ln -s /proc/self/fd "$M/dev/fd"
ln -s fd/0 "$M/dev/stdin"; ln -s fd/1 "$M/dev/stdout"; ln -s fd/2 "$M/dev/stderr"
touch "$M/dev/console"
mount --bind /dev/null "$M/dev/console"
hostname "$NAME"
cd "$M"
mount --move . /
exec chroot . /usr/bin/env -i container=ebs-failover-test "container_uuid=$(cat etc/machine-id)" \
  PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
  /bin/sh -c "test -f /$MARK || exit 98; exec /lib/systemd/systemd --log-target=journal-or-kmsg"
`;
