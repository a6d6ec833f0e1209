import type { Logger } from '../log/logger.js';
import { monoNow } from '../locks/lease-clock.js';

export interface EtcdStallOptions {
  log: Logger;
  /** How long without an answer from etcd counts as a stall; asked afresh on each check. */
  stallAfterMs: () => number;
  /** A stall began, and again when etcd answers after it: the caller grants hosts the grace. */
  onStall: () => void;
  /** 250 ms: far below any stall that matters (two thirds of a 2 s TTL). */
  checkEveryMs?: number;
}

/**
 * Notices etcd stalling, from the keepalive answers of this controller's own election lease (etcd
 * answers one every third of the election TTL while it is healthy). A stall that outlives two thirds
 * of the hosts' TTL may make etcd expire leases as it resumes — agents that were alive, only unable to
 * renew — yet nothing reconnects: a paused etcd keeps its connections. So the grace a reconnect gives
 * (hosts.ts) is given for a stall too: once when it is noticed (looks made during it hold) and once
 * when etcd answers again (the looks that see the expired leases vanish hold). A stall of this process
 * itself (a long GC pause, SIGSTOP) looks the same and gets the same grace: the safe side.
 */
export class EtcdStallWatch {
  private lastAnswer = monoNow();
  private stalledSince: number | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: EtcdStallOptions) {
    this.timer = setInterval(() => this.check(), opts.checkEveryMs ?? 250);
  }

  /** etcd answered (a keepalive, or a new lease granted). */
  answered(): void {
    const now = monoNow();
    if (this.stalledSince !== null) {
      this.opts.log.warn({ stalledMs: Math.round(now - this.stalledSince) }, 'etcd answers again after a stall: hosts have a grace (leases may have expired as it resumed)');
      this.stalledSince = null;
      this.opts.onStall();
    }
    this.lastAnswer = now;
  }

  /** A new lease (a new campaign): its answers are counted from now; a stall in progress stays one. */
  restart(): void {
    this.lastAnswer = monoNow();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const now = monoNow();
    if (this.stalledSince !== null || now - this.lastAnswer <= this.opts.stallAfterMs()) return;
    this.stalledSince = this.lastAnswer;
    this.opts.log.warn({ silentMs: Math.round(now - this.lastAnswer) }, 'etcd has not answered our lease keepalives: a stall (hosts get a grace)');
    this.opts.onStall();
  }
}
