import { AgentReport, FailoverJournal, HostRecord, ManualRequest, Placement, ServiceRecord, RecordCache, encodeRecord, type Keyspace } from '../keyspace/index.js';
import type { Logger } from '../log/logger.js';
import type { z } from 'zod';
import { TxnConflictError, type TxnCompare } from '../locks/index.js';
import type { HeldLock, LockPort, StorePort, StoreSnapshot, StoreWrite } from './ports.js';
import { serviceSwapOps } from './restore-common.js';
import type { LivenessSnapshot } from './hosts.js';

/** What the store needs of src/locks' PrefixMirror (a prefix's keys → raw values, kept current by a watch). */
export interface MirrorLike {
  entries(): Map<string, string>;
  on(event: 'change', listener: (...args: unknown[]) => void): unknown;
  off(event: 'change', listener: (...args: unknown[]) => void): unknown;
  /** The lease a key was written under ('0': none); PrefixMirror has it, test doubles may not. */
  leaseOf?(key: string): string | undefined;
}

/** A mirror seen as a plain emitter, for the 'reconnected' event (see `EtcdStore.onReconnect`). */
interface ReconnectEmitter {
  on(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
}

/** What the store needs of src/locks' Leadership: one etcd transaction that fails once we no longer lead. */
export interface GuardedWriter {
  txnGuarded(ops: { compares?: TxnCompare[]; puts?: { key: string; value: string }[]; deletes?: string[] }): Promise<unknown>;
}

/**
 * A written value is served from here until the watch has caught up with it (or 5 s passed), so
 * that the next tick never decides on the state from before our own write (no double generation bump).
 */
const OVERLAY_MS = 5_000;

export interface EtcdStoreOptions {
  ks: Keyspace;
  leadership: GuardedWriter;
  mirrors: { hosts: MirrorLike; services: MirrorLike; placements: MirrorLike; journals: MirrorLike; reports: MirrorLike; requests: MirrorLike };
  /** Lists the keys under a prefix in order (for pruning events). */
  listKeys(prefix: string): Promise<string[]>;
  log: Logger;
  now: () => number;
}

export class EtcdStore implements StorePort {
  private readonly overlay = new Map<string, { value: string | null; at: number }>();
  /** Per mirror, each key's record decoded once per change of its value (src/keyspace/record-cache.ts). */
  private readonly decoded = new Map<MirrorLike, RecordCache<z.ZodType>>();
  /**
   * Per mirror without a trust check, the last map decodeAll returned when it came from the mirror alone
   * (no write of ours pending): returned again, not rebuilt, while every raw value is unchanged.
   */
  private readonly lastOut = new Map<MirrorLike, ReadonlyMap<string, unknown>>();
  constructor(private readonly opts: EtcdStoreOptions) {}

  private view(mirror: MirrorLike): ReadonlyMap<string, string> {
    // No pending write of ours under this mirror: its live map as is (read only), no copy per tick.
    let pending = false;
    for (const key of this.overlay.keys()) if (this.owns(mirror, key)) pending = true;
    if (!pending) return mirror.entries();
    const entries = new Map(mirror.entries());
    const now = this.opts.now();
    for (const [key, o] of this.overlay) {
      // Another mirror's entries know nothing of this key: asked there, a pending DELETE (value null)
      // looked "caught up" and was dropped, so the next tick saw the deleted key again.
      if (!this.owns(mirror, key)) continue;
      const seen = entries.get(key) ?? null;
      if (seen === o.value || now - o.at > OVERLAY_MS) {
        this.overlay.delete(key);
        continue;
      }
      if (o.value === null) entries.delete(key);
      else entries.set(key, o.value);
    }
    return entries;
  }

  private owns(mirror: MirrorLike, key: string): boolean {
    const { ks, mirrors } = this.opts;
    const prefix =
      mirror === mirrors.placements ? ks.placementsPrefix() : mirror === mirrors.journals ? ks.journalPrefix() : mirror === mirrors.requests ? ks.requestsPrefix()
        // Services: only auto-restore's swap writes them; the next tick must not see the old registration.
        : mirror === mirrors.services ? ks.servicesPrefix() : null;
    return prefix !== null && key.startsWith(prefix);
  }

  private decodeAll<S extends z.ZodType>(schema: S, mirror: MirrorLike, keyOf: (v: z.output<S>) => string, trusted?: (key: string, v: z.output<S>) => boolean): Map<string, z.output<S>> {
    let cache = this.decoded.get(mirror) as RecordCache<S> | undefined;
    if (cache === undefined) this.decoded.set(mirror, (cache = new RecordCache(schema, this.opts.log)));
    const view = this.view(mirror);
    const own = view === mirror.entries();
    // Nothing changed since the last look: the same map again (no per-tick copy of 10,000 entries). A
    // report's trust depends on other keys' leases, so a mirror with a trust check is always rebuilt.
    const last = this.lastOut.get(mirror);
    if (own && trusted === undefined && last !== undefined && cache.matches(view)) return last as Map<string, z.output<S>>;
    const out = new Map<string, z.output<S>>();
    for (const [key, raw] of view) {
      const value = cache.decode(key, raw);
      // Trust is looked at every time: it depends on other keys (a report's host lease).
      if (value !== undefined && (trusted === undefined || trusted(key, value))) out.set(keyOf(value), value);
    }
    cache.prune(view);
    if (own && trusted === undefined) this.lastOut.set(mirror, out);
    else this.lastOut.delete(mirror);
    return out;
  }

  snapshot(): StoreSnapshot {
    const m = this.opts.mirrors;
    return {
      ...this.liveness(),
      services: this.decodeAll(ServiceRecord, m.services, (s) => s.unit),
      reports: this.decodeAll(AgentReport, m.reports, (r) => `${r.instanceId}/${r.volumeId}`, (key, r) => this.reportTrusted(key, r)),
      requests: this.decodeAll(ManualRequest, m.requests, (r) => r.volumeId),
    };
  }

  /** Hosts, placements and journals only: what a look at host liveness reads (a standby's, see standby-liveness.ts). */
  liveness(): LivenessSnapshot {
    const m = this.opts.mirrors;
    return {
      hosts: this.decodeAll(HostRecord, m.hosts, (h) => h.instanceId),
      placements: this.decodeAll(Placement, m.placements, (p) => p.volumeId),
      journals: this.decodeAll(FailoverJournal, m.journals, (j) => j.volumeId),
    };
  }

  /** Drops every decoded record (the standby's read-only store, while its process leads with another). */
  forget(): void {
    this.decoded.clear();
    this.lastOut.clear();
  }

  /** Untrusted reports already logged (key and lease), so a forged report is logged once, not every tick. */
  private readonly distrusted = new Set<string>();

  /**
   * etcd's agent role lets any agent write any host's status/ keys (a permission is a key range, not
   * "your own keys"). A report is believed only when it is about the host whose key it sits under and
   * was written under that host's live lease (the lease of `hosts/<instance>`): only that host's agent
   * holds the lease, so another host's credentials cannot say "released" or "fenced" for it. Without
   * lease information (test doubles) only the first check applies.
   */
  private reportTrusted(key: string, report: AgentReport): boolean {
    const { ks, mirrors, log } = this.opts;
    const instance = ks.tail(key, ks.statusPrefix()).split('/')[0] ?? '';
    let reason: string | null = null;
    if (report.instanceId !== instance) reason = `report names ${report.instanceId} but sits under status/${instance}/`;
    else if (mirrors.reports.leaseOf && mirrors.hosts.leaseOf) {
      const reportLease = mirrors.reports.leaseOf(key) ?? '0';
      const hostLease = mirrors.hosts.leaseOf(ks.host(instance));
      if (hostLease === undefined) reason = `no host record for ${instance}`;
      else if (reportLease !== hostLease) reason = `written under lease ${reportLease}, not ${instance}'s host lease ${hostLease}`;
    }
    if (reason === null) return true;
    // A host's record and its reports expire together, but the two mirrors see it at slightly different moments.
    if (reason.startsWith('no host record')) return false;
    const seen = `${key}@${mirrors.reports.leaseOf?.(key) ?? ''}`;
    if (!this.distrusted.has(seen)) {
      this.distrusted.add(seen);
      if (this.distrusted.size > 10_000) this.distrusted.clear();
      log.warn({ key, instanceId: instance, volumeId: report.volumeId, reason }, 'ignoring an agent report not written by that host');
    }
    return false;
  }

  async write(w: StoreWrite): Promise<void> {
    const { ks } = this.opts;
    const puts: { key: string; value: string }[] = [];
    const deletes: string[] = [];
    if (w.placement) puts.push({ key: ks.placement(w.placement.volumeId), value: encodeRecord(w.placement) });
    if (w.journal) puts.push({ key: ks.journal(w.journal.volumeId), value: encodeRecord(w.journal) });
    if (w.request) puts.push({ key: ks.request(w.request.volumeId), value: encodeRecord(w.request) });
    if (w.deleteRequestOf) deletes.push(ks.request(w.deleteRequestOf));
    for (const e of w.events ?? []) puts.push({ key: ks.event(this.eventTime(e.at), e.volumeId), value: encodeRecord(e) });
    const compares: TxnCompare[] = [];
    const requestOf = w.deleteRequestOf ?? w.request?.volumeId;
    if (requestOf !== undefined) {
      // Starting, refusing or dropping a request acts on the request as the decision saw it. The operator
      // may have withdrawn it since (cancel, or the CLI giving up at its timeout) while this tick was busy
      // with EC2: then the write must fail, not start a move the operator was told would not happen, nor
      // write a withdrawn request back (chaos seed 71: a move started 3.7 s after its cancel).
      const key = ks.request(requestOf);
      // With our own pending writes laid over (a refusal of ours the watch has not delivered yet).
      const seen = this.view(this.opts.mirrors.requests).get(key);
      if (seen === undefined) throw new TxnConflictError([key]);
      compares.push({ key, target: 'Value', op: '==', value: seen });
    }
    if (w.hostAbsent !== undefined) {
      // The decision saw no record of this host, but it may be minutes old: a tick's EC2 look-ups can
      // take that long under throttling, and the host may have come back meanwhile (chaos seed 70: a
      // partitioned host back for 5 s, its unit running again, was failed over anyway).
      const key = ks.host(w.hostAbsent);
      if (this.opts.mirrors.hosts.entries().has(key)) throw new TxnConflictError([key]);
      compares.push({ key, target: 'Version', op: '==', value: 0 });
    }
    if (w.swapService) {
      const swap = serviceSwapOps(ks, w.swapService.oldUnit, w.swapService.service);
      // The old record exactly as the watch shows it: an operator's change since the decision wins.
      const seen = this.opts.mirrors.services.entries().get(ks.service(w.swapService.oldUnit));
      if (seen === undefined) throw new Error(`service ${w.swapService.oldUnit} is gone: not registering ${w.swapService.service.unit}`);
      compares.push(...swap.compares, { key: ks.service(w.swapService.oldUnit), target: 'Value', op: '==', value: seen });
      puts.push(...swap.puts);
      deletes.push(...swap.deletes);
    }
    await this.opts.leadership.txnGuarded({ compares, puts, deletes });
    const at = this.opts.now();
    for (const p of puts) if (!p.key.startsWith(ks.eventsPrefix())) this.overlay.set(p.key, { value: p.value, at });
    for (const key of deletes) this.overlay.set(key, { value: null, at });
  }

  private lastEventAt = 0;
  /** Event keys are `<ms>-<volumeId>`: keep them strictly increasing so two events never share a key. */
  private eventTime(at: number): number {
    this.lastEventAt = Math.max(at, this.lastEventAt + 1);
    return this.lastEventAt;
  }

  onChange(listener: () => void): () => void {
    const mirrors = Object.values(this.opts.mirrors);
    for (const m of mirrors) m.on('change', listener);
    return () => {
      for (const m of mirrors) m.off('change', listener);
    };
  }

  onReconnect(listener: () => void): () => void {
    // PrefixMirror emits 'reconnected' once its watch is back after etcd was unreachable (src/locks).
    // MirrorLike types only 'change'; the event name is passed through as a plain emitter would take it.
    const mirrors = Object.values(this.opts.mirrors) as unknown as ReconnectEmitter[];
    for (const m of mirrors) m.on('reconnected', listener);
    return () => {
      for (const m of mirrors) m.off('reconnected', listener);
    };
  }

  async pruneEvents(keep: number): Promise<number> {
    const keys = await this.opts.listKeys(this.opts.ks.eventsPrefix());
    const drop = keys.slice(0, Math.max(0, keys.length - keep));
    // 100 deletes per transaction stays far below etcd's default limit of 128 operations.
    for (let i = 0; i < drop.length; i += 100) await this.opts.leadership.txnGuarded({ deletes: drop.slice(i, i + 100) });
    return drop.length;
  }
}

/** What the lock port needs of src/locks' acquireVolumeLock. */
export type AcquireVolumeLock = (volumeId: string, opts: { ttlMs: number; waitMs: number; owner: string }) => Promise<HeldLock>;

/** Per-volume locks over src/locks; a lock held by someone else (LockTimeoutError) is reported as null. */
export function volumeLocks(acquire: AcquireVolumeLock, owner: string, ttlMs: number): LockPort {
  return {
    async tryAcquire(volumeId) {
      try {
        // 200 ms: long enough to win a lock that is free, short enough not to stall the loop's worker.
        return await acquire(volumeId, { ttlMs, waitMs: 200, owner });
      } catch (err) {
        if ((err as Error).name === 'LockTimeoutError') return null;
        throw err;
      }
    },
  };
}
