/**
 * Every timing constant of the EC2 layer, in one place, with the reason for each number.
 */
export interface Ec2Timing {
  pollInitialMs: number;
  pollFactor: number;
  pollMaxMs: number;
  pollCoalesceMs: number;
  retries: number;
  retryMinMs: number;
  retryFactor: number;
  retryMaxMs: number;
  mutationMinMs: number;
  mutationMaxMs: number;
}

export const EC2_TIMING: Readonly<Ec2Timing> = {
  /**
   * First poll of a wait. EBS attach/detach usually finish in 2–10 s, so the first look is cheap
   * insurance for the fast cases (an already-finished transition, the simulator in tests) without
   * hammering EC2: polls of concurrent waits are coalesced into one DescribeVolumes call anyway.
   */
  pollInitialMs: 250,
  /**
   * Growth of the poll interval. ×1.25 (not a steeper ×1.5) keeps polls dense across the whole
   * 2–10 s window in which attach/detach finish: measured (bench/ec2-calls.ts) ×1.5 noticed an
   * 8 s attach ~1.2 s late, ×1.25 keeps the lateness near 10–20 % of the elapsed time.
   */
  pollFactor: 1.25,
  /**
   * Poll interval cap, reached ~8 s into a wait. 1 s bounds how late we notice a finished transition
   * on the failover's critical path; cheap because polls of all waits share one call (below), so a
   * long wait costs ≤ 1 DescribeVolumes/s however many volumes are in flight (EC2 allows 20/s).
   */
  pollMaxMs: 1_000,
  /**
   * How long a poll waits for others to join its DescribeVolumes call. Waits started at different
   * moments would otherwise each pay a call; 20 ms is small next to the poll intervals.
   */
  pollCoalesceMs: 20,
  /**
   * Retries of one throttled or 5xx call (so up to 6 attempts). With the delays below that spans
   * roughly 0.2+0.4+0.8+1.6+3.2 s (×1–2 jitter), long enough for EC2's buckets to refill a few
   * tokens, short enough that a leader notices a real outage within ~15 s.
   */
  retries: 5,
  /** First retry delay: AWS SDKs start around 100 ms for throttling; a little more spreads the herd. */
  retryMinMs: 200,
  /** Exponential factor of retry delays (the SDK default shape). */
  retryFactor: 2,
  /** Cap of one retry delay: beyond ~5 s the leader would rather re-observe than keep one call alive. */
  retryMaxMs: 5_000,
  /**
   * A gated mutating request is not started with less lease left than this: EC2 answers Attach/Detach
   * in ~100–500 ms, so a request that could not finish before the step-down deadline is not begun.
   */
  mutationMinMs: 250,
  /**
   * Longest lifetime of one mutating request (it is also cut at the caller's lease deadline, which
   * is shorter when the lease is). This bounds what a deposed leader can still have in flight, and
   * so how long a new leader waits before its first mutation (min of this and the election TTL).
   */
  mutationMaxMs: 5_000,
};
