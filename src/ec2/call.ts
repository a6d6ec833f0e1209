import type { EC2Client } from '@aws-sdk/client-ec2';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from '../log/logger.js';
import { fromSdkError, isRetryableSdkError, type Ec2ErrorIds } from './errors.js';
import { EC2_TIMING } from './timing.js';
import { abortReason, type RateCategory, type RateLimiter } from './token-bucket.js';

/** The one SDK method we use (STYLE §3): unit tests pass an `aws-sdk-client-mock`ed client. */
export type Ec2Send = Pick<EC2Client, 'send'>;

export interface RetryTiming {
  retries: number;
  retryMinMs: number;
  retryFactor: number;
  retryMaxMs: number;
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
  async run<T>(action: string, category: RateCategory, ids: Ec2ErrorIds, fn: (abortSignal?: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const context = { ...ids, action };
    return pRetry(
      async (attemptNumber) => {
        await this.limiter.take(category, signal);
        try {
          return await fn(signal);
        } catch (err) {
          // An abort is the caller's decision, not EC2's answer: surface the signal's reason.
          if (signal?.aborted) throw new AbortError(abortReason(signal));
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
}
