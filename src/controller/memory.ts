import type { AgentReport, FailoverJournal, HostRecord, ManualRequest, Placement, ServiceRecord } from '../keyspace/records.js';
import { TxnConflictError } from '../locks/index.js';
import type { LivenessSnapshot } from './hosts.js';
import { reportKey } from './observed.js';
import type { HeldLock, LockPort, StorePort, StoreSnapshot, StoreWrite } from './ports.js';

/**
 * In-memory StorePort and LockPort: the stand-ins for etcd that the loop's unit tests and the
 * benchmark's fast mode use. Writes apply at once and notify listeners like a watch would.
 */
export class MemoryStore implements StorePort {
  readonly hosts = new Map<string, HostRecord>();
  readonly services = new Map<string, ServiceRecord>();
  readonly placements = new Map<string, Placement>();
  readonly journals = new Map<string, FailoverJournal>();
  readonly reports = new Map<string, AgentReport>();
  readonly requests = new Map<string, ManualRequest>();
  readonly events: NonNullable<StoreWrite['events']> = [];
  /** Every journal written, in order (tests assert on the step sequence). */
  readonly journalLog: FailoverJournal[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly reconnectListeners = new Set<() => void>();
  /** When false, writes throw as a deposed leader's would. */
  leading = true;

  snapshot(): StoreSnapshot {
    return {
      hosts: new Map(this.hosts), services: new Map(this.services), placements: new Map(this.placements),
      journals: new Map(this.journals), reports: new Map(this.reports), requests: new Map(this.requests),
    };
  }

  /** What a look at host liveness reads (LivenessSource, for a standby's looks). */
  liveness(): LivenessSnapshot {
    return { hosts: new Map(this.hosts), placements: new Map(this.placements), journals: new Map(this.journals) };
  }

  async write(w: StoreWrite): Promise<void> {
    if (!this.leading) throw new Error('not the leader');
    // As EtcdStore: a write acting on a request fails when the request was withdrawn meanwhile.
    const requestOf = w.deleteRequestOf ?? w.request?.volumeId;
    if (requestOf !== undefined && !this.requests.has(requestOf)) throw new TxnConflictError([`requests/${requestOf}`]);
    if (w.hostAbsent !== undefined && this.hosts.has(w.hostAbsent)) throw new TxnConflictError([`hosts/${w.hostAbsent}`]);
    if (w.placement) this.placements.set(w.placement.volumeId, w.placement);
    if (w.journal) {
      this.journals.set(w.journal.volumeId, w.journal);
      this.journalLog.push(w.journal);
    }
    if (w.request) this.requests.set(w.request.volumeId, w.request);
    if (w.deleteRequestOf) this.requests.delete(w.deleteRequestOf);
    if (w.swapService) {
      if (!this.services.has(w.swapService.oldUnit) || this.services.has(w.swapService.service.unit)) throw new Error(`service swap ${w.swapService.oldUnit} → ${w.swapService.service.unit} conflicts`);
      this.services.delete(w.swapService.oldUnit);
      this.services.set(w.swapService.service.unit, w.swapService.service);
    }
    this.events.push(...(w.events ?? []));
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** What a watch reconnecting to etcd after an outage looks like to the loop. */
  reconnected(): void {
    for (const l of this.reconnectListeners) l();
    this.changed();
  }

  async pruneEvents(keep: number): Promise<number> {
    const drop = Math.max(0, this.events.length - keep);
    this.events.splice(0, drop);
    return drop;
  }

  putHost(record: HostRecord): void {
    this.hosts.set(record.instanceId, record);
    this.changed();
  }

  removeHost(instanceId: string): void {
    this.hosts.delete(instanceId);
    this.changed();
  }

  putReport(report: AgentReport): void {
    this.reports.set(reportKey(report.instanceId, report.volumeId), report);
    this.changed();
  }

  changed(): void {
    for (const l of this.listeners) l();
  }
}

export class MemoryLocks implements LockPort {
  readonly holders = new Map<string, string>();
  private seq = 0;

  async tryAcquire(volumeId: string): Promise<HeldLock | null> {
    if (this.holders.has(volumeId)) return null;
    const token = String(++this.seq);
    this.holders.set(volumeId, token);
    return {
      token,
      release: async () => {
        if (this.holders.get(volumeId) === token) this.holders.delete(volumeId);
      },
    };
  }
}
