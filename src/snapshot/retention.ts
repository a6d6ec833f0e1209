/**
 * Snapshot retention counted the way restic's `forget` counts it: walk the snapshots newest first;
 * for each policy (last/daily/weekly/monthly/yearly) with budget left, a snapshot whose bucket (its day,
 * ISO week, month, year) differs from the previous bucket that policy kept is kept, and uses one unit
 * of that budget. So the newest snapshot of each bucket is the one kept, and buckets are counted over
 * distinct days/weeks/months that actually have snapshots (a month with none does not use budget).
 * A snapshot is kept if any policy keeps it.
 *
 * Safety rules on top of restic's: only completed snapshots carrying our tags are candidates; the
 * newest completed snapshot of a volume is always kept (even with an all-zero policy); pending or
 * failed snapshots and foreign ones are never deleted. Buckets are computed in UTC so that the result
 * does not depend on the machine's time zone.
 */

export interface RetentionPolicy {
  keepLast: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  keepYearly: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { keepLast: 0, keepDaily: 7, keepWeekly: 4, keepMonthly: 6, keepYearly: 0 };

/** The minimum a snapshot must carry for retention to reason about it. */
export interface RetentionCandidate {
  snapshotId: string;
  volumeId: string;
  state: string;
  /** ms since epoch */
  startTime: number;
  /** true when the snapshot carries our `ebs-failover:*` tags (never delete anything else). */
  managed: boolean;
}

export type KeepReason = 'last' | 'daily' | 'weekly' | 'monthly' | 'yearly' | 'newest-completed' | 'not-completed' | 'foreign';

export interface RetentionDecision<S extends RetentionCandidate = RetentionCandidate> {
  keep: Array<{ snapshot: S; reasons: KeepReason[] }>;
  remove: S[];
}

type Bucket = 'last' | 'daily' | 'weekly' | 'monthly' | 'yearly';

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

export function dayBucket(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** ISO-8601 week: weeks start on Monday, week 1 holds the year's first Thursday (as Go's ISOWeek). */
export function isoWeekBucket(ms: number): string {
  const d = new Date(ms);
  const day = d.getUTCDay() === 0 ? 7 : d.getUTCDay();
  // The Thursday of this week decides the ISO year.
  const thursday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 4 - day);
  const isoYear = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(isoYear, 0, 1)) / 86_400_000 / 7) + 1;
  return `${isoYear}-W${pad(week)}`;
}

export function monthBucket(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
}

export function yearBucket(ms: number): string {
  return String(new Date(ms).getUTCFullYear());
}

const BUCKETS: Array<{ name: Bucket; field: keyof RetentionPolicy; of: (ms: number, index: number) => string }> = [
  // keep-last: every snapshot is its own bucket.
  { name: 'last', field: 'keepLast', of: (_ms, index) => String(index) },
  { name: 'daily', field: 'keepDaily', of: dayBucket },
  { name: 'weekly', field: 'keepWeekly', of: isoWeekBucket },
  { name: 'monthly', field: 'keepMonthly', of: monthBucket },
  { name: 'yearly', field: 'keepYearly', of: yearBucket },
];

/** restic's walk over one volume's completed, managed snapshots (newest first). */
function applyPolicy<S extends RetentionCandidate>(sortedNewestFirst: S[], policy: RetentionPolicy): Map<S, KeepReason[]> {
  const left = new Map<Bucket, number>(BUCKETS.map((b) => [b.name, policy[b.field]]));
  const lastSeen = new Map<Bucket, string>();
  const kept = new Map<S, KeepReason[]>();
  sortedNewestFirst.forEach((snapshot, index) => {
    for (const bucket of BUCKETS) {
      const budget = left.get(bucket.name) ?? 0;
      if (budget <= 0) continue;
      const value = bucket.of(snapshot.startTime, index);
      if (value === lastSeen.get(bucket.name)) continue;
      lastSeen.set(bucket.name, value);
      left.set(bucket.name, budget - 1);
      kept.set(snapshot, [...(kept.get(snapshot) ?? []), bucket.name]);
    }
  });
  return kept;
}

/** Decide, per volume, which snapshots survive `policy`. Pure: no clock, no I/O. */
export function planRetention<S extends RetentionCandidate>(snapshots: S[], policy: RetentionPolicy): RetentionDecision<S> {
  const byVolume = new Map<string, S[]>();
  for (const s of snapshots) byVolume.set(s.volumeId, [...(byVolume.get(s.volumeId) ?? []), s]);

  const keep: RetentionDecision<S>['keep'] = [];
  const remove: S[] = [];
  for (const list of byVolume.values()) {
    const sorted = [...list].sort((a, b) => b.startTime - a.startTime || a.snapshotId.localeCompare(b.snapshotId));
    const candidates = sorted.filter((s) => s.managed && s.state === 'completed');
    const kept = applyPolicy(candidates, policy);
    // Never leave a volume without its newest completed backup, whatever the policy says.
    const newestCompleted = candidates[0];
    for (const s of sorted) {
      const reasons: KeepReason[] = [...(kept.get(s) ?? [])];
      if (!s.managed) reasons.push('foreign');
      else if (s.state !== 'completed') reasons.push('not-completed');
      if (s === newestCompleted && !reasons.length) reasons.push('newest-completed');
      if (reasons.length) keep.push({ snapshot: s, reasons });
      else remove.push(s);
    }
  }
  return { keep, remove };
}

/** Parses and checks counts given on the command line (`--keep-daily 7`). */
export function retentionPolicy(partial: Partial<RetentionPolicy>): RetentionPolicy {
  // Flags not given arrive as undefined and must not erase the defaults.
  const given = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined));
  const policy: RetentionPolicy = { ...DEFAULT_RETENTION, ...given };
  for (const [field, value] of Object.entries(policy)) {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`${field} must be a whole number >= 0, got ${String(value)}`);
  }
  return policy;
}
