import type { Etcd3 } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import { acquireVolumeLock, LockTimeoutError } from '../locks/index.js';
import { lockGuard, type LockVolume } from '../snapshot/index.js';

/** The lock outlives a crashed snapshot job by at most this long (then a failover may proceed). */
const SNAPSHOT_LOCK_TTL_MS = 30_000;

/**
 * Per-volume locks for the snapshot job (src/locks `acquireVolumeLock`), so a snapshot never races a
 * failover's detach/attach. Waits up to `waitMs` for a lock held by someone else, then reports busy.
 */
export function volumeLocker(etcd: Etcd3, ks: Keyspace, waitMs: number): LockVolume {
  return async (volumeId) => {
    try {
      const lock = await acquireVolumeLock(etcd, ks, volumeId, { ttlMs: SNAPSHOT_LOCK_TTL_MS, waitMs, owner: `snapshot:${process.pid}` });
      // The guard puts the job's CreateSnapshot/DeleteSnapshot through the EC2 gate against this lock.
      return { release: () => lock.release(), guard: lockGuard(lock) };
    } catch (err) {
      if (err instanceof LockTimeoutError) {
        return { busy: `lock on ${volumeId} held by ${err.holder ?? 'another operation'} (waited ${Math.round(waitMs / 1000)}s); skipped, the next run catches up` };
      }
      throw err;
    }
  };
}
