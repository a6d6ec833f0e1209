import type { Etcd3 } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import type { LockVolume } from '../snapshot/index.js';

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
      const { acquireVolumeLock } = await import('../locks/index.js');
      const signal = AbortSignal.timeout(Math.max(1, waitMs));
      try {
        const lock = await acquireVolumeLock(etcd, ks, volumeId, { holder: `snapshot:${process.pid}`, signal });
        return { release: () => lock.release() };
      } catch (err) {
        if (signal.aborted) return { busy: `lock on ${volumeId} held by another operation (waited ${Math.round(waitMs / 1000)}s); skipped, the next run catches up` };
        throw err;
      }
    },
    close: async () => undefined,
  };
}
