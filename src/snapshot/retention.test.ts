import { describe, expect, it } from 'vitest';
import { dayBucket, isoWeekBucket, planRetention, retentionPolicy, type RetentionCandidate } from './retention.js';

const DAY_MS = 86_400_000;
const VOLUME = 'vol-0abc12345def67890';

/** One nightly snapshot (02:00 UTC) for every day of 2025, all completed and ours. */
function yearOfNightlies(volumeId = VOLUME): RetentionCandidate[] {
  const out: RetentionCandidate[] = [];
  for (let t = Date.UTC(2025, 0, 1, 2); t <= Date.UTC(2025, 11, 31, 2); t += DAY_MS) {
    out.push({ snapshotId: `snap-${dayBucket(t)}`, volumeId, state: 'completed', startTime: t, managed: true });
  }
  return out;
}

function keptDays(snapshots: RetentionCandidate[], policy = retentionPolicy({})): string[] {
  return planRetention(snapshots, policy)
    .keep.map((k) => dayBucket(k.snapshot.startTime))
    .sort();
}

describe('ISO week buckets', () => {
  it.each([
    ['2025-12-31', '2026-W01'], // Wednesday before the first Thursday of 2026
    ['2025-12-28', '2025-W52'], // Sunday ends week 52
    ['2025-12-29', '2026-W01'], // Monday starts it
    ['2021-01-03', '2020-W53'], // a 53-week year
    ['2025-01-01', '2025-W01'],
  ])('%s is in %s', (day, week) => {
    expect(isoWeekBucket(Date.parse(`${day}T12:00:00Z`))).toBe(week);
  });
});

describe('planRetention over a year of nightly snapshots', () => {
  it('keeps exactly daily 7 / weekly 4 / monthly 6 as restic counts them', () => {
    expect(keptDays(yearOfNightlies())).toEqual([
      '2025-07-31', '2025-08-31', '2025-09-30', '2025-10-31', '2025-11-30', // monthly (Dec counted by Dec 31)
      '2025-12-14', '2025-12-21', '2025-12-28', // weekly (W50..W52; 2026-W01 counted by Dec 31)
      '2025-12-25', '2025-12-26', '2025-12-27', '2025-12-29', '2025-12-30', '2025-12-31', // daily
    ].sort());
  });

  it('records why each snapshot is kept and removes the rest', () => {
    const all = yearOfNightlies();
    const plan = planRetention(all, retentionPolicy({}));
    expect(plan.keep.length + plan.remove.length).toBe(365);
    expect(plan.remove).toHaveLength(365 - 14);
    const newest = plan.keep.find((k) => dayBucket(k.snapshot.startTime) === '2025-12-31');
    expect(newest?.reasons).toEqual(['daily', 'weekly', 'monthly']);
  });

  it('counts only days that have snapshots (gaps do not use budget)', () => {
    // Only every third day has a snapshot: 7 dailies reach back 21 days.
    const sparse = yearOfNightlies().filter((_s, i) => (364 - i) % 3 === 0);
    const plan = planRetention(sparse, retentionPolicy({ keepDaily: 7, keepWeekly: 0, keepMonthly: 0 }));
    expect(plan.keep.map((k) => dayBucket(k.snapshot.startTime))).toEqual([
      '2025-12-31', '2025-12-28', '2025-12-25', '2025-12-22', '2025-12-19', '2025-12-16', '2025-12-13',
    ]);
  });

  it('keeps the newest of several snapshots in one day', () => {
    const base = Date.UTC(2025, 5, 1, 1);
    const snaps = [0, 1, 2].map((h) => ({ snapshotId: `snap-0000000${h}`, volumeId: VOLUME, state: 'completed', startTime: base + h * 3_600_000, managed: true }));
    const plan = planRetention(snaps, retentionPolicy({ keepDaily: 1, keepWeekly: 0, keepMonthly: 0 }));
    expect(plan.keep.map((k) => k.snapshot.snapshotId)).toEqual(['snap-00000002']);
  });

  it('never deletes the newest completed snapshot, even with an all-zero policy', () => {
    const plan = planRetention(yearOfNightlies(), retentionPolicy({ keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }));
    expect(plan.keep).toEqual([{ snapshot: expect.objectContaining({ snapshotId: 'snap-2025-12-31' }), reasons: ['newest-completed'] }]);
  });

  it('never deletes pending snapshots, and the newest completed is kept behind a pending one', () => {
    const all = yearOfNightlies();
    const pending: RetentionCandidate = { snapshotId: 'snap-pending01', volumeId: VOLUME, state: 'pending', startTime: Date.UTC(2026, 0, 1, 2), managed: true };
    const failed: RetentionCandidate = { snapshotId: 'snap-error0001', volumeId: VOLUME, state: 'error', startTime: Date.UTC(2025, 2, 3, 5), managed: true };
    const plan = planRetention([...all, pending, failed], retentionPolicy({ keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }));
    const kept = plan.keep.map((k) => [k.snapshot.snapshotId, k.reasons]);
    expect(kept).toEqual([
      ['snap-pending01', ['not-completed']],
      ['snap-2025-12-31', ['newest-completed']],
      ['snap-error0001', ['not-completed']],
    ]);
  });

  it('never deletes foreign (untagged) snapshots and they use no budget', () => {
    const all = yearOfNightlies();
    const foreign = all.filter((_s, i) => i % 2 === 1).map((s) => ({ ...s, snapshotId: `${s.snapshotId}-x`, managed: false, startTime: s.startTime + 3_600_000 }));
    const plan = planRetention([...all, ...foreign], retentionPolicy({}));
    expect(plan.remove.every((s) => s.managed)).toBe(true);
    expect(plan.keep.filter((k) => !k.snapshot.managed)).toHaveLength(foreign.length);
    // Our own survivors are exactly those of the run without foreign snapshots.
    const oursKept = plan.keep.filter((k) => k.snapshot.managed).map((k) => dayBucket(k.snapshot.startTime)).sort();
    expect(oursKept).toEqual(keptDays(all));
  });

  it('applies the policy per volume', () => {
    const other = 'vol-0fff12345def67890';
    const plan = planRetention([...yearOfNightlies(), ...yearOfNightlies(other)], retentionPolicy({}));
    expect(plan.keep.filter((k) => k.snapshot.volumeId === other)).toHaveLength(14);
    expect(plan.keep.filter((k) => k.snapshot.volumeId === VOLUME)).toHaveLength(14);
  });

  it('keep-last and keep-yearly extend the kept set', () => {
    const plan = planRetention(yearOfNightlies(), retentionPolicy({ keepLast: 10, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 2 }));
    expect(plan.keep).toHaveLength(10);
    expect(plan.keep[0]?.reasons).toEqual(['last', 'yearly']);
  });

  it('keeps defaults for counts given as undefined (flags not passed)', () => {
    expect(retentionPolicy({ keepLast: undefined, keepDaily: 3 })).toEqual({ keepLast: 0, keepDaily: 3, keepWeekly: 4, keepMonthly: 6, keepYearly: 0 });
  });

  it('rejects negative or fractional counts', () => {
    expect(() => retentionPolicy({ keepDaily: -1 })).toThrow(/keepDaily/);
    expect(() => retentionPolicy({ keepWeekly: 1.5 })).toThrow(/keepWeekly/);
  });
});
