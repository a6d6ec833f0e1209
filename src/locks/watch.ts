import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from '../log/logger.js';
import { etcdCall } from './etcd.js';

/**
 * A prefix watch that never silently misses a change. etcd3's own Watcher resumes after a reconnect
 * from the revision in the *connect* header (not from the last event it delivered), so a second
 * disconnect during catch-up would skip events; and a compacted start revision only surfaces as an
 * 'error' ("Watcher canceled"). So this class owns resumption: on every disconnect it drops the
 * watcher and opens a new one from (last event's revision + 1); when that revision is compacted it
 * re-lists the prefix (one consistent Range) and watches from the list's revision + 1.
 */

/** 100 ms doubling to 2 s between re-watch attempts: quick after a blip, gentle during an outage. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2_000;

export type PrefixEvent =
  | { type: 'put'; key: string; value: string; modRevision: bigint; lease?: string }
  | { type: 'delete'; key: string; modRevision: bigint };

export interface PrefixWatchHandlers {
  /** The full contents of the prefix (initial list, or re-list after compaction) at `revision`. */
  onReset(entries: Map<string, string>, revision: bigint, leases?: Map<string, string>): void;
  /** Changes in revision order. */
  onEvents(events: PrefixEvent[]): void;
  /**
   * The watch is live again after a disconnect (a re-opened watcher was created by etcd), or the
   * prefix was re-listed after compaction. Not called for the first watcher after start().
   */
  onReconnected?(): void;
}

export class PrefixWatch {
  private watcher: Watcher | null = null;
  private lastRevision = 0n;
  private stopped = false;
  private retryMs = RETRY_FIRST_MS;
  private timer: NodeJS.Timeout | null = null;
  /** A watcher was lost to a disconnect and no watcher has connected since. */
  private disconnected = false;
  /** How many times the prefix was re-listed because its revision had been compacted. */
  relists = 0;

  constructor(
    private readonly client: Etcd3,
    readonly prefix: string,
    private readonly handlers: PrefixWatchHandlers,
    private readonly log: Logger,
  ) {}

  /** The revision up to which this watch has applied changes. */
  get revision(): bigint {
    return this.lastRevision;
  }

  /** Lists the prefix (throws EtcdUnavailableError if etcd is unreachable) and starts watching. */
  async start(): Promise<void> {
    await this.list();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const w = this.watcher;
    this.watcher = null;
    // Not awaited for the same reason as in drop(): a cancel can wait forever on a dead watcher.
    if (w) void w.cancel().catch(() => undefined);
  }

  private async list(): Promise<void> {
    const res = await etcdCall(this.client, `list ${this.prefix}`, () => this.client.getAll().prefix(this.prefix).exec());
    const entries = new Map<string, string>();
    const leases = new Map<string, string>();
    for (const kv of res.kvs) {
      entries.set(kv.key.toString(), kv.value.toString());
      leases.set(kv.key.toString(), kv.lease);
    }
    this.lastRevision = BigInt(res.header.revision);
    this.handlers.onReset(entries, this.lastRevision, leases);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.watchFrom();
    }, delayMs);
  }

  private backoff(): void {
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.schedule(delay);
  }

  private async watchFrom(): Promise<void> {
    if (this.stopped) return;
    const from = (this.lastRevision + 1n).toString();
    const startRevision = this.lastRevision + 1n;
    const watcher = this.client.watch().prefix(this.prefix).startRevision(startRevision.toString()).watcher();
    this.watcher = watcher;
    watcher.on('connected', () => {
      if (this.watcher !== watcher) return;
      this.retryMs = RETRY_FIRST_MS;
      if (this.disconnected) {
        this.disconnected = false;
        this.handlers.onReconnected?.();
      }
    });
    watcher.on('data', (res: IWatchResponse) => this.apply(watcher, startRevision, res));
    // Only the first of 'disconnected'/'error' for a watcher acts: the other finds it already dropped.
    watcher.on('disconnected', (err: Error) => {
      this.log.debug({ prefix: this.prefix, err: err.message }, 'watch disconnected; resuming from last revision');
      if (this.drop(watcher)) {
        this.disconnected = true;
        this.backoff();
      }
    });
    watcher.on('error', (err: Error) => {
      // etcd3 reports a compacted start revision (and any server-side cancel) only this way.
      this.log.info({ prefix: this.prefix, err: err.message, from }, 'watch canceled; re-listing the prefix');
      if (this.drop(watcher)) void this.relist();
    });
  }

  /** Detaches `watcher` if it is the current one; false when another path already did. */
  private drop(watcher: Watcher): boolean {
    if (this.watcher !== watcher) return false;
    this.watcher = null;
    watcher.removeAllListeners('data');
    // Not awaited: etcd3's cancel() of a watcher the server already cancelled (compaction) waits for
    // a 'connected' that never comes.
    void watcher.cancel().catch(() => undefined);
    return true;
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.list();
      this.relists += 1;
      this.retryMs = RETRY_FIRST_MS;
      // The re-list is the reconnection: the watcher opened from its revision adds nothing to report.
      this.disconnected = false;
      this.handlers.onReconnected?.();
      this.schedule(0);
    } catch (err) {
      this.log.warn({ prefix: this.prefix, err }, 're-list failed; retrying');
      if (this.stopped) return;
      const delay = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      this.timer = setTimeout(() => void this.relist(), delay);
    }
  }

  private apply(watcher: Watcher, startRevision: bigint, res: IWatchResponse): void {
    if (this.watcher !== watcher || this.stopped) return;
    const events: PrefixEvent[] = [];
    for (const ev of res.events) {
      const modRevision = BigInt(ev.kv.mod_revision);
      // Only what precedes this watcher's own start revision can be a replay (of what an earlier
      // watcher, or the list, already delivered). NOT "<= the last event seen": one revision can hold
      // many events (a txn with several puts, a lease revoke deleting several keys), and they may
      // arrive in separate responses.
      if (modRevision < startRevision) continue;
      events.push(toEvent(ev.type, ev.kv, modRevision));
      if (modRevision > this.lastRevision) this.lastRevision = modRevision;
    }
    if (events.length > 0) this.handlers.onEvents(events);
  }
}

function toEvent(type: string, kv: IKeyValue, modRevision: bigint): PrefixEvent {
  const key = kv.key.toString();
  return type === 'Delete' ? { type: 'delete', key, modRevision } : { type: 'put', key, value: kv.value.toString(), modRevision, lease: kv.lease };
}
