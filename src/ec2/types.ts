/**
 * The EC2 layer's view of the world: plain data, no SDK types, so the controller's decision core
 * and its in-memory fakes depend on this file only.
 */
import type { Ec2ErrorIds } from './errors.js';

/** EC2's attachment states. `busy` means a detach was asked while the OS still uses the device. */
export type AttachmentState = 'attaching' | 'attached' | 'detaching' | 'detached' | 'busy';

export type VolumeState = 'creating' | 'available' | 'in-use' | 'deleting' | 'deleted' | 'error';

export interface VolumeAttachment {
  instanceId: string;
  device: string;
  state: AttachmentState;
  attachTime?: number;
}

export interface VolumeInfo {
  volumeId: string;
  az: string;
  state: VolumeState;
  sizeGiB: number;
  attachments: VolumeAttachment[];
  tags: Record<string, string>;
  /**
   * EBS Multi-Attach (io1/io2): EC2 would attach it to several instances at once, which breaks the
   * whole safety model (one attachment is the fence), so such volumes are refused.
   */
  multiAttachEnabled?: boolean;
}

export type InstanceState = 'pending' | 'running' | 'stopping' | 'stopped' | 'shutting-down' | 'terminated';

export interface InstanceInfo {
  instanceId: string;
  az: string;
  state: InstanceState;
  privateIp: string | null;
  /** Device names in use on the instance (root, EBS, …), from its block device mappings. */
  devices: string[];
  tags: Record<string, string>;
}

/** A status check's summary as DescribeInstanceStatus gives it (system: AWS's hardware and network; instance: the OS). */
export type StatusCheck = 'ok' | 'impaired' | 'insufficient-data' | 'not-applicable' | 'initializing';

/** One instance's DescribeInstanceStatus entry. */
export interface InstanceStatusInfo {
  instanceId: string;
  state: InstanceState;
  systemStatus: StatusCheck;
  instanceStatus: StatusCheck;
}

export type SnapshotState = 'pending' | 'completed' | 'error' | 'recoverable' | 'recovering';

export interface SnapshotInfo {
  snapshotId: string;
  volumeId: string;
  state: SnapshotState;
  startTime: number;
  progress: string;
  description: string;
  tags: Record<string, string>;
}

/**
 * What the mutation gate (src/ec2/gate.ts) checks before each mutating request: the caller's lease,
 * read on a monotonic clock. The controller builds one per term from its leadership, the snapshot
 * job one per volume from its lock.
 */
export interface MutationGuard {
  /** Who calls, e.g. the controller's candidate id or the snapshot job's lock owner. */
  readonly caller: string;
  /** The lease's fencing value: the leader key's or the lock key's create revision. */
  readonly term: string;
  /** Throws (synchronously) when the caller may no longer act: lease lost or its step-down deadline passed. */
  assert(): void;
  /** Milliseconds until the lease's step-down deadline (≤ 0: passed). A request never outlives it. */
  remainingMs(): number;
  /**
   * `performance.now()` before which no mutation may start: a new leader waits out the longest call
   * the previous term may still have in flight. Omitted: no wait.
   */
  readonly notBeforeMono?: number;
  /**
   * Whether a call naming `ids` waits for `notBeforeMono`: false when no call of the previous term can
   * be in flight for what it names (the controller knows from the journals' intents, read at election).
   * Omitted: every call waits.
   */
  quietApplies?(ids: Ec2ErrorIds): boolean;
}

/** A new volume from a snapshot (`failover restore`, the controller's auto-restore). */
export interface CreateVolumeInput {
  az: string;
  snapshotId: string;
  tags: Record<string, string>;
  /** EC2's idempotency token (≤ 64 ASCII characters): a repeated call with it creates nothing new. */
  clientToken?: string;
  /** Default gp3. */
  volumeType?: string;
}

/** Options of a mutating call: `guard` puts it through the mutation gate. */
export interface MutatingOpts {
  signal?: AbortSignal;
  guard?: MutationGuard;
  /**
   * Awaited once per call, after its first rate-limit token is taken and before anything is sent (a
   * rejection sends nothing): the controller journals the call's intent here, so a journalled intent
   * means the call was about to go, not that it still waited behind the rate limit (a new leader
   * waits its quiet period for such volumes only). Ports that send requests must call it.
   */
  beforeSend?: () => Promise<void>;
}

/**
 * What the controller and the CLI need from EC2. `src/ec2/client.ts` implements it over the real
 * SDK; tests of the decision core use an in-memory fake. Every method may throw the typed errors of
 * `src/ec2/errors.ts`. `signal` aborts waits (e.g. when leadership is lost).
 */
export interface Ec2Port {
  /** Set on a port made by `withGuard`: the guard every mutating call of this port goes through. */
  readonly guard?: MutationGuard;
  describeVolumes(volumeIds: string[], opts?: { signal?: AbortSignal }): Promise<VolumeInfo[]>;
  describeInstances(instanceIds: string[], opts?: { signal?: AbortSignal }): Promise<InstanceInfo[]>;
  /**
   * DescribeInstanceStatus (IncludeAllInstances) for the given instances, 100 ids per call; an instance
   * EC2 does not report is absent. Optional: ports that never ask (fakes, the CLI) omit it.
   */
  describeInstanceStatus?(instanceIds: string[], opts?: { signal?: AbortSignal }): Promise<InstanceStatusInfo[]>;
  /** Instances in one AZ (optionally with tags), running or not. */
  findInstances(filter: { az?: string; tags?: Record<string, string> }, opts?: { signal?: AbortSignal }): Promise<InstanceInfo[]>;
  attachVolume(volumeId: string, instanceId: string, device: string, opts?: MutatingOpts): Promise<void>;
  /** One DetachVolume call (no wait). `force` is EC2's Force flag. */
  detachVolume(volumeId: string, instanceId: string, force: boolean, opts?: MutatingOpts): Promise<void>;
  /** Polls (fast first, then backing off) until the volume is attached to the instance. */
  waitAttached(volumeId: string, instanceId: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<VolumeInfo>;
  /** Polls until the volume has no attachment (state `available`). */
  waitAvailable(volumeId: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<VolumeInfo>;
  /**
   * Graceful detach, then forced when it has not finished within `forceAfterMs` (or at once when the
   * attachment is already stuck in `detaching`/`busy` and `allowForce`), then wait until available.
   */
  detachAndWait(
    volumeId: string,
    instanceId: string,
    opts: { forceAfterMs: number; allowForce: boolean; timeoutMs: number; signal?: AbortSignal; guard?: MutationGuard },
  ): Promise<{ forced: boolean; volume: VolumeInfo }>;
  stopInstance(instanceId: string, opts?: { force?: boolean } & MutatingOpts): Promise<void>;
  createSnapshot(volumeId: string, description: string, tags: Record<string, string>, opts?: MutatingOpts): Promise<SnapshotInfo>;
  listSnapshots(filter: { volumeIds?: string[]; tags?: Record<string, string>; ownerSelf?: boolean }, opts?: { signal?: AbortSignal }): Promise<SnapshotInfo[]>;
  /** A snapshot that is already gone counts as deleted. */
  deleteSnapshot(snapshotId: string, opts?: MutatingOpts): Promise<void>;
  /**
   * CreateVolume from a snapshot (restore), tagged at creation. `clientToken` makes a retried call
   * return the same volume on EC2 (idempotent). Optional: ports that never create volumes omit it.
   */
  createVolume?(p: CreateVolumeInput, opts?: MutatingOpts): Promise<VolumeInfo>;
  /** Volumes carrying every one of `tags` (e.g. the volume a restore created), any state. Optional like createVolume. */
  findVolumes?(filter: { tags: Record<string, string> }, opts?: { signal?: AbortSignal }): Promise<VolumeInfo[]>;
  tagResources(resourceIds: string[], tags: Record<string, string>, opts?: { signal?: AbortSignal }): Promise<void>;
  untagResources(resourceIds: string[], tagKeys: string[], opts?: { signal?: AbortSignal }): Promise<void>;
}
