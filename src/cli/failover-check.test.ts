import { describe, expect, it } from 'vitest';
import type { FailoverJournal, HostRecord, ManualRequest, Placement, ServiceRecord } from '../keyspace/index.js';
import { RefusedError } from './errors.js';
import { checkManualFailover, type ManualFailoverAsk } from './failover-check.js';
import type { ClusterState, Stored } from './state.js';

const VOL_A = 'vol-0aaa12345def67890';
const VOL_B = 'vol-0bbb12345def67890';
const HOST_1 = 'i-0111111111111111a';
const HOST_2 = 'i-0222222222222222a';
const HOST_3 = 'i-0333333333333333a';
const HOST_B = 'i-0444444444444444b';

function stored<T>(key: string, value: T): Stored<T> {
  return { key, value, modRevision: '5', lease: '0' };
}

function host(instanceId: string, az = 'us-east-1a', labels: Record<string, string> = {}): HostRecord {
  return { instanceId, az, privateIp: '10.0.0.1', machineId: 'm'.repeat(32), agentVersion: '0.1.0', labels, leaseTtlMs: 10_000, fenceMarginMs: 3_000, registeredAt: 0 };
}

function service(volumeId: string, extra: Partial<ServiceRecord> = {}): ServiceRecord {
  return { unit: `postgres@${volumeId}`, volumeId, mountUnit: 'data-postgres.mount', mountPoint: '/data/postgres', metadataKey: 'postgres', requiredLabels: {}, conflictGroup: 'postgres', ...extra };
}

function placement(volumeId: string, instanceId: string | null): Placement {
  return { volumeId, unit: `postgres@${volumeId}`, instanceId, device: '/dev/xvdf', generation: 3, updatedAt: 0 };
}

/** Two services on hosts 1 and 2 in us-east-1a, an idle host 3 there, and host B in us-east-1b. */
function cluster(): ClusterState {
  const hosts = [host(HOST_1), host(HOST_2), host(HOST_3, 'us-east-1a', { role: 'db' }), host(HOST_B, 'us-east-1b')];
  return {
    revision: '10',
    hosts: new Map(hosts.map((h) => [h.instanceId, stored(`h/${h.instanceId}`, h)])),
    services: new Map([service(VOL_A), service(VOL_B)].map((s) => [s.unit, stored(`s/${s.unit}`, s)])),
    placements: new Map([
      [VOL_A, stored('p/a', placement(VOL_A, HOST_1))],
      [VOL_B, stored('p/b', placement(VOL_B, HOST_2))],
    ]),
    journals: new Map(),
    reports: new Map(),
    requests: new Map(),
    leader: 'ctl-1',
  };
}

const ask = (toInstanceId: string | null): ManualFailoverAsk => ({ unit: `postgres@${VOL_A}`, volumeId: VOL_A, toInstanceId, volumeAz: 'us-east-1a' });

function refusal(state: ClusterState, a: ManualFailoverAsk): string {
  try {
    checkManualFailover(state, a);
  } catch (err) {
    if (err instanceof RefusedError) return err.message;
    throw err;
  }
  return 'accepted';
}

function request(refusedReason: string | null): ManualRequest {
  return { requestId: 'r1', unit: `postgres@${VOL_A}`, volumeId: VOL_A, toInstanceId: HOST_2, force: false, requestedAt: 1, refusedReason };
}

describe('checkManualFailover', () => {
  it('a refused request left in etcd does not block a new one', () => {
    const state = cluster();
    state.requests.set(VOL_A, stored('r', request('target i-0222222222222222a conflicts')));
    expect(checkManualFailover(state, ask(HOST_3)).map((h) => h.instanceId)).toEqual([HOST_3]);
  });

  it('accepts a live, same-AZ, conflict-free target', () => {
    expect(checkManualFailover(cluster(), ask(HOST_3)).map((h) => h.instanceId)).toEqual([HOST_3]);
  });

  it('without --to lists the hosts the controller may choose', () => {
    // host 1 holds it, host 2 holds a conflicting postgres, host B is in another AZ.
    expect(checkManualFailover(cluster(), ask(null)).map((h) => h.instanceId)).toEqual([HOST_3]);
  });

  it.each<[string, (s: ClusterState) => void, string | null, RegExp]>([
    ['unknown service', (s) => s.services.delete(`postgres@${VOL_A}`), HOST_3, /unknown service postgres@vol-0aaa/],
    ['dead target', () => undefined, 'i-0999999999999999a', /target i-0999999999999999a is not live/],
    ['cross-AZ target', () => undefined, HOST_B, /is in us-east-1b, but volume vol-0aaa12345def67890 is in us-east-1a/],
    ['conflicting target', () => undefined, HOST_2, /already holds postgres@vol-0bbb12345def67890 of conflict group postgres/],
    ['target is the holder', () => undefined, HOST_1, /already runs on i-0111111111111111a/],
    ['missing label', (s) => s.services.set(`postgres@${VOL_A}`, stored('s', service(VOL_A, { requiredLabels: { role: 'big' } }))), HOST_3, /lacks label role=big/],
    [
      'failover in progress',
      (s) => s.journals.set(VOL_A, stored('j', { volumeId: VOL_A, unit: `postgres@${VOL_A}`, kind: 'auto', step: 'detaching', toInstanceId: null } as FailoverJournal)),
      HOST_3,
      /auto failover of vol-0aaa12345def67890 is already at step detaching/,
    ],
    [
      'incoming conflicting failover',
      (s) => s.journals.set(VOL_B, stored('j', { volumeId: VOL_B, unit: `postgres@${VOL_B}`, kind: 'manual', step: 'attaching', toInstanceId: HOST_3 } as FailoverJournal)),
      HOST_3,
      /already holds postgres@vol-0bbb/,
    ],
    ['no eligible host', (s) => s.hosts.delete(HOST_3), null, /no live host in us-east-1a can take/],
    ['pending request', (s) => s.requests.set(VOL_A, stored('r', request(null))), HOST_3, /already requested and is not picked up yet/],
  ])('refuses: %s', (_name, mutate, to, message) => {
    const state = cluster();
    mutate(state);
    expect(refusal(state, ask(to))).toMatch(message);
  });
});
