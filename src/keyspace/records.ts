import { z } from 'zod';
import { AvailabilityZone, DeviceName, InstanceId, SnapshotId, VolumeId } from '../ec2/ids.js';

/**
 * Every value stored in etcd is JSON validated by one of these schemas on read (see `decode.ts`):
 * a malformed value is logged with its key and skipped, so that one bad write never stops a loop.
 */

/** `postgres@vol-0abc…`: a systemd template instance whose instance name is the volume id. */
export const UnitName = z
  .string()
  .regex(/^[a-zA-Z0-9_.:-]+@vol-[0-9a-f]{8,17}$/, 'expected a unit name like postgres@vol-0abc12345def67890');

/** Written by a host's agent under its lease: the host is alive while this key exists. */
export const HostRecord = z.object({
  instanceId: InstanceId,
  az: AvailabilityZone,
  privateIp: z.string().min(1),
  /** fleet's machine id (`/etc/machine-id`), used to edit this machine's fleet metadata. */
  machineId: z.string().min(1),
  agentVersion: z.string().min(1),
  /** Static labels such as fleet metadata `role=db`, matched against a service's `requiredLabels`. */
  labels: z.record(z.string(), z.string()).default({}),
  leaseTtlMs: z.number().int().positive(),
  /** The agent fences itself this long before its lease could expire on the etcd side. */
  fenceMarginMs: z.number().int().nonnegative(),
  registeredAt: z.number().int(),
  /**
   * `host:port` of the agent's peer endpoint: while cut off from etcd an agent asks its peers whether
   * THEY reach etcd, to tell "cut off alone" (fence) from "etcd down for everyone" (keep running).
   */
  peerEndpoint: z.string().min(1).optional(),
});
export type HostRecord = z.infer<typeof HostRecord>;

/**
 * Snapshot intervals a service may ask for, in hours: the divisors of 24 (as AWS DLM offers), so that
 * the UTC-aligned slots (see src/snapshot/schedule.ts) fall at the same times every day. One hour is
 * the minimum: EBS snapshots of one volume run one at a time, and a busy volume's incremental
 * snapshot can take longer than that.
 */
export const SNAPSHOT_EVERY_HOURS = [1, 2, 3, 4, 6, 8, 12, 24] as const;
/** DLM's limit on snapshots kept by one schedule. */
export const SNAPSHOT_KEEP_MAX = 1000;

/** A service's own snapshot schedule (additive: a record without one gets the job's daily default). */
export const SnapshotSchedule = z
  .object({
    everyHours: z
      .number()
      .int('snapshot interval must be whole hours')
      .refine((h) => (SNAPSHOT_EVERY_HOURS as readonly number[]).includes(h), {
        message: `snapshot interval must be one of ${SNAPSHOT_EVERY_HOURS.map((h) => `${h}h`).join(', ')} (whole hours dividing a day, at least 1h)`,
      }),
    /** Keep this many newest completed snapshots (count-based retention, as DLM's count rule). */
    keep: z.number().int('snapshot keep must be a whole number').min(1, 'snapshot keep must be at least 1').max(SNAPSHOT_KEEP_MAX, `snapshot keep must be at most ${SNAPSHOT_KEEP_MAX}`),
  });
// Not .strict(): a field added later must not make older readers drop the whole service record.
export type SnapshotSchedule = z.infer<typeof SnapshotSchedule>;

/** What an operator registers: one stateful service on one EBS volume. */
export const ServiceRecord = z.object({
  unit: UnitName,
  volumeId: VolumeId,
  /** e.g. `data-postgres.mount`; the service unit has `Requires=`/`After=` on it. */
  mountUnit: z.string().regex(/^[a-zA-Z0-9_.:\\-]+\.mount$/, 'expected a mount unit name like data-postgres.mount'),
  mountPoint: z.string().startsWith('/'),
  /** Fleet metadata key set to the volume id on the holding machine (`postgres=vol-…`). */
  metadataKey: z.string().regex(/^[a-zA-Z0-9_-]+$/),
  /** Services of one group never share a host (seed 000's `Conflicts=postgres*`). */
  conflictGroup: z.string().min(1).optional(),
  /** Host labels a target must carry, e.g. `{ role: 'db' }`. */
  requiredLabels: z.record(z.string(), z.string()).default({}),
  /** Filesystem label the volume must carry; a device with another label is never mounted. */
  fsLabel: z.string().min(1).optional(),
  /**
   * Own snapshot interval and retention; absent: daily, pruned by the job's global retention flags.
   * A malformed schedule reads as absent instead of failing the record: a bad snapshot setting must
   * never make agents and the controller skip the service itself. The CLI validates it before writing.
   */
  snapshot: SnapshotSchedule.optional().catch(undefined),
});
export type ServiceRecord = z.infer<typeof ServiceRecord>;

/**
 * Where a volume should live. Only the elected controller writes it, in a leader-guarded
 * transaction. `instanceId: null` means "nobody": the previous holder must release it (planned move).
 * `generation` grows by one on every change, and agents report against it.
 */
export const Placement = z.object({
  volumeId: VolumeId,
  unit: UnitName,
  instanceId: InstanceId.nullable(),
  device: DeviceName.nullable(),
  generation: z.number().int().nonnegative(),
  updatedAt: z.number().int(),
});
export type Placement = z.infer<typeof Placement>;

/** Steps of the failover state machine, in order. `blocked` waits for a host; `failed` needs a human. */
export const FailoverStep = z.enum([
  'detected', // holder's lease gone (auto) or a manual request accepted
  'fencing', // auto: old host's self-fence deadline passed, fleet metadata dropped, optional StopInstances
  'releasing', // manual: placement set to nobody, waiting for the old agent to stop unit and unmount
  'detaching', // DetachVolume (graceful, then forced after a bound)
  'attaching', // target chosen; AttachVolume and wait for `attached`
  'starting', // placement written with generation+1; waiting for the new agent's report
  'done',
  'blocked', // no eligible target: the reason is kept and the step retried when hosts change
  'failed',
]);
export type FailoverStep = z.infer<typeof FailoverStep>;

export const JournalEntry = z.object({
  step: FailoverStep,
  at: z.number().int(),
  note: z.string().optional(),
});
export type JournalEntry = z.infer<typeof JournalEntry>;

/**
 * Auto-restore bookkeeping of one blocked failover (controller.autoRestore, opt-in; src/controller/auto-restore.ts).
 * Persisted so that a new leader keeps counting from the same instant and resumes a half-done restore.
 */
export const AutoRestoreState = z.object({
  /** The volume's AZ, seen with no live host at all. */
  az: AvailabilityZone,
  /** When the controller first saw that AZ without a live host (continuously since: a host there resets it). */
  goneSince: z.number().int(),
  /** goneSince + afterMs: the restore may begin from then on (if its other conditions hold). */
  dueAt: z.number().int(),
  /** What the restore waits for besides time (no snapshot, old copy may still run, …); null: nothing. */
  waiting: z.string().nullable().default(null),
  /** The restore itself, recorded BEFORE its CreateVolume (so a new leader never creates a second volume). */
  restore: z
    .object({
      /** Tagged on the new volume (`ebs-failover:restore-id`) and sent as CreateVolume's ClientToken. */
      restoreId: z.string().regex(/^ar-[0-9a-f]{8,17}-\d+$/),
      snapshotId: SnapshotId,
      /** The snapshot's start time: the data-loss window is everything written after it. */
      snapshotAt: z.number().int(),
      toAz: AvailabilityZone,
      startedAt: z.number().int(),
      /** Set once CreateVolume answered (or the tagged volume was found by a new leader). */
      newVolumeId: VolumeId.nullable().default(null),
      /** When the registration was swapped to the new volume (the restore is then done). */
      swappedAt: z.number().int().nullable().default(null),
    })
    .nullable()
    .default(null),
});
export type AutoRestoreState = z.infer<typeof AutoRestoreState>;

/** The persisted state of one volume's failover, so that a new leader resumes where the old one was. */
export const FailoverJournal = z.object({
  volumeId: VolumeId,
  unit: UnitName,
  kind: z.enum(['auto', 'manual']),
  step: FailoverStep,
  fromInstanceId: InstanceId.nullable(),
  toInstanceId: InstanceId.nullable(),
  device: DeviceName.nullable(),
  /** Manual: whether a forced detach is allowed. Auto failovers always may force after a bound. */
  force: z.boolean().default(false),
  startedAt: z.number().int(),
  stepStartedAt: z.number().int(),
  /** When the graceful detach began, to know when to force. */
  detachStartedAt: z.number().int().nullable().default(null),
  /** The placement generation the target agent must report `active` for. */
  generation: z.number().int().nonnegative().nullable().default(null),
  history: z.array(JournalEntry).default([]),
  blockedReason: z.string().nullable().default(null),
  error: z.string().nullable().default(null),
  requestId: z.string().nullable().default(null),
  finishedAt: z.number().int().nullable().default(null),
  /**
   * Hosts this failover must not choose again: a target that died before reporting `active`, or
   * whose attach stuck in `attaching`. Kept so a re-chosen target is never the one that just failed.
   */
  excludedInstanceIds: z.array(InstanceId).default([]),
  /**
   * The mutating EC2 call about to be made, persisted (leader-guarded) before the call so that a new
   * leader knows what may still be in flight. `term` is the leader key's create revision.
   */
  intent: z
    .object({ action: z.enum(['attach', 'detach', 'stop']), instanceId: InstanceId, force: z.boolean().default(false), device: DeviceName.nullable().default(null), term: z.string(), at: z.number().int() })
    .nullable()
    .default(null),
  /** Why this failover began when it is not a lost holder or a manual request, e.g. `reacquire`. */
  cause: z.enum(['holder-lost', 'manual', 'reacquire', 'placement']).optional(),
  /** Set only while controller.autoRestore tracks this failover (its volume's AZ has no live host). */
  autoRestore: AutoRestoreState.optional(),
});
export type FailoverJournal = z.infer<typeof FailoverJournal>;

export const AgentPhase = z.enum([
  'waiting-device',
  'mounting',
  'starting',
  'active',
  'releasing',
  'released',
  'failed',
  'fenced',
  // The agent re-verified an `active` volume and found it no longer holds (device gone or another
  // volume, mount or unit down); `error` says what. The agent then re-acquires it itself where it can.
  'drift',
]);
export type AgentPhase = z.infer<typeof AgentPhase>;

/** An agent's report on one placement generation, written under the agent's lease. */
export const AgentReport = z.object({
  instanceId: InstanceId,
  volumeId: VolumeId,
  unit: UnitName,
  generation: z.number().int().nonnegative(),
  phase: AgentPhase,
  mountActive: z.boolean(),
  unitActive: z.boolean(),
  error: z.string().nullable().default(null),
  at: z.number().int(),
});
export type AgentReport = z.infer<typeof AgentReport>;

/** A planned move asked for by `failover <unit>`. The controller validates it before acting. */
export const ManualRequest = z.object({
  requestId: z.string().min(1),
  unit: UnitName,
  volumeId: VolumeId,
  toInstanceId: InstanceId.nullable().default(null),
  force: z.boolean().default(false),
  requestedAt: z.number().int(),
  /** Set by the controller when it refuses the request; the CLI prints it and exits 1. */
  refusedReason: z.string().nullable().default(null),
  /** When the controller refused it; the controller deletes a refused request a while later (additive, C2). */
  refusedAt: z.number().int().optional(),
  /**
   * Wall-clock ms after which the request must not be started: the CLI that made it has given up.
   * The controller drops an expired request that has not started (older requests have none).
   */
  deadline: z.number().int().optional(),
});
export type ManualRequest = z.infer<typeof ManualRequest>;

export const EventRecord = z.object({
  at: z.number().int(),
  volumeId: VolumeId,
  unit: UnitName.optional(),
  step: z.string(),
  message: z.string(),
  instanceId: InstanceId.nullable().default(null),
});
export type EventRecord = z.infer<typeof EventRecord>;
