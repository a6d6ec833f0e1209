import { describe, expect, it } from 'vitest';
import type { AgentReport, FailoverJournal, HostRecord, Placement, ServiceRecord } from '../../keyspace/index.js';
import { formatDuration } from '../output.js';
import type { ClusterState, Stored } from '../state.js';
import { buildStatus, renderStatus } from './status.js';

const VOL = 'vol-0aaa12345def67890';
const UNIT = `postgres@${VOL}`;
const H1 = 'i-0111111111111111a';
const H2 = 'i-0222222222222222a';
const NOW = 1_000_000;

const s = <T>(value: T): Stored<T> => ({ key: 'k', value, modRevision: '1', lease: '7' });
const host = (instanceId: string): HostRecord => ({ instanceId, az: 'us-east-1a', privateIp: '10.0.0.1', machineId: 'm'.repeat(32), agentVersion: '0.1.0', labels: {}, leaseTtlMs: 10_000, fenceMarginMs: 3_000, registeredAt: NOW - 95_000 });
const service: ServiceRecord = { unit: UNIT, volumeId: VOL, mountUnit: 'data-postgres.mount', mountPoint: '/data/postgres', metadataKey: 'postgres', requiredLabels: {} };

function state(over: Partial<ClusterState> = {}): ClusterState {
  return { revision: '9', hosts: new Map([[H1, s(host(H1))], [H2, s(host(H2))]]), services: new Map([[UNIT, s(service)]]), placements: new Map(), journals: new Map(), reports: new Map(), requests: new Map(), leader: null, ...over };
}

const placement = (instanceId: string | null, generation = 4): Placement => ({ volumeId: VOL, unit: UNIT, instanceId, device: '/dev/xvdf', generation, updatedAt: 0 });
const report = (generation: number, phase: AgentReport['phase'] = 'active'): AgentReport => ({ instanceId: H1, volumeId: VOL, unit: UNIT, generation, phase, mountActive: true, unitActive: true, error: null, at: 0 });

describe('buildStatus', () => {
  it.each<[string, Partial<ClusterState>, string]>([
    ['unplaced', {}, 'unplaced'],
    ['active for the current generation', { placements: new Map([[VOL, s(placement(H1))]]), reports: new Map([[`${H1}/${VOL}`, s(report(4))]]) }, 'active'],
    ['report for an old generation is pending', { placements: new Map([[VOL, s(placement(H1))]]), reports: new Map([[`${H1}/${VOL}`, s(report(3))]]) }, 'pending'],
    ['holder without lease', { hosts: new Map([[H2, s(host(H2))]]), placements: new Map([[VOL, s(placement(H1))]]) }, 'holder-dead'],
    ['placement to nobody', { placements: new Map([[VOL, s(placement(null))]]) }, 'released'],
  ])('service state: %s', (_name, over, expected) => {
    expect(buildStatus(state(over), new Map(), NOW).services[0]?.state).toBe(expected);
  });

  it('lists hosts with lease age, TTL left and volumes, and failovers in progress', () => {
    const journal = { volumeId: VOL, unit: UNIT, kind: 'auto', step: 'blocked', fromInstanceId: H1, toInstanceId: null, stepStartedAt: NOW - 5_000, blockedReason: 'no host in us-east-1a' } as FailoverJournal;
    const view = buildStatus(state({ placements: new Map([[VOL, s(placement(H1))]]), journals: new Map([[VOL, s(journal)]]), leader: 'ctl-1' }), new Map([[H1, 7_000]]), NOW);
    expect(view.hosts[0]).toEqual({ instanceId: H1, az: 'us-east-1a', privateIp: '10.0.0.1', leaseAgeMs: 95_000, leaseTtlLeftMs: 7_000, volumes: [VOL] });
    expect(view.failovers).toEqual([{ volumeId: VOL, unit: UNIT, kind: 'auto', step: 'blocked', from: H1, to: null, stepAgeMs: 5_000, blockedReason: 'no host in us-east-1a' }]);
    const text = renderStatus(view, NOW);
    expect(text).toContain('leader: ctl-1');
    expect(text).toMatch(new RegExp(`${H1}\\s+us-east-1a\\s+10.0.0.1\\s+1m35s\\s+7s\\s+${VOL}`));
    expect(text).toContain('blocked (no host in us-east-1a)');
  });
});

describe('formatDuration', () => {
  it.each([[0, '0s'], [59_400, '59s'], [61_000, '1m01s'], [3_600_000 + 180_000, '1h03m'], [90_000_000, '1d01h']])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
