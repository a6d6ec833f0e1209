import type { Ec2Port, MutationGuard, SnapshotInfo } from '../ec2/types.js';
import type { SnapshotSchedule } from '../keyspace/index.js';
import { planRetention, type KeepReason, type RetentionCandidate, type RetentionDecision, type RetentionPolicy } from './retention.js';
import { describeSchedule, everyHoursOf, retentionFor, snapshotDue, type DueDecision } from './schedule.js';
import { isManagedSnapshot, snapshotTags, TAG_VOLUME } from './tags.js';

export interface SnapshotTarget {
  unit: string;
  volumeId: string;
  /** The service's own schedule; absent: daily, pruned by the run's global policy. */
  schedule?: SnapshotSchedule;
}

/** Held while working on a volume so a snapshot never races a failover's detach/attach. */
export interface HeldLock {
  release(): Promise<void>;
  /**
   * The lock as the EC2 gate's guard (see `lockGuard`): CreateSnapshot and DeleteSnapshot are sent
   * only while the lock still holds, and never outlive its lease.
   */
  guard?: MutationGuard;
}

/** Returns the lock, or a reason it could not be had (e.g. held by a failover past the wait). */
export type LockVolume = (volumeId: string) => Promise<HeldLock | { busy: string }>;

export interface VolumeSnapshotResult {
  unit: string;
  volumeId: string;
  /** the snapshot created now, or null when skipped / dry run */
  created: string | null;
  skipped: string | null;
  deleted: string[];
  kept: Array<{ snapshotId: string; startTime: number; state: string; reasons: KeepReason[] }>;
  error: string | null;
  /** `every 1h, keep 24` or `default (daily, global retention)` */
  schedule: string;
  /** Whether the schedule said due when the run looked (before creating). */
  due: boolean;
  dueReason: string;
  lastCompletedAt: number | null;
  /** When the next snapshot is due after this run (ms since epoch). */
  nextDueAt: number;
}

/** What a run does for one volume, decided from its snapshots: see planVolume. */
export interface VolumePlan<S extends RetentionCandidate = RetentionCandidate> {
  decision: DueDecision;
  create: boolean;
  retention: RetentionDecision<S>;
}

/**
 * Pure: create or not (due, or forced, and nothing pending), and what this volume's retention keeps
 * and removes. `snapshots` are this volume's, foreign ones marked `managed: false`.
 */
export function planVolume<S extends RetentionCandidate>(target: SnapshotTarget, snapshots: S[], now: number, opts: { policy: RetentionPolicy; force: boolean }): VolumePlan<S> {
  const decision = snapshotDue(everyHoursOf(target.schedule), snapshots.filter((s) => s.managed && s.volumeId === target.volumeId), now);
  return {
    decision,
    // Even forced, never behind a pending snapshot: EBS would only queue it.
    create: decision.pendingSnapshotId === null && (decision.due || opts.force),
    retention: planRetention(snapshots.filter((s) => s.volumeId === target.volumeId), retentionFor(target.schedule, opts.policy)),
  };
}

export interface RunSnapshotsOptions {
  ec2: Ec2Port;
  targets: SnapshotTarget[];
  /** Retention of services without a schedule of their own. */
  policy: RetentionPolicy;
  /** Snapshot every target now, due or not (`failover snapshot --now`); never behind a pending one. */
  force?: boolean;
  lockVolume: LockVolume;
  dryRun: boolean;
  now: () => number;
  /** progress line per step, for people */
  onStep?: (line: string) => void;
}

function isLock(value: HeldLock | { busy: string }): value is HeldLock {
  return 'release' in value;
}

function withManaged(s: SnapshotInfo): SnapshotInfo & RetentionCandidate {
  return { ...s, managed: isManagedSnapshot(s.tags, s.volumeId) };
}

function iso(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16)}Z`;
}

/**
 * For each target: snapshot it when its schedule says due (or when forced), then prune its
 * snapshots by its retention. One volume's failure is recorded and the others go on.
 *
 * The timer runs this every 15 minutes, so the run where nothing is due must be cheap: ONE
 * DescribeSnapshots (paginated) filtered by our volume tag decides every target, and a volume is
 * locked, re-read and touched only when it has something to create or delete. Under the lock the
 * decision is taken again on a fresh read, so two overlapping runs never snapshot a slot twice.
 */
export async function runSnapshots(opts: RunSnapshotsOptions): Promise<VolumeSnapshotResult[]> {
  const results: VolumeSnapshotResult[] = [];
  if (opts.targets.length === 0) return results;
  const listing = (await opts.ec2.listSnapshots({ tags: { [TAG_VOLUME]: '*' }, ownerSelf: true })).map(withManaged);
  const force = opts.force ?? false;
  for (const target of opts.targets) {
    const plan = planVolume(target, listing, opts.now(), { policy: opts.policy, force });
    const result: VolumeSnapshotResult = { unit: target.unit, volumeId: target.volumeId, created: null, skipped: null, deleted: [], kept: [], error: null, ...scheduleFields(target, plan.decision) };
    results.push(result);
    if (!plan.create && plan.retention.remove.length === 0) {
      result.kept = keptOf(plan.retention);
      result.skipped = skipReason(plan.decision);
      opts.onStep?.(`${target.volumeId}: ${result.skipped}; next due ${iso(plan.decision.nextDueAt)}`);
      continue;
    }
    const lock = await opts.lockVolume(target.volumeId);
    if (!isLock(lock)) {
      result.skipped = lock.busy;
      opts.onStep?.(`${target.volumeId}: skipped, ${lock.busy}`);
      continue;
    }
    try {
      await snapshotOne(opts, target, result, lock.guard);
    } catch (err) {
      result.error = (err as Error).message;
      opts.onStep?.(`${target.volumeId}: failed: ${result.error}`);
    } finally {
      await lock.release();
    }
  }
  return results;
}

function scheduleFields(target: SnapshotTarget, d: DueDecision): Pick<VolumeSnapshotResult, 'schedule' | 'due' | 'dueReason' | 'lastCompletedAt' | 'nextDueAt'> {
  return { schedule: describeSchedule(target.schedule), due: d.due, dueReason: d.reason, lastCompletedAt: d.lastCompletedAt, nextDueAt: d.nextDueAt };
}

function keptOf(plan: RetentionDecision<SnapshotInfo & RetentionCandidate>): VolumeSnapshotResult['kept'] {
  return plan.keep.map((k) => ({ snapshotId: k.snapshot.snapshotId, startTime: k.snapshot.startTime, state: k.snapshot.state, reasons: k.reasons }));
}

function skipReason(d: DueDecision): string {
  return d.pendingSnapshotId !== null ? d.reason : `not due: ${d.reason}`;
}

async function snapshotOne(opts: RunSnapshotsOptions, target: SnapshotTarget, result: VolumeSnapshotResult, guard: MutationGuard | undefined): Promise<void> {
  const { ec2, dryRun } = opts;
  // Read again under the lock: another run may have snapshotted or pruned since the listing.
  const existing = (await ec2.listSnapshots({ volumeIds: [target.volumeId], ownerSelf: true })).map(withManaged);
  const now = opts.now();
  const plan = planVolume(target, existing, now, { policy: opts.policy, force: opts.force ?? false });
  Object.assign(result, scheduleFields(target, plan.decision));
  const pending = existing.find((s) => s.snapshotId === plan.decision.pendingSnapshotId);
  if (pending) {
    // EBS snapshots are incremental and serialised per volume; a second one would only queue.
    result.skipped = `previous snapshot ${pending.snapshotId} is still pending (${pending.progress})`;
    opts.onStep?.(`${target.volumeId}: not snapshotting, ${result.skipped}`);
  } else if (!plan.create) {
    result.skipped = skipReason(plan.decision);
    opts.onStep?.(`${target.volumeId}: ${result.skipped}`);
  } else if (dryRun) {
    opts.onStep?.(`${target.volumeId}: would create a snapshot (${plan.decision.due ? plan.decision.reason : 'forced with --now'})`);
  } else {
    const created = await ec2.createSnapshot(target.volumeId, `ebs-failover ${target.unit} ${new Date(now).toISOString()}`, snapshotTags(target.unit, target.volumeId, now), { guard });
    result.created = created.snapshotId;
    existing.push(withManaged(created));
    // The new snapshot covers this slot: the next is due at the next slot.
    result.nextDueAt = plan.decision.slotStart + plan.decision.everyHours * 3_600_000;
    opts.onStep?.(`${target.volumeId}: created ${created.snapshotId} (${plan.decision.due ? plan.decision.reason : 'forced with --now'})`);
  }
  // The snapshot just created is pending: retention keeps it and counts only completed ones.
  const retention = planRetention(existing, retentionFor(target.schedule, opts.policy));
  result.kept = keptOf(retention);
  for (const doomed of retention.remove) {
    // A snapshot already gone counts as deleted (the EC2 layer treats InvalidSnapshot.NotFound as done).
    if (!dryRun) await ec2.deleteSnapshot(doomed.snapshotId, { guard });
    result.deleted.push(doomed.snapshotId);
    opts.onStep?.(`${target.volumeId}: ${dryRun ? 'would delete' : 'deleted'} ${doomed.snapshotId} (${new Date(doomed.startTime).toISOString()})`);
  }
}
