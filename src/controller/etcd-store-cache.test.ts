import { describe, expect, it } from 'vitest';
import { encodeRecord, keyspace, type HostRecord, type ServiceRecord } from '../keyspace/index.js';
import { silentLogger } from '../log/logger.js';
import { EtcdStore } from './etcd-store.js';
import { FakeMirror } from '../testing/fake-mirror.js';

const ks = keyspace('/t/');
const A = 'i-0aaaaaaaaaaaaaaaa';
const svc = (n: number, mountPoint = `/data/${n}`): ServiceRecord => ({ unit: `db${n}@vol-0${String(n).padStart(16, '0')}`, volumeId: `vol-0${String(n).padStart(16, '0')}`, mountUnit: `data-${n}.mount`, mountPoint, metadataKey: `db${n}`, requiredLabels: {} });
const host = (): HostRecord => ({ instanceId: A, az: 'us-east-1a', privateIp: '10.0.0.1', machineId: 'm', agentVersion: '1', labels: {}, leaseTtlMs: 10_000, fenceMarginMs: 3_000, registeredAt: 1 });

function store(): { s: EtcdStore; services: FakeMirror; hosts: FakeMirror; placements: FakeMirror; txns: unknown[] } {
  const services = new FakeMirror();
  const hosts = new FakeMirror();
  const placements = new FakeMirror();
  const txns: unknown[] = [];
  const s = new EtcdStore({
    ks, log: silentLogger(), now: () => 0, listKeys: async () => [],
    leadership: { txnGuarded: async (ops) => void txns.push(ops) },
    mirrors: { hosts, services, placements, reports: new FakeMirror(), journals: new FakeMirror(), requests: new FakeMirror() },
  });
  return { s, services, hosts, placements, txns };
}

describe('EtcdStore: a record is decoded once per raw value, not once per tick', () => {
  it('the same raw value gives the same record object; a changed value a new one; a deleted key is gone', () => {
    const { s, services, hosts } = store();
    hosts.map.set(ks.host(A), encodeRecord(host()));
    for (const n of [1, 2]) services.map.set(ks.service(svc(n).unit), encodeRecord(svc(n)));
    const first = s.snapshot();
    const second = s.snapshot();
    expect(second.services.get(svc(1).unit)).toBe(first.services.get(svc(1).unit));
    expect(second.hosts.get(A)).toBe(first.hosts.get(A));
    services.map.set(ks.service(svc(1).unit), encodeRecord(svc(1, '/data/moved')));
    services.map.delete(ks.service(svc(2).unit));
    const third = s.snapshot();
    expect(third.services.get(svc(1).unit)).not.toBe(first.services.get(svc(1).unit));
    expect(third.services.get(svc(1).unit)?.mountPoint).toBe('/data/moved');
    expect([...third.services.keys()]).toEqual([svc(1).unit]);
    // The key comes back with its first value: decoded again, equal to it.
    services.map.set(ks.service(svc(2).unit), encodeRecord(svc(2)));
    expect(s.snapshot().services.get(svc(2).unit)).toEqual(svc(2));
  });

  it('nothing changed: the very same map again; any change (value, new key, deleted key) a new one', () => {
    const { s, services } = store();
    for (const n of [1, 2]) services.map.set(ks.service(svc(n).unit), encodeRecord(svc(n)));
    const a = s.snapshot().services;
    expect(s.snapshot().services).toBe(a);
    services.map.set(ks.service(svc(3).unit), encodeRecord(svc(3)));
    const b = s.snapshot().services;
    expect(b).not.toBe(a);
    expect([...b.keys()]).toEqual([1, 2, 3].map((n) => svc(n).unit));
    services.map.set(ks.service(svc(3).unit), encodeRecord(svc(3, '/data/elsewhere')));
    const c = s.snapshot().services;
    expect(c).not.toBe(b);
    expect(c.get(svc(3).unit)?.mountPoint).toBe('/data/elsewhere');
    services.map.delete(ks.service(svc(1).unit));
    services.map.set(ks.service(svc(4).unit), encodeRecord(svc(4)));
    expect([...s.snapshot().services.keys()]).toEqual([2, 3, 4].map((n) => svc(n).unit));
  });

  it('a malformed value is left out every tick (and decoded again only once it changes)', () => {
    const { s, services } = store();
    services.map.set(ks.service('bad'), '{not json');
    expect(s.snapshot().services.size).toBe(0);
    expect(s.snapshot().services.size).toBe(0);
    services.map.set(ks.service('bad'), encodeRecord(svc(3)));
    expect([...s.snapshot().services.keys()]).toEqual([svc(3).unit]);
  });

  it('our own write is still seen before the watch catches up (overlay), then the mirror\'s value', async () => {
    const { s, placements } = store();
    const p = { volumeId: svc(1).volumeId, unit: svc(1).unit, instanceId: A, device: '/dev/xvdf', generation: 2, updatedAt: 1 };
    await s.write({ placement: p });
    expect(s.snapshot().placements.get(p.volumeId)?.generation).toBe(2);
    placements.map.set(ks.placement(p.volumeId), encodeRecord(p));
    expect(s.snapshot().placements.get(p.volumeId)).toEqual(p);
  });
});
