import { watch, type FSWatcher } from 'node:fs';
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';

/**
 * Which block device on this host is EBS volume `vol-…`, and is it really that volume.
 *
 * Nitro instances expose EBS as NVMe; the controller's serial number is the volume id without its
 * dash, and udev links it as `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc…`. That link is
 * the only name that identifies the volume; the requested `/dev/sdf` may not exist at all. Xen
 * instances create the requested name, or its `xvd`↔`sd` alias (`/dev/sdf` shows up as `/dev/xvdf`).
 */

/** 1 s slow poll next to fs.watch: watch events can be missed (directory created later, other mount ns). */
export const DEVICE_POLL_INTERVAL_MS = 1_000;

const NVME_PREFIX = 'nvme-Amazon_Elastic_Block_Store_';

export interface ResolvedDevice {
  volumeId: string;
  /** The device node (symlinks resolved), as this process sees it, e.g. `/dev/nvme1n1`. */
  path: string;
  /** `path` relative to the device root, e.g. `nvme1n1` or `xvdf`: the same node inside the host's `/dev`. */
  relPath: string;
  /** How it was found. */
  via: 'nvme-serial' | 'requested' | 'alias';
}

export class DeviceNotFoundError extends Error {
  override readonly name = 'DeviceNotFoundError';
  constructor(
    readonly volumeId: string,
    readonly requestedDevice: string,
    readonly deviceRoot: string,
    readonly timeoutMs: number,
  ) {
    super(`no device for ${volumeId} (requested ${requestedDevice}) under ${deviceRoot} within ${timeoutMs} ms`);
  }
}

/** The device is not the volume we were told to mount; mounting it could corrupt another service's data. */
export class WrongVolumeError extends Error {
  override readonly name = 'WrongVolumeError';
  constructor(
    readonly volumeId: string,
    readonly device: string,
    readonly reason: 'serial-mismatch' | 'label-mismatch' | 'no-filesystem',
    /** What was found instead: the other volume id, or the filesystem label. */
    readonly found?: string,
  ) {
    super(`device ${device} is not ${volumeId}: ${reason}${found !== undefined ? ` (found ${JSON.stringify(found)})` : ''}`);
  }
}

/** `nvme-Amazon_Elastic_Block_Store_vol0abc…`: the by-id link name of a volume (no dash after `vol`). */
export function nvmeByIdName(volumeId: string): string {
  return `${NVME_PREFIX}${volumeId.replace(/^vol-/, 'vol')}`;
}

/** Volume id from a by-id link name, or undefined when the name is not an EBS NVMe link. */
export function volumeIdFromByIdName(name: string): string | undefined {
  const m = /^nvme-Amazon_Elastic_Block_Store_vol([0-9a-f]+)$/.exec(name);
  return m ? `vol-${m[1]}` : undefined;
}

/** Device names (relative to the device root) that a requested name may appear as: itself, then its alias. */
export function requestedCandidates(requestedDevice: string): string[] {
  const name = basename(requestedDevice);
  const m = /^(xvd|sd)([a-z]+)$/.exec(name);
  if (!m) return [name];
  return [name, `${m[1] === 'xvd' ? 'sd' : 'xvd'}${m[2]}`];
}

/** Symlink hops followed before giving up (udev links are one or two hops deep). */
const MAX_LINK_HOPS = 8;

/**
 * `relPath` resolved under `root`, following symlinks ourselves: an absolute target `/dev/x` means
 * `<root>/x`. Not realpath(): under `/proc/<pid>/root/dev` (another mount namespace, in tests) the
 * kernel's answer is not a path we can use. Returns the final path relative to `root`.
 */
export async function resolveUnder(root: string, relPath: string): Promise<string> {
  let rel = relPath;
  for (let hop = 0; hop < MAX_LINK_HOPS; hop++) {
    const abs = join(root, rel);
    if (!(await lstat(abs)).isSymbolicLink()) return rel;
    const target = await readlink(abs);
    if (isAbsolute(target)) {
      if (!target.startsWith('/dev/')) throw new Error(`device link ${abs} points outside /dev: ${target}`);
      rel = target.slice('/dev/'.length);
    } else {
      rel = join(dirname(rel), target);
    }
    if (rel.startsWith('..')) throw new Error(`device link ${abs} points outside ${root}: ${target}`);
  }
  throw new Error(`too many symlinks resolving ${join(root, relPath)}`);
}

/** Whether `rel` under `root` leads (through links) to an existing node; a dangling link is no device. */
async function exists(root: string, rel: string): Promise<boolean> {
  try {
    await stat(join(root, await resolveUnder(root, rel)));
    return true;
  } catch {
    return false;
  }
}

export interface FindDeviceOptions {
  volumeId: string;
  /** The device name the volume was attached with, e.g. `/dev/xvdf`. */
  requestedDevice: string;
  /** Default `/dev`. */
  deviceRoot?: string;
}

/** One look, no waiting. Any existing node counts (block device, or a plain file in the simulator). */
export async function findDevice(opts: FindDeviceOptions): Promise<ResolvedDevice | undefined> {
  const root = opts.deviceRoot ?? '/dev';
  const resolved = async (rel: string, via: ResolvedDevice['via']): Promise<ResolvedDevice> => {
    const relPath = await resolveUnder(root, rel);
    return { volumeId: opts.volumeId, path: join(root, relPath), relPath, via };
  };
  const byId = join('disk/by-id', nvmeByIdName(opts.volumeId));
  if (await exists(root, byId)) return resolved(byId, 'nvme-serial');
  const [requested, alias] = requestedCandidates(opts.requestedDevice);
  if (requested && (await exists(root, requested))) return resolved(requested, 'requested');
  if (alias && (await exists(root, alias))) return resolved(alias, 'alias');
  return undefined;
}

export interface WaitForDeviceOptions extends FindDeviceOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Slow poll fallback; default DEVICE_POLL_INTERVAL_MS. */
  pollIntervalMs?: number;
}

/** Waits for the volume's device to appear after attach; `DeviceNotFoundError` at the deadline. */
export async function waitForDevice(opts: WaitForDeviceOptions): Promise<ResolvedDevice> {
  const root = opts.deviceRoot ?? '/dev';
  opts.signal?.throwIfAborted();
  const first = await findDevice(opts);
  if (first) return first;
  return new Promise<ResolvedDevice>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason); // aborted during the first look
      return;
    }
    const watchers: FSWatcher[] = [];
    let checking = false;
    let again = false;
    let done = false;
    const finish = (err: unknown, dev?: ResolvedDevice): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      clearInterval(poll);
      opts.signal?.removeEventListener('abort', onAbort);
      for (const w of watchers) w.close();
      if (dev) resolve(dev);
      else reject(err);
    };
    const check = (): void => {
      if (done) return;
      if (checking) {
        again = true; // coalesce bursts of events into one more look
        return;
      }
      checking = true;
      findDevice(opts).then(
        (dev) => {
          checking = false;
          if (dev) finish(undefined, dev);
          else if (again) {
            again = false;
            check();
          }
        },
        (err: unknown) => finish(err),
      );
    };
    const onAbort = (): void => finish(opts.signal?.reason);
    const deadline = setTimeout(() => finish(new DeviceNotFoundError(opts.volumeId, opts.requestedDevice, root, opts.timeoutMs)), opts.timeoutMs);
    const poll = setInterval(check, opts.pollIntervalMs ?? DEVICE_POLL_INTERVAL_MS);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    for (const dir of [root, join(root, 'disk/by-id')]) {
      try {
        const w = watch(dir, { persistent: false }, check);
        w.on('error', () => undefined); // the directory may go away; the poll still runs
        watchers.push(w);
      } catch {
        // by-id may not exist yet (no NVMe device so far): the slow poll covers it
      }
    }
    check(); // the device may have appeared between the first look and the watches
  });
}

/** ext2/3/4 superblock: at byte 1024; magic 0xEF53 at +56 (LE), volume name at +120 (16 bytes). */
const SUPERBLOCK_OFFSET = 1024;
const EXT_MAGIC = 0xef53;

/** Reads the ext filesystem label without external tools; `undefined` when there is no ext superblock. */
export async function readExtLabel(devicePath: string): Promise<string | undefined> {
  const fh = await open(devicePath, 'r');
  try {
    const buf = Buffer.alloc(136);
    const { bytesRead } = await fh.read(buf, 0, buf.length, SUPERBLOCK_OFFSET);
    if (bytesRead < buf.length || buf.readUInt16LE(56) !== EXT_MAGIC) return undefined;
    const name = buf.subarray(120, 136);
    const end = name.indexOf(0);
    return name.subarray(0, end === -1 ? name.length : end).toString('utf8');
  } finally {
    await fh.close();
  }
}

export interface VerifyDeviceOptions {
  device: ResolvedDevice;
  /** Default `/dev`. */
  deviceRoot?: string;
  /** When set, the filesystem label must equal it. */
  fsLabel?: string;
}

/**
 * Refuses a device that is provably another volume: an EBS NVMe serial link naming another volume
 * points at it, or (with `fsLabel`) its ext label differs or it carries no ext filesystem at all.
 */
export async function verifyDevice(opts: VerifyDeviceOptions): Promise<void> {
  const { device } = opts;
  const root = opts.deviceRoot ?? '/dev';
  const byIdDir = join(root, 'disk/by-id');
  let names: string[] = [];
  try {
    names = await readdir(byIdDir);
  } catch {
    // no by-id directory: no NVMe serials on this host (Xen), nothing to compare
  }
  for (const name of names) {
    const other = volumeIdFromByIdName(name);
    if (!other) continue;
    let target: string;
    try {
      target = await resolveUnder(root, join('disk/by-id', name));
      await stat(join(root, target));
    } catch {
      continue; // dangling link of a detached volume
    }
    const isOurNode = target === device.relPath;
    if (isOurNode && other !== device.volumeId) throw new WrongVolumeError(device.volumeId, device.path, 'serial-mismatch', other);
    if (!isOurNode && other === device.volumeId && device.via === 'nvme-serial') {
      throw new WrongVolumeError(device.volumeId, device.path, 'serial-mismatch', target);
    }
  }
  if (opts.fsLabel !== undefined) {
    const label = await readExtLabel(device.path);
    if (label === undefined) throw new WrongVolumeError(device.volumeId, device.path, 'no-filesystem');
    if (label !== opts.fsLabel) throw new WrongVolumeError(device.volumeId, device.path, 'label-mismatch', label);
  }
}
