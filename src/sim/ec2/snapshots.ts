import { getVolume, requireVolumeId } from './attachments.js';
import { invalidParameter, snapshotNotFound } from './errors.js';
import { newResourceId, type SimSnapshot } from './model.js';
import { SnapshotId } from '../../ec2/ids.js';
import type { World } from './world.js';

/** CreateSnapshot: pending (progress rising) → completed after `snapshotMs`. */
export function createSnapshot(world: World, volumeId: string, description: string, tags: Record<string, string>): SimSnapshot {
  const volume = getVolume(world, requireVolumeId(volumeId));
  const now = world.clock.now();
  const snapshotMs = world.delay(world.latencies.snapshotMs);
  const snapshot: SimSnapshot = {
    snapshotId: newResourceId('snap'),
    volumeId,
    volumeSize: volume.sizeGiB,
    description,
    state: 'pending',
    startTime: now,
    completeAt: now + snapshotMs * world.timeScale(),
    tags: { ...tags },
  };
  world.snapshots.set(snapshot.snapshotId, snapshot);
  world.clock.schedule(snapshotMs, () => {
    snapshot.state = 'completed';
  });
  return snapshot;
}

/** Progress as EC2 prints it ("37%"), from the elapsed share of the snapshot time. */
export function snapshotProgress(world: World, snapshot: SimSnapshot): string {
  if (snapshot.state === 'completed') return '100%';
  const total = snapshot.completeAt - snapshot.startTime;
  if (total <= 0) return '99%';
  // Never 100% while still pending: EC2 flips state and progress together.
  return `${Math.min(99, Math.floor(((world.clock.now() - snapshot.startTime) / total) * 100))}%`;
}

export function requireSnapshotId(snapshotId: string | undefined): string {
  if (snapshotId === undefined || !SnapshotId.safeParse(snapshotId).success) {
    throw invalidParameter(`Invalid id: "${snapshotId ?? ''}" (expecting "snap-...")`);
  }
  return snapshotId;
}

export function deleteSnapshot(world: World, snapshotId: string): void {
  requireSnapshotId(snapshotId);
  if (!world.snapshots.delete(snapshotId)) throw snapshotNotFound(snapshotId);
}
