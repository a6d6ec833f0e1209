import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../log/logger.js';
import { PrefixWatch, type PrefixEvent } from './watch.js';

/** What 'change' carries: the keys that changed, or 'reset' after a (re-)list replaced everything. */
export type MirrorChange = string[] | 'reset';

export interface MirrorEvents {
  change: [MirrorChange];
  /**
   * The watch is live again after a disconnect, or the prefix was re-listed after compaction: the
   * contents may just have caught up with a backlog (a consumer may want a grace before acting on it).
   */
  reconnected: [];
}

/**
 * A prefix's keys → raw values, kept current by a PrefixWatch (survives reconnects, re-lists after
 * compaction). Values stay raw strings: consumers decode them with src/keyspace/decode.ts, so one
 * malformed value never stops the mirror.
 */
export class PrefixMirror extends EventEmitter<MirrorEvents> {
  private map = new Map<string, string>();
  /** Each key's lease id ('0' for none), so a consumer can tell who wrote a key (see leaseOf). */
  private leases = new Map<string, string>();
  private readonly watch: PrefixWatch;

  constructor(client: Etcd3, readonly prefix: string, log: Logger) {
    super();
    this.watch = new PrefixWatch(
      client,
      prefix,
      { onReset: (e, _revision, leases) => this.reset(e, leases), onEvents: (e) => this.apply(e), onReconnected: () => this.emit('reconnected') },
      log,
    );
  }

  /** Lists the prefix and starts watching; rejects with EtcdUnavailableError when etcd is unreachable. */
  async start(): Promise<void> {
    await this.watch.start();
  }

  async stop(): Promise<void> {
    await this.watch.stop();
  }

  /** The current contents (the live map: callers must not modify it). */
  entries(): Map<string, string> {
    return this.map;
  }

  get(key: string): string | undefined {
    return this.map.get(key);
  }

  /** The lease a key was last written under ('0': none), or undefined for a key not in the mirror. */
  leaseOf(key: string): string | undefined {
    return this.map.has(key) ? (this.leases.get(key) ?? '0') : undefined;
  }

  /** The etcd revision the contents reflect. */
  get revision(): bigint {
    return this.watch.revision;
  }

  /** How often the mirror had to re-list because its watch revision was compacted. */
  get relists(): number {
    return this.watch.relists;
  }

  private reset(entries: Map<string, string>, leases: Map<string, string> = new Map()): void {
    this.map = entries;
    this.leases = leases;
    this.emit('change', 'reset');
  }

  private apply(events: PrefixEvent[]): void {
    const keys = new Set<string>();
    for (const ev of events) {
      if (ev.type === 'put') {
        this.map.set(ev.key, ev.value);
        this.leases.set(ev.key, ev.lease ?? '0');
      } else {
        this.map.delete(ev.key);
        this.leases.delete(ev.key);
      }
      keys.add(ev.key);
    }
    this.emit('change', [...keys]);
  }
}
