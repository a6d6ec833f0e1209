import { describe, expect, it } from 'vitest';
import { RateLimiter, TokenBucket, type Clock } from './token-bucket.js';

/** A clock that only moves when told; `sleep` advances it (recording the requested waits). */
function manualClock(): Clock & { advance(ms: number): void; slept: number[] } {
  let now = 1_000_000;
  const slept: number[] = [];
  return {
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
    slept,
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      slept.push(ms);
      now += ms;
    },
  };
}

describe('TokenBucket', () => {
  it('allows a burst, then spaces reservations at 1/rate, in arrival order', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ burst: 3, perSecond: 5 }, clock);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    // Empty: the 4th waits one token (200 ms at 5/s), the 5th two tokens (400 ms).
    expect(bucket.reserve()).toBe(200);
    expect(bucket.reserve()).toBe(400);
    expect(bucket.available()).toBe(-2);
  });

  it('refills at perSecond up to burst, never beyond', () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ burst: 10, perSecond: 2 }, clock);
    for (let i = 0; i < 10; i++) bucket.reserve();
    expect(bucket.available()).toBe(0);
    clock.advance(1_500);
    expect(bucket.available()).toBeCloseTo(3, 9);
    clock.advance(60_000);
    expect(bucket.available()).toBe(10);
  });

  it('take() waits the reserved time on the injected clock', async () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ burst: 1, perSecond: 4 }, clock);
    await bucket.take();
    await bucket.take();
    await bucket.take();
    expect(clock.slept).toEqual([250, 250]);
  });

  it('an aborted take rejects with the reason and gives its token back', async () => {
    const clock = manualClock();
    const bucket = new TokenBucket({ burst: 1, perSecond: 1 }, clock);
    await bucket.take();
    const ac = new AbortController();
    ac.abort(new Error('leadership lost'));
    await expect(bucket.take(ac.signal)).rejects.toThrow('leadership lost');
    expect(bucket.available()).toBe(0);
  });

  it('rejects nonsense specs', () => {
    expect(() => new TokenBucket({ burst: 0, perSecond: 1 })).toThrow(RangeError);
    expect(() => new TokenBucket({ burst: 1, perSecond: 0 })).toThrow(RangeError);
  });
});

describe('RateLimiter', () => {
  it("mirrors AWS's defaults per category and takes overrides", () => {
    const limiter = new RateLimiter({ tags: { burst: 2, perSecond: 1 } }, manualClock());
    expect(limiter.bucket('mutating').spec).toEqual({ burst: 50, perSecond: 5 });
    expect(limiter.bucket('describe').spec).toEqual({ burst: 100, perSecond: 20 });
    expect(limiter.bucket('snapshot').spec).toEqual({ burst: 100, perSecond: 5 });
    expect(limiter.bucket('tags').spec).toEqual({ burst: 2, perSecond: 1 });
  });
});
