import { describe, expect, it } from 'vitest';
import type { Ec2Port, SnapshotInfo } from '../ec2/types.js';
import { lockGuard } from './guard.js';
import { retentionPolicy } from './retention.js';
import { runSnapshots, type LockVolume } from './run.js';
import { snapshotTags, TAG_VOLUME } from './tags.js';

const VOL = 'vol-0abc12345def67890';
const UNIT = `postgres@${VOL}`;
const DAY_MS = 86_400_000;
const NOW = Date.UTC(2026, 0, 10, 2);

/** Snapshot half of an Ec2Port kept in a Map; the rest is never called by runSnapshots. */
function fakeEc2(initial: SnapshotInfo[]): { ec2: Ec2Port; snapshots: Map<string, SnapshotInfo>; deleted: string[]; guards: (string | undefined)[] } {
  const snapshots = new Map(initial.map((s) => [s.snapshotId, s]));
  const deleted: string[] = [];
  /** `<caller>/<term>` of the guard each mutating call came with. */
  const guards: (string | undefined)[] = [];
  let next = 1;
  const unused = (): never => {
    throw new Error('not used by snapshots');
  };
  const ec2: Ec2Port = {
    describeVolumes: unused, describeInstances: unused, findInstances: unused, attachVolume: unused, detachVolume: unused,
    waitAttached: unused, waitAvailable: unused, detachAndWait: unused, stopInstance: unused, tagResources: unused, untagResources: unused,
    listSnapshots: async ({ volumeIds }) => [...snapshots.values()].filter((s) => !volumeIds || volumeIds.includes(s.volumeId)),
    createSnapshot: async (volumeId, description, tags, o) => {
      guards.push(o?.guard && `${o.guard.caller}/${o.guard.term}`);
      const s: SnapshotInfo = { snapshotId: `snap-0000${String(next++).padStart(4, '0')}`, volumeId, state: 'pending', startTime: NOW, progress: '0%', description, tags };
      snapshots.set(s.snapshotId, s);
      return s;
    },
    deleteSnapshot: async (snapshotId, o) => {
      guards.push(o?.guard && `${o.guard.caller}/${o.guard.term}`);
      deleted.push(snapshotId);
      snapshots.delete(snapshotId);
    },
  };
  return { ec2, snapshots, deleted, guards };
}

function nightly(daysAgo: number, extra: Partial<SnapshotInfo> = {}): SnapshotInfo {
  const startTime = NOW - daysAgo * DAY_MS;
  return { snapshotId: `snap-${String(1000 + daysAgo).padStart(8, '0')}`, volumeId: VOL, state: 'completed', startTime, progress: '100%', description: '', tags: snapshotTags(UNIT, VOL, startTime), ...extra };
}

const freeLock: LockVolume = async () => ({ release: async () => undefined });

describe('runSnapshots', () => {
  it('sends CreateSnapshot and DeleteSnapshot through the EC2 gate with the volume lock as the guard', async () => {
    const fake = fakeEc2([nightly(1), nightly(2)]);
    const lock = { owner: 'snapshot:7', token: '99', assertHeld: () => undefined, leaseRemainingMs: () => 10_000 };
    const locked: LockVolume = async () => ({ release: async () => undefined, guard: lockGuard(lock) });
    await runSnapshots({ ec2: fake.ec2, targets: [{ unit: UNIT, volumeId: VOL }], policy: retentionPolicy({ keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }), lockVolume: locked, dryRun: false, now: () => NOW });
    expect(fake.deleted).toEqual([nightly(2).snapshotId]);
    expect(fake.guards).toEqual(['snapshot:7/99', 'snapshot:7/99']);
  });

  it('creates a tagged snapshot and prunes by retention', async () => {
    const fake = fakeEc2(Array.from({ length: 30 }, (_v, i) => nightly(i + 1)));
    const [result] = await runSnapshots({ ec2: fake.ec2, targets: [{ unit: UNIT, volumeId: VOL }], policy: retentionPolicy({ keepDaily: 3, keepWeekly: 0, keepMonthly: 0 }), lockVolume: freeLock, dryRun: false, now: () => NOW });
    expect(result?.created).toMatch(/^snap-/);
    const created = fake.snapshots.get(result?.created ?? '');
    expect(created?.tags).toEqual({ 'ebs-failover:service': UNIT, 'ebs-failover:volume': VOL, 'ebs-failover:time': new Date(NOW).toISOString() });
    // The new one is pending, so 3 dailies are counted over the completed ones: 1, 2, 3 days ago.
    expect([...fake.snapshots.keys()].sort()).toEqual([result?.created, nightly(1).snapshotId, nightly(2).snapshotId, nightly(3).snapshotId].sort());
    expect(fake.deleted).toHaveLength(27);
  });

  it('skips creating while the previous snapshot is pending, and still never deletes it', async () => {
    const fake = fakeEc2([nightly(0, { state: 'pending', progress: '40%' }), nightly(1), nightly(2)]);
    const [result] = await runSnapshots({ ec2: fake.ec2, targets: [{ unit: UNIT, volumeId: VOL }], policy: retentionPolicy({ keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }), lockVolume: freeLock, dryRun: false, now: () => NOW });
    expect(result?.created).toBeNull();
    expect(result?.skipped).toMatch(/still pending \(40%\)/);
    expect(fake.deleted).toEqual([nightly(2).snapshotId]); // pending kept, newest completed kept
  });

  it('dry run creates and deletes nothing but reports what would go', async () => {
    const fake = fakeEc2([nightly(1), nightly(2), nightly(3)]);
    const lines: string[] = [];
    const [result] = await runSnapshots({ ec2: fake.ec2, targets: [{ unit: UNIT, volumeId: VOL }], policy: retentionPolicy({ keepDaily: 1, keepWeekly: 0, keepMonthly: 0 }), lockVolume: freeLock, dryRun: true, now: () => NOW, onStep: (l) => lines.push(l) });
    expect(fake.snapshots.size).toBe(3);
    expect(result?.deleted).toEqual([nightly(2).snapshotId, nightly(3).snapshotId]);
    expect(lines.some((l) => l.includes('would delete'))).toBe(true);
  });

  it('never deletes foreign snapshots', async () => {
    const foreign = nightly(5, { snapshotId: 'snap-0f0f0f0f', tags: { Name: 'manual backup' } });
    const copied = nightly(6, { snapshotId: 'snap-0e0e0e0e', tags: { [TAG_VOLUME]: 'vol-0ffffffffffffffff', 'ebs-failover:service': 'x@vol-0ffffffffffffffff' } });
    const fake = fakeEc2([nightly(1), foreign, copied]);
    await runSnapshots({ ec2: fake.ec2, targets: [{ unit: UNIT, volumeId: VOL }], policy: retentionPolicy({ keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }), lockVolume: freeLock, dryRun: false, now: () => NOW });
    expect(fake.deleted).toEqual([]); // ours is the newest completed: kept
    expect(fake.snapshots.has('snap-0f0f0f0f')).toBe(true);
    expect(fake.snapshots.has('snap-0e0e0e0e')).toBe(true);
  });

  it('skips a volume whose lock is busy, touching nothing, and releases locks it took', async () => {
    const fake = fakeEc2([nightly(1), nightly(2)]);
    const released: string[] = [];
    const other = 'vol-0bbb12345def67890';
    const lockVolume: LockVolume = async (volumeId) => (volumeId === VOL ? { busy: 'lock held by a failover (waited 0s)' } : { release: async () => void released.push(volumeId) });
    const results = await runSnapshots({ ec2: fake.ec2, targets: [{ unit: UNIT, volumeId: VOL }, { unit: `pg@${other}`, volumeId: other }], policy: retentionPolicy({}), lockVolume, dryRun: false, now: () => NOW });
    expect(results[0]).toMatchObject({ skipped: 'lock held by a failover (waited 0s)', created: null, deleted: [] });
    expect(results[1]?.created).toMatch(/^snap-/);
    expect(released).toEqual([other]);
  });
});
