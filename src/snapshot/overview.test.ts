import { describe, expect, it } from 'vitest';
import { renderOverview, snapshotOverview, type OverviewSnapshot } from './overview.js';
import { snapshotTags } from './tags.js';

const VOL = 'vol-0abc12345def67890';
const UNIT = `postgres@${VOL}`;
const T = (iso: string): number => Date.parse(`${iso}Z`);
const NOW = T('2026-03-10T14:37');
const snap = (id: string, at: string, state = 'completed', extra: Partial<OverviewSnapshot> = {}): OverviewSnapshot => ({ snapshotId: id, volumeId: VOL, state, startTime: T(at), tags: snapshotTags(UNIT, VOL, T(at)), ...extra });
/** Like the CLI's formatDuration, enough for these assertions. */
const fmt = (ms: number): string => `${Math.round(ms / 60_000)}min`;

describe('snapshotOverview', () => {
  it('a scheduled service: its schedule, newest completed, next slot', () => {
    const o = snapshotOverview({ volumeId: VOL, snapshot: { everyHours: 1, keep: 24 } }, [snap('snap-old', '2026-03-10T13:02'), snap('snap-new', '2026-03-10T14:03')], NOW);
    expect(o).toEqual({ schedule: 'every 1h, keep 24', everyHours: 1, keep: 24, lastCompletedAt: T('2026-03-10T14:03'), lastCompletedId: 'snap-new', nextDueAt: T('2026-03-10T15:00'), due: false, pendingSnapshotId: null, error: null });
    expect(renderOverview(o, NOW, fmt)).toBe('every 1h, keep 24; last 34min ago; next in 23min (2026-03-10T15:00Z)');
  });
  it('a service without a schedule: daily default, global retention', () => {
    const o = snapshotOverview({ volumeId: VOL }, [snap('snap-a', '2026-03-09T00:10')], NOW);
    expect(o).toMatchObject({ schedule: 'default (daily, global retention)', everyHours: 24, keep: null, due: true, nextDueAt: T('2026-03-10T00:00') });
    expect(renderOverview(o, NOW, fmt)).toBe('default (daily, global retention); last 2307min ago; due now (next timer run)');
  });
  it('ignores foreign snapshots and other volumes', () => {
    const foreign = snap('snap-hand', '2026-03-10T14:10', 'completed', { tags: { Name: 'by hand' } });
    const other = snap('snap-other', '2026-03-10T14:10', 'completed', { volumeId: 'vol-0fff12345def67890' });
    const o = snapshotOverview({ volumeId: VOL, snapshot: { everyHours: 1, keep: 2 } }, [foreign, other], NOW);
    expect(o).toMatchObject({ lastCompletedAt: null, lastCompletedId: null, due: true });
    expect(renderOverview(o, NOW, fmt)).toBe('every 1h, keep 2; none completed yet; due now (next timer run)');
  });
  it('overdue behind a pending snapshot says so', () => {
    const o = snapshotOverview({ volumeId: VOL, snapshot: { everyHours: 1, keep: 2 } }, [snap('snap-p', '2026-03-10T13:01', 'pending')], NOW);
    expect(renderOverview(o, NOW, fmt)).toBe('every 1h, keep 2; none completed yet; next due now, after pending snap-p');
  });
  it('EC2 unavailable: the schedule from etcd, snapshot fields null with the reason', () => {
    const o = snapshotOverview({ volumeId: VOL, snapshot: { everyHours: 6, keep: 4 } }, { error: 'EC2 unavailable: connect ECONNREFUSED' }, NOW);
    expect(o).toEqual({ schedule: 'every 6h, keep 4', everyHours: 6, keep: 4, lastCompletedAt: null, lastCompletedId: null, nextDueAt: null, due: null, pendingSnapshotId: null, error: 'EC2 unavailable: connect ECONNREFUSED' });
    expect(renderOverview(o, NOW, fmt)).toBe('every 6h, keep 4; snapshots unknown (EC2 unavailable: connect ECONNREFUSED)');
  });
});
