import type { AgentReport, FailoverJournal, HostRecord, ManualRequest, Placement, ServiceRecord } from '../keyspace/records.js';
import type { InstanceInfo, VolumeInfo } from '../ec2/types.js';

/** Knobs of the decision core; all durations in ms. */
export interface DecideConfig {
  /** A detach still unfinished after this long is forced (stuck `detaching`, or manual with force); auto forces at once. */
  forceDetachAfterMs: number;
  /** How long the target agent has to report `active` for the new generation before the failover fails. */
  reportTimeoutMs: number;
  /** How long the old agent has to report `released` in a manual failover before it fails. */
  releaseTimeoutMs: number;
  /** AttachVolume not reflected by EC2 after this long: the failover fails (EBS attach takes 1-10 s). */
  attachTimeoutMs: number;
  /** Also StopInstances the fenced host (as Pacemaker's fence_aws does). */
  stopInstanceOnFence: boolean;
  /** Attachments (root included) an instance may hold; Nitro instances share 28 slots with ENIs. */
  maxAttachmentsPerInstance: number;
  /** How soon to look again at a volume whose EC2 state is in transition. */
  pollMs: number;
  /** After a failed failover, wait this long before an automatic one starts again (no hot retry loop). */
  retryFailedAfterMs: number;
  /** A refused manual request is deleted this long after its refusal (the CLI has read the reason by then). */
  refusedRequestKeepMs: number;
}

/** What one decision looks at: the cluster as read from etcd and EC2 at one instant. Immutable by convention. */
export interface Observed {
  now: number;
  config: DecideConfig;
  /** Live hosts (their lease-backed record exists), by instance id. */
  hosts: ReadonlyMap<string, HostRecord>;
  /** Hosts seen alive earlier by this controller (their machine ids are needed to fence them). */
  knownHosts: ReadonlyMap<string, HostRecord>;
  /** Services by unit name. */
  services: ReadonlyMap<string, ServiceRecord>;
  placements: ReadonlyMap<string, Placement>;
  journals: ReadonlyMap<string, FailoverJournal>;
  /** Agent reports by `<instanceId>/<volumeId>`. */
  reports: ReadonlyMap<string, AgentReport>;
  requests: ReadonlyMap<string, ManualRequest>;
  /** EC2's view of the volumes that need work; a missing entry means EC2 did not return it. */
  volumes: ReadonlyMap<string, VolumeInfo>;
  /** EC2's view of live hosts' instances (device names in use); may be partial. */
  instances: ReadonlyMap<string, InstanceInfo>;
}

export function reportKey(instanceId: string, volumeId: string): string {
  return `${instanceId}/${volumeId}`;
}

export function serviceOfVolume(observed: Observed, volumeId: string): ServiceRecord | undefined {
  for (const service of observed.services.values()) if (service.volumeId === volumeId) return service;
  return undefined;
}

/** A journal whose failover still has work to do. */
export function isActiveJournal(journal: FailoverJournal | undefined): journal is FailoverJournal {
  return journal !== undefined && journal.step !== 'done' && journal.step !== 'failed';
}

export const DEFAULT_DECIDE_CONFIG: DecideConfig = {
  forceDetachAfterMs: 30_000,
  // 2 min: an agent waits for the device, mounts, and starts postgres (crash recovery may replay WAL).
  reportTimeoutMs: 120_000,
  // 2 min: a planned stop of postgres checkpoints first, which can take a while on a busy database.
  releaseTimeoutMs: 120_000,
  // 2 min: EBS attach normally finishes in 1-10 s; far beyond that something is wrong in EC2.
  attachTimeoutMs: 120_000,
  stopInstanceOnFence: false,
  maxAttachmentsPerInstance: 28,
  // 250 ms: EC2 transitions take seconds; this keeps the added latency small with one batched Describe per tick.
  pollMs: 250,
  // 30 s: a failure usually needs a human or a host to come back; retrying faster only adds EC2 calls.
  retryFailedAfterMs: 30_000,
  // 30 s: `failover <unit>` follows the request by watch and prints the reason within milliseconds; the
  // key must then go, since the CLI will not write a new request while one exists.
  refusedRequestKeepMs: 30_000,
};
