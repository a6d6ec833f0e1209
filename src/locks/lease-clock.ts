import type { Lease } from 'etcd3';

/**
 * Lease deadlines are kept on a MONOTONIC clock (performance.now(), ms since process start): a
 * wall-clock step (NTP, a VM resume, an operator's `date -s`) must not move when we fence or step
 * down. Date.now() is used only to show these times in logs and events (see wallOf).
 */
export function monoNow(): number {
  return performance.now();
}

/** The wall-clock time (ms since the epoch) of a monotonic instant, for display only. */
export function wallOf(mono: number): number {
  return Math.round(Date.now() - (monoNow() - mono));
}

/**
 * The earliest moment a lease could expire on the etcd side, by our (monotonic) clock. etcd restarts
 * the TTL when it *receives* a keepalive, which is after we sent it; so a renewal counts from the time
 * its request was SENT, never from when the answer arrived. etcd may extend this (its new leader
 * refreshes every lease to a full TTL), but may also shorten our view of it: after a full outage
 * without a leader change (every member paused, then resumed) etcd's lessor expires the leases whose
 * time ran out while it was paused, as soon as it resumes; the next keepalive then reports TTL 0.
 */
export class LeaseClock {
  /** Monotonic send time of the latest keepalive etcd confirmed (or of the grant request). */
  renewedAt: number;
  private pending: number[] = [];
  private detachFn: (() => void) | null = null;

  constructor(
    readonly ttlMs: number,
    startedAt: number = monoNow(),
  ) {
    this.renewedAt = startedAt;
  }

  /** Monotonic time at which the lease may be gone in etcd. */
  expiresAt(): number {
    return this.renewedAt + this.ttlMs;
  }

  /** ms until expiresAt() − marginMs (≤ 0: past it). */
  remainingMs(marginMs = 0, now: number = monoNow()): number {
    return this.expiresAt() - marginMs - now;
  }

  renewed(sentAt: number): void {
    this.renewedAt = Math.max(this.renewedAt, sentAt);
  }

  /**
   * Follows an etcd3 Lease that keeps itself alive: each 'keepaliveFired' is a request sent, and the
   * stream answers them in order, so a success confirms the oldest request still outstanding.
   * `onAnswer` is called on each answer (when it arrives, unlike `renewedAt`).
   */
  attach(lease: Lease, onAnswer?: () => void): void {
    const fired = (): void => {
      this.pending.push(monoNow());
    };
    const succeeded = (): void => {
      const sentAt = this.pending.shift();
      if (sentAt !== undefined) this.renewed(sentAt);
      onAnswer?.();
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
