import type { ServiceRecord } from '../../keyspace/index.js';
import type { ResolvedDevice } from '../device.js';

export interface StepOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * The device and mount steps the agent needs for one volume; `hostVolumes` implements them over
 * src/host/device.ts and src/host/mount.ts. An interface so the loop can run over any SystemdPort.
 */
export interface VolumeOps {
  /** Resolves the device node of `volumeId` once it exists (NVMe by-id link, requested name or alias). */
  waitForDevice(volumeId: string, device: string | null, opts: StepOptions): Promise<ResolvedDevice>;
  /** Verifies the device, points the mount unit at it, reloads and starts the mount. */
  mount(service: ServiceRecord, device: ResolvedDevice, opts: StepOptions): Promise<void>;
  /** Stops the mount unit (systemd stops units requiring it first). */
  unmount(service: ServiceRecord, opts: StepOptions): Promise<void>;
  /**
   * One look, no waiting (re-verification of an active volume): the device node is there, is not
   * provably another volume, and the mount's `What=` (our drop-in) still names that node.
   */
  checkDevice(service: ServiceRecord, device: string | null): Promise<DeviceCheck>;
}

/** What `checkDevice` found. */
export type DeviceCheck =
  | { ok: true; device: ResolvedDevice }
  | { ok: false; kind: 'device-missing' | 'device-wrong'; detail: string };
