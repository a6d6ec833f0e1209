/**
 * Time source of the simulator. Latencies (attach, detach, snapshot, stop) are scheduled through it,
 * so unit tests drive time by hand and benchmarks can run AWS-like latencies scaled down.
 */
export interface SimClock {
  /** Wall-clock milliseconds; used for timestamps (attachTime, startTime) and token buckets. */
  now(): number;
  /** Runs `fn` after `ms` simulated milliseconds; returns a cancel function. */
  schedule(ms: number, fn: () => void): () => void;
}

/**
 * Real timers. `timeScale` multiplies every simulated delay: 0.01 turns AWS's ~10 s detach into
 * 100 ms. Timers are unref'd so a forgotten simulator never keeps a process alive.
 */
export function realClock(getScale: () => number = () => 1): SimClock {
  return {
    now: () => Date.now(),
    schedule(ms, fn) {
      const timer = setTimeout(fn, Math.max(0, ms * getScale()));
      timer.unref();
      return () => clearTimeout(timer);
    },
  };
}

/** A clock advanced by hand, for deterministic unit tests of the state machine. */
export class ManualClock implements SimClock {
  private current: number;
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  schedule(ms: number, fn: () => void): () => void {
    const key = this.seq++;
    this.pending.set(key, { at: this.current + Math.max(0, ms), fn });
    return () => this.pending.delete(key);
  }

  /** Moves time forward, firing due callbacks in time order (callbacks may schedule more). */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.pending) {
        if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      this.pending.delete(next[0]);
      this.current = Math.max(this.current, next[1].at);
      next[1].fn();
    }
    this.current = target;
  }
}
