import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { verifyDevice, type ResolvedDevice } from './device.js';
import type { SystemdPort, UnitState } from './systemd/port.js';

/**
 * Points the service's mount unit at the volume's device and starts it. The unit file itself
 * (units/data-postgres.mount) is the operator's; we only add a runtime drop-in with `What=` in
 * /run, so nothing we write survives a reboot (a rebooted host must not mount a volume it may no
 * longer own).
 */

export const DEFAULT_RUN_DIR = '/run/systemd/system';
export const DROP_IN_NAME = '50-ebs-failover.conf';

/** An active mount already uses another device: we will not silently swap what a running service sees. */
export class MountConflictError extends Error {
  override readonly name = 'MountConflictError';
  constructor(
    readonly unit: string,
    readonly volumeId: string,
    readonly device: string,
  ) {
    super(`${unit} is active on another device; not remounting it on ${device} for ${volumeId}`);
  }
}

export interface DropInOptions {
  /** Default DEFAULT_RUN_DIR. */
  runDir?: string;
}

/** Writes `<runDir>/<unit>.d/<name>` atomically; returns whether the content changed (then daemon-reload). */
export async function writeDropIn(unit: string, name: string, content: string, opts: DropInOptions = {}): Promise<boolean> {
  const dir = join(opts.runDir ?? DEFAULT_RUN_DIR, `${unit}.d`);
  const path = join(dir, name);
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === content) return false;
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, content);
  await rename(tmp, path); // systemd never reads a half-written drop-in
  return true;
}

/** Removes a drop-in; returns whether one was there. */
export async function removeDropIn(unit: string, name: string, opts: DropInOptions = {}): Promise<boolean> {
  const path = join(opts.runDir ?? DEFAULT_RUN_DIR, `${unit}.d`, name);
  const had = await readFile(path).then(
    () => true,
    () => false,
  );
  await rm(path, { force: true });
  return had;
}

/** The drop-in that makes `unit` mount `what`. */
export function mountDropIn(volumeId: string, what: string): string {
  return `# Written by ebs-failover for ${volumeId}; runtime only (/run), rewritten on every placement.\n[Mount]\nWhat=${what}\n`;
}

export interface MountVolumeOptions {
  systemd: SystemdPort;
  /** e.g. `data-postgres.mount`. */
  mountUnit: string;
  volumeId: string;
  /** From waitForDevice(). */
  device: ResolvedDevice;
  /** When set, the filesystem label must match before anything is mounted. */
  fsLabel?: string;
  /** Device root as this process sees it (default `/dev`). */
  deviceRoot?: string;
  /** Device root as the host's systemd sees it (default `/dev`); differs only in tests. */
  unitDeviceRoot?: string;
  runDir?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  log?: Logger;
}

export interface MountResult {
  /** The `What=` the unit now mounts. */
  what: string;
  /** Whether the drop-in changed (and systemd was reloaded). */
  reloaded: boolean;
  state: UnitState;
  /** Start job duration (ms). */
  startMs: number;
}

/**
 * Verify the device is the volume, point the mount unit at it, daemon-reload if needed, start the mount,
 * wait until active. Throws `WrongVolumeError` (nothing written, nothing started), `MountConflictError`,
 * or the port's `UnitFailedError` / `UnitTimeoutError`.
 */
export async function mountVolume(opts: MountVolumeOptions): Promise<MountResult> {
  const log = (opts.log ?? silentLogger()).child({ volumeId: opts.volumeId, unit: opts.mountUnit });
  // Identity first: a wrong device must not even reach the unit's configuration.
  await verifyDevice({ device: opts.device, deviceRoot: opts.deviceRoot, fsLabel: opts.fsLabel });
  const what = `${opts.unitDeviceRoot ?? '/dev'}/${opts.device.relPath}`;
  const content = mountDropIn(opts.volumeId, what);
  const dropInPath = join(opts.runDir ?? DEFAULT_RUN_DIR, `${opts.mountUnit}.d`, DROP_IN_NAME);
  const current = await readFile(dropInPath, 'utf8').catch(() => undefined);
  if (current !== content) {
    const before = await opts.systemd.unitState(opts.mountUnit);
    if (before.activeState === 'active' || before.activeState === 'activating') {
      throw new MountConflictError(opts.mountUnit, opts.volumeId, what);
    }
  }
  const reloaded = await writeDropIn(opts.mountUnit, DROP_IN_NAME, content, { runDir: opts.runDir });
  if (reloaded) {
    log.info({ what }, 'mount unit drop-in written, reloading systemd');
    await opts.systemd.reload();
  }
  const t0 = performance.now();
  let state = await opts.systemd.startUnit(opts.mountUnit, { timeoutMs: opts.timeoutMs, signal: opts.signal });
  if (state.activeState !== 'active') {
    state = await opts.systemd.waitForState(opts.mountUnit, ['active'], { timeoutMs: opts.timeoutMs, signal: opts.signal });
  }
  const startMs = performance.now() - t0;
  log.info({ what, startMs: Math.round(startMs) }, 'volume mounted');
  return { what, reloaded, state, startMs };
}

export interface UnmountVolumeOptions {
  systemd: SystemdPort;
  mountUnit: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Stops the mount unit; systemd stops the services that require it first. */
export async function unmountVolume(opts: UnmountVolumeOptions): Promise<UnitState> {
  return opts.systemd.stopUnit(opts.mountUnit, { timeoutMs: opts.timeoutMs, signal: opts.signal });
}
