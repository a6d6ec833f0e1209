import type { EC2Client } from '@aws-sdk/client-ec2';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from '../log/logger.js';
import { fromSdkError, isRetryableSdkError, type Ec2ErrorIds } from './errors.js';
import { MutationFencedError, monoNow, runGated, type GateContext, type MutationGuard } from './gate.js';
import { EC2_TIMING } from './timing.js';
import { abortReason, type RateCategory, type RateLimiter } from './token-bucket.js';

/** The one SDK method we use (STYLE §3): unit tests pass an `aws-sdk-client-mock`ed client. */
export type Ec2Send = Pick<EC2Client, 'send'>;

export interface RetryTiming {
  retries: number;
  retryMinMs: number;
  retryFactor: number;
  retryMaxMs: number;
  mutationMinMs: number;
  mutationMaxMs: number;
}

/** Everything one EC2 call goes through: the shared rate limiter, retries, error mapping, logging. */
export class Ec2Caller {
  constructor(
    readonly client: Ec2Send,
    private readonly limiter: RateLimiter,
    private readonly log: Logger,
    private readonly timing: RetryTiming = EC2_TIMING,
  ) {}

  /**
   * Runs `fn` (one SDK `send`) after taking a token from `category`'s bucket. Throttling and 5xx
   * are retried with jittered exponential backoff; every other error is mapped to its typed error
   * and thrown at once (`AbortError`). Each attempt takes its own token: a retry is a new request.
   */
  async run<T>(
    action: string, category: RateCategory, ids: Ec2ErrorIds, fn: (abortSignal?: AbortSignal) => Promise<T>, signal?: AbortSignal, guard?: MutationGuard,
    beforeSend?: () => Promise<void>,
  ): Promise<T> {
    const context = { ...ids, action };
    let announced = beforeSend === undefined;
    return pRetry(
      async (attemptNumber) => {
        await this.limiter.take(category, signal);
        if (!announced) {
          // Its failure (e.g. the journal write refused: no longer leading) sends nothing and is not retried.
          try {
            await beforeSend?.();
          } catch (err) {
            throw new AbortError(err instanceof Error ? err : new Error(String(err)));
          }
          announced = true;
        }
        let attemptSignal = signal;
        if (guard !== undefined) attemptSignal = await this.admit(guard, action, context, signal);
        const gate: GateContext | undefined = guard === undefined ? undefined : { guard, action, ids: context, minRemainingMs: this.timing.mutationMinMs };
        try {
          return gate === undefined ? await fn(signal) : await runGated(gate, () => fn(attemptSignal));
        } catch (err) {
          // Refused by the gate's last check: the caller's own error (NotLeaderError, …), never retried.
          if (gate?.refused !== undefined) throw new AbortError(gate.refused);
          // An abort is the caller's decision, not EC2's answer: surface the signal's reason.
          if (signal?.aborted) throw new AbortError(abortReason(signal));
          // Cut at the lease's deadline: EC2 may or may not have received it; the caller re-observes.
          if (guard !== undefined && attemptSignal?.aborted) throw new AbortError(new MutationFencedError(action, guard.caller, guard.term, guard.remainingMs(), context, 'aborted at the lease deadline; EC2 may have received it'));
          const mapped = fromSdkError(err, context);
          if (!isRetryableSdkError(err)) throw new AbortError(mapped);
          this.log.warn({ ...context, attemptNumber, code: (mapped as { code?: string }).code, err: mapped.message }, 'EC2 call throttled or failed server-side; retrying');
          throw mapped;
        }
      },
      {
        retries: this.timing.retries,
        minTimeout: this.timing.retryMinMs,
        factor: this.timing.retryFactor,
        maxTimeout: this.timing.retryMaxMs,
        // Jitter: many failovers throttled together must not retry in lockstep.
        randomize: true,
        signal,
      },
    );
  }

  /**
   * Before each attempt of a gated (mutating) call: wait out the guard's quiet period, check the
   * lease, and return a signal that aborts the request at the lease's deadline (or after
   * `mutationMaxMs`). The final, synchronous check happens in GatedHttpHandler, after signing.
   */
  private async admit(guard: MutationGuard, action: string, ids: Ec2ErrorIds, signal?: AbortSignal): Promise<AbortSignal> {
    const notBefore = guard.quietApplies?.(ids) === false ? 0 : (guard.notBeforeMono ?? 0);
    const wait = notBefore - monoNow();
    if (wait > 0) {
      this.log.info({ ...ids, action, waitMs: Math.round(wait) }, 'new term: waiting out the previous leader\'s longest possible in-flight call');
      // Timers round to whole ms and may fire a fraction early by performance.now(): sleep until the
      // monotonic clock itself has passed the bound, or the quiet period would not be what it promises.
      for (let left = wait; left > 0; left = notBefore - monoNow()) await sleep(Math.max(1, Math.ceil(left)), signal);
    }
    try {
      guard.assert();
    } catch (err) {
      throw new AbortError(err instanceof Error ? err : new Error(String(err)));
    }
    const remaining = guard.remainingMs();
    if (remaining < this.timing.mutationMinMs) throw new AbortError(new MutationFencedError(action, guard.caller, guard.term, remaining, ids));
    // AbortSignal.timeout takes whole milliseconds; round down so the request never outlives the deadline.
    const lifetime = AbortSignal.timeout(Math.max(1, Math.floor(Math.min(remaining, this.timing.mutationMaxMs))));
    return signal === undefined ? lifetime : AbortSignal.any([signal, lifetime]);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const done = (): void => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
