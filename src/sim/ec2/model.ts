import { randomBytes } from 'node:crypto';
import type { AttachmentState, InstanceState, SnapshotState } from '../../ec2/types.js';

/** The fixed account that owns every simulated resource (`OwnerId`, `Owner=self`). */
export const SIM_ACCOUNT_ID = '123456789012';

/**
 * Simulated delays, in milliseconds before `timeScale`. The defaults are short so tests that do not
 * care about timing stay fast; `AWS_LIKE_LATENCIES` are typical figures seen on real EC2.
 */
export interface Latencies {
  /** attaching → attached. */
  attachMs: number;
  /** detaching → detached (graceful, or forced). */
  detachMs: number;
  /** snapshot pending → completed. */
  snapshotMs: number;
  /** stopping → stopped. */
  stopMs: number;
  /** stopping → stopped when `Force` skips the OS shutdown. */
  forceStopMs: number;
  /** shutting-down → terminated. */
  terminateMs: number;
  /** Delay of every API answer (after the state change). */
  callMs: number;
  /** ±ratio jitter on every delay above; null: none. */
  jitter: { ratio: number; seed?: number } | null;
}

export const DEFAULT_LATENCIES: Latencies = {
  attachMs: 50,
  detachMs: 50,
  snapshotMs: 200,
  stopMs: 100,
  forceStopMs: 30,
  terminateMs: 100,
  callMs: 0,
  jitter: null,
};

/** Typical real-EC2 timings (attach ~5 s, detach ~10 s, small snapshot ~1 min, stop ~30 s). */
export const AWS_LIKE_LATENCIES: Latencies = {
  attachMs: 5_000,
  detachMs: 10_000,
  snapshotMs: 60_000,
  stopMs: 30_000,
  forceStopMs: 10_000,
  terminateMs: 30_000,
  callMs: 0,
  jitter: null,
};

/**
 * Nitro instances share 28 attachment slots between EBS volumes and network interfaces (and the root
 * volume takes one); Xen instances are limited by the 40-volume guidance.
 */
export const NITRO_ATTACHMENT_SLOTS = 28;
export const XEN_VOLUME_LIMIT = 40;
/** AWS's limit of user tags per resource. */
export const MAX_TAGS_PER_RESOURCE = 50;

export const INSTANCE_STATE_CODES: Record<InstanceState, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export interface SimAttachment {
  instanceId: string;
  device: string;
  state: AttachmentState;
  attachTime: number;
  /** Device file created on the host once attached (for the in-use marker), if a dir is set. */
  devicePath?: string;
  /** Cancels the pending transition (attach completion, detach completion, busy poll). */
  cancel?: () => void;
}

export interface SimVolume {
  volumeId: string;
  az: string;
  sizeGiB: number;
  createTime: number;
  tags: Record<string, string>;
  attachment: SimAttachment | null;
  multiAttachEnabled: boolean;
}

export interface SimInstance {
  instanceId: string;
  az: string;
  state: InstanceState;
  privateIp: string;
  tags: Record<string, string>;
  nitro: boolean;
  eniCount: number;
  launchTime: number;
  rootDevice: string;
  /**
   * Status checks DescribeInstanceStatus reports while the instance runs (absent: both `ok`): a test
   * or bench marks an instance `impaired`, as EC2 does for a host lost to a hardware or AZ failure.
   */
  statusChecks?: { system: 'ok' | 'impaired'; instance: 'ok' | 'impaired' };
  cancel?: () => void;
}

export interface SimSnapshot {
  snapshotId: string;
  volumeId: string;
  volumeSize: number;
  description: string;
  state: SnapshotState;
  startTime: number;
  completeAt: number;
  tags: Record<string, string>;
}

/** One attachment change, as appended to `sim.history`. `detached` means the attachment is gone. */
export interface HistoryEntry {
  at: number;
  volumeId: string;
  instanceId: string;
  device: string;
  state: AttachmentState;
  forced?: boolean;
}

/**
 * One mutating request as the endpoint received it, with the caller's identity and term from the
 * mutation gate's extra headers (null when absent) and its outcome (`ok` or the error code).
 */
export interface RequestEntry {
  at: number;
  action: string;
  volumeId: string | null;
  instanceId: string | null;
  snapshotId: string | null;
  force: boolean;
  device: string | null;
  caller: string | null;
  term: string | null;
  outcome: string;
}

/** A fresh EC2-style id: prefix + 17 hex digits. */
export function newResourceId(prefix: 'vol' | 'i' | 'snap' | 'r'): string {
  return `${prefix}-${randomBytes(9).toString('hex').slice(0, 17)}`;
}
