import type { Logger } from '../../log/logger.js';
import { waitForDevice } from '../device.js';
import { mountVolume, unmountVolume } from '../mount.js';
import type { SystemdPort } from '../systemd/port.js';
import type { VolumeOps } from './ports.js';

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
  };
}
