import type { MirrorChange } from '../../locks/index.js';
import { Placement, RecordCache, ServiceRecord, type Keyspace } from '../../keyspace/index.js';
import type { Logger } from '../../log/logger.js';
import type { DesiredView } from './reconciler.js';

/** What the view reads of a PrefixMirror (a double in unit tests). */
export interface ViewMirror {
  entries(): ReadonlyMap<string, string>;
  get(key: string): string | undefined;
  on(event: 'change', listener: (change: MirrorChange) => void): unknown;
}

/**
 * The agent's reading of the placements/ and services/ mirrors. Records are decoded once per change of
 * their value, and the by-volume index of services is updated per changed key: with 1,000 services
 * registered one by one, every change used to decode every record several times over on every host
 * (bench/failover.ts az1000 never got its 200 hosts through the registration).
 */
export class MirrorView implements DesiredView {
  private readonly placementRecords: RecordCache<typeof Placement>;
  private readonly serviceRecords: RecordCache<typeof ServiceRecord>;
  /**
   * The service records by volume (each volume's records by key, in the order they arrived) and, by key,
   * those stored under their own unit's key. Updated per changed key, never rebuilt on a change: a
   * rebuild per change was quadratic again in a bulk registration.
   */
  private readonly byVolume = new Map<string, Map<string, ServiceRecord>>();
  private readonly consistent = new Map<string, ServiceRecord>();

  constructor(
    private readonly ks: Keyspace,
    private readonly placements: ViewMirror,
    private readonly services: ViewMirror,
    log: Logger,
    /** Told, on each change of the services mirror, which volumes it touched ('all' after a re-list). */
    onServicesChanged: (volumes: string[] | 'all') => void = () => undefined,
  ) {
    this.placementRecords = new RecordCache(Placement, log);
    this.serviceRecords = new RecordCache(ServiceRecord, log);
    this.rebuild();
    // Subscribed here, before anyone else reads the view on the same change: the index is never stale.
    services.on('change', (change) => onServicesChanged(this.servicesChanged(change)));
  }

  placement(volumeId: string): Placement | undefined {
    const key = this.ks.placement(volumeId);
    return this.placementRecords.decode(key, this.placements.get(key));
  }

  service(volumeId: string, unit?: string): ServiceRecord | undefined {
    const mine = this.byVolume.get(volumeId);
    // The record under the unit's own key if it names this volume, else the first of the volume's records
    // (two services naming one volume is a misconfiguration).
    return (unit === undefined ? undefined : mine?.get(this.ks.service(unit))) ?? mine?.values().next().value;
  }

  /** Every service record naming the volume. */
  servicesOf(volumeId: string): ServiceRecord[] {
    return [...(this.byVolume.get(volumeId)?.values() ?? [])];
  }

  volumeIds(): string[] {
    const ids = new Set<string>();
    const placed = this.placements.entries();
    for (const key of placed.keys()) ids.add(this.ks.tail(key, this.ks.placementsPrefix()));
    this.placementRecords.prune(placed);
    for (const volumeId of this.byVolume.keys()) ids.add(volumeId);
    return [...ids];
  }

  /** Every service record stored under its own unit's key. */
  allServices(): ServiceRecord[] {
    return [...this.consistent.values()];
  }

  /** The volumes whose service record appeared, changed or went away (the old and the new volume of a changed key). */
  private servicesChanged(change: MirrorChange): string[] | 'all' {
    if (change === 'reset') {
      this.rebuild();
      return 'all';
    }
    const volumes = new Set<string>();
    for (const key of change) {
      const before = this.serviceRecords.previous(key);
      const now = this.serviceRecords.decode(key, this.services.get(key));
      if (before === now) continue;
      if (before) {
        volumes.add(before.volumeId);
        this.unindex(key, before);
      }
      if (now) {
        volumes.add(now.volumeId);
        this.index(key, now);
      }
    }
    return [...volumes];
  }

  private index(key: string, record: ServiceRecord): void {
    let mine = this.byVolume.get(record.volumeId);
    if (mine === undefined) this.byVolume.set(record.volumeId, (mine = new Map()));
    mine.set(key, record);
    if (key === this.ks.service(record.unit)) this.consistent.set(key, record);
  }

  private unindex(key: string, record: ServiceRecord): void {
    const mine = this.byVolume.get(record.volumeId);
    mine?.delete(key);
    if (mine?.size === 0) this.byVolume.delete(record.volumeId);
    this.consistent.delete(key);
  }

  private rebuild(): void {
    this.byVolume.clear();
    this.consistent.clear();
    const entries = this.services.entries();
    for (const [key, raw] of entries) {
      const record = this.serviceRecords.decode(key, raw);
      if (record) this.index(key, record);
    }
    this.serviceRecords.prune(entries);
  }
}
