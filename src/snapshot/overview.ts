import type { SnapshotSchedule } from '../keyspace/index.js';
import { describeSchedule, everyHoursOf, snapshotDue } from './schedule.js';
import { isManagedSnapshot } from './tags.js';

/** One service's snapshot schedule and where it stands, for `status` and `service show`. */
export interface SnapshotOverview {
  /** `every 1h, keep 24` or `default (daily, global retention)` */
  schedule: string;
  everyHours: number;
  /** The service's own keep count; null: the snapshot job's global --keep-* flags. */
  keep: number | null;
  /** null when EC2 could not be asked (see `error`). */
  lastCompletedAt: number | null;
  lastCompletedId: string | null;
  /** When the next snapshot is due (a time in the past: due now, the next timer run takes it). */
  nextDueAt: number | null;
  due: boolean | null;
  pendingSnapshotId: string | null;
  /** Why the snapshot fields are null: EC2 unavailable or not configured. */
  error: string | null;
}

/** What the overview needs of a snapshot (SnapshotInfo fits). */
export interface OverviewSnapshot {
  snapshotId: string;
  volumeId: string;
  state: string;
  startTime: number;
  tags: Record<string, string>;
}

/**
 * Pure: the overview of one service from the snapshots EC2 listed (any volumes: this one's managed
 * ones are picked here), or from the error that kept EC2 from listing them.
 */
export function snapshotOverview(service: { volumeId: string; snapshot?: SnapshotSchedule | undefined }, listed: readonly OverviewSnapshot[] | { error: string }, now: number): SnapshotOverview {
  const base = { schedule: describeSchedule(service.snapshot), everyHours: everyHoursOf(service.snapshot), keep: service.snapshot?.keep ?? null };
  if (!Array.isArray(listed)) {
    return { ...base, lastCompletedAt: null, lastCompletedId: null, nextDueAt: null, due: null, pendingSnapshotId: null, error: (listed as { error: string }).error };
  }
  const ours = listed.filter((s) => s.volumeId === service.volumeId && isManagedSnapshot(s.tags, service.volumeId));
  const d = snapshotDue(base.everyHours, ours, now);
  const last = ours.filter((s) => s.state === 'completed').sort((a, b) => b.startTime - a.startTime)[0];
  return { ...base, lastCompletedAt: d.lastCompletedAt, lastCompletedId: last?.snapshotId ?? null, nextDueAt: d.nextDueAt, due: d.due, pendingSnapshotId: d.pendingSnapshotId, error: null };
}

/**
 * `every 1h, keep 24; last 12m ago; next in 48m` — `formatDuration` comes from the CLI so that this
 * module stays free of CLI imports.
 */
export function renderOverview(o: SnapshotOverview, now: number, formatDuration: (ms: number) => string): string {
  if (o.error !== null) return `${o.schedule}; snapshots unknown (${o.error})`;
  const last = o.lastCompletedAt === null ? 'none completed yet' : `last ${formatDuration(now - o.lastCompletedAt)} ago`;
  let next: string;
  if (o.nextDueAt === null) next = 'next unknown';
  else if (o.pendingSnapshotId !== null && o.nextDueAt <= now) next = `next due now, after pending ${o.pendingSnapshotId}`;
  else if (o.nextDueAt <= now) next = 'due now (next timer run)';
  else next = `next in ${formatDuration(o.nextDueAt - now)} (${new Date(o.nextDueAt).toISOString().slice(0, 16)}Z)`;
  return `${o.schedule}; ${last}; ${next}`;
}
