import { describe, expect, it } from 'vitest';
import { FailoverJournal, ManualRequest, type AgentReport, type HostRecord, type Placement, type ServiceRecord } from '../../keyspace/index.js';
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
const report = (generation: number, phase: AgentReport['phase'] = 'active', over: Partial<AgentReport> = {}): AgentReport => ({ instanceId: H1, volumeId: VOL, unit: UNIT, generation, phase, mountActive: true, unitActive: true, error: null, at: 0, ...over });
const placedOnH1 = { placements: new Map([[VOL, s(placement(H1))]]) };
const reportedByH1 = (r: AgentReport): Partial<ClusterState> => ({ ...placedOnH1, reports: new Map([[`${H1}/${VOL}`, s(r)]]) });
const journalAt = (step: FailoverJournal['step'], over: Partial<FailoverJournal> = {}): FailoverJournal =>
  FailoverJournal.parse({ volumeId: VOL, unit: UNIT, kind: 'manual', step, fromInstanceId: H1, toInstanceId: H2, device: '/dev/xvdf', startedAt: NOW - 9_000, stepStartedAt: NOW - 2_000, ...over });

describe('buildStatus', () => {
  it.each<[string, Partial<ClusterState>, string, string | null]>([
    ['unplaced says what it waits for', {}, 'unplaced', 'no controller is leading, so nothing places it'],
    ['active for the current generation', reportedByH1(report(4)), 'active', null],
    ['report for an old generation is pending', reportedByH1(report(3)), 'pending', `waiting for ${H1} to report on generation 4`],
    ['no report yet is pending', placedOnH1, 'pending', `waiting for ${H1} to report on generation 4`],
    // The lease is gone, whatever its last report said: its reports die with it, but a stale copy must not count.
    ['holder without lease', { hosts: new Map([[H2, s(host(H2))]]), ...reportedByH1(report(4, 'released')) }, 'holder lost', `${H1} has no agent lease in etcd`],
    ['placement to nobody', { placements: new Map([[VOL, s(placement(null))]]) }, 'released', null],
    ['drift is shown with its error, not as active', reportedByH1(report(4, 'drift', { error: `device of ${VOL} is gone`, mountActive: false, unitActive: false })), 'drift', `device of ${VOL} is gone`],
    ['failed is shown with its error', reportedByH1(report(4, 'failed', { error: 'mount timed out' })), 'failed', 'mount timed out'],
    ['fenced', reportedByH1(report(4, 'fenced')), 'fenced', null],
    ['starting', reportedByH1(report(4, 'starting')), 'starting', null],
    ['"active" with the unit down is degraded', reportedByH1(report(4, 'active', { unitActive: false })), 'degraded', 'reported active, but its unit is not'],
    ['"active" with mount and unit down is degraded', reportedByH1(report(4, 'active', { unitActive: false, mountActive: false })), 'degraded', 'reported active, but its mount and unit are not'],
    ["another host's active report does not count", { ...placedOnH1, reports: new Map([[`${H2}/${VOL}`, s({ ...report(4), instanceId: H2 })]]) }, 'pending', `waiting for ${H1} to report on generation 4`],
    ['a failover in progress shows its step, even over an active report', { ...reportedByH1(report(4)), journals: new Map([[VOL, s(journalAt('detaching'))]]) }, 'failover detaching', null],
    ['a blocked failover shows why', { ...placedOnH1, journals: new Map([[VOL, s(journalAt('blocked', { blockedReason: 'no live host in us-east-1a can take it' }))]]) }, 'blocked', 'no live host in us-east-1a can take it'],
    ['a finished failover leaves the state to the report', { ...reportedByH1(report(4)), journals: new Map([[VOL, s(journalAt('done'))]]) }, 'active', null],
    ['a failed failover does not hide a lost holder', { hosts: new Map([[H2, s(host(H2))]]), ...placedOnH1, journals: new Map([[VOL, s(journalAt('failed', { error: 'attach timed out' }))]]) }, 'holder lost', `${H1} has no agent lease in etcd`],
  ])('service state: %s', (_name, over, expected, detail) => {
    const service = buildStatus(state(over), new Map(), NOW).services[0];
    expect(service?.state).toBe(expected);
    expect(service?.detail).toBe(detail);
  });

  it('shows a non-active state with its reason in the table', () => {
    const view = buildStatus(state(reportedByH1(report(4, 'drift', { error: 'unit postgres@vol-0aaa12345def67890 is inactive' }))), new Map(), NOW);
    expect(renderStatus(view, NOW)).toMatch(new RegExp(`${UNIT}\\s+${VOL}\\s+${H1}\\s+drift \\(unit postgres@vol-0aaa12345def67890 is inactive\\)`));
    expect(renderStatus(view, NOW)).not.toMatch(/\bactive\s+-/);
  });

  it('lists pending, expired and refused requests with target, age and deadline', () => {
    const req = (requestId: string, over: Partial<ManualRequest>): ManualRequest => ManualRequest.parse({ requestId, unit: UNIT, volumeId: VOL, toInstanceId: H2, requestedAt: NOW - 3_000, ...over });
    const UNIT2 = 'redis@vol-0bbb12345def67890';
    const requests = new Map([
      [VOL, s(req('r-1', { deadline: NOW + 5_000 }))],
      ['vol-0bbb12345def67890', s(req('r-2', { unit: UNIT2, volumeId: 'vol-0bbb12345def67890', toInstanceId: null, deadline: NOW - 2_000 }))],
      ['vol-0ccc12345def67890', s(req('r-3', { unit: 'zk@vol-0ccc12345def67890', volumeId: 'vol-0ccc12345def67890', refusedReason: 'target is draining' }))],
    ]);
    const view = buildStatus(state({ requests }), new Map(), NOW);
    expect(view.requests).toEqual([
      { unit: UNIT, volumeId: VOL, requestId: 'r-1', target: H2, force: false, ageMs: 3_000, deadline: NOW + 5_000, state: 'pending', refusedReason: null },
      { unit: UNIT2, volumeId: 'vol-0bbb12345def67890', requestId: 'r-2', target: null, force: false, ageMs: 3_000, deadline: NOW - 2_000, state: 'expired', refusedReason: null },
      { unit: 'zk@vol-0ccc12345def67890', volumeId: 'vol-0ccc12345def67890', requestId: 'r-3', target: H2, force: false, ageMs: 3_000, deadline: null, state: 'refused', refusedReason: 'target is draining' },
    ]);
    const text = renderStatus(view, NOW);
    expect(text).toMatch(new RegExp(`r-1\\s+${UNIT}\\s+${H2}\\s+3s\\s+in 5s\\s+pending \\(not started\\)`));
    expect(text).toMatch(/r-2\s+redis@vol-0bbb12345def67890\s+\(controller chooses\)\s+3s\s+passed 2s ago\s+expired/);
    expect(text).toMatch(/r-3\s+zk@vol-0ccc12345def67890\s+i-0222222222222222a\s+3s\s+-\s+refused: target is draining/);
    expect(renderStatus(buildStatus(state(), new Map(), NOW), NOW)).toContain('no pending requests');
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

describe('offline hosts', () => {
  const H9 = 'i-0999999999999999a';
  it('a holder without lease is offline since its auto failover was detected; live hosts never are', () => {
    const journal = journalAt('blocked', { kind: 'auto', fromInstanceId: H9, toInstanceId: null, startedAt: NOW - 61_000, blockedReason: 'no live host in us-east-1a with a free device' });
    const st = state({ placements: new Map([[VOL, s(placement(H9))]]), journals: new Map([[VOL, s(journal)]]) });
    const view = buildStatus(st, new Map(), NOW, [{ at: NOW - 1_000, volumeId: VOL, unit: UNIT, step: 'attaching', message: 'x', instanceId: H2 }]);
    expect(view.offline).toEqual([{ instanceId: H9, since: NOW - 61_000, why: `holds ${VOL}, source of a failover of ${VOL}` }]);
    const text = renderStatus(view, NOW);
    expect(text).toMatch(new RegExp(`${H9}\\s+offline 1m01s`));
    expect(text).toMatch(/blocked \(no live host in us-east-1a with a free device\)/);
  });

  it('a host named only by an event is offline since the detected event; wide adds the generation', () => {
    const view = buildStatus(state(reportedByH1(report(4))), new Map(), NOW, [{ at: NOW - 5_000, volumeId: VOL, unit: UNIT, step: 'detected', message: 'lease gone', instanceId: H9 }]);
    expect(view.offline).toEqual([{ instanceId: H9, since: NOW - 5_000, why: 'named by events' }]);
    expect(renderStatus(view, NOW, { wide: true })).toMatch(new RegExp(`${UNIT}\\s+${VOL}\\s+${H1}\\s+4\\s+active`));
  });
});

describe('a running failover in the services table', () => {
  it('says how long it has been at its step', () => {
    const view = buildStatus(state({ ...placedOnH1, journals: new Map([[VOL, s(journalAt('detaching'))]]) }), new Map(), NOW);
    expect(view.services[0]?.inStepMs).toBe(2_000);
    expect(renderStatus(view, NOW)).toMatch(new RegExp(`${UNIT}\\s+${VOL}\\s+${H1}\\s+failover detaching for 2s`));
  });
});
