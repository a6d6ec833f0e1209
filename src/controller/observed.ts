import type { AgentReport, FailoverJournal, HostRecord, ManualRequest, Placement, ServiceRecord } from '../keyspace/records.js';
import type { InstanceInfo, VolumeInfo } from '../ec2/types.js';
import type { AutoRestoreConfig, AutoRestoreFacts } from './auto-restore.js';

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
  /**
   * An attachment still `attaching` this long after the target was chosen is stuck (it happens on AWS):
   * it is force-detached, the target excluded, and another host chosen.
   */
  attachStuckAfterMs: number;
  /** Also StopInstances the fenced host (as Pacemaker's fence_aws does). */
  stopInstanceOnFence: boolean;
  /** Attachments (root included) an instance may hold; Nitro instances share 28 slots with ENIs. */
  maxAttachmentsPerInstance: number;
  /** How soon to look again at a volume whose EC2 state is in transition. */
  pollMs: number;
  /**
   * After a failed failover, wait this long before an automatic one OF THE SAME CAUSE starts again (no hot
   * retry loop on an error that retrying would repeat). A lost target is not such an error: it is retried at once.
   */
  retryFailedAfterMs: number;
  /** A refused manual request is deleted this long after its refusal (the CLI has read the reason by then). */
  refusedRequestKeepMs: number;
  /** controller.autoRestore (auto-restore.ts); absent: off. */
  autoRestore?: AutoRestoreConfig;
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
  /**
   * EC2's view of live hosts' instances (state, device names in use). A live host whose instance is
   * missing here is not eligible as a target: we cannot tell that it is running.
   */
  instances: ReadonlyMap<string, InstanceInfo>;
  /**
   * Until this instant no host is called dead for want of a lease: the controller was just elected or
   * saw etcd reconnect, and agents may not have renewed yet (null: no grace).
   */
  graceUntil: number | null;
  /**
   * Set while many hosts vanished at once (suspect: an etcd or network event more likely than deaths):
   * failovers caused by a lost holder are paced BY HOST, as Kubernetes paces evictions by node. A lost
   * holder in `admitted` already has its turn (all its volumes go); `remaining` more may be admitted now
   * (null: not paced).
   */
  pacing: { remaining: number; admitted: readonly string[]; reason: string } | null;
  /**
   * Gone hosts EC2 proved dead (stopped, terminated, status checks impaired: death-proof.ts), with the
   * reason: no grace for them (and the pacing lists them as admitted). Absent: none.
   */
  provenDead?: ReadonlyMap<string, string>;
  /** EC2 facts for controller.autoRestore (snapshots, old holders, restored volumes); absent: none looked up. */
  autoRestore?: AutoRestoreFacts;
}

export function reportKey(instanceId: string, volumeId: string): string {
  return `${instanceId}/${volumeId}`;
}

export function serviceOfVolume(observed: Observed, volumeId: string): ServiceRecord | undefined {
  for (const service of observed.services.values()) if (service.volumeId === volumeId) return service;
  return undefined;
}

/** Where a host stands: its lease exists, it is gone, or it is gone but within the grace (not yet called dead). */
export type Liveness = 'live' | 'gone' | 'grace';

export function liveness(observed: Observed, instanceId: string): Liveness {
  if (observed.hosts.has(instanceId)) return 'live';
  // The grace is for doubt (agents that may not have renewed yet); EC2's proof of death ends it.
  if (observed.provenDead?.has(instanceId) === true) return 'gone';
  return observed.graceUntil !== null && observed.now < observed.graceUntil ? 'grace' : 'gone';
}

export function graceReason(observed: Observed, instanceId: string): string {
  return `${instanceId}'s lease is gone, but hosts have a grace for ${(observed.graceUntil ?? observed.now) - observed.now} ms more (controller just started, etcd just reconnected, or many hosts vanished at once): not calling it dead yet`;
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
  // 20 s: EBS attaches finish in 1-10 s; an attach still `attaching` after twice the slow end is the
  // stuck kind AWS documents (it never finishes on its own), and another host is the faster way back.
  attachStuckAfterMs: 20_000,
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
