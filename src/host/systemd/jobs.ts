import type { JobResult } from './port.js';

/**
 * Matches systemd's `JobRemoved(id, job, unit, result)` signals to the job paths our calls returned.
 *
 * A job can finish before the reply to `StartUnit` has been handled (a mount of a ready device takes
 * milliseconds), so while any job-creating call is in flight, signals for jobs nobody waits for yet
 * are kept; the caller looks its job up right after the reply. When no call is in flight the kept
 * results are dropped: they belong to other clients' jobs.
 */
export class JobTracker {
  private readonly waiters = new Map<string, (result: JobResult) => void>();
  private readonly early = new Map<string, JobResult>();
  private inflight = 0;

  /** Call before sending a job-creating method call. */
  begin(): void {
    this.inflight += 1;
  }

  /** Call after the reply was handled (and `wait` registered), success or not. */
  end(): void {
    this.inflight -= 1;
    if (this.inflight <= 0) {
      this.inflight = 0;
      this.early.clear();
    }
  }

  /** Feed every `JobRemoved` signal here. */
  removed(jobPath: string, result: JobResult): void {
    const waiter = this.waiters.get(jobPath);
    if (waiter) {
      this.waiters.delete(jobPath);
      waiter(result);
    } else if (this.inflight > 0) {
      this.early.set(jobPath, result);
    }
  }

  /** Resolves with the job's result; immediately when it already finished during the call. */
  wait(jobPath: string): Promise<JobResult> {
    const known = this.early.get(jobPath);
    if (known !== undefined) {
      this.early.delete(jobPath);
      return Promise.resolve(known);
    }
    return new Promise((resolve) => this.waiters.set(jobPath, resolve));
  }

  /** Stop waiting (timeout, abort); the promise from `wait` then never settles. */
  forget(jobPath: string): void {
    this.waiters.delete(jobPath);
  }

  /** Number of jobs being waited for (tests, leak checks). */
  get pending(): number {
    return this.waiters.size;
  }
}
