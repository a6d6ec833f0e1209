import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { encodeRecord, keyspace, type AgentReport, type HostRecord } from '../keyspace/index.js';
import { silentLogger } from '../log/logger.js';
import { EtcdStore, type MirrorLike } from './etcd-store.js';

/** A mirror double with per-key leases, as PrefixMirror keeps them. */
class FakeMirror extends EventEmitter implements MirrorLike {
  readonly map = new Map<string, string>();
  readonly leases = new Map<string, string>();
  entries(): Map<string, string> {
    return this.map;
  }
  leaseOf(key: string): string | undefined {
    return this.map.has(key) ? (this.leases.get(key) ?? '0') : undefined;
  }
  put(key: string, value: unknown, lease: string): void {
    this.map.set(key, encodeRecord(value));
    this.leases.set(key, lease);
  }
}

const ks = keyspace('/t/');
const A = 'i-0aaaaaaaaaaaaaaaa';
const B = 'i-0bbbbbbbbbbbbbbbb';
const VOL = 'vol-0123456789abcdef0';

function host(instanceId: string): HostRecord {
  return { instanceId, az: 'us-east-1a', privateIp: '10.0.0.1', machineId: 'm', agentVersion: '1', labels: {}, leaseTtlMs: 10_000, fenceMarginMs: 3_000, registeredAt: 1 };
}
function report(instanceId: string): AgentReport {
  return { instanceId, volumeId: VOL, unit: `postgres@${VOL}`, generation: 3, phase: 'released', mountActive: false, unitActive: false, error: null, at: 1 };
}

function store(): { s: EtcdStore; hosts: FakeMirror; reports: FakeMirror } {
  const hosts = new FakeMirror();
  const reports = new FakeMirror();
  const other = (): FakeMirror => new FakeMirror();
  const s = new EtcdStore({
    ks, log: silentLogger(), now: () => 0, listKeys: async () => [],
    leadership: { txnGuarded: async () => undefined },
    mirrors: { hosts, reports, services: other(), placements: other(), journals: other(), requests: other() },
  });
  hosts.put(ks.host(A), host(A), '111');
  hosts.put(ks.host(B), host(B), '222');
  return { s, hosts, reports };
}

describe('EtcdStore: agent reports are believed only from the host they are about', () => {
  it('keeps a report written under its host\'s lease', () => {
    const { s, reports } = store();
    reports.put(ks.status(B, VOL), report(B), '222');
    expect(s.snapshot().reports.get(`${B}/${VOL}`)?.phase).toBe('released');
  });

  it('ignores a report under status/<B>/ written under another host\'s lease (A speaking for B)', () => {
    const { s, reports } = store();
    reports.put(ks.status(B, VOL), report(B), '111');
    expect(s.snapshot().reports.has(`${B}/${VOL}`)).toBe(false);
  });

  it('ignores a report without a lease, or whose host has no record', () => {
    const { s, hosts, reports } = store();
    reports.put(ks.status(B, VOL), report(B), '0');
    expect(s.snapshot().reports.size).toBe(0);
    hosts.map.delete(ks.host(B));
    reports.put(ks.status(B, VOL), report(B), '222');
    expect(s.snapshot().reports.size).toBe(0);
  });

  it('ignores a report whose body names another host than its key (A\'s key, B\'s name)', () => {
    const { s, reports } = store();
    reports.put(ks.status(A, VOL), report(B), '111');
    expect(s.snapshot().reports.size).toBe(0);
  });
});
