import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DeviceFiles, nvmeLinkName } from './devices.js';

/**
 * "Real volumes" mode of the EC2 endpoint (issue 11): every volume is an ext4 image file, and an
 * attachment is a REAL block device in the host: a loop device over the image whose node is
 * mknod'ed into the host container's private `/dev` (the device dir of the instance is
 * `/proc/<pid of the host's systemd>/root/dev`), under the name EC2 would give it:
 * - Xen: `xvdf` for a request of `/dev/sdf` or `/dev/xvdf`;
 * - Nitro: `nvme<N>n1` (lowest free N from 1) plus the links Amazon Linux's udev rules make,
 *   `xvdf -> nvme1n1` and `disk/by-id/nvme-Amazon_Elastic_Block_Store_vol… -> ../../nvme1n1`.
 * On detach the node goes away and the loop is released.
 *
 * Busy: a graceful detach of a device that is MOUNTED (its ext4 is listed in /proc/fs/ext4) stays
 * `busy` until it is unmounted, as EBS does.
 * Forced detach of a mounted device: the loop's `lo_sizelimit` is cut to 512 bytes
 * (LOOP_SET_STATUS64, which works while mounted), smaller than one ext4 block, so every further
 * read/write/fsync fails with EIO, as a yanked EBS disk does; PostgreSQL PANICs and ext4 aborts its
 * journal (and cannot even write its superblock back). Difference from EBS: the filesystem stays
 * mounted (erroring) until the host unmounts it, and that loop is only released then (losetup -d
 * sets autoclear).
 *
 * DANGER (../shared/systemd-host/REAL-HOSTS.md): anything that still holds a dead host's mount
 * namespace keeps its filesystem mounted, and `losetup -d` then only sets autoclear. Exposing the
 * same image through a second loop would be a double mount. So before an image is exposed to a
 * host, no loop may still be bound to it (`losetup -j`) except loops this endpoint yanked (no I/O
 * can pass them any more, exactly like the old host's view of a force-detached EBS disk); until then the node is not created (the
 * attachment is `attached` in EC2's answers, but the device does not appear yet) and the wait is
 * recorded in `problems`.
 */

export interface RealVolumesOptions {
  /** Where `<volume id>.img` files live (created on first attach: sparse file + mkfs.ext4). */
  imagesDir: string;
  /** Size of a new image in MiB (default 64: enough for a PostgreSQL cluster and some rows). */
  sizeMiB?: number;
  /** ext4 label of new images (default: the volume id, cut to ext4's 16 bytes). */
  fsLabel?: string;
  /** Called for every noteworthy step (the endpoint logs it). */
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export interface RealVolumeProblem {
  at: number;
  volumeId: string;
  instanceId: string;
  message: string;
}

interface Exposed {
  volumeId: string;
  instanceId: string;
  image: string;
  node: string;
  links: string[];
  loop: string | undefined;
  /** Retry timer while a loop from an earlier attachment still holds the image. */
  waiting: ReturnType<typeof setTimeout> | undefined;
}

/** 100 ms between checks whether an earlier loop released an image: fast against a failover's seconds. */
const RELEASE_POLL_MS = 100;
/** Below one ext4 block (1–4 KiB): no block of the filesystem can be read or written through the loop. */
const YANKED_SIZE_LIMIT = 512;
/** struct loop_info64: 232 bytes; lo_sizelimit is the u64 at offset 32. */
const LOOP_SIZELIMIT_SCRIPT = String.raw`
open(my $f, "+<", $ARGV[0]) or die "open $ARGV[0]: $!\n";
my $b = "\0" x 232;
ioctl($f, 0x4C05, $b) or die "LOOP_GET_STATUS64: $!\n";
substr($b, 32, 8) = pack("Q<", $ARGV[1]);
ioctl($f, 0x4C04, $b) or die "LOOP_SET_STATUS64: $!\n";
`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
}

/** Loop devices bound to `image` (e.g. `/dev/loop3`), from `losetup -j`. */
export function loopsOf(image: string): string[] {
  const out = sh('losetup', ['-j', image, '-O', 'NAME', '--noheadings']);
  return out.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
}

/** Whether an ext4 filesystem on this loop is mounted anywhere (in any mount namespace). */
export function loopMounted(loop: string): boolean {
  return existsSync(`/proc/fs/ext4/${basename(loop)}`);
}

/** Cuts a bound loop device to `bytes`: I/O past it fails with EIO (works while mounted). */
export function setLoopSizeLimit(loop: string, bytes: number): void {
  sh('perl', ['-e', LOOP_SIZELIMIT_SCRIPT, loop, String(bytes)]);
}

/**
 * Whether a bound loop lets no block through: its size limit is the yank limit. Read from the kernel
 * rather than remembered by name, because a released loop's name is soon reused by a new binding.
 */
export function isYanked(loop: string): boolean {
  try {
    return readFileSync(`/sys/block/${basename(loop)}/loop/sizelimit`, 'utf8').trim() === String(YANKED_SIZE_LIMIT);
  } catch {
    return false;
  }
}

function xenName(device: string): string {
  return basename(device).replace(/^sd/, 'xvd');
}

export class RealBlockDevices extends DeviceFiles {
  readonly problems: RealVolumeProblem[] = [];
  /** Volumes yanked while mounted (forced detach): the proof that I/O was failed. */
  readonly yanked: { at: number; volumeId: string; instanceId: string; loop: string }[] = [];
  private readonly exposed = new Map<string, Exposed>();
  private readonly sizeMiB: number;
  private readonly log: (msg: string, fields: Record<string, unknown>) => void;

  constructor(private readonly opts: RealVolumesOptions) {
    super();
    mkdirSync(opts.imagesDir, { recursive: true });
    this.sizeMiB = opts.sizeMiB ?? 64;
    this.log = opts.log ?? (() => undefined);
  }

  imagePath(volumeId: string): string {
    if (!/^vol-[0-9a-f]+$/.test(volumeId)) throw new Error(`bad volume id ${volumeId}`);
    return join(this.opts.imagesDir, `${volumeId}.img`);
  }

  /** The loop device currently exposing a volume, if any. */
  loopOf(volumeId: string): string | undefined {
    return this.exposed.get(volumeId)?.loop;
  }

  private ensureImage(volumeId: string): string {
    const image = this.imagePath(volumeId);
    if (!existsSync(image)) {
      sh('truncate', ['-s', `${this.sizeMiB}M`, `${image}.partial`]);
      // Label = the volume id (ext4 labels hold 16 bytes), so a mounted disk says which volume it is.
      sh('mkfs.ext4', ['-q', '-F', '-L', (this.opts.fsLabel ?? volumeId).slice(0, 16), `${image}.partial`]);
      sh('mv', [`${image}.partial`, image]);
      this.log('real volume image created', { volumeId, image, sizeMiB: this.sizeMiB });
    }
    return image;
  }

  override create(instanceId: string, volumeId: string, device: string, nitro: boolean): string | undefined {
    const dir = this.dirOf(instanceId);
    if (dir === undefined) return undefined;
    const image = this.ensureImage(volumeId);
    let name = xenName(device);
    const links: string[] = [];
    if (nitro) {
      let index = 1;
      const taken = new Set([...this.exposed.values()].filter((e) => e.instanceId === instanceId).map((e) => basename(e.node)));
      while (taken.has(`nvme${index}n1`) || existsSync(join(dir, `nvme${index}n1`))) index++;
      name = `nvme${index}n1`;
      links.push(join(dir, xenName(device)), join(dir, 'disk', 'by-id', nvmeLinkName(volumeId)));
    }
    const entry: Exposed = { volumeId, instanceId, image, node: join(dir, name), links, loop: undefined, waiting: undefined };
    this.exposed.set(volumeId, entry);
    this.expose(entry);
    return entry.node;
  }

  /** Binds a loop and creates the node, unless an earlier loop still holds the image (then retries). */
  private expose(entry: Exposed): void {
    entry.waiting = undefined;
    if (this.exposed.get(entry.volumeId) !== entry) return;
    const held = loopsOf(entry.image).filter((l) => !isYanked(l));
    if (held.length > 0) {
      if (!this.problems.some((p) => p.volumeId === entry.volumeId && p.instanceId === entry.instanceId)) {
        const message = `image still bound to ${held.join(', ')} (a mount of an earlier attachment lingers): not exposed to ${entry.instanceId} until released`;
        this.problems.push({ at: Date.now(), volumeId: entry.volumeId, instanceId: entry.instanceId, message });
        this.log('real volume not exposed yet', { volumeId: entry.volumeId, instanceId: entry.instanceId, held });
      }
      entry.waiting = setTimeout(() => this.expose(entry), RELEASE_POLL_MS);
      return;
    }
    try {
      const loop = sh('losetup', ['-f', '--show', entry.image]);
      entry.loop = loop;
      const rdev = statSync(loop).rdev;
      const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
      const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
      rmSync(entry.node, { force: true });
      sh('mknod', ['-m', '660', entry.node, 'b', String(major), String(minor)]);
      for (const link of entry.links) {
        mkdirSync(join(link, '..'), { recursive: true });
        rmSync(link, { force: true });
        const target = link.includes('/disk/by-id/') ? join('..', '..', basename(entry.node)) : basename(entry.node);
        symlinkSync(target, link);
      }
      this.log('real volume exposed', { volumeId: entry.volumeId, instanceId: entry.instanceId, node: entry.node, loop });
    } catch (err) {
      // The host died between attach and now (its /proc/<pid>/root is gone): EC2 says attached, no node
      // appears, and the detach that follows releases the loop.
      this.problems.push({ at: Date.now(), volumeId: entry.volumeId, instanceId: entry.instanceId, message: `could not expose: ${(err as Error).message}` });
      this.log('real volume could not be exposed', { volumeId: entry.volumeId, instanceId: entry.instanceId, err: (err as Error).message });
    }
  }

  override isMarkedInUse(devicePath: string | undefined): boolean {
    if (devicePath === undefined) return false;
    const entry = [...this.exposed.values()].find((e) => e.node === devicePath);
    return entry?.loop !== undefined && loopMounted(entry.loop);
  }

  override remove(instanceId: string, volumeId: string, devicePath: string | undefined): void {
    const entry = this.exposed.get(volumeId);
    if (entry === undefined || entry.instanceId !== instanceId || (devicePath !== undefined && entry.node !== devicePath)) return;
    this.exposed.delete(volumeId);
    if (entry.waiting) clearTimeout(entry.waiting);
    const loop = entry.loop;
    if (loop !== undefined && loopMounted(loop)) {
      // Only a forced detach (or a detach after the instance died) gets here while mounted: a graceful
      // one stays busy until unmounted. Yank the disk: I/O past the first 4 KiB fails from now on.
      try {
        setLoopSizeLimit(loop, YANKED_SIZE_LIMIT);
        this.yanked.push({ at: Date.now(), volumeId, instanceId, loop });
        this.log('real volume yanked while mounted (forced detach): I/O now fails', { volumeId, instanceId, loop });
      } catch (err) {
        this.problems.push({ at: Date.now(), volumeId, instanceId, message: `could not fail I/O of ${loop}: ${(err as Error).message}` });
      }
    }
    for (const path of [...entry.links, entry.node]) {
      try {
        if (lstatSync(path, { throwIfNoEntry: false })) rmSync(path, { force: true });
      } catch {
        // the host (and its /dev) is gone: nothing to remove
      }
    }
    if (loop !== undefined) {
      try {
        // Frees the loop now if nothing has it mounted; otherwise sets autoclear (released at unmount).
        sh('losetup', ['-d', loop]);
      } catch {
        // already released
      }
    }
    this.log('real volume detached', { volumeId, instanceId, loop, stillBound: loop !== undefined && loopsOf(entry.image).length > 0 });
  }

  /** Releases every loop (endpoint shutdown). */
  close(): void {
    for (const entry of [...this.exposed.values()]) this.remove(entry.instanceId, entry.volumeId, entry.node);
  }
}
