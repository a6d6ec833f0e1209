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
 * their value, and the services are indexed by volume once per change of the mirror: with 1,000 services
 * registered one by one, every change used to decode every record several times over on every host
 * (bench/failover.ts az1000 never got its 200 hosts through the registration).
 */
export class MirrorView implements DesiredView {
  private readonly placementRecords: RecordCache<typeof Placement>;
  private readonly serviceRecords: RecordCache<typeof ServiceRecord>;
  /** Built from the mirror on first use after a change; null: stale. */
  private index: { byVolume: Map<string, ServiceRecord>; consistent: ServiceRecord[] } | null = null;

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
    // Subscribed here, before anyone else reads the view on the same change: the index is never stale.
    services.on('change', (change) => onServicesChanged(this.servicesChanged(change)));
  }

  placement(volumeId: string): Placement | undefined {
    const key = this.ks.placement(volumeId);
    return this.placementRecords.decode(key, this.placements.get(key));
  }

  service(volumeId: string, unit?: string): ServiceRecord | undefined {
    if (unit !== undefined) {
      const key = this.ks.service(unit);
      const record = this.serviceRecords.decode(key, this.services.get(key));
      if (record?.volumeId === volumeId) return record;
    }
    return this.built().byVolume.get(volumeId);
  }

  volumeIds(): string[] {
    const ids = new Set<string>();
    const placed = this.placements.entries();
    for (const key of placed.keys()) ids.add(this.ks.tail(key, this.ks.placementsPrefix()));
    this.placementRecords.prune(placed);
    for (const volumeId of this.built().byVolume.keys()) ids.add(volumeId);
    return [...ids];
  }

  /** Every service record stored under its own unit's key. */
  allServices(): readonly ServiceRecord[] {
    return this.built().consistent;
  }

  /** The volumes whose service record appeared, changed or went away (the old and the new volume of a changed key). */
  private servicesChanged(change: MirrorChange): string[] | 'all' {
    this.index = null;
    if (change === 'reset') return 'all';
    const volumes = new Set<string>();
    for (const key of change) {
      const before = this.serviceRecords.previous(key);
      const now = this.serviceRecords.decode(key, this.services.get(key));
      if (before) volumes.add(before.volumeId);
      if (now) volumes.add(now.volumeId);
    }
    return [...volumes];
  }

  private built(): { byVolume: Map<string, ServiceRecord>; consistent: ServiceRecord[] } {
    if (this.index !== null) return this.index;
    const byVolume = new Map<string, ServiceRecord>();
    const consistent: ServiceRecord[] = [];
    const entries = this.services.entries();
    for (const [key, raw] of entries) {
      const record = this.serviceRecords.decode(key, raw);
      if (!record) continue;
      // First in mirror order, as a search over the records found it.
      if (!byVolume.has(record.volumeId)) byVolume.set(record.volumeId, record);
      if (key === this.ks.service(record.unit)) consistent.push(record);
    }
    this.serviceRecords.prune(entries);
    this.index = { byVolume, consistent };
    return this.index;
  }
}
