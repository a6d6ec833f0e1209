import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { INIT_SCRIPT } from './sdhost-init.js';
import { alive, run } from './sdhost-reap.js';

/**
 * The boot of a systemd host, shared by test/helpers/sdhost.ts (the plain test root, own network
 * namespace) and realhost.ts (the PostgreSQL root, this machine's network): the overlay over a cached
 * root, the identity files, systemd as PID 1 in its own namespaces and cgroup, the wait until its
 * manager reports the boot transaction over, poweroff, and the last-resort kill on exit.
 */

/** 50 ms between bus probes during boot: small against the boot time, cheap for the CPU. */
const PROBE_INTERVAL_MS = 50;
/** 1 s per probe call: a live bus answers in milliseconds. */
const PROBE_CALL_TIMEOUT_MS = 1_000;
/** 15 s for poweroff (SIGRTMIN+4, ~2 s idle; units have a 10 s stop timeout in the rootfs) before SIGKILL. */
export const POWEROFF_TIMEOUT_MS = 15_000;
/** SIGRTMIN+4 asks systemd for poweroff.target: units stop, mounts are unmounted cleanly. */
const SIGRTMIN_4 = 34 + 4;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(PROBE_INTERVAL_MS);
  }
  return true;
}

/** The v2 hierarchy: /sys/fs/cgroup itself on a unified machine, /sys/fs/cgroup/unified on a hybrid one. */
export function cgroupV2Root(): string {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return '/sys/fs/cgroup';
  if (existsSync('/sys/fs/cgroup/unified/cgroup.controllers')) return '/sys/fs/cgroup/unified';
  throw new Error('no cgroup v2 hierarchy (neither /sys/fs/cgroup nor /sys/fs/cgroup/unified)');
}

/** One D-Bus probe: the manager's SystemState, or undefined when the bus does not answer (yet). */
export async function probeSystemState(busAddress: string): Promise<string | undefined> {
  const bus = dbus.sessionBus({ busAddress });
  bus.on('error', () => undefined); // a refused connect is the expected "not yet"
  try {
    const msg = new dbus.Message({
      destination: 'org.freedesktop.systemd1',
      path: '/org/freedesktop/systemd1',
      interface: 'org.freedesktop.DBus.Properties',
      member: 'Get',
      signature: 'ss',
      body: ['org.freedesktop.systemd1.Manager', 'SystemState'],
    });
    const reply = await Promise.race([bus.call(msg), sleep(PROBE_CALL_TIMEOUT_MS).then(() => null)]);
    const variant = reply?.body[0] as { value?: unknown } | undefined;
    return typeof variant?.value === 'string' ? variant.value : undefined;
  } catch {
    return undefined;
  } finally {
    bus.disconnect();
  }
}

const liveHosts = new Set<() => void>();
// Last-resort cleanup if a test process exits without calling stop(): no leaked systemd, loop or mount.
process.once('exit', () => {
  for (const kill of liveHosts) kill();
});

/** Runs `teardown` (synchronous) if this process exits before `release()` is called. */
export function killOnExit(teardown: () => void): { release(): void } {
  liveHosts.add(teardown);
  return { release: () => void liveHosts.delete(teardown) };
}

/**
 * Mounts the overlay (`lower` read-only under a per-host upper dir) on `<stateDir>/merged` and a tmpfs
 * on its /run (mounted here, outside the namespaces, so the bus socket has a path we can reach), checks
 * the root's `marker`, and writes the host's machine id and hostname. Returns the merged dir.
 */
export function mountRoot(stateDir: string, lower: string, marker: string, name: string, machineId: string): string {
  const upper = join(stateDir, 'upper');
  const work = join(stateDir, 'work');
  const merged = join(stateDir, 'merged');
  for (const d of [upper, work, merged]) mkdirSync(d);
  run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  run('mount', ['-t', 'tmpfs', '-o', 'mode=755,nosuid,nodev,size=64m', 'tmpfs', join(merged, 'run')]);
  if (!existsSync(join(merged, marker))) throw new Error(`overlay at ${merged} lacks ${marker}`);
  writeFileSync(join(merged, 'etc/machine-id'), `${machineId}\n`);
  mkdirSync(join(merged, 'var/lib/dbus'), { recursive: true });
  rmSync(join(merged, 'var/lib/dbus/machine-id'), { force: true });
  writeFileSync(join(merged, 'var/lib/dbus/machine-id'), `${machineId}\n`);
  writeFileSync(join(merged, 'etc/hostname'), `${name}\n`);
  return merged;
}

export interface LaunchOptions {
  name: string;
  merged: string;
  cgroupDir: string;
  /** The marker sdhost-init checks in the root. */
  initMarker: string;
  /** false: the host shares this machine's network namespace (realhost: its own 127.0.0.N). */
  ownNetwork: boolean;
  bootTimeoutMs: number;
  /** performance.now() when the boot began (busReadyMs counts from there). */
  t0: number;
  /** Called once the outer pid of the host's systemd is known (for the reap record). */
  onPid?: (pid: number) => void;
  /** Called with the spawned launcher at once, so a failed boot can still be torn down. */
  onSpawn?: (child: ChildProcess) => void;
}

export interface Launched {
  child: ChildProcess;
  /** The `unshare --fork` process whose child is the host's systemd. */
  unsharePid: number;
  /** Outer pid of the host's systemd (PID 1 inside). */
  pid: number;
  /** `unix:path=…/run/dbus/system_bus_socket` of this host's system bus. */
  busAddress: string;
  /** Milliseconds from t0 to the bus first answering. */
  busReadyMs: number;
}

/** Starts systemd as PID 1 in new namespaces inside `cgroupDir` and waits until its boot transaction is over. */
export async function launchSystemd(o: LaunchOptions): Promise<Launched> {
  const child = spawn(
    'bash',
    [
      '-c',
      'echo $$ > "$1/cgroup.procs"; shift; exec "$@"',
      'sdhost-launch',
      o.cgroupDir,
      'unshare', '--pid', '--mount', '--uts', '--ipc', ...(o.ownNetwork ? ['--net'] : []), '--cgroup', '--fork', '--propagation', 'private', '--',
      'bash', '-c', INIT_SCRIPT, 'sdhost-init', o.name, o.merged, o.initMarker,
    ],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  o.onSpawn?.(child);
  const consoleLines: string[] = [];
  const keep = (b: Buffer): void => {
    consoleLines.push(b.toString());
    if (consoleLines.length > 200) consoleLines.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.unref();
  const unsharePid = child.pid;
  if (!unsharePid) throw new Error('spawn of unshare failed');

  const busAddress = `unix:path=${join(o.merged, 'run/dbus/system_bus_socket')}`;
  const deadline = Date.now() + o.bootTimeoutMs;
  let pid = 0;
  let busReadyMs = 0;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`host ${o.name}: not booted within ${o.bootTimeoutMs} ms; console: ${consoleLines.join('')}`);
    if (!alive(unsharePid)) throw new Error(`host ${o.name} died during boot; console: ${consoleLines.join('')}`);
    if (!pid) {
      const children = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim();
      pid = Number(children.split(/\s+/)[0] ?? 0) || 0;
      if (pid) o.onPid?.(pid);
    }
    if (pid && existsSync(join(o.merged, 'run/dbus/system_bus_socket'))) {
      const state = await probeSystemState(busAddress);
      if (state !== undefined) {
        if (!busReadyMs) busReadyMs = performance.now() - o.t0;
        // 'running' or 'degraded': the boot transaction is over, so tests do not race boot jobs.
        if (state === 'running' || state === 'degraded') break;
      }
    }
    await sleep(PROBE_INTERVAL_MS);
  }
  return { child, unsharePid, pid, busAddress, busReadyMs };
}

/** Poweroff (SIGRTMIN+4), SIGKILL if it takes longer than POWEROFF_TIMEOUT_MS, then waits for the launcher to go. */
export async function poweroff(pid: number, unsharePid: number): Promise<void> {
  if (alive(pid)) {
    process.kill(pid, SIGRTMIN_4);
    if (!(await waitExit(pid, POWEROFF_TIMEOUT_MS))) process.kill(pid, 'SIGKILL');
    await waitExit(pid, POWEROFF_TIMEOUT_MS);
  }
  if (alive(unsharePid)) await waitExit(unsharePid, POWEROFF_TIMEOUT_MS);
}
