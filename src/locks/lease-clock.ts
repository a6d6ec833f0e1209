import type { Lease } from 'etcd3';

/**
 * The earliest moment a lease could expire on the etcd side, by our clock. etcd restarts the TTL
 * when it *receives* a keepalive, which is after we sent it; so a renewal counts from the time its
 * request was SENT, never from when the answer arrived. (etcd may only extend this, e.g. when its
 * own leader changes it refreshes every lease to a full TTL.)
 */
export class LeaseClock {
  /** Send time of the latest keepalive etcd confirmed (or of the grant request). */
  renewedAt: number;
  private pending: number[] = [];
  private detachFn: (() => void) | null = null;

  constructor(
    readonly ttlMs: number,
    startedAt: number = Date.now(),
  ) {
    this.renewedAt = startedAt;
  }

  expiresAt(): number {
    return this.renewedAt + this.ttlMs;
  }

  renewed(sentAt: number): void {
    this.renewedAt = Math.max(this.renewedAt, sentAt);
  }

  /**
   * Follows an etcd3 Lease that keeps itself alive: each 'keepaliveFired' is a request sent, and the
   * stream answers them in order, so a success confirms the oldest request still outstanding.
   */
  attach(lease: Lease): void {
    const fired = (): void => {
      this.pending.push(Date.now());
    };
    const succeeded = (): void => {
      const sentAt = this.pending.shift();
      if (sentAt !== undefined) this.renewed(sentAt);
    };
    // A new stream: answers to requests on the old one will never come.
    const established = (): void => {
      this.pending = [];
    };
    lease.on('keepaliveFired', fired);
    lease.on('keepaliveSucceeded', succeeded);
    lease.on('keepaliveEstablished', established);
    this.detachFn = () => {
      lease.off('keepaliveFired', fired);
      lease.off('keepaliveSucceeded', succeeded);
      lease.off('keepaliveEstablished', established);
    };
  }

  detach(): void {
    this.detachFn?.();
    this.detachFn = null;
  }
}
