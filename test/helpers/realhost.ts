import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cgroupV2Root, killOnExit, launchSystemd, mountRoot, poweroff, POWEROFF_TIMEOUT_MS, waitExit } from './sdhost-boot.js';
import { alive, reapStaleHosts, run, STATE_PREFIX, unmountAndRemove, type HostRecord } from './sdhost-reap.js';

/**
 * REAL hosts for end-to-end tests (issue 11): like test/helpers/sdhost.ts (systemd 252 as PID 1 in its
 * own pid/mount/uts/ipc/cgroup namespaces over an overlayfs), but
 * - the root is the PostgreSQL one (scripts/build-test-rootfs-pg.sh, `.cache/rootfs-pg`);
 * - the host SHARES this machine's network namespace, so each host gets its own loopback address
 *   127.0.0.N (all of 127/8 is local on Linux) and PostgreSQL listens on 127.0.0.N:5432 in each, as in
 *   production, and fleetd inside reaches the test's etcd on 127.0.0.1;
 * - read-only binds made BEFORE boot: node at its own path, the project at /opt/ebs-failover, the
 *   fleet binaries at /opt/fleet (read-only, so a teardown that went wrong can never delete them);
 * - optionally fleetd, started by a `fleet.socket` on /run/fleet.sock, with metadata from its config.
 * SIGKILL of the outer systemd pid is "host death": the namespace and its mounts go with it.
 */

const execFileP = promisify(execFile);
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const PG_ROOTFS_DIR = process.env.REALHOST_ROOTFS ?? join(REPO, '.cache/rootfs-pg');
/** Written last by scripts/build-test-rootfs-pg.sh. */
export const PG_ROOTFS_MARKER = 'etc/ebs-failover-test-rootfs-pg';
/** The base marker sdhost-init checks (the pg root is built by the same script, so it has it too). */
const ROOTFS_MARKER = 'etc/ebs-failover-test-rootfs';
export const FLEET_DIR = process.env.FLEET_BIN_DIR ?? join(REPO, '.cache/fleet/current');
export const PROJECT_IN_HOST = '/opt/ebs-failover';

/** 60 s: boot takes ~0.5 s idle, but CI shares 2 cores with other suites. */
const BOOT_TIMEOUT_MS = 60_000;

export function realHostsAvailable(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root';
  if (!existsSync(join(PG_ROOTFS_DIR, PG_ROOTFS_MARKER))) return `no PostgreSQL test root at ${PG_ROOTFS_DIR} (run scripts/build-test-rootfs-pg.sh)`;
  return undefined;
}

export function realFleetAvailable(): string | undefined {
  if (!existsSync(join(FLEET_DIR, 'fleetd'))) return `no fleetd at ${FLEET_DIR} (run scripts/build-fleet.sh)`;
  return undefined;
}

export interface FleetInHost {
  /** etcd endpoints (v2 API enabled) fleetd registers with. */
  etcdServers: string[];
  /** Static metadata from fleet's config, e.g. `az=us-east-1a`. */
  metadata: string;
  /** fleet's agent_ttl (default "5s": a dead host leaves the cluster within seconds). */
  agentTtl?: string;
  /** fleet's token_limit: page size of the API (default 100). */
  tokenLimit?: number;
  /** engine_reconcile_interval in seconds (default 1 here, 2 in fleet). */
  reconcileIntervalS?: number;
  /** Also serve the API on <host ip>:<tcpPort> (for a controller outside the hosts). */
  tcpPort?: number;
}

export interface RealHostOptions {
  name: string;
  /** N of 127.0.0.N (2..254). */
  ipIndex: number;
  fleet?: FleetInHost;
  /** The host's /etc/machine-id (a host that comes back keeps its id); default: a fresh one. */
  machineId?: string;
  /** Files written into the host's root before boot (path inside the host → content). */
  files?: Record<string, string>;
  /** Units to enable before boot (symlinked into multi-user.target.wants / sockets.target.wants). */
  enable?: string[];
}

export interface RealHost {
  readonly name: string;
  readonly ip: string;
  readonly machineId: string;
  /** Outer pid of the host's systemd. */
  readonly pid: number;
  readonly busAddress: string;
  /** The merged overlay dir: "/" of the host as seen from here (also after the host died). */
  readonly merged: string;
  /** `/proc/<pid>/root`. */
  readonly rootDir: string;
  /** fleet's API socket as seen from here, when fleet runs in the host. */
  readonly fleetSocket: string | undefined;
  readonly bootedMs: number;
  exec(argv: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  systemctl(...args: string[]): Promise<string>;
  journal(unit: string, lines?: number): Promise<string[]>;
  /** Host death: SIGKILL to the outer systemd; resolves once it is gone. */
  kill(): Promise<void>;
  alive(): boolean;
  /** Poweroff (SIGRTMIN+4), SIGKILL fallback, unmount, remove temp dirs. Safe to call twice. */
  stop(): Promise<void>;
}

/** fleet's config file (INI-like `key=value`, read by fleetd -config). */
export function fleetConfig(f: FleetInHost, ip: string): string {
  return [
    `etcd_servers=[${f.etcdServers.map((s) => JSON.stringify(s)).join(',')}]`,
    `metadata=${JSON.stringify(f.metadata)}`,
    `public_ip=${JSON.stringify(ip)}`,
    `agent_ttl=${JSON.stringify(f.agentTtl ?? '5s')}`,
    `engine_reconcile_interval=${f.reconcileIntervalS ?? 1}`,
    ...(f.tokenLimit ? [`token_limit=${f.tokenLimit}`] : []),
    '',
  ].join('\n');
}

function fleetSocketUnit(ip: string, tcpPort: number | undefined): string {
  const tcp = tcpPort ? `ListenStream=${ip}:${tcpPort}\n` : '';
  return `[Unit]\nDescription=fleet API socket\n[Socket]\nListenStream=/run/fleet.sock\n${tcp}SocketMode=0660\n[Install]\nWantedBy=sockets.target\n`;
}
const FLEET_SERVICE_UNIT =
  '[Unit]\nDescription=fleet daemon (v1.0.0, built by scripts/build-fleet.sh)\nRequires=fleet.socket\nAfter=fleet.socket\n' +
  '[Service]\nExecStart=/opt/fleet/fleetd -config /etc/fleet/fleet.conf\nRestart=always\nRestartSec=1\n' +
  '[Install]\nWantedBy=multi-user.target\n';

/** Read-only bind of `src` onto `dst` (created as an empty file or dir in the overlay first). */
function roBind(src: string, dst: string): void {
  if (!existsSync(dst)) {
    mkdirSync(dirname(dst), { recursive: true });
    if (execFileSync('stat', ['-c', '%F', src]).toString().includes('directory')) mkdirSync(dst);
    else writeFileSync(dst, '');
  }
  run('mount', ['--bind', src, dst]);
  run('mount', ['-o', 'remount,bind,ro', dst]);
}

export async function bootRealHost(opts: RealHostOptions): Promise<RealHost> {
  const why = realHostsAvailable();
  if (why) throw new Error(`real hosts unavailable: ${why}`);
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(opts.name)) throw new Error(`bad host name ${opts.name}`);
  if (!Number.isInteger(opts.ipIndex) || opts.ipIndex < 2 || opts.ipIndex > 254) throw new Error(`bad ipIndex ${opts.ipIndex}`);
  reapStaleHosts();
  const t0 = performance.now();
  const name = opts.name;
  const ip = `127.0.0.${opts.ipIndex}`;
  const stateDir = mkdtempSync(join(tmpdir(), `${STATE_PREFIX}${name}-`));
  const merged = join(stateDir, 'merged');
  const cgroupDir = join(cgroupV2Root(), `ebs-failover-realhost-${name}-${randomBytes(3).toString('hex')}`);
  let child: ChildProcess | undefined;
  let pid = 0;
  let stopped = false;
  const record = (): void => {
    const rec: HostRecord = { ownerPid: process.pid, pid, cgroupDir, disks: [] };
    writeFileSync(join(stateDir, 'host.json'), JSON.stringify(rec));
  };
  const teardown = (): void => {
    if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    if (child?.pid && alive(child.pid)) process.kill(child.pid, 'SIGKILL');
    // The binds live in this (outer) mount namespace under merged: detach them before the overlay.
    for (const m of ['opt/fleet', 'opt/ebs-failover', 'usr/bin/node']) {
      try {
        run('umount', ['-l', join(merged, m)]);
      } catch {
        // not bound (no fleet build) or already gone
      }
    }
    unmountAndRemove(stateDir, cgroupDir);
  };
  const exitHook = killOnExit(teardown);

  try {
    const machineId = opts.machineId ?? randomBytes(16).toString('hex');
    mountRoot(stateDir, PG_ROOTFS_DIR, PG_ROOTFS_MARKER, name, machineId);
    roBind(process.execPath, join(merged, process.execPath.slice(1)));
    roBind(REPO, join(merged, PROJECT_IN_HOST.slice(1)));
    const files: Record<string, string> = { ...(opts.files ?? {}) };
    const enable = [...(opts.enable ?? [])];
    if (opts.fleet) {
      if (realFleetAvailable()) throw new Error(`real fleet unavailable: ${realFleetAvailable()}`);
      roBind(FLEET_DIR, join(merged, 'opt/fleet'));
      files['/etc/fleet/fleet.conf'] = fleetConfig(opts.fleet, ip);
      files['/etc/systemd/system/fleet.socket'] = fleetSocketUnit(ip, opts.fleet.tcpPort);
      files['/etc/systemd/system/fleet.service'] = FLEET_SERVICE_UNIT;
      // Enabled as on CoreOS: fleetd starts at boot and registers the machine; the socket serves the API.
      enable.push('fleet.socket', 'fleet.service');
    }
    for (const [path, content] of Object.entries(files)) {
      const abs = join(merged, path);
      if (!abs.startsWith(`${merged}/`)) throw new Error(`path ${path} escapes the host root`);
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, content);
    }
    for (const unit of enable) {
      const target = unit.endsWith('.socket') ? 'sockets.target.wants' : 'multi-user.target.wants';
      const dir = join(merged, 'etc/systemd/system', target);
      mkdirSync(dir, { recursive: true });
      const unitPath = existsSync(join(merged, 'etc/systemd/system', unit)) ? `/etc/systemd/system/${unit}` : `/lib/systemd/system/${unit}`;
      rmSync(join(dir, unit), { force: true });
      symlinkSync(unitPath, join(dir, unit));
    }
    mkdirSync(cgroupDir);
    record();

    // As sdhost.ts, minus --net: the host shares this machine's network namespace (see the header).
    const { unsharePid, busAddress, pid: hostPid } = await launchSystemd({
      name, merged, cgroupDir, initMarker: ROOTFS_MARKER, ownNetwork: false, bootTimeoutMs: BOOT_TIMEOUT_MS, t0,
      onSpawn: (c) => (child = c),
      onPid: (p) => {
        pid = p;
        record();
      },
    });
    const bootedMs = performance.now() - t0;
    const host: RealHost = {
      name,
      ip,
      machineId,
      pid: hostPid,
      busAddress,
      merged,
      rootDir: `/proc/${hostPid}/root`,
      fleetSocket: opts.fleet ? join(merged, 'run/fleet.sock') : undefined,
      bootedMs,
      async exec(argv, timeoutMs = 30_000) {
        const { stdout, stderr } = await execFileP('nsenter', ['-t', String(hostPid), '-m', '-u', '-i', '-p', '-C', '-r', '-w', '--', ...argv], {
          timeout: timeoutMs,
        });
        return { stdout, stderr };
      },
      async systemctl(...args) {
        return (await host.exec(['systemctl', ...args])).stdout;
      },
      async journal(unit, lines = 30) {
        const { stdout } = await host.exec(['journalctl', '--no-pager', '-o', 'short-precise', '-n', String(lines), '-u', unit]);
        return stdout.split('\n').filter((l) => l.length > 0);
      },
      async kill() {
        if (alive(hostPid)) process.kill(hostPid, 'SIGKILL');
        await waitExit(hostPid, POWEROFF_TIMEOUT_MS);
        await waitExit(unsharePid, POWEROFF_TIMEOUT_MS);
      },
      alive: () => alive(hostPid),
      async stop() {
        if (stopped) return;
        stopped = true;
        await poweroff(hostPid, unsharePid);
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
