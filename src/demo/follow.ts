import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { AgentReport, decodeRecord, EventRecord, FailoverJournal, HostRecord, type Keyspace } from '../keyspace/index.js';
import type { Ec2Sim } from '../sim/ec2/index.js';
import type { FleetState } from '../sim/fleet/index.js';
import { checkAttachmentHistory, HoldTracker, type SafetyViolation } from './safety.js';
import { entryKey, fromAttachment, fromEvent, fromJournal, fromMetadataChange, fromReport, type TimelineEntry } from './timeline.js';

/**
 * The simulators have no change feed; their logs are read this often. 20 ms keeps their lines in
 * order with the etcd ones in the live output, and a poll is only a length check.
 */
const SIM_LOG_POLL_MS = 20;

export interface FollowedSims {
  ec2: Ec2Sim;
  fleet: FleetState;
  /** fleet machine id → instance id. */
  machines: ReadonlyMap<string, string>;
  /** fleet metadata key → the volume it names (`postgres` → vol-…), for removals. */
  metadataVolumes: Map<string, string>;
}

export interface FollowerHandlers {
  onEntry(entry: TimelineEntry): void;
  onViolation(violation: SafetyViolation): void;
}

/**
 * Follows the cluster for the demo: one etcd watch on the whole prefix (so puts and deletes arrive in
 * revision order, which the hold check relies on) plus the EC2 simulator's attachment history. Keeps
 * what the scenario waits on: live hosts, the latest agent reports and journals.
 */
export class ClusterFollower {
  readonly entries: TimelineEntry[] = [];
  readonly hosts = new Map<string, HostRecord>();
  /** status key → latest report. */
  readonly reports = new Map<string, AgentReport>();
  readonly journals = new Map<string, FailoverJournal>();
  readonly tracker = new HoldTracker();
  private readonly seen = new Set<string>();
  private readonly waiters = new Set<() => void>();
  private ec2Index = 0;
  private fleetIndex = 0;
  private watcher: Watcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly etcd: Etcd3,
    private readonly ks: Keyspace,
    private readonly sims: FollowedSims,
    private readonly handlers: FollowerHandlers,
  ) {}

  async start(): Promise<void> {
    // List first, then watch from the next revision: nothing written in between is missed.
    const listing = await this.etcd.getAll().prefix(this.ks.prefix).exec();
    for (const kv of listing.kvs) this.onPut(kv);
    const next = BigInt(listing.header.revision) + 1n;
    this.watcher = await this.etcd.watch().prefix(this.ks.prefix).startRevision(next.toString()).create();
    this.watcher.on('put', (kv) => this.onPut(kv));
    this.watcher.on('delete', (kv) => this.onDelete(kv));
    this.timer = setInterval(() => this.pollSims(), SIM_LOG_POLL_MS);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.pollSims();
    await this.watcher?.cancel();
  }

  /** Report an attachment that broke the one-holder rule (checked on the whole history each time). */
  attachmentViolations(): SafetyViolation[] {
    return checkAttachmentHistory(this.sims.ec2.history);
  }

  /** Resolves with the predicate's first non-undefined value, re-checked on every change. */
  waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> {
    return new Promise((resolve, reject) => {
      const probe = (): void => {
        const value = check();
        if (value === undefined) return;
        cleanup();
        resolve(value);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(probe);
      };
      this.waiters.add(probe);
      probe();
    });
  }

  /**
   * The host whose agent reports the volume `active`, if any; `except` skips a host (a killed host's
   * last report stays in etcd until its lease expires).
   */
  activeHolder(volumeId: string, except?: string): string | undefined {
    for (const r of this.reports.values()) {
      if (r.volumeId === volumeId && r.instanceId !== except && r.phase === 'active' && r.unitActive) return r.instanceId;
    }
    return undefined;
  }

  private emit(entries: TimelineEntry[]): void {
    for (const e of entries) {
      const key = entryKey(e);
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.entries.push(e);
      this.handlers.onEntry(e);
    }
  }

  private changed(): void {
    for (const probe of [...this.waiters]) probe();
  }

  private onPut(kv: IKeyValue): void {
    const key = kv.key.toString('utf8');
    const ks = this.ks;
    if (key.startsWith(ks.hostsPrefix())) {
      const host = decodeRecord(HostRecord, key, kv.value);
      if (host) this.hosts.set(host.instanceId, host);
    } else if (key.startsWith(ks.statusPrefix())) {
      const report = decodeRecord(AgentReport, key, kv.value);
      if (report) {
        this.reports.set(key, report);
        this.emit([fromReport(report)]);
        const violation = this.tracker.report(report);
        if (violation) this.handlers.onViolation(violation);
      }
    } else if (key.startsWith(ks.journalPrefix())) {
      const journal = decodeRecord(FailoverJournal, key, kv.value);
      if (journal) {
        this.journals.set(journal.volumeId, journal);
        this.emit(fromJournal(journal));
      }
    } else if (key.startsWith(ks.eventsPrefix())) {
      const event = decodeRecord(EventRecord, key, kv.value);
      if (event) this.emit([fromEvent(event)]);
    }
    this.changed();
  }

  private onDelete(kv: IKeyValue): void {
    const key = kv.key.toString('utf8');
    if (key.startsWith(this.ks.hostsPrefix())) {
      this.hosts.delete(this.ks.tail(key, this.ks.hostsPrefix()));
    } else if (key.startsWith(this.ks.statusPrefix())) {
      const report = this.reports.get(key);
      this.reports.delete(key);
      if (report) this.tracker.removed(report.instanceId, report.volumeId);
    }
    this.changed();
  }

  private pollSims(): void {
    const history = this.sims.ec2.history;
    const fresh = history.slice(this.ec2Index);
    this.ec2Index = history.length;
    this.emit(fresh.map(fromAttachment));
    for (const v of checkAttachmentHistory(history)) if (fresh.some((h) => h.at === v.at)) this.handlers.onViolation(v);
    const changes = this.sims.fleet.changes.slice(this.fleetIndex);
    this.fleetIndex = this.sims.fleet.changes.length;
    this.emit(changes.map((c) => fromMetadataChange(c, this.sims.machines.get(c.machineId) ?? null, c.value ?? this.sims.metadataVolumes.get(c.key) ?? '-')));
    if (fresh.length > 0 || changes.length > 0) this.changed();
  }
}
