import { attachVolume, detachVolume, getInstance, releaseBusy, type DetachRequest } from './attachments.js';
import { realClock, type SimClock } from './clock.js';
import { DeviceFiles } from './devices.js';
import { instanceNotFound, invalidParameter, snapshotNotFound, volumeNotFound } from './errors.js';
import { FaultBook, type Fault } from './faults.js';
import { startInstance, stopInstances, terminateInstance, type StateChange } from './instances.js';
import { DEFAULT_LATENCIES, newResourceId, type HistoryEntry, type Latencies, type RequestEntry, type SimAttachment, type SimInstance, type SimSnapshot, type SimVolume } from './model.js';
import { AddInstanceInput, AddVolumeInput, LatenciesInput, type ThrottleInput } from './schemas.js';
import { createSnapshot, deleteSnapshot, requireSnapshotId, snapshotProgress } from './snapshots.js';
import { createTags, deleteTags } from './tags.js';
import { Throttle } from './throttle.js';
import type { World } from './world.js';

export interface Ec2SimOptions {
  /** Injected time source (a `ManualClock` in unit tests); real timers otherwise. */
  clock?: SimClock;
  latencies?: Partial<Latencies>;
  /** Multiplies every simulated delay (real clock only): 0.01 runs AWS-like latencies 100× faster. */
  timeScale?: number;
  throttle?: ThrottleInput;
  /** Where attachments appear; default: plain files in a device dir. `RealBlockDevices` (real-volumes.ts): loop devices. */
  devices?: DeviceFiles;
}

export interface SimStats {
  total: number;
  byAction: Record<string, number>;
  errorsByCode: Record<string, number>;
}

/** JSON views returned by `state()` and the control API (no timers, copies only). */
export type VolumeView = Omit<SimVolume, 'attachment'> & { state: 'available' | 'in-use'; attachment: Omit<SimAttachment, 'cancel'> | null };
export type InstanceView = Omit<SimInstance, 'cancel'>;
export type SnapshotView = SimSnapshot & { progress: string };

/**
 * An in-memory EC2: instances, volumes, attachments and snapshots with AWS's state machines and
 * error codes. Serve it with `startEc2Endpoint`; seed and steer it with the methods below (or the
 * `/_sim/…` control routes, which call the same methods).
 */
export class Ec2Sim {
  /** Every attachment change, in order, with its timestamp. */
  readonly history: HistoryEntry[] = [];
  /** Every mutating request received over HTTP (with the caller and term the gate tagged it with). */
  readonly requests: RequestEntry[] = [];
  readonly throttle: Throttle;
  private readonly world: World;
  private scale: number;
  private counters: SimStats = { total: 0, byAction: {}, errorsByCode: {} };
  private random: () => number = Math.random;

  constructor(opts: Ec2SimOptions = {}) {
    this.scale = opts.timeScale ?? 1;
    const clock = opts.clock ?? realClock(() => this.scale);
    const manual = opts.clock !== undefined;
    this.world = {
      instances: new Map(),
      volumes: new Map(),
      snapshots: new Map(),
      clock,
      devices: opts.devices ?? new DeviceFiles(),
      faults: new FaultBook(),
      history: this.history,
      latencies: { ...DEFAULT_LATENCIES, ...LatenciesInput.parse(opts.latencies ?? {}) },
      inUse: new Set(),
      // An injected clock does not scale delays, so neither may the code that compensates for scaling.
      timeScale: () => (manual ? 1 : this.scale),
      delay: (ms) => this.jittered(ms),
    };
    this.reseed();
    this.throttle = new Throttle(() => clock.now());
    if (opts.throttle !== undefined) this.throttle.configure(opts.throttle);
  }

  /** The shared state, for the action handlers of this folder. */
  get internals(): World {
    return this.world;
  }

  addInstance(input: AddInstanceInput): InstanceView {
    const opts = AddInstanceInput.parse(input);
    const instanceId = opts.instanceId ?? newResourceId('i');
    if (this.world.instances.has(instanceId)) throw invalidParameter(`instance ${instanceId} already exists`);
    const instance: SimInstance = {
      instanceId,
      az: opts.az,
      state: opts.state,
      privateIp: opts.privateIp ?? `10.0.${this.world.instances.size >> 8}.${(this.world.instances.size % 250) + 4}`,
      tags: { ...opts.tags },
      nitro: opts.nitro,
      eniCount: opts.eniCount,
      launchTime: this.world.clock.now(),
      rootDevice: '/dev/xvda',
    };
    this.world.instances.set(instanceId, instance);
    return instanceView(instance);
  }

  addVolume(input: AddVolumeInput): VolumeView {
    const opts = AddVolumeInput.parse(input);
    const volumeId = opts.volumeId ?? newResourceId('vol');
    if (this.world.volumes.has(volumeId)) throw invalidParameter(`volume ${volumeId} already exists`);
    const volume: SimVolume = { volumeId, az: opts.az, sizeGiB: opts.sizeGiB, createTime: this.world.clock.now(), tags: { ...opts.tags }, attachment: null, multiAttachEnabled: opts.multiAttachEnabled };
    this.world.volumes.set(volumeId, volume);
    return volumeView(volume);
  }

  setLatencies(latencies: Partial<Latencies>): Latencies {
    const parsed = LatenciesInput.parse(latencies);
    this.world.latencies = { ...this.world.latencies, ...parsed };
    if (parsed.jitter !== undefined) this.reseed();
    return { ...this.world.latencies };
  }

  /** `ms` times a factor in [1 − ratio, 1 + ratio] when jitter is on. */
  jittered(ms: number): number {
    const jitter = this.world.latencies.jitter;
    if (jitter === null || jitter.ratio === 0 || ms <= 0) return ms;
    return Math.max(0, ms * (1 + jitter.ratio * (2 * this.random() - 1)));
  }

  /** A seeded jitter restarts its sequence whenever it is (re)configured. */
  private reseed(): void {
    const seed = this.world.latencies.jitter?.seed;
    this.random = seed === undefined ? Math.random : mulberry32(seed);
  }

  /** Records one mutating request (done by the HTTP server). */
  recordRequest(entry: RequestEntry): void {
    this.requests.push(entry);
  }

  /** Applies to delays scheduled from now on. */
  setTimeScale(timeScale: number): void {
    if (!(timeScale > 0)) throw invalidParameter('timeScale must be > 0');
    this.scale = timeScale;
  }

  setThrottle(input: ThrottleInput): void {
    this.throttle.configure(input);
  }

  injectFault(fault: Fault): void {
    this.world.faults.inject(fault);
  }

  clearFaults(): void {
    this.world.faults.clear();
  }

  /** Marks the volume's device as used by the host (a non-forced detach then goes `busy`). */
  setInUse(volumeId: string, inUse: boolean): void {
    if (!this.world.volumes.has(volumeId)) throw volumeNotFound(volumeId);
    if (inUse) this.world.inUse.add(volumeId);
    else {
      this.world.inUse.delete(volumeId);
      releaseBusy(this.world, volumeId);
    }
  }

  /** Where this instance's device files appear; files of volumes already attached are created now. */
  setDeviceDir(instanceId: string, dir: string): void {
    const instance = this.world.instances.get(instanceId);
    if (instance === undefined) throw instanceNotFound(instanceId);
    this.world.devices.setDir(instanceId, dir);
    for (const volume of this.world.volumes.values()) {
      const attachment = volume.attachment;
      if (attachment?.instanceId === instanceId && attachment.state !== 'attaching' && attachment.devicePath === undefined) {
        attachment.devicePath = this.world.devices.create(instanceId, volume.volumeId, attachment.device, instance.nitro);
      }
    }
  }

  terminateInstance(instanceId: string): StateChange {
    return terminateInstance(this.world, instanceId);
  }

  startInstance(instanceId: string): StateChange {
    return startInstance(this.world, instanceId);
  }

  /** What DescribeInstanceStatus reports for a running instance's system and instance checks (test hook). */
  setStatusChecks(instanceId: string, checks: { system: 'ok' | 'impaired'; instance: 'ok' | 'impaired' }): void {
    getInstance(this.world, instanceId).statusChecks = { ...checks };
  }

  // EC2 operations (also reachable over the Query protocol).
  attachVolume(volumeId: string, instanceId: string, device: string): Omit<SimAttachment, 'cancel'> {
    return stripCancel(attachVolume(this.world, volumeId, instanceId, device));
  }

  detachVolume(req: DetachRequest): Omit<SimAttachment, 'cancel'> {
    return stripCancel(detachVolume(this.world, req));
  }

  stopInstances(instanceIds: string[], force = false): StateChange[] {
    return stopInstances(this.world, instanceIds, force);
  }

  createSnapshot(volumeId: string, description = '', tags: Record<string, string> = {}): SnapshotView {
    return this.snapshotView(createSnapshot(this.world, volumeId, description, tags));
  }

  deleteSnapshot(snapshotId: string): void {
    deleteSnapshot(this.world, snapshotId);
  }

  /**
   * Test hook: moves a snapshot's StartTime (e.g. back an hour, so that a schedule finds it due)
   * without touching its state or when it completes. EC2 has no such call.
   */
  setSnapshotStartTime(snapshotId: string, startTime: number): SnapshotView {
    const snapshot = this.world.snapshots.get(requireSnapshotId(snapshotId));
    if (snapshot === undefined) throw snapshotNotFound(snapshotId);
    snapshot.startTime = startTime;
    return this.snapshotView(snapshot);
  }

  createTags(resourceIds: string[], tags: Record<string, string>): void {
    createTags(this.world, resourceIds, tags);
  }

  deleteTags(resourceIds: string[], tags: { key: string; value?: string }[]): void {
    deleteTags(this.world, resourceIds, tags);
  }

  volume(volumeId: string): VolumeView | undefined {
    const volume = this.world.volumes.get(volumeId);
    return volume === undefined ? undefined : volumeView(volume);
  }

  instance(instanceId: string): InstanceView | undefined {
    const instance = this.world.instances.get(instanceId);
    return instance === undefined ? undefined : instanceView(instance);
  }

  snapshotView(snapshot: SimSnapshot): SnapshotView {
    return { ...snapshot, tags: { ...snapshot.tags }, progress: snapshotProgress(this.world, snapshot) };
  }

  /** A JSON-safe copy of everything, for assertions and `GET /_sim/state`. */
  state(): { instances: InstanceView[]; volumes: VolumeView[]; snapshots: SnapshotView[]; latencies: Latencies; timeScale: number } {
    return {
      instances: [...this.world.instances.values()].map(instanceView),
      volumes: [...this.world.volumes.values()].map(volumeView),
      snapshots: [...this.world.snapshots.values()].map((s) => this.snapshotView(s)),
      latencies: { ...this.world.latencies },
      timeScale: this.scale,
    };
  }

  /** Counts one EC2 call (and its error code, if it failed); done by the HTTP server. */
  countCall(action: string, errorCode?: string): void {
    this.counters.total++;
    this.counters.byAction[action] = (this.counters.byAction[action] ?? 0) + 1;
    if (errorCode !== undefined) this.counters.errorsByCode[errorCode] = (this.counters.errorsByCode[errorCode] ?? 0) + 1;
  }

  stats(): SimStats {
    return { total: this.counters.total, byAction: { ...this.counters.byAction }, errorsByCode: { ...this.counters.errorsByCode } };
  }

  resetStats(): void {
    this.counters = { total: 0, byAction: {}, errorsByCode: {} };
  }
}

/** A small seeded PRNG (mulberry32): repeatable jitter for a fault schedule that must replay. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function stripCancel(attachment: SimAttachment): Omit<SimAttachment, 'cancel'> {
  const { cancel: _cancel, ...rest } = attachment;
  return rest;
}

function instanceView(instance: SimInstance): InstanceView {
  const { cancel: _cancel, ...rest } = instance;
  return { ...rest, tags: { ...rest.tags } };
}

function volumeView(volume: SimVolume): VolumeView {
  return {
    ...volume,
    tags: { ...volume.tags },
    state: volume.attachment === null ? 'available' : 'in-use',
    attachment: volume.attachment === null ? null : stripCancel(volume.attachment),
  };
}
