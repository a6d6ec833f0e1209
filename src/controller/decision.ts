import type { FailoverJournal, ManualRequest, Placement, ServiceRecord } from '../keyspace/records.js';

/**
 * One decision for one volume (STYLE §1): what to do now, with a one-line reason the loop logs.
 * `journal`/`placement` are what to persist (in one leader-guarded transaction) once the action's
 * I/O has succeeded; kinds without I/O persist at once.
 */
export type Decision =
  /** Nothing to do; the volume is where it should be (or is not ours). */
  | { kind: 'noop'; volumeId: string; reason: string }
  /** Something is in flight (EC2 transition, agent work): look again later. */
  | { kind: 'wait'; volumeId: string; requeueAfterMs: number; reason: string }
  /** Begin a failover: persist its journal at `detected` (and drop the accepted request). */
  | { kind: 'startFailover'; volumeId: string; journal: FailoverJournal; deleteRequest: boolean; reason: string }
  /** Delete a request refused a while ago, so that a new one can be made. */
  | { kind: 'dropRequest'; volumeId: string; requestId: string; reason: string }
  /** Write `refusedReason` back into the request; nothing else changes. */
  | { kind: 'refuseRequest'; volumeId: string; request: ManualRequest; reason: string }
  /** Write a placement (adoption of a running volume, or the target at `starting`). */
  | { kind: 'place'; volumeId: string; instanceId: string; device: string; generation: number; placement: Placement; journal: FailoverJournal | null; reason: string }
  /** Placement → nobody (generation + 1) so the old holder releases or, if it comes back, stays down. */
  | { kind: 'release'; volumeId: string; generation: number; placement: Placement; journal: FailoverJournal; reason: string }
  /** Fence the dead host: drop its fleet metadata, optionally StopInstances; then persist `journal`. */
  | { kind: 'fence'; volumeId: string; instanceId: string; machineId: string | null; metadataKey: string; stopInstance: boolean; journal: FailoverJournal; reason: string }
  /** One DetachVolume call; the next observation shows its progress. */
  | { kind: 'detach'; volumeId: string; instanceId: string; force: boolean; reason: string }
  /** One AttachVolume call; the next observation shows its progress. */
  | { kind: 'attach'; volumeId: string; instanceId: string; device: string; reason: string }
  /** Persist the next step (no I/O). */
  | { kind: 'advance'; volumeId: string; journal: FailoverJournal; reason: string }
  /** No host can take the volume: persist `blocked` with the reason; retried when hosts change. */
  | { kind: 'block'; volumeId: string; journal: FailoverJournal; reason: string }
  | { kind: 'complete'; volumeId: string; journal: FailoverJournal; reason: string }
  /** Auto-restore bookkeeping (auto-restore.ts): persist the journal's `autoRestore` (no I/O, no step change), with a loud event. */
  | { kind: 'noteRestore'; volumeId: string; journal: FailoverJournal; reason: string }
  /**
   * Auto-restore: persist `journal` (the restore recorded) FIRST, then find the volume tagged with
   * `restoreId` or CreateVolume it (through the mutation gate), then persist its id.
   */
  | { kind: 'createRestoreVolume'; volumeId: string; journal: FailoverJournal; restoreId: string; snapshotId: string; az: string; tags: Record<string, string>; reason: string }
  /** Auto-restore: ONE guarded transaction: `oldUnit` unregistered, `service` registered, `journal` (closed) written. */
  | { kind: 'swapRestored'; volumeId: string; journal: FailoverJournal; oldUnit: string; service: ServiceRecord; message: string; reason: string }
  /** Stop and tell a human: the journal records the error. */
  | { kind: 'fail'; volumeId: string; journal: FailoverJournal; reason: string };

export type DecisionKind = Decision['kind'];

/** Kinds that change something (and so are followed by another look right away). */
export function isMutation(decision: Decision): boolean {
  return decision.kind !== 'noop' && decision.kind !== 'wait';
}
