import type { SnapshotInfo } from '../ec2/types.js';
import { encodeRecord, type Keyspace, type ServiceRecord } from '../keyspace/index.js';
import type { TxnCompare } from '../locks/index.js';

/**
 * What `failover restore` (src/cli/commands/restore.ts) and the controller's auto-restore
 * (auto-restore.ts) share: which snapshot, how the new volume is tagged, the restored service record,
 * and the etcd operations that swap the registration. Pure; each caller does its own I/O.
 */

export const RESTORE_TAGS = {
  managed: 'ebs-failover:managed',
  restoredFrom: 'ebs-failover:restored-from',
  replaces: 'ebs-failover:replaces',
  /** Auto-restore only: the restore's id, so a new leader finds the volume its predecessor created. */
  restoreId: 'ebs-failover:restore-id',
} as const;

export type SnapshotPick = { ok: true; snapshot: SnapshotInfo } | { ok: false; reason: string };

/**
 * The snapshot to restore: the one named (it must be this volume's and completed), or the newest
 * completed one, and, with `maxAgeMs`, no older than that at `now`.
 */
export function pickRestoreSnapshot(snapshots: readonly SnapshotInfo[], volumeId: string, opts: { snapshot?: string; maxAgeMs?: number | null; now?: number } = {}): SnapshotPick {
  const ours = snapshots.filter((s) => s.volumeId === volumeId || s.tags['ebs-failover:volume'] === volumeId);
  if (opts.snapshot !== undefined) {
    const s = ours.find((x) => x.snapshotId === opts.snapshot);
    if (!s) return { ok: false, reason: `${opts.snapshot} is not a snapshot of ${volumeId} (see: failover snapshot list)` };
    if (s.state !== 'completed') return { ok: false, reason: `${s.snapshotId} is ${s.state}, not completed` };
    return { ok: true, snapshot: s };
  }
  const done = ours.filter((s) => s.state === 'completed').sort((a, b) => b.startTime - a.startTime);
  const newest = done[0];
  if (!newest) return { ok: false, reason: `no completed snapshot of ${volumeId}` };
  if (opts.maxAgeMs !== undefined && opts.maxAgeMs !== null && opts.now !== undefined && opts.now - newest.startTime > opts.maxAgeMs) {
    return { ok: false, reason: `the newest completed snapshot of ${volumeId}, ${newest.snapshotId}, is older than the allowed ${Math.round(opts.maxAgeMs / 60_000)} min (snapshotMaxAgeMs)` };
  }
  return { ok: true, snapshot: newest };
}

/** Tags of a restored volume: managed (the IAM policy requires it), where it came from, what it replaces. */
export function restoredVolumeTags(snapshotId: string, replacesVolumeId: string, restoreId?: string): Record<string, string> {
  return {
    [RESTORE_TAGS.managed]: 'true',
    [RESTORE_TAGS.restoredFrom]: snapshotId,
    [RESTORE_TAGS.replaces]: replacesVolumeId,
    ...(restoreId === undefined ? {} : { [RESTORE_TAGS.restoreId]: restoreId }),
  };
}

/** `postgres@vol-old` → `postgres@vol-new` with the same mount, metadata key, labels and conflict group. */
export function restoredService(stored: ServiceRecord, newVolumeId: string): ServiceRecord {
  const template = stored.unit.slice(0, stored.unit.indexOf('@'));
  return { ...stored, unit: `${template}@${newVolumeId}`, volumeId: newVolumeId };
}

/**
 * The registration swap as ONE etcd transaction's parts: the old service key deleted, the new one put,
 * only if the new one does not exist yet (never two services on one volume, never none). Callers add
 * their own compares (the CLI: the old records' mod revisions; the controller: the leader key and the
 * old record's value) and commit it.
 */
export function serviceSwapOps(ks: Keyspace, oldUnit: string, record: ServiceRecord): { compares: TxnCompare[]; puts: { key: string; value: string }[]; deletes: string[] } {
  return {
    compares: [{ key: ks.service(record.unit), target: 'Create', op: '==', value: 0 }],
    puts: [{ key: ks.service(record.unit), value: encodeRecord(record) }],
    deletes: [ks.service(oldUnit)],
  };
}

/** How a data-loss window reads in messages: `3h12m`, `15m`, `42s`. */
export function formatWindow(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 === 0 || m >= 10 ? '' : `${s % 60}s`}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 === 0 ? '' : `${m % 60}m`}`;
  return `${Math.floor(h / 24)}d${h % 24 === 0 ? '' : `${h % 24}h`}`;
}
