import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cgroupV2Root, killOnExit, launchSystemd, mountRoot, poweroff } from './sdhost-boot.js';
import { alive, reapStaleHosts, run, STATE_PREFIX, unmountAndRemove, type HostRecord } from './sdhost-reap.js';

export { makeVolumeImage, type VolumeImageOptions } from './sdhost-volume.js';
export { reapStaleHosts } from './sdhost-reap.js';

/**
 * Real systemd hosts for integration tests: systemd as PID 1 in its own pid/mount/uts/ipc/net/cgroup
 * namespaces over an overlayfs (lower = the cached rootfs built by scripts/build-test-rootfs.sh,
 * upper = a per-host temp dir). Never over this machine's own root. Needs root.
 *
 * Disks are loop devices whose block node is mknod'ed into the host's private /dev ("attach") and
 * removed again ("detach"). The host's system bus is reachable from here as a unix socket.
 */

const execFileP = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const ROOTFS_DIR = process.env.SDHOST_ROOTFS ?? join(REPO, '.cache/rootfs');
/** Written last by scripts/build-test-rootfs.sh; the init script refuses a root without it. */
export const ROOTFS_MARKER = 'etc/ebs-failover-test-rootfs';
const BUILD_SCRIPT = join(REPO, 'scripts/build-test-rootfs.sh');

/** 30 s: the bus answers in ~0.3–0.5 s on an idle machine; the deadline covers a loaded shared one. */
const BOOT_TIMEOUT_MS = 30_000;
/** 10 min: a first-time debootstrap downloads ~60 MB and unpacks for ~1 min. */
const BUILD_TIMEOUT_MS = 600_000;

export interface SdHost {
  readonly name: string;
  /** Outer pid of the host's systemd (PID 1 inside). */
  readonly pid: number;
  /** `unix:path=…/run/dbus/system_bus_socket` of this host's system bus. */
  readonly busAddress: string;
  /** The host's "/" as seen from here: `/proc/<pid>/root`. */
  readonly rootDir: string;
  /** Milliseconds from spawn to the bus answering, and to systemd reporting boot finished. */
  readonly busReadyMs: number;
  readonly bootedMs: number;
  /** losetup `img`, mknod `/dev/<devName>` in the host; returns the loop device. */
  addDisk(img: string, devName: string): Promise<string>;
  /** Removes `/dev/<devName>` from the host and detaches its loop device. Stop units first. */
  removeDisk(devName: string): Promise<void>;
  /** Writes a file inside the host (parents created). */
  writeFile(pathInRoot: string, content: string): Promise<void>;
  readFile(pathInRoot: string): Promise<string>;
  /** Symlink inside the host, e.g. a `/dev/disk/by-id/…` link. */
  symlink(pathInRoot: string, target: string): Promise<void>;
  /** Runs a command inside the host's namespaces and root (nsenter). */
  exec(argv: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  /** Last `lines` journal lines of a unit, read inside the host. */
  journal(unit: string, lines?: number): Promise<string[]>;
  /** Poweroff, SIGKILL fallback, detach disks, unmount, remove temp dirs. Safe to call twice. */
  stop(): Promise<void>;
}

/** Fails with a clear message unless we are root; builds the rootfs when it is missing. */
export function ensureRootfs(): string {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error('systemd host tests need root (overlay mounts, namespaces, loop devices); run them as root');
  }
  if (!existsSync(join(ROOTFS_DIR, ROOTFS_MARKER))) {
    try {
      execFileSync('bash', [BUILD_SCRIPT], { stdio: ['ignore', 'inherit', 'inherit'], timeout: BUILD_TIMEOUT_MS });
    } catch (err) {
      throw new Error(`test rootfs missing and ${BUILD_SCRIPT} failed (needs debootstrap and Debian packages)`, { cause: err });
    }
  }
  if (!existsSync(join(ROOTFS_DIR, ROOTFS_MARKER))) throw new Error(`no test rootfs at ${ROOTFS_DIR} after build`);
  return ROOTFS_DIR;
}

function devNumbers(blockDevice: string): { major: number; minor: number } {
  const rdev = statSync(blockDevice).rdev;
  // Linux dev_t encoding (glibc gnu_dev_major/minor).
  return { major: ((rdev >> 8) & 0xfff) | Math.floor(rdev / 2 ** 32) & ~0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
}

/** Boots a host named `name` (letters, digits, dashes). */
export async function bootHost(name: string): Promise<SdHost> {
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) throw new Error(`bad host name ${name}`);
  const lower = ensureRootfs();
  reapStaleHosts();
  const t0 = performance.now();
  const stateDir = mkdtempSync(join(tmpdir(), `${STATE_PREFIX}${name}-`));
  const cgroupDir = join(cgroupV2Root(), `ebs-failover-sdhost-${name}-${randomBytes(3).toString('hex')}`);
  const disks = new Map<string, string>();
  const images = new Map<string, string>();
  let child: ChildProcess | undefined;
  let pid = 0;
  let stopped = false;
  /** What reapStaleHosts() needs to clean up after a test process that died without stop(). */
  const record = (): void => {
    const rec: HostRecord = { ownerPid: process.pid, pid, cgroupDir, disks: [...disks].map(([devName, loop]) => ({ devName, loop, img: images.get(devName) ?? '' })) };
    writeFileSync(join(stateDir, 'host.json'), JSON.stringify(rec));
  };

  /** Synchronous teardown, shared by stop() and the exit hook. */
  const teardown = (): void => {
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    if (child?.pid && alive(child.pid)) process.kill(child.pid, 'SIGKILL');
    for (const loop of disks.values()) {
      try {
        run('losetup', ['-d', loop]);
      } catch {
        // already detached (autoclear after the namespace's mount went away)
      }
    }
    disks.clear();
    unmountAndRemove(stateDir, cgroupDir);
  };
  const exitHook = killOnExit(teardown);

  try {
    const merged = mountRoot(stateDir, lower, ROOTFS_MARKER, name, randomBytes(16).toString('hex'));
    mkdirSync(cgroupDir);
    record();
    const launched = await launchSystemd({
      name, merged, cgroupDir, initMarker: ROOTFS_MARKER, ownNetwork: true, bootTimeoutMs: BOOT_TIMEOUT_MS, t0,
      onSpawn: (c) => (child = c),
      onPid: (p) => {
        pid = p;
        record();
      },
    });
    const { busAddress, busReadyMs, unsharePid } = launched;
    pid = launched.pid;
    const bootedMs = performance.now() - t0;
    const rootDir = `/proc/${pid}/root`;
    const inRoot = (p: string): string => {
      const abs = join(rootDir, p);
      if (!abs.startsWith(`${rootDir}/`)) throw new Error(`path ${p} escapes the host root`);
      return abs;
    };

    const host: SdHost = {
      name,
      pid,
      busAddress,
      rootDir,
      busReadyMs,
      bootedMs,
      async addDisk(img, devName) {
        if (!/^[a-z0-9]+$/.test(devName)) throw new Error(`bad device name ${devName}`);
        if (disks.has(devName)) throw new Error(`${devName} already attached to ${name}`);
        const { stdout } = await execFileP('losetup', ['-f', '--show', img]);
        const loop = stdout.trim();
        disks.set(devName, loop);
        images.set(devName, img);
        record();
        const { major, minor } = devNumbers(loop);
        await execFileP('mknod', ['-m', '660', inRoot(`dev/${devName}`), 'b', String(major), String(minor)]);
        return loop;
      },
      async removeDisk(devName) {
        const loop = disks.get(devName);
        if (!loop) throw new Error(`${devName} is not attached to ${name}`);
        await rm(inRoot(`dev/${devName}`), { force: true });
        disks.delete(devName);
        images.delete(devName);
        record();
        await execFileP('losetup', ['-d', loop]);
      },
      async writeFile(pathInRoot, content) {
        const abs = inRoot(pathInRoot);
        await mkdir(dirname(abs), { recursive: true });
        await writeFile(abs, content);
      },
      async readFile(pathInRoot) {
        return readFile(inRoot(pathInRoot), 'utf8');
      },
      async symlink(pathInRoot, target) {
        const abs = inRoot(pathInRoot);
        await mkdir(dirname(abs), { recursive: true });
        await rm(abs, { force: true });
        await symlink(target, abs);
      },
      async exec(argv, timeoutMs = 10_000) {
        const { stdout, stderr } = await execFileP(
          'nsenter',
          ['-t', String(pid), '-m', '-u', '-i', '-n', '-p', '-C', '-r', '-w', '--', ...argv],
          { timeout: timeoutMs },
        );
        return { stdout, stderr };
      },
      async journal(unit, lines = 20) {
        const { stdout } = await host.exec(['journalctl', '--no-pager', '-o', 'cat', '-n', String(lines), '-u', unit]);
        return stdout.split('\n').filter((l) => l.length > 0);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await poweroff(pid, unsharePid);
        teardown();
        exitHook.release();
      },
    };
    return host;
  } catch (err) {
    teardown();
    exitHook.release();
    throw err;
  }
}
