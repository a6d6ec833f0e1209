import type { AgentReport, FailoverJournal, HostRecord, ManualRequest, Placement, ServiceRecord } from '../keyspace/records.js';

export type { Ec2Port } from '../ec2/types.js';
export type { FleetMetadataPort } from './options.js';

/** The decoded etcd records the decision core reads (everything but events, locks and the election). */
export interface StoreSnapshot {
  hosts: ReadonlyMap<string, HostRecord>;
  services: ReadonlyMap<string, ServiceRecord>;
  placements: ReadonlyMap<string, Placement>;
  journals: ReadonlyMap<string, FailoverJournal>;
  /** By `<instanceId>/<volumeId>`. */
  reports: ReadonlyMap<string, AgentReport>;
  requests: ReadonlyMap<string, ManualRequest>;
}

/** Records to write in ONE transaction. */
export interface StoreWrite {
  placement?: Placement;
  journal?: FailoverJournal;
  request?: ManualRequest;
  deleteRequestOf?: string;
  events?: { at: number; volumeId: string; unit?: string; step: string; message: string; instanceId: string | null }[];
  /**
   * Auto-restore's registration swap (restore-common.ts `serviceSwapOps`): `oldUnit` deleted and `service`
   * put, in the same transaction, only if the old record is unchanged and the new one does not exist.
   */
  swapService?: { oldUnit: string; service: ServiceRecord };
  /**
   * The write holds only while this host has no liveness record: a failover of a lost holder must not
   * start once the host is back (its agent may already run the unit again).
   */
  hostAbsent?: string;
}

/**
 * The controller's view of etcd: a snapshot kept current by watches, and writes that succeed only
 * while this process leads (one leader-guarded transaction each; a deposed leader's write throws).
 */
export interface StorePort {
  snapshot(): StoreSnapshot;
  write(w: StoreWrite): Promise<void>;
  /** Calls `listener` on any change of the watched prefixes; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
  /** Deletes the oldest events beyond `keep`. */
  pruneEvents(keep: number): Promise<number>;
  /**
   * Calls `listener` when a watch reconnected to etcd after losing it (agents may not have renewed their
   * leases meanwhile, so the loop grants hosts a grace); returns the unsubscribe function. Optional:
   * a store without it never reports a reconnect.
   */
  onReconnect?(listener: () => void): () => void;
}

export interface HeldLock {
  readonly token: string;
  release(): Promise<void>;
}

/** Per-volume locks, so that a snapshot never races a failover. */
export interface LockPort {
  /** The lock, or null when another holder (e.g. a snapshot run) has it: try again later. */
  tryAcquire(volumeId: string): Promise<HeldLock | null>;
}
