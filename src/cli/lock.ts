import type { Etcd3 } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import type { LockVolume } from '../snapshot/index.js';
import { loadLocks } from './modules.js';

/** The lock outlives a crashed snapshot job by at most this long (then a failover may proceed). */
const SNAPSHOT_LOCK_TTL_MS = 30_000;

export interface VolumeLocker {
  lockVolume: LockVolume;
  close(): Promise<void>;
}

/**
 * Per-volume locks for the snapshot job (src/locks `acquireVolumeLock`), so a snapshot never races a
 * failover's detach/attach. Waits up to `waitMs` for a lock held by someone else, then reports busy.
 */
export function volumeLocker(etcd: Etcd3, ks: Keyspace, waitMs: number): VolumeLocker {
  return {
    lockVolume: async (volumeId) => {
      const { acquireVolumeLock } = await loadLocks();
      const signal = AbortSignal.timeout(Math.max(1, waitMs));
      try {
        const lock = await acquireVolumeLock(etcd, ks, volumeId, { ttlMs: SNAPSHOT_LOCK_TTL_MS, waitMs, owner: `snapshot:${process.pid}`, signal });
        return { release: () => lock.release() };
      } catch (err) {
        if (signal.aborted || /timed? ?out|busy|held/i.test((err as Error).message)) return { busy: `lock on ${volumeId} held by another operation (waited ${Math.round(waitMs / 1000)}s); skipped, the next run catches up` };
        throw err;
      }
    },
    close: async () => undefined,
  };
}
