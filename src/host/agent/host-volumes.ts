import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log/logger.js';
import { findDevice, verifyDevice, waitForDevice, WrongVolumeError } from '../device.js';
import { DEFAULT_RUN_DIR, DROP_IN_NAME, mountDropIn, mountVolume, unmountVolume } from '../mount.js';
import type { SystemdPort } from '../systemd/port.js';
import type { DeviceCheck, VolumeOps } from './ports.js';

/** A placement for this host without a device name: the controller writes one with every attach. */
export class PlacementWithoutDeviceError extends Error {
  override readonly name = 'PlacementWithoutDeviceError';
  constructor(readonly volumeId: string) {
    super(`placement of ${volumeId} names this host but no device`);
  }
}

export interface HostVolumesOptions {
  systemd: SystemdPort;
  /** Device root as this process sees it (`/dev`; tests: a host's `/proc/<pid>/root/dev`). */
  deviceRoot: string;
  /** Device root as the host's systemd sees it; default `/dev`. */
  unitDeviceRoot?: string;
  /** Where mount drop-ins go; default `/run/systemd/system`. */
  runDir?: string;
  log: Logger;
}

export function hostVolumes(opts: HostVolumesOptions): VolumeOps {
  return {
    waitForDevice: (volumeId, device, step) => {
      if (device === null) return Promise.reject(new PlacementWithoutDeviceError(volumeId));
      return waitForDevice({ volumeId, requestedDevice: device, deviceRoot: opts.deviceRoot, timeoutMs: step.timeoutMs, signal: step.signal });
    },
    mount: async (service, device, step) => {
      await mountVolume({
        systemd: opts.systemd,
        mountUnit: service.mountUnit,
        volumeId: service.volumeId,
        device,
        fsLabel: service.fsLabel,
        deviceRoot: opts.deviceRoot,
        unitDeviceRoot: opts.unitDeviceRoot,
        runDir: opts.runDir,
        timeoutMs: step.timeoutMs,
        signal: step.signal,
        log: opts.log,
      });
    },
    unmount: async (service, step) => {
      await unmountVolume({ systemd: opts.systemd, mountUnit: service.mountUnit, timeoutMs: step.timeoutMs, signal: step.signal });
    },
    checkDevice: async (service, requested): Promise<DeviceCheck> => {
      const volumeId = service.volumeId;
      if (requested === null) return { ok: false, kind: 'device-missing', detail: `placement of ${volumeId} names no device` };
      const device = await findDevice({ volumeId, requestedDevice: requested, deviceRoot: opts.deviceRoot });
      if (!device) return { ok: false, kind: 'device-missing', detail: `no device for ${volumeId} (requested ${requested}) under ${opts.deviceRoot}` };
      try {
        await verifyDevice({ device, deviceRoot: opts.deviceRoot, fsLabel: service.fsLabel });
      } catch (err) {
        if (err instanceof WrongVolumeError) return { ok: false, kind: 'device-wrong', detail: err.message };
        throw err;
      }
      // A re-attach may bring the volume back under another node (nvme2n1 instead of nvme1n1): a mount
      // still pointing at the old node reads a dead device. No drop-in at all (a mount set up by hand,
      // or by an older agent) is not evidence of anything, so it is not drift.
      const dropIn = await readFile(join(opts.runDir ?? DEFAULT_RUN_DIR, `${service.mountUnit}.d`, DROP_IN_NAME), 'utf8').catch(() => undefined);
      const what = `${opts.unitDeviceRoot ?? '/dev'}/${device.relPath}`;
      if (dropIn !== undefined && dropIn !== mountDropIn(volumeId, what)) {
        return { ok: false, kind: 'device-wrong', detail: `${service.mountUnit} does not mount ${what}, where ${volumeId} is now` };
      }
      return { ok: true, device };
    },
  };
}
