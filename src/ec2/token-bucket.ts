/**
 * Client-side token buckets mirroring EC2's per-category request limits, so that many parallel
 * failovers sharing one `createEc2` stay inside the account's limits: callers queue here (FIFO,
 * honouring their signal) instead of being throttled by EC2 and burning retries.
 */

export interface BucketSpec {
  /** Calls allowed at once after a quiet period. */
  burst: number;
  /** Refill rate, tokens per second. */
  perSecond: number;
}

export type RateCategory = 'mutating' | 'describe' | 'snapshot' | 'tags';

/** AWS's documented defaults for EC2 API request throttling (per account and region). */
export const EC2_RATE_DEFAULTS: Readonly<Record<RateCategory, BucketSpec>> = {
  /** AttachVolume, DetachVolume, StopInstances. */
  mutating: { burst: 50, perSecond: 5 },
  /** Describe* (non-mutating). */
  describe: { burst: 100, perSecond: 20 },
  /** CreateSnapshot, DeleteSnapshot. */
  snapshot: { burst: 100, perSecond: 5 },
  /** CreateTags, DeleteTags. */
  tags: { burst: 100, perSecond: 10 },
};

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with `signal.reason` when aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => abortableSleep(ms, signal),
};

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error(`aborted: ${String(signal.reason)}`);
}

/**
 * One bucket. Tokens may go negative: each `take` reserves the next token and sleeps until it has
 * refilled, which keeps waiters in arrival order without a queue.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly spec: BucketSpec,
    private readonly clock: Clock = systemClock,
  ) {
    if (!(spec.burst >= 1) || !(spec.perSecond > 0)) {
      throw new RangeError(`token bucket needs burst >= 1 and perSecond > 0, got ${JSON.stringify(spec)}`);
    }
    this.tokens = spec.burst;
    this.last = clock.now();
  }

  /** Tokens available now (negative when callers are queued). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Reserves one token; returns how many ms the caller must wait before using it (0 = now). */
  reserve(): number {
    this.refill();
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.spec.perSecond) * 1000);
  }

  /** Gives back a reservation that will not be used (its caller was aborted). */
  cancel(): void {
    this.refill();
    this.tokens = Math.min(this.spec.burst, this.tokens + 1);
  }

  /** Waits for a token; rejects with the signal's reason (returning the token) when aborted. */
  async take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortReason(signal);
    const waitMs = this.reserve();
    if (waitMs === 0) return;
    try {
      await this.clock.sleep(waitMs, signal);
    } catch (err) {
      this.cancel();
      throw err;
    }
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsedS = Math.max(0, now - this.last) / 1000;
    this.tokens = Math.min(this.spec.burst, this.tokens + elapsedS * this.spec.perSecond);
    this.last = now;
  }
}

/** One bucket per category, shared by every caller of one `createEc2`. */
export class RateLimiter {
  private readonly buckets: Record<RateCategory, TokenBucket>;

  constructor(rates: Partial<Record<RateCategory, BucketSpec>> = {}, clock: Clock = systemClock) {
    const spec = (c: RateCategory): BucketSpec => rates[c] ?? EC2_RATE_DEFAULTS[c];
    this.buckets = {
      mutating: new TokenBucket(spec('mutating'), clock),
      describe: new TokenBucket(spec('describe'), clock),
      snapshot: new TokenBucket(spec('snapshot'), clock),
      tags: new TokenBucket(spec('tags'), clock),
    };
  }

  bucket(category: RateCategory): TokenBucket {
    return this.buckets[category];
  }

  take(category: RateCategory, signal?: AbortSignal): Promise<void> {
    return this.buckets[category].take(signal);
  }
}
