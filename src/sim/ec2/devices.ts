import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * The device files a host would see, in a directory chosen per instance (a stand-in for /dev).
 * Xen naming: `<dir>/<basename of the requested device>` (e.g. `xvdf`). Nitro naming: `<dir>/nvme<N>n1`
 * (N is the lowest free index from 1; nvme0n1 is the root volume) plus the udev-style link
 * `<dir>/disk/by-id/nvme-Amazon_Elastic_Block_Store_<volume id without dash>` → `../../nvme<N>n1`.
 */
export class DeviceFiles {
  private readonly dirs = new Map<string, string>();

  setDir(instanceId: string, dir: string): void {
    mkdirSync(dir, { recursive: true });
    this.dirs.set(instanceId, dir);
  }

  dirOf(instanceId: string): string | undefined {
    return this.dirs.get(instanceId);
  }

  /** Creates the device file for an attachment that just completed; returns its path. */
  create(instanceId: string, volumeId: string, device: string, nitro: boolean): string | undefined {
    const dir = this.dirs.get(instanceId);
    if (dir === undefined) return undefined;
    if (!nitro) {
      const path = join(dir, basename(device));
      writeFileSync(path, `${volumeId}\n`);
      return path;
    }
    let index = 1;
    while (existsSync(join(dir, `nvme${index}n1`))) index++;
    const name = `nvme${index}n1`;
    const path = join(dir, name);
    writeFileSync(path, `${volumeId}\n`);
    const byId = join(dir, 'disk', 'by-id');
    mkdirSync(byId, { recursive: true });
    const link = join(byId, nvmeLinkName(volumeId));
    rmSync(link, { force: true });
    symlinkSync(join('..', '..', name), link);
    return path;
  }

  /** Removes the files of an attachment that went away (and its in-use marker). */
  remove(instanceId: string, volumeId: string, devicePath: string | undefined): void {
    if (devicePath === undefined) return;
    rmSync(devicePath, { force: true });
    rmSync(`${devicePath}.in-use`, { force: true });
    const dir = this.dirs.get(instanceId);
    if (dir !== undefined) rmSync(join(dir, 'disk', 'by-id', nvmeLinkName(volumeId)), { force: true });
  }

  /** True while whoever "mounted" the device keeps `<device file>.in-use`. */
  isMarkedInUse(devicePath: string | undefined): boolean {
    return devicePath !== undefined && existsSync(`${devicePath}.in-use`);
  }
}

/** udev's by-id name for an EBS NVMe device: the serial is the volume id without its dash. */
export function nvmeLinkName(volumeId: string): string {
  return `nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`;
}
