import type { Logger } from '../log/logger.js';
import type { HostTracker, LivenessSnapshot } from './hosts.js';

/** What the standby's looks need of the store: the liveness view, its changes and its reconnects. */
export interface LivenessSource {
  liveness(): LivenessSnapshot;
  onChange(listener: () => void): () => void;
  onReconnect?(listener: () => void): () => void;
  /** Drops what it decoded for these looks (while leading, the loop's store decodes its own). */
  forget?(): void;
}

/** Timing of the standby's looks; the leader's loop looks on every tick instead. */
export const STANDBY_TIMING = {
  // 100 ms: changes are coalesced (as the loop's ticks are); a vanishing's time is known within this.
  coalesceMs: 100,
  // 1 s: looks with nothing changed, so the tracker's time-based bookkeeping (forgetting, the end of a
  // suspect episode) is current when this controller is elected.
  everyMs: 1_000,
} as const;

/**
 * Keeps the process's HostTracker looking at etcd while this controller stands by, so that when it is
 * elected it already knows which hosts vanished when (hosts.ts says why). Paused while leading: the
 * loop looks on every tick then. A watch reconnect reaches the tracker in both states (a grace follows).
 */
export class StandbyLiveness {
  private paused = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly interval: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  private readonly unsubscribeReconnect: (() => void) | undefined;

  constructor(
    private readonly tracker: HostTracker,
    private readonly source: LivenessSource,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {
    this.unsubscribe = source.onChange(() => this.schedule());
    this.unsubscribeReconnect = source.onReconnect?.(() => {
      tracker.reconnected();
      this.schedule();
    });
    this.interval = setInterval(() => this.look(), STANDBY_TIMING.everyMs);
    this.look();
  }

  /** Leading: the loop looks from now on, and the standby's decoded records (10,000 placements: MBs) go. */
  pause(): void {
    this.paused = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.source.forget?.();
  }

  /** Standing by again: look at once, then on changes. */
  resume(): void {
    this.paused = false;
    this.look();
  }

  stop(): void {
    clearInterval(this.interval);
    if (this.timer) clearTimeout(this.timer);
    this.unsubscribe();
    this.unsubscribeReconnect?.();
  }

  private schedule(): void {
    if (this.paused || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.look();
    }, STANDBY_TIMING.coalesceMs);
  }

  private look(): void {
    if (this.paused) return;
    try {
      this.tracker.observe(this.source.liveness(), this.now());
    } catch (err) {
      // A bad record is skipped by the decoder; anything else is logged, and the next look tries again.
      this.log.warn({ err }, 'standby: looking at host liveness failed');
    }
  }
}
