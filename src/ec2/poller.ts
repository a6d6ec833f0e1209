import type { VolumeInfo } from './types.js';
import { abortReason } from './token-bucket.js';

type Describe = (volumeIds: string[]) => Promise<Map<string, VolumeInfo | null>>;

interface Waiter {
  resolve: (info: VolumeInfo | null) => void;
  reject: (err: unknown) => void;
}

/**
 * Coalesces the polls of concurrent waits into one DescribeVolumes call: every volume asked for
 * while a call is in flight (or within `coalesceMs` of the first ask) goes into the next call. 100 parallel
 * failovers then cost a few Describe calls per second, not hundreds, and stay far inside EC2's
 * non-mutating limit (20/s).
 */
export class VolumePoller {
  private pending = new Map<string, Waiter[]>();
  private inFlight = false;
  private scheduled = false;

  constructor(
    private readonly describe: Describe,
    /** See EC2_TIMING.pollCoalesceMs. */
    private readonly coalesceMs = 0,
  ) {}

  /** The volume as seen by the next batched DescribeVolumes (null when it does not exist). */
  observe(volumeId: string, signal?: AbortSignal): Promise<VolumeInfo | null> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<VolumeInfo | null>((resolve, reject) => {
      // Aborting one wait must not cancel the shared call: only this waiter leaves.
      const onAbort = (): void => {
        const list = this.pending.get(volumeId);
        if (list !== undefined) {
          const rest = list.filter((w) => w !== waiter);
          if (rest.length === 0) this.pending.delete(volumeId);
          else this.pending.set(volumeId, rest);
        }
        reject(abortReason(signal as AbortSignal));
      };
      const waiter: Waiter = {
        resolve: (info) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(info);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const list = this.pending.get(volumeId) ?? [];
      list.push(waiter);
      this.pending.set(volumeId, list);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.inFlight || this.scheduled) return;
    this.scheduled = true;
    // A little slack lets waits that wake at nearly the same time share the call.
    setTimeout(() => {
      this.scheduled = false;
      void this.flush();
    }, this.coalesceMs);
  }

  private async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.inFlight = true;
    try {
      const found = await this.describe([...batch.keys()]);
      for (const [volumeId, waiters] of batch) for (const w of waiters) w.resolve(found.get(volumeId) ?? null);
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
    } finally {
      this.inFlight = false;
      if (this.pending.size > 0) this.schedule();
    }
  }
}
