import { describe, expect, it } from 'vitest';
import { ServiceRecord, SnapshotSchedule } from '../keyspace/index.js';
import { planRetention } from './retention.js';
import { DEFAULT_RETENTION } from './retention.js';
import { describeSchedule, parseEvery, retentionFor, slotStart, snapshotDue, type ScheduleCandidate } from './schedule.js';

const H = 3_600_000;
/** 2026-03-10 14:37 UTC */
const NOW = Date.UTC(2026, 2, 10, 14, 37);
const T = (iso: string): number => Date.parse(`${iso}Z`);
const snap = (id: string, startIso: string, state = 'completed'): ScheduleCandidate => ({ snapshotId: id, state, startTime: T(startIso) });

describe('slotStart', () => {
  it.each([
    [1, '2026-03-10T14:00'],
    [2, '2026-03-10T14:00'],
    [3, '2026-03-10T12:00'],
    [4, '2026-03-10T12:00'],
    [6, '2026-03-10T12:00'],
    [8, '2026-03-10T08:00'],
    [12, '2026-03-10T12:00'],
    [24, '2026-03-10T00:00'],
  ])('every %ih: the slot of 14:37 starts at %s (UTC-aligned, same times every day)', (every, start) => {
    expect(slotStart(every, NOW)).toBe(T(start));
  });
  it('a slot starts exactly on its boundary', () => {
    expect(slotStart(1, T('2026-03-10T15:00'))).toBe(T('2026-03-10T15:00'));
    expect(slotStart(1, T('2026-03-10T15:00') - 1)).toBe(T('2026-03-10T14:00'));
  });
});

describe('snapshotDue', () => {
  type Row = [name: string, every: number, snaps: ScheduleCandidate[], due: boolean, nextDue: string, reason: RegExp];
  const rows: Row[] = [
    ['no snapshot at all: due', 1, [], true, '2026-03-10T14:00', /no completed snapshot yet/],
    ['only a failed snapshot: due (failures do not count)', 1, [snap('snap-e', '2026-03-10T14:05', 'error')], true, '2026-03-10T14:00', /no completed snapshot yet/],
    ['completed in this hour: not due until the next hour', 1, [snap('snap-a', '2026-03-10T14:02')], false, '2026-03-10T15:00', /snap-a already covers the 1h slot since 2026-03-10T14:00Z/],
    ['completed exactly at the slot start: not due', 1, [snap('snap-a', '2026-03-10T14:00')], false, '2026-03-10T15:00', /already covers/],
    ['completed one ms before the slot: due', 1, [snap('snap-a', '2026-03-10T14:00') ].map((s) => ({ ...s, startTime: s.startTime - 1 })), true, '2026-03-10T14:00', /no snapshot in the 1h slot since 2026-03-10T14:00Z \(last completed 2026-03-10T13:59Z\)/],
    ['completed last hour: due', 1, [snap('snap-a', '2026-03-10T13:55')], true, '2026-03-10T14:00', /last completed 2026-03-10T13:55Z/],
    ['6h: completed at 12:10 covers 12:00–18:00', 6, [snap('snap-a', '2026-03-10T12:10')], false, '2026-03-10T18:00', /6h slot since 2026-03-10T12:00Z/],
    ['6h: completed at 11:59 is the previous slot: due', 6, [snap('snap-a', '2026-03-10T11:59')], true, '2026-03-10T12:00', /no snapshot in the 6h slot/],
    ['24h: completed at 00:20 today: not due until midnight', 24, [snap('snap-a', '2026-03-10T00:20')], false, '2026-03-11T00:00', /24h slot since 2026-03-10T00:00Z/],
    ['24h: completed yesterday 23:50: due', 24, [snap('snap-a', '2026-03-09T23:50')], true, '2026-03-10T00:00', /last completed 2026-03-09T23:50Z/],
    ['pending in this slot: not due, next at the next slot', 1, [snap('snap-a', '2026-03-10T13:05'), snap('snap-p', '2026-03-10T14:01', 'pending')], false, '2026-03-10T15:00', /previous snapshot snap-p is still pending \(started 2026-03-10T14:01Z\)/],
    ['pending from an earlier slot: not due (EBS would queue), overdue since this slot', 1, [snap('snap-p', '2026-03-10T12:01', 'pending')], false, '2026-03-10T14:00', /previous snapshot snap-p is still pending \(started 2026-03-10T12:01Z\)/],
    ['pending wins over a failed one in the slot', 1, [snap('snap-e', '2026-03-10T14:03', 'error'), snap('snap-p', '2026-03-10T13:01', 'pending')], false, '2026-03-10T14:00', /snap-p/],
    ['a failed snapshot in the slot does not cover it', 1, [snap('snap-a', '2026-03-10T13:01'), snap('snap-e', '2026-03-10T14:03', 'error')], true, '2026-03-10T14:00', /last completed 2026-03-10T13:01Z/],
    ['a start time ahead of our clock (skew) covers the slot', 1, [snap('snap-a', '2026-03-10T14:38')], false, '2026-03-10T15:00', /already covers/],
  ];
  it.each(rows)('%s', (_name, every, snaps, due, nextDue, reason) => {
    const d = snapshotDue(every, snaps, NOW);
    expect(d.due).toBe(due);
    expect(d.nextDueAt).toBe(T(nextDue));
    expect(d.reason).toMatch(reason);
    expect(d.everyHours).toBe(every);
    expect(d.pendingSnapshotId).toBe(snaps.find((s) => s.state === 'pending')?.snapshotId ?? null);
  });

  it('reports the newest COMPLETED snapshot as the last one, whatever the order given', () => {
    const snaps = [snap('snap-1', '2026-03-10T10:00'), snap('snap-3', '2026-03-10T12:00', 'error'), snap('snap-2', '2026-03-10T11:00')];
    expect(snapshotDue(1, snaps, NOW).lastCompletedAt).toBe(T('2026-03-10T11:00'));
    expect(snapshotDue(1, [], NOW).lastCompletedAt).toBeNull();
  });

  it('over a simulated day of 15-minute timer runs, hourly makes exactly 24 snapshots, one per hour', () => {
    const made: ScheduleCandidate[] = [];
    const day = T('2026-03-10T00:00');
    for (let t = day + 3 * 60_000; t < day + 24 * H; t += 15 * 60_000) {
      if (snapshotDue(1, made, t).due) made.push({ snapshotId: `snap-${made.length}`, state: 'completed', startTime: t });
    }
    expect(made).toHaveLength(24);
    expect(new Set(made.map((s) => Math.floor((s.startTime - day) / H))).size).toBe(24);
  });
});

describe('retention of a scheduled service: keep the newest N completed', () => {
  const VOL = 'vol-0abc12345def67890';
  const hourly = (n: number, state = 'completed') => ({ snapshotId: `snap-${String(n).padStart(4, '0')}`, volumeId: VOL, state, startTime: T('2026-03-10T00:05') + n * H, managed: true });
  const policy = retentionFor({ everyHours: 1, keep: 2 }, DEFAULT_RETENTION);
  const plan = (snaps: ReturnType<typeof hourly>[]) => {
    const p = planRetention(snaps, policy);
    return { keep: p.keep.map((k) => k.snapshot.snapshotId).sort(), remove: p.remove.map((s) => s.snapshotId).sort() };
  };
  it('keep 2 of 5 completed: the 2 newest stay', () => {
    expect(plan([0, 1, 2, 3, 4].map((n) => hourly(n)))).toEqual({ keep: ['snap-0003', 'snap-0004'], remove: ['snap-0000', 'snap-0001', 'snap-0002'] });
  });
  it('exactly N: nothing removed', () => {
    expect(plan([hourly(0), hourly(1)]).remove).toEqual([]);
  });
  it('a pending one does not use the budget and is never removed', () => {
    expect(plan([hourly(0), hourly(1), hourly(2), hourly(3, 'pending')])).toEqual({ keep: ['snap-0001', 'snap-0002', 'snap-0003'], remove: ['snap-0000'] });
  });
  it('failed ones are never removed and use no budget', () => {
    expect(plan([hourly(0), hourly(1), hourly(2, 'error'), hourly(3)])).toEqual({ keep: ['snap-0001', 'snap-0002', 'snap-0003'], remove: ['snap-0000'] });
  });
  it('keep 1 keeps the newest completed, even behind a pending one', () => {
    const p = planRetention([hourly(0), hourly(1), hourly(2, 'pending')], retentionFor({ everyHours: 1, keep: 1 }, DEFAULT_RETENTION));
    expect(p.remove.map((s) => s.snapshotId)).toEqual(['snap-0000']);
    expect(p.keep.map((k) => [k.snapshot.snapshotId, k.reasons])).toEqual([['snap-0002', ['not-completed']], ['snap-0001', ['last']]]);
  });
  it('foreign snapshots are never removed and do not count', () => {
    const foreign = { ...hourly(9), snapshotId: 'snap-hand', managed: false };
    expect(plan([hourly(0), hourly(1), hourly(2), foreign])).toEqual({ keep: ['snap-0001', 'snap-0002', 'snap-hand'], remove: ['snap-0000'] });
  });
  it('no schedule: the global policy, unchanged', () => {
    expect(retentionFor(undefined, DEFAULT_RETENTION)).toBe(DEFAULT_RETENTION);
    expect(policy).toEqual({ keepLast: 2, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0 });
  });
});

describe('the schedule in the service record', () => {
  const base = { unit: 'postgres@vol-0abc12345def67890', volumeId: 'vol-0abc12345def67890', mountUnit: 'data-postgres.mount', mountPoint: '/data/postgres', metadataKey: 'postgres' };
  it('old records (no schedule) stay valid', () => {
    expect(ServiceRecord.parse(base).snapshot).toBeUndefined();
  });
  it.each([1, 2, 3, 4, 6, 8, 12, 24])('accepts every %ih', (h) => {
    expect(SnapshotSchedule.parse({ everyHours: h, keep: 24 })).toEqual({ everyHours: h, keep: 24 });
  });
  it.each([
    [{ everyHours: 0, keep: 1 }, /must be one of 1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h/],
    [{ everyHours: 5, keep: 1 }, /must be one of/],
    [{ everyHours: 48, keep: 1 }, /must be one of/],
    [{ everyHours: 1.5, keep: 1 }, /whole hours/],
    [{ everyHours: 1, keep: 0 }, /keep must be at least 1/],
    [{ everyHours: 1, keep: 1001 }, /keep must be at most 1000/],
    [{ everyHours: 1, keep: 2.5 }, /keep must be a whole number/],
    [{ everyHours: 1 }, /keep/],
  ])('rejects %j with a clear message', (value, message) => {
    const parsed = SnapshotSchedule.safeParse(value);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')).toMatch(message);
  });
  it('a malformed schedule written by hand reads as no schedule: the service itself stays managed', () => {
    const record = ServiceRecord.parse({ ...base, snapshot: { everyHours: 5, keep: -1 } });
    expect(record.unit).toBe(base.unit);
    expect(record.snapshot).toBeUndefined();
  });
  it('describes itself', () => {
    expect(describeSchedule({ everyHours: 6, keep: 28 })).toBe('every 6h, keep 28');
    expect(describeSchedule(undefined)).toBe('default (daily, global retention)');
  });
});

describe('parseEvery', () => {
  it.each([
    ['1h', 1], ['6h', 6], ['24h', 24], ['1d', 24], ['12 hours', 12], ['3', 3], ['2H', 2], ['5h', 5], ['0h', 0],
  ])('%s → %i hours (allowed or not is the schema\'s call)', (text, hours) => {
    expect(parseEvery(text)).toBe(hours);
  });
  it.each(['', 'hourly', '1.5h', '-1h', '30m', '1h30m', 'h'])('%j is not a duration', (text) => {
    expect(parseEvery(text)).toBeNull();
  });
});
