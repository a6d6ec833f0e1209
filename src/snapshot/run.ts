import type { Ec2Port, MutationGuard, SnapshotInfo } from '../ec2/types.js';
import { planRetention, type KeepReason, type RetentionPolicy } from './retention.js';
import { isManagedSnapshot, snapshotTags } from './tags.js';

export interface SnapshotTarget {
  unit: string;
  volumeId: string;
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
}

export interface RunSnapshotsOptions {
  ec2: Ec2Port;
  targets: SnapshotTarget[];
  policy: RetentionPolicy;
  lockVolume: LockVolume;
  dryRun: boolean;
  now: () => number;
  /** progress line per step, for people */
  onStep?: (line: string) => void;
}

function isLock(value: HeldLock | { busy: string }): value is HeldLock {
  return 'release' in value;
}

/**
 * Snapshot each target (skipping one whose previous snapshot is still pending), then prune that
 * volume's snapshots by `policy`. One volume's failure is recorded and the others go on.
 */
export async function runSnapshots(opts: RunSnapshotsOptions): Promise<VolumeSnapshotResult[]> {
  const results: VolumeSnapshotResult[] = [];
  for (const target of opts.targets) {
    const result: VolumeSnapshotResult = { ...target, created: null, skipped: null, deleted: [], kept: [], error: null };
    results.push(result);
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

async function snapshotOne(opts: RunSnapshotsOptions, target: SnapshotTarget, result: VolumeSnapshotResult, guard: MutationGuard | undefined): Promise<void> {
  const { ec2, dryRun } = opts;
  const existing: SnapshotInfo[] = await ec2.listSnapshots({ volumeIds: [target.volumeId], ownerSelf: true });
  const pending = existing.find((s) => s.state === 'pending' && isManagedSnapshot(s.tags, target.volumeId));
  if (pending) {
    // EBS snapshots are incremental and serialised per volume; a second one would only queue.
    result.skipped = `previous snapshot ${pending.snapshotId} is still pending (${pending.progress})`;
    opts.onStep?.(`${target.volumeId}: not snapshotting, ${result.skipped}`);
  } else if (dryRun) {
    opts.onStep?.(`${target.volumeId}: would create a snapshot`);
  } else {
    const now = opts.now();
    const created = await ec2.createSnapshot(target.volumeId, `ebs-failover ${target.unit} ${new Date(now).toISOString()}`, snapshotTags(target.unit, target.volumeId, now), { guard });
    result.created = created.snapshotId;
    existing.push(created);
    opts.onStep?.(`${target.volumeId}: created ${created.snapshotId}`);
  }

  const plan = planRetention(
    existing.map((s) => ({ ...s, managed: isManagedSnapshot(s.tags, target.volumeId) })),
    opts.policy,
  );
  result.kept = plan.keep.map((k) => ({ snapshotId: k.snapshot.snapshotId, startTime: k.snapshot.startTime, state: k.snapshot.state, reasons: k.reasons }));
  for (const doomed of plan.remove) {
    // A snapshot already gone counts as deleted (the EC2 layer treats InvalidSnapshot.NotFound as done).
    if (!dryRun) await ec2.deleteSnapshot(doomed.snapshotId, { guard });
    result.deleted.push(doomed.snapshotId);
    opts.onStep?.(`${target.volumeId}: ${dryRun ? 'would delete' : 'deleted'} ${doomed.snapshotId} (${new Date(doomed.startTime).toISOString()})`);
  }
}
