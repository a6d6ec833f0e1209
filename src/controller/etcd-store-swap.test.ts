import { describe, expect, it } from 'vitest';
import { encodeRecord, keyspace, type ServiceRecord } from '../keyspace/index.js';
import type { TxnCompare } from '../locks/index.js';
import { silentLogger } from '../log/logger.js';
import { EtcdStore } from './etcd-store.js';
import { FakeMirror } from '../testing/fake-mirror.js';

const ks = keyspace('/t/');
const OLD = 'vol-0123456789abcdef0';
const NEW = 'vol-0fedcba9876543210';
const oldService: ServiceRecord = { unit: `postgres@${OLD}`, volumeId: OLD, mountUnit: 'data-postgres.mount', mountPoint: '/data', metadataKey: 'postgres', requiredLabels: {} };
const newService: ServiceRecord = { ...oldService, unit: `postgres@${NEW}`, volumeId: NEW };

function store(): { s: EtcdStore; services: FakeMirror; txns: { compares?: TxnCompare[]; puts?: { key: string; value: string }[]; deletes?: string[] }[] } {
  const services = new FakeMirror();
  const txns: { compares?: TxnCompare[]; puts?: { key: string; value: string }[]; deletes?: string[] }[] = [];
  const other = (): FakeMirror => new FakeMirror();
  const s = new EtcdStore({
    ks, log: silentLogger(), now: () => 0, listKeys: async () => [],
    leadership: { txnGuarded: async (ops) => void txns.push(ops) },
    mirrors: { hosts: other(), reports: other(), services, placements: other(), journals: other(), requests: other() },
  });
  services.map.set(ks.service(oldService.unit), encodeRecord(oldService));
  return { s, services, txns };
}

describe('EtcdStore: the auto-restore registration swap', () => {
  it('is one guarded transaction: old deleted, new put, only if the old is unchanged and the new absent', async () => {
    const { s, txns } = store();
    await s.write({ swapService: { oldUnit: oldService.unit, service: newService } });
    expect(txns).toEqual([{
      compares: [
        { key: ks.service(newService.unit), target: 'Create', op: '==', value: 0 },
        { key: ks.service(oldService.unit), target: 'Value', op: '==', value: encodeRecord(oldService) },
      ],
      puts: [{ key: ks.service(newService.unit), value: encodeRecord(newService) }],
      deletes: [ks.service(oldService.unit)],
    }]);
  });

  it('the next snapshot shows the swap before the watch delivers it (no tick sees the old service again)', async () => {
    const { s, services } = store();
    await s.write({ swapService: { oldUnit: oldService.unit, service: newService } });
    // Other mirrors' views are computed first; a pending delete must survive them.
    expect([...s.snapshot().services.keys()]).toEqual([newService.unit]);
    expect([...s.snapshot().services.keys()]).toEqual([newService.unit]);
    services.map.delete(ks.service(oldService.unit));
    services.map.set(ks.service(newService.unit), encodeRecord(newService));
    expect([...s.snapshot().services.keys()]).toEqual([newService.unit]);
  });

  it('refuses when the old service is gone already (an operator removed it): nothing written', async () => {
    const { s, services, txns } = store();
    services.map.clear();
    await expect(s.write({ swapService: { oldUnit: oldService.unit, service: newService } })).rejects.toThrow(`service ${oldService.unit} is gone`);
    expect(txns).toEqual([]);
  });
});
