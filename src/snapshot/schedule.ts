import type { SnapshotSchedule } from '../keyspace/index.js';
import { retentionPolicy, type RetentionPolicy } from './retention.js';

/**
 * When a volume is due for a snapshot. A schedule of every N hours (N divides 24) cuts time into
 * UTC-aligned slots: hourly slots start on the hour, 6-hourly ones at 00:00, 06:00, 12:00 and 18:00
 * UTC, daily ones at 00:00 UTC. A volume is due when no snapshot of ours (completed, or still
 * pending) started in the current slot. Slots, not "N hours since the last one": the timer fires
 * every 15 minutes with a random delay, and counting from the last snapshot would push each one a
 * little later than the one before (hourly would drift to ~70 minutes); slots keep the times fixed,
 * as DLM's "every N hours starting at" does.
 *
 * A pending snapshot means not due, whatever its slot: EBS runs one snapshot of a volume at a time,
 * so a second one would only queue behind it. A failed (`error`) snapshot does not count: the slot
 * is retried at the next run.
 */

/** Services without a schedule: one snapshot per UTC day, pruned by the job's global retention. */
export const DEFAULT_EVERY_HOURS = 24;
const HOUR_MS = 3_600_000;

/** One of this volume's snapshots carrying our tags (the caller drops foreign ones). */
export interface ScheduleCandidate {
  snapshotId: string;
  state: string;
  /** ms since epoch */
  startTime: number;
}

export interface DueDecision {
  due: boolean;
  /** One line for people: why due, or why not. */
  reason: string;
  everyHours: number;
  /** Start of the slot `now` is in. */
  slotStart: number;
  /** Start time of the newest completed snapshot, null when there is none. */
  lastCompletedAt: number | null;
  /**
   * When the next snapshot is due: the start of the next slot when this one has its snapshot, else
   * the start of the current slot (due now, or overdue behind a pending snapshot).
   */
  nextDueAt: number;
  /** The snapshot in progress that holds creation back, if any. */
  pendingSnapshotId: string | null;
}

export function slotStart(everyHours: number, now: number): number {
  const every = everyHours * HOUR_MS;
  return now - (((now % every) + every) % every);
}

/** Pure: is a snapshot due for one volume, from its snapshots of ours and the time. */
export function snapshotDue(everyHours: number, snapshots: readonly ScheduleCandidate[], now: number): DueDecision {
  const every = everyHours * HOUR_MS;
  const slot = slotStart(everyHours, now);
  const newestFirst = [...snapshots].sort((a, b) => b.startTime - a.startTime || a.snapshotId.localeCompare(b.snapshotId));
  const lastCompletedAt = newestFirst.find((s) => s.state === 'completed')?.startTime ?? null;
  const base = { everyHours, slotStart: slot, lastCompletedAt };
  const slotText = `the ${everyHours}h slot since ${iso(slot)}`;
  const inSlot = newestFirst.find((s) => (s.state === 'completed' || s.state === 'pending') && s.startTime >= slot);
  const pending = newestFirst.find((s) => s.state === 'pending');
  if (pending) {
    return {
      ...base,
      due: false,
      reason: `previous snapshot ${pending.snapshotId} is still pending (started ${iso(pending.startTime)})`,
      // Pending from an earlier slot: this slot's snapshot is overdue and follows once it completes.
      nextDueAt: inSlot ? slot + every : slot,
      pendingSnapshotId: pending.snapshotId,
    };
  }
  if (inSlot) {
    return { ...base, due: false, reason: `${inSlot.snapshotId} already covers ${slotText}`, nextDueAt: slot + every, pendingSnapshotId: null };
  }
  return {
    ...base,
    due: true,
    reason: lastCompletedAt === null ? 'no completed snapshot yet' : `no snapshot in ${slotText} (last completed ${iso(lastCompletedAt)})`,
    nextDueAt: slot,
    pendingSnapshotId: null,
  };
}

/** The interval a service's snapshots follow: its own, or the daily default. */
export function everyHoursOf(schedule: SnapshotSchedule | undefined): number {
  return schedule?.everyHours ?? DEFAULT_EVERY_HOURS;
}

/**
 * The retention a service's snapshots are pruned by: a scheduled service keeps its `keep` newest
 * completed snapshots (a count, as DLM's count rule; `keep-last` in restic's terms); one without a
 * schedule keeps the job's global policy. planRetention's safety rules hold for both: pending,
 * failed and foreign snapshots are never deleted, nor the newest completed one.
 */
export function retentionFor(schedule: SnapshotSchedule | undefined, global: RetentionPolicy): RetentionPolicy {
  if (!schedule) return global;
  return retentionPolicy({ keepLast: schedule.keep, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 0 });
}

/** `every 1h, keep 24` or `default (daily, global retention)`. */
export function describeSchedule(schedule: SnapshotSchedule | undefined): string {
  return schedule ? `every ${schedule.everyHours}h, keep ${schedule.keep}` : 'default (daily, global retention)';
}

/**
 * Parses `--snapshot-every`: `1h`…`24h` or `1d` (a bare number is hours). Returns whole hours, or
 * null when the text is not a duration at all; whether the hours are allowed is SnapshotSchedule's
 * to say, so that the CLI and etcd agree on one message.
 */
export function parseEvery(text: string): number | null {
  const m = /^\s*(\d{1,3})\s*(h|hours?|d|days?)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  return m[2] !== undefined && m[2].toLowerCase().startsWith('d') ? n * 24 : n;
}

function iso(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16)}Z`;
}
