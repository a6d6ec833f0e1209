import type { PrefixMirror } from '../../locks/index.js';
import { decodeRecord, Placement, ServiceRecord, type Keyspace } from '../../keyspace/index.js';
import type { Logger } from '../../log/logger.js';
import type { DesiredView } from './reconciler.js';

/** The reconciler's input, read from the placements/ and services/ mirrors at the moment it runs. */
export function mirrorView(ks: Keyspace, placements: PrefixMirror, services: PrefixMirror, log: Logger): DesiredView {
  const allServices = (): ServiceRecord[] => {
    const out: ServiceRecord[] = [];
    for (const [key, raw] of services.entries()) {
      const record = decodeRecord(ServiceRecord, key, raw, log);
      if (record) out.push(record);
    }
    return out;
  };
  return {
    placement: (volumeId) => decodeRecord(Placement, ks.placement(volumeId), placements.get(ks.placement(volumeId)), log),
    service: (volumeId, unit) => {
      if (unit !== undefined) {
        const record = decodeRecord(ServiceRecord, ks.service(unit), services.get(ks.service(unit)), log);
        if (record?.volumeId === volumeId) return record;
      }
      return allServices().find((s) => s.volumeId === volumeId);
    },
    volumeIds: () => {
      const ids = new Set<string>();
      for (const key of placements.entries().keys()) ids.add(ks.tail(key, ks.placementsPrefix()));
      for (const s of allServices()) ids.add(s.volumeId);
      return [...ids];
    },
  };
}

export function decodeServices(ks: Keyspace, services: PrefixMirror, log: Logger): ServiceRecord[] {
  const out: ServiceRecord[] = [];
  for (const [key, raw] of services.entries()) {
    const record = decodeRecord(ServiceRecord, key, raw, log);
    if (record && key === ks.service(record.unit)) out.push(record);
  }
  return out;
}
