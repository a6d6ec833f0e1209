import type { ThrottleInput } from './schemas.js';

/**
 * EC2 request-rate throttling: one token bucket per API category, like AWS's account-level limits.
 * A call takes one token; an empty bucket answers RequestLimitExceeded.
 */
export type ThrottleCategory = 'describeFiltered' | 'describeUnfiltered' | 'mutating' | 'snapshot' | 'tags';

export interface BucketSpec {
  /** Bucket size: calls allowed at once after a quiet period. */
  burst: number;
  /** Refill rate, tokens per second. */
  perSecond: number;
}

/** AWS's published default bucket sizes and refill rates (EC2 API request throttling docs). */
export const AWS_THROTTLE_DEFAULTS: Record<ThrottleCategory, BucketSpec> = {
  describeFiltered: { burst: 100, perSecond: 20 },
  describeUnfiltered: { burst: 50, perSecond: 10 },
  mutating: { burst: 50, perSecond: 5 },
  snapshot: { burst: 100, perSecond: 5 },
  tags: { burst: 100, perSecond: 10 },
};

/** Which bucket a call draws from; Describe* calls narrowed by ids or filters are the cheaper kind. */
export function categorize(action: string, params: ReadonlyMap<string, string>): ThrottleCategory {
  if (action === 'CreateSnapshot' || action === 'DeleteSnapshot') return 'snapshot';
  if (action === 'CreateTags' || action === 'DeleteTags') return 'tags';
  if (action.startsWith('Describe')) {
    for (const key of params.keys()) {
      if (/^(VolumeId|InstanceId|SnapshotId|Filter)\.\d+/.test(key)) return 'describeFiltered';
    }
    return 'describeUnfiltered';
  }
  return 'mutating';
}

class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly spec: BucketSpec,
    now: number,
  ) {
    this.tokens = spec.burst;
    this.last = now;
  }

  take(now: number): boolean {
    const elapsedS = Math.max(0, now - this.last) / 1000;
    this.tokens = Math.min(this.spec.burst, this.tokens + elapsedS * this.spec.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class Throttle {
  private enabled = true;
  private scale = 1;
  private specs: Record<ThrottleCategory, BucketSpec> = { ...AWS_THROTTLE_DEFAULTS };
  private buckets = new Map<ThrottleCategory, TokenBucket>();

  constructor(private readonly now: () => number) {}

  /** Reconfigures (and refills) the buckets. */
  configure(input: ThrottleInput): void {
    if (input.enabled !== undefined) this.enabled = input.enabled;
    if (input.scale !== undefined) this.scale = input.scale;
    if (input.buckets !== undefined) this.specs = { ...this.specs, ...input.buckets };
    this.buckets.clear();
  }

  settings(): { enabled: boolean; scale: number; buckets: Record<ThrottleCategory, BucketSpec> } {
    return { enabled: this.enabled, scale: this.scale, buckets: { ...this.specs } };
  }

  /** Takes a token for the call; false means the call must be throttled. */
  admit(category: ThrottleCategory): boolean {
    if (!this.enabled) return true;
    let bucket = this.buckets.get(category);
    if (bucket === undefined) {
      const spec = this.specs[category];
      bucket = new TokenBucket({ burst: spec.burst * this.scale, perSecond: spec.perSecond * this.scale }, this.now());
      this.buckets.set(category, bucket);
    }
    return bucket.take(this.now());
  }
}
