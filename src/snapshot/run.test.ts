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

describe('runSnapshots with per-service schedules', () => {
  const HOUR_MS = 3_600_000;
  /** Counts every EC2 call and records the listing filters, on top of fakeEc2. */
  function counted(initial: SnapshotInfo[]) {
    const fake = fakeEc2(initial);
    const calls: string[] = [];
    const filters: unknown[] = [];
    const ec2: Ec2Port = {
      ...fake.ec2,
      listSnapshots: async (filter, o) => {
        calls.push('DescribeSnapshots');
        filters.push(filter);
        return fake.ec2.listSnapshots(filter, o);
      },
      createSnapshot: async (...args) => (calls.push('CreateSnapshot'), fake.ec2.createSnapshot(...args)),
      deleteSnapshot: async (...args) => (calls.push('DeleteSnapshot'), fake.ec2.deleteSnapshot(...args)),
    };
    return { ...fake, ec2, calls, filters };
  }
  const hoursAgo = (h: number, extra: Partial<SnapshotInfo> = {}): SnapshotInfo => nightly(h / 24, { snapshotId: `snap-${String(5000 + h).padStart(8, '0')}`, ...extra });
  const OTHER = 'vol-0bbb12345def67890';
  const HOURLY = { unit: UNIT, volumeId: VOL, schedule: { everyHours: 1, keep: 2 } };
  const DAILY = { unit: `pg@${OTHER}`, volumeId: OTHER };
  const otherToday: SnapshotInfo = { ...nightly(0), snapshotId: 'snap-0bbb0000', volumeId: OTHER, startTime: NOW - HOUR_MS, tags: snapshotTags(`pg@${OTHER}`, OTHER, NOW - HOUR_MS) };
  const lockCounter = () => {
    const locked: string[] = [];
    const lockVolume: LockVolume = async (volumeId) => (locked.push(volumeId), { release: async () => undefined });
    return { locked, lockVolume };
  };

  it('nothing due: one DescribeSnapshots filtered by our tag, no lock, no mutating call', async () => {
    // NOW is 02:00 UTC: the hourly volume has one from 02:00 (this slot), the daily one from 01:00 (today).
    const fake = counted([hoursAgo(0), hoursAgo(1), otherToday]);
    const { locked, lockVolume } = lockCounter();
    const results = await runSnapshots({ ec2: fake.ec2, targets: [HOURLY, DAILY], policy: retentionPolicy({}), lockVolume, dryRun: false, now: () => NOW + 10 * 60_000 });
    expect(fake.calls).toEqual(['DescribeSnapshots']);
    expect(fake.filters).toEqual([{ tags: { [TAG_VOLUME]: '*' }, ownerSelf: true }]);
    expect(locked).toEqual([]);
    expect(results.map((r) => [r.due, r.nextDueAt, r.schedule])).toEqual([
      [false, NOW + HOUR_MS, 'every 1h, keep 2'],
      [false, NOW - 2 * HOUR_MS + 24 * HOUR_MS, 'default (daily, global retention)'],
    ]);
    expect(results[0]?.skipped).toMatch(/^not due: snap-\w+ already covers the 1h slot since/);
  });

  it('the hourly one due: created under its lock and pruned to keep 2; the daily one untouched', async () => {
    const fake = counted([hoursAgo(1), hoursAgo(2), hoursAgo(3), otherToday]);
    const { locked, lockVolume } = lockCounter();
    const [hourly, daily] = await runSnapshots({ ec2: fake.ec2, targets: [HOURLY, DAILY], policy: retentionPolicy({ keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }), lockVolume, dryRun: false, now: () => NOW });
    expect(locked).toEqual([VOL]);
    expect(hourly?.due).toBe(true);
    expect(hourly?.created).toMatch(/^snap-/);
    // keep 2 counts completed ones: 1 and 2 hours ago stay, 3 hours ago goes; the new pending one stays.
    expect(hourly?.deleted).toEqual([hoursAgo(3).snapshotId]);
    expect(hourly?.nextDueAt).toBe(NOW + HOUR_MS);
    expect(daily).toMatchObject({ due: false, created: null, deleted: [] });
    expect(fake.snapshots.has(otherToday.snapshotId)).toBe(true);
    expect(fake.calls).toEqual(['DescribeSnapshots', 'DescribeSnapshots', 'CreateSnapshot', 'DeleteSnapshot']);
  });

  it('not due but over its retention (a snapshot completed since): prunes under the lock, creates nothing', async () => {
    const fake = counted([hoursAgo(0), hoursAgo(1), hoursAgo(2)]);
    const { locked, lockVolume } = lockCounter();
    const [hourly] = await runSnapshots({ ec2: fake.ec2, targets: [HOURLY], policy: retentionPolicy({}), lockVolume, dryRun: false, now: () => NOW + 60_000 });
    expect(locked).toEqual([VOL]);
    expect(hourly).toMatchObject({ created: null, deleted: [hoursAgo(2).snapshotId] });
    expect(fake.calls).not.toContain('CreateSnapshot');
  });

  it('decides again under the lock: a snapshot made by an overlapping run meanwhile means none now', async () => {
    const fake = counted([hoursAgo(1)]);
    // The other run creates its snapshot between our listing and our lock.
    const lockVolume: LockVolume = async (volumeId) => {
      fake.snapshots.set('snap-0other00', { ...hoursAgo(0), snapshotId: 'snap-0other00', state: 'pending', progress: '3%', volumeId });
      return { release: async () => undefined };
    };
    const [hourly] = await runSnapshots({ ec2: fake.ec2, targets: [HOURLY], policy: retentionPolicy({}), lockVolume, dryRun: false, now: () => NOW });
    expect(hourly).toMatchObject({ created: null, skipped: 'previous snapshot snap-0other00 is still pending (3%)' });
    expect(fake.calls).not.toContain('CreateSnapshot');
  });

  it('--now (force) snapshots a volume that is not due, but still never behind a pending one', async () => {
    const fake = counted([hoursAgo(0), otherToday, { ...hoursAgo(0), snapshotId: 'snap-0bbbpend', volumeId: OTHER, state: 'pending', progress: '50%', tags: snapshotTags(DAILY.unit, OTHER, NOW) }]);
    const { lockVolume } = lockCounter();
    const [hourly, daily] = await runSnapshots({ ec2: fake.ec2, targets: [HOURLY, DAILY], policy: retentionPolicy({}), force: true, lockVolume, dryRun: false, now: () => NOW + 60_000 });
    expect(hourly?.due).toBe(false);
    expect(hourly?.created).toMatch(/^snap-/);
    expect(daily).toMatchObject({ created: null, skipped: expect.stringMatching(/^previous snapshot snap-0bbbpend is still pending/) });
  });
});
