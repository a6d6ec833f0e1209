import { describe, expect, it } from 'vitest';
import { check, formatViolation, leaderTimeline, subtract, type InvariantId } from './checker.js';
import { sortHistory, type HistoryEvent } from './history.js';

/**
 * Made-up histories of a small world: hosts h1, h2 in us-east-1a and h3 in us-east-1b, controllers
 * c1 and c2, one service db0@vol-… in us-east-1a. The base history is a correct auto failover (h1
 * killed, db0 moved to h2 by the leader c1); each test adds or removes a few events to break one
 * invariant.
 */
const H1 = 'i-01aaaaaaaaaaaaaaa';
const H2 = 'i-02bbbbbbbbbbbbbbb';
const H3 = 'i-03ccccccccccccccc';
const VOL = 'vol-0123456789abcdef0';
const UNIT = `db0@${VOL}`;
const MOUNT = `data-${VOL}.mount`;
const T0 = 1_700_000_000_000;
const at = (ms: number): number => T0 + ms;

function base(): HistoryEvent[] {
  return [
    { at: at(0), type: 'world', seed: 7, leaseTtlMs: 2_000, electionTtlMs: 2_000, boundMs: 20_000, thawGraceMs: 1_000, driftGraceMs: 5_000,
      hosts: [{ id: H1, az: 'us-east-1a' }, { id: H2, az: 'us-east-1a' }, { id: H3, az: 'us-east-1b' }], controllers: ['c1', 'c2'],
      services: [{ unit: UNIT, volumeId: VOL, az: 'us-east-1a', registered: true, mountUnit: MOUNT }] },
    { at: at(100), type: 'election', key: '/p/election/a', candidate: 'c1', createRevision: '10', present: true },
    { at: at(150), type: 'election', key: '/p/election/b', candidate: 'c2', createRevision: '11', present: true },
    ...[H1, H2, H3].map((host): HistoryEvent => ({ at: at(200), type: 'host', host, up: true })),
    { at: at(300), type: 'service', unit: UNIT, present: true },
    { at: at(1_000), type: 'ec2-request', caller: 'c1', action: 'AttachVolume', volumeId: VOL, instanceId: H1 },
    { at: at(1_000), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'attaching' },
    { at: at(1_500), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'attached' },
    { at: at(1_600), type: 'status', host: H1, volumeId: VOL, present: true, phase: 'active', mountActive: true, unitActive: true, generation: 1 },
    { at: at(1_700), type: 'unit', host: H1, unit: UNIT, active: true },
    { at: at(2_000), type: 'phase', name: 'faults-start' },
    { at: at(5_000), type: 'fault', phase: 'inject', id: 1, kind: 'sigkill', of: 'proc-kill', targets: [H1], effect: 'dead' },
    { at: at(7_000), type: 'host', host: H1, up: false },
    { at: at(7_000), type: 'status', host: H1, volumeId: VOL, present: false },
    { at: at(7_000), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'auto', step: 'detected', from: H1, to: null, requestId: null, startedAt: at(7_000) },
    { at: at(7_100), type: 'ec2-request', caller: 'c1', action: 'DetachVolume', volumeId: VOL, instanceId: H1, force: true },
    { at: at(7_100), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'detaching', forced: true },
    { at: at(7_300), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'detached', forced: true },
    { at: at(7_400), type: 'ec2-request', caller: 'c1', action: 'AttachVolume', volumeId: VOL, instanceId: H2 },
    { at: at(7_400), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'attaching' },
    { at: at(7_800), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'attached' },
    { at: at(7_900), type: 'status', host: H2, volumeId: VOL, present: true, phase: 'active', mountActive: true, unitActive: true, generation: 3 },
    { at: at(8_000), type: 'unit', host: H2, unit: UNIT, active: true },
    { at: at(8_050), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'auto', step: 'done', from: H1, to: H2, requestId: null, startedAt: at(7_000) },
    { at: at(9_000), type: 'fault', phase: 'heal', id: 1, kind: 'sigkill', of: 'proc-kill', targets: [H1], effect: 'dead' },
    { at: at(9_500), type: 'host', host: H1, up: true },
    { at: at(10_000), type: 'phase', name: 'healed' },
    { at: at(20_000), type: 'phase', name: 'end' },
  ];
}

function run(events: HistoryEvent[]): ReturnType<typeof check> {
  return check(7, sortHistory(events));
}

function only(result: ReturnType<typeof check>, invariant: InvariantId): void {
  expect(result.violations.map((v) => v.invariant)).toEqual(expect.arrayContaining([invariant]));
  expect(new Set(result.violations.map((v) => v.invariant))).toEqual(new Set([invariant]));
  for (const v of result.violations) expect(v.seed).toBe(7);
}

const without = (events: HistoryEvent[], drop: (e: HistoryEvent) => boolean): HistoryEvent[] => events.filter((e) => !drop(e));

describe('chaos checker', () => {
  it('finds nothing in a correct failover, and measures its downtime and recovery', () => {
    const r = run(base());
    expect(r.violations).toEqual([]);
    expect(r.notCheckable).toEqual([]);
    expect(r.recoveryMs).toBe(0);
    expect(r.falseFailovers).toBe(0);
    // Down from the kill (+5 s) until h2 ran it (+8 s), sampled every 100 ms.
    expect(r.downtimesMs).toHaveLength(1);
    expect(r.downtimesMs[0]).toBeGreaterThanOrEqual(2_900);
    expect(r.downtimesMs[0]).toBeLessThanOrEqual(3_100);
  });

  it('1: a service active on two hosts at once, and a volume attached to two instances', () => {
    const r = run([...base(),
      { at: at(9_600), type: 'unit', host: H1, unit: UNIT, active: true },
      { at: at(10_500), type: 'unit', host: H1, unit: UNIT, active: false },
    ]);
    only(r, 1);
    const v = r.violations[0];
    expect(v?.at).toBe(at(9_600));
    expect(v?.message).toContain(`active on ${H1} and ${H2}`);
    expect(v?.slice.some((e) => e.type === 'unit' && e.host === H1 && e.active && e.at === at(9_600))).toBe(true);

    const twice = run([...base(),
      { at: at(12_000), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'attaching' },
      { at: at(12_050), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'detached' },
    ]);
    only(twice, 1);
    expect(twice.violations[0]?.message).toContain('attached to 2 instances');
    expect(twice.violations[0]?.slice.some((e) => e.type === 'ec2-change' && e.at === at(12_000))).toBe(true);
  });

  it('1: a volume reported mounted on two hosts at once', () => {
    const r = run([...base(),
      { at: at(11_000), type: 'status', host: H1, volumeId: VOL, present: true, phase: 'active', mountActive: true, unitActive: false, generation: 1 },
      { at: at(11_500), type: 'status', host: H1, volumeId: VOL, present: true, phase: 'released', mountActive: false, unitActive: false, generation: 1 },
    ]);
    only(r, 1);
    expect(r.violations[0]?.message).toContain('mounted on');
  });

  it('1: a volume mounted on two hosts at once, from the agents\' mount ledger', () => {
    const r = run([...base(),
      { at: at(1_650), type: 'mount', host: H1, mountUnit: MOUNT, mounted: true },
      { at: at(7_950), type: 'mount', host: H2, mountUnit: MOUNT, mounted: true },
      // h1's agent was killed at +5 s: its mount went with it; the new process mounts again by mistake.
      { at: at(9_700), type: 'mount', host: H1, mountUnit: MOUNT, mounted: true },
      { at: at(9_900), type: 'mount', host: H1, mountUnit: MOUNT, mounted: false },
    ]);
    only(r, 1);
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]?.at).toBe(at(9_700));
  });

  it('1: does not count a frozen host, nor one that stops within the thaw grace', () => {
    const frozen = without(base(), (e) => e.type === 'fault').concat([
      { at: at(5_000), type: 'fault', phase: 'inject', id: 1, kind: 'sigstop', of: 'proc-stop', targets: [H1], effect: 'frozen' },
      { at: at(9_000), type: 'fault', phase: 'heal', id: 1, kind: 'sigstop', of: 'proc-stop', targets: [H1], effect: 'frozen' },
      { at: at(9_400), type: 'unit', host: H1, unit: UNIT, active: false },
    ]);
    expect(run(frozen).violations).toEqual([]);
    // Still running 3 s after the thaw: a real overlap.
    const late = frozen.map((e) => (e.type === 'unit' && e.host === H1 && !e.active ? { ...e, at: at(12_000) } : e));
    expect(run(late).violations.map((v) => v.invariant)).toContain(1);
  });

  it('2: a unit left running after its volume was detached behind our back', () => {
    const r = run([...base(),
      { at: at(10_500), type: 'fault', phase: 'inject', id: 2, kind: 'oob-detach', of: 'oob-detach', targets: [VOL], effect: 'oob' },
      { at: at(10_500), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'detaching', forced: true },
      { at: at(10_600), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'detached', forced: true },
    ]);
    only(r, 2);
    const v = r.violations[0];
    expect(v?.at).toBe(at(15_500)); // detaching already is not attached
    expect(v?.message).toContain(`active on ${H2}`);
    expect(v?.slice.some((e) => e.type === 'ec2-change' && e.state === 'detached' && e.at === at(10_600))).toBe(true);
  });

  it('3: a mutating call from a controller that was no longer the leader', () => {
    const r = run([...base(), { at: at(3_000), type: 'election', key: '/p/election/a', candidate: 'c1', createRevision: '10', present: false }]);
    only(r, 3);
    expect(r.violations).toHaveLength(2);
    expect(r.violations[0]?.message).toMatch(/DetachVolume\(force\).*by c1.*its term 10 ended.*leader then: c2 \(term 11\)/);
    expect(r.violations[0]?.slice.some((e) => e.type === 'ec2-request' && e.action === 'DetachVolume')).toBe(true);
  });

  it('3: checks caller and term on EC2 changes when the simulator records them', () => {
    const r = run([...base(),
      { at: at(11_000), type: 'election', key: '/p/election/a', candidate: 'c1', createRevision: '10', present: false },
      { at: at(12_000), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'busy', caller: 'c1', term: '10' },
    ]);
    only(r, 3);
    expect(r.violations[0]?.message).toContain('(term 10)');
  });

  it('3: checks the endpoint\'s request log (caller and term from the mutation gate)', () => {
    const ok = run([...base(), { at: at(7_100), type: 'ec2-sim-request', action: 'DetachVolume', volumeId: VOL, instanceId: H1, force: true, caller: 'c1', term: '10', outcome: 'ok' }]);
    expect(ok.violations).toEqual([]);
    const stale = run([...base(), { at: at(12_000), type: 'ec2-sim-request', action: 'DetachVolume', volumeId: VOL, instanceId: H2, force: true, caller: 'c2', term: '11', outcome: 'ok' }]);
    only(stale, 3);
    expect(stale.violations[0]?.message).toMatch(/DetachVolume\(force\).*endpoint log.*by c2 \(term 11\).*c1 \(term 10\) still led/);
    // A lower term whose delete we see only just after the call (a lagging watch) is not blamed.
    const lagging = run([...base(),
      { at: at(12_000), type: 'ec2-sim-request', action: 'DetachVolume', volumeId: VOL, instanceId: H2, force: true, caller: 'c2', term: '11', outcome: 'ok' },
      { at: at(12_500), type: 'election', key: '/p/election/a', candidate: 'c1', createRevision: '10', present: false },
    ]);
    expect(lagging.violations).toEqual([]);
  });

  it('3: not checkable without the callers of EC2 requests or without the election', () => {
    const r = run(without(base(), (e) => e.type === 'ec2-request'));
    expect(r.notCheckable).toEqual([{ invariant: 3, reason: expect.stringContaining('no EC2 request recorded') }]);
    const r2 = run(without(base(), (e) => e.type === 'election'));
    expect(r2.notCheckable.map((n) => n.invariant)).toEqual([3]);
    expect(r2.violations).toEqual([]);
  });

  it('4: a service still down when the run ends after the heal', () => {
    const r = run([...base(), { at: at(10_500), type: 'unit', host: H2, unit: UNIT, active: false }]);
    only(r, 4);
    expect(r.recoveryMs).toBeNull();
    expect(r.violations[0]?.message).toContain('not recovered');
    expect(r.violations[0]?.slice.some((e) => e.type === 'unit' && e.at === at(10_500))).toBe(true);
  });

  it('4: blocked for a true reason (no live host in the AZ) is not a violation', () => {
    const noHosts = [...base(),
      { at: at(10_500), type: 'unit', host: H2, unit: UNIT, active: false },
      { at: at(10_500), type: 'host', host: H2, up: false },
      { at: at(10_500), type: 'host', host: H1, up: false },
      { at: at(10_600), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'auto', step: 'blocked', from: H2, to: null, requestId: null, startedAt: at(10_600), blockedReason: 'no live host in us-east-1a' },
    ] as HistoryEvent[];
    // h2's loss is a fault of its own here.
    noHosts.push({ at: at(10_400), type: 'fault', phase: 'inject', id: 5, kind: 'sigkill', of: 'proc-kill', targets: [H2, H1], effect: 'dead' });
    const r = run(noHosts);
    expect(r.violations.filter((v) => v.invariant === 4)).toEqual([]);
  });

  it('5: an auto failover of a host no fault touched', () => {
    const r = run(without(base(), (e) => e.type === 'fault').concat([{ at: at(7_050), type: 'unit', host: H1, unit: UNIT, active: false }]));
    only(r, 5);
    expect(r.falseFailovers).toBe(1);
    expect(r.violations[0]?.message).toContain(`away from ${H1}`);
  });

  it('6: a manual request started after its deadline, or after a cancel', () => {
    const late = run([...base(),
      { at: at(3_100), type: 'request', volumeId: VOL, present: true, requestId: 'r1', requestedAt: at(3_100), deadline: at(4_000), toInstanceId: H2, force: false },
      { at: at(12_000), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'manual', step: 'detected', from: H2, to: H2, requestId: 'r1', startedAt: at(12_000) },
      { at: at(12_100), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'manual', step: 'done', from: H2, to: H2, requestId: 'r1', startedAt: at(12_000) },
    ]);
    only(late, 6);
    expect(late.violations[0]?.message).toMatch(/r1.*8000 ms after its deadline/);

    const cancelled = run([...base(),
      { at: at(3_000), type: 'operator', phase: 'start', id: 1, action: 'move', unit: UNIT, args: ['--to', H2], timeoutMs: 60_000 },
      { at: at(3_100), type: 'request', volumeId: VOL, present: true, requestId: 'r2', requestedAt: at(3_100), toInstanceId: H2, force: false },
      { at: at(3_500), type: 'operator', phase: 'start', id: 2, action: 'cancel', unit: UNIT, args: [] },
      { at: at(3_600), type: 'operator', phase: 'end', id: 2, action: 'cancel', unit: UNIT, args: [], code: 0 },
      { at: at(12_000), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'manual', step: 'detected', from: H2, to: H2, requestId: 'r2', startedAt: at(12_000) },
    ]);
    only(cancelled, 6);
    expect(cancelled.violations[0]?.message).toContain('after a successful cancel');

    // The CLI's give-up time stands in for a deadline on code that records none.
    const gaveUp = run([...base(),
      { at: at(3_000), type: 'operator', phase: 'start', id: 1, action: 'move', unit: UNIT, args: [], timeoutMs: 2_000 },
      { at: at(3_100), type: 'request', volumeId: VOL, present: true, requestId: 'r3', requestedAt: at(3_100), toInstanceId: null, force: false },
      { at: at(5_200), type: 'operator', phase: 'end', id: 1, action: 'move', unit: UNIT, args: [], code: 1 },
      { at: at(12_000), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'manual', step: 'detected', from: H2, to: null, requestId: 'r3', startedAt: at(12_000) },
    ]);
    only(gaveUp, 6);
    expect(gaveUp.violations[0]?.message).toContain('CLI gave up');
  });

  it('7: a unit stopped and a volume moved during an etcd outage every host shared', () => {
    const r = run([...base(),
      { at: at(11_000), type: 'fault', phase: 'inject', id: 9, kind: 'sigstop-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'stop', quietAfterMs: 2_000 } },
      { at: at(12_000), type: 'unit', host: H2, unit: UNIT, active: false },
      { at: at(12_500), type: 'unit', host: H2, unit: UNIT, active: true },
      { at: at(13_000), type: 'fault', phase: 'heal', id: 9, kind: 'sigstop-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'stop', quietAfterMs: 2_000 } },
    ]);
    only(r, 7);
    expect(r.violations[0]?.message).toContain('1 unit stop(s)');
    const moved = run([...base(),
      { at: at(11_000), type: 'fault', phase: 'inject', id: 9, kind: 'kill-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'kill', quietAfterMs: 5_000 } },
      { at: at(13_000), type: 'fault', phase: 'heal', id: 9, kind: 'kill-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'kill', quietAfterMs: 5_000 } },
      { at: at(16_000), type: 'ec2-request', caller: 'c1', action: 'DetachVolume', volumeId: VOL, instanceId: H2, force: true },
      { at: at(16_000), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'detaching', forced: true },
      { at: at(16_100), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'detached', forced: true },
      { at: at(16_100), type: 'unit', host: H2, unit: UNIT, active: false },
      { at: at(16_200), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'attaching' },
      { at: at(16_300), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'attached' },
      { at: at(16_400), type: 'unit', host: H2, unit: UNIT, active: true },
    ]);
    expect(moved.violations.map((v) => v.invariant)).toEqual([7, 7]);
    expect(moved.violations.some((v) => v.message.includes('EC2 attachment change'))).toBe(true);
  });

  it('7: an operator\'s move within the window after an outage is the move, not the outage (chaos seed 13)', () => {
    const r = run([...base(),
      { at: at(11_000), type: 'fault', phase: 'inject', id: 9, kind: 'kill-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'kill', quietAfterMs: 5_000 } },
      { at: at(13_000), type: 'fault', phase: 'heal', id: 9, kind: 'kill-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'kill', quietAfterMs: 5_000 } },
      { at: at(15_000), type: 'operator', phase: 'start', id: 1, action: 'move', unit: UNIT, args: [] },
      { at: at(15_100), type: 'request', volumeId: VOL, present: true, requestId: 'r9', requestedAt: at(15_100), toInstanceId: null, force: true, deadline: at(23_100) },
      { at: at(15_200), type: 'journal', volumeId: VOL, unit: UNIT, kind: 'manual', step: 'detected', from: H2, to: null, requestId: 'r9', startedAt: at(15_200) },
      { at: at(15_300), type: 'unit', host: H2, unit: UNIT, active: false },
      { at: at(15_400), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'detaching' },
    ]);
    expect(r.violations.filter((v) => v.invariant === 7)).toEqual([]);
  });

  it('7: a volume detached behind our back by the schedule in the window is the fault, not the outage (chaos seed 73)', () => {
    const r = run([...base(),
      { at: at(11_000), type: 'fault', phase: 'inject', id: 9, kind: 'sigstop-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'stop', quietAfterMs: 5_000 } },
      { at: at(13_000), type: 'fault', phase: 'heal', id: 9, kind: 'sigstop-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'stop', quietAfterMs: 5_000 } },
      { at: at(15_000), type: 'fault', phase: 'inject', id: 10, kind: 'oob-detach', of: 'oob-detach', targets: [VOL, H2], effect: 'oob', detail: { force: false } },
      { at: at(15_000), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'busy' },
    ]);
    expect(r.violations.filter((v) => v.invariant === 7)).toEqual([]);
  });

  it('7: a host the schedule restarted in the window moves its volumes because it died, not because of the outage (chaos seed 116)', () => {
    const outage = [
      { at: at(11_000), type: 'fault', phase: 'inject', id: 9, kind: 'kill-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'kill', quietAfterMs: 5_000 } },
      { at: at(13_000), type: 'fault', phase: 'heal', id: 9, kind: 'kill-all', of: 'etcd-outage', targets: ['etcd'], effect: 'etcd-outage', detail: { mode: 'kill', quietAfterMs: 5_000 } },
    ] as HistoryEvent[];
    const move = [
      { at: at(17_100), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'detaching', forced: true },
      { at: at(17_200), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'detached', forced: true },
    ] as HistoryEvent[];
    const restartOf = (host: string): HistoryEvent[] => [
      { at: at(17_000), type: 'fault', phase: 'inject', id: 10, kind: 'restart', of: 'proc-restart', targets: [host], effect: 'dead' },
      { at: at(17_050), type: 'fault', phase: 'heal', id: 10, kind: 'restart', of: 'proc-restart', targets: [host], effect: 'dead' },
    ];
    // The holder (H2, active since the base's failover) restarted: its volume's move is that death's.
    expect(run([...base(), ...outage, ...restartOf(H2), ...move]).violations.filter((v) => v.invariant === 7)).toEqual([]);
    // Another host restarted: the move is still the outage's doing.
    expect(run([...base(), ...outage, ...restartOf(H1), ...move]).violations.map((v) => v.invariant)).toContain(7);
  });

  it('8: a service down past the bound while a healthy host of its AZ could take it', () => {
    const events = base().filter((e) => !(e.at > at(7_000) && e.at < at(9_000)) || e.type === 'fault').map((e) => (e.type === 'phase' && e.name === 'end' ? { ...e, at: at(45_000) } : e));
    events.push(
      { at: at(28_500), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'detaching', forced: true },
      { at: at(28_600), type: 'ec2-change', volumeId: VOL, instanceId: H1, state: 'detached', forced: true },
      { at: at(28_700), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'attaching' },
      { at: at(28_800), type: 'ec2-change', volumeId: VOL, instanceId: H2, state: 'attached' },
      { at: at(28_900), type: 'unit', host: H2, unit: UNIT, active: true },
    );
    const r = run(events);
    only(r, 8);
    const v = r.violations[0];
    expect(v?.message).toMatch(/down since .* bound 20000 ms/);
    // Reported once the capable time passed the bound: 20 s after the kill at +5 s.
    expect(v?.at).toBeGreaterThanOrEqual(at(25_000));
    expect(v?.at).toBeLessThanOrEqual(at(25_300));
    expect(formatViolation(v!)).toContain('invariant 8');
  });
});

describe('checker helpers', () => {
  it('subtracts intervals', () => {
    expect(subtract([{ from: 0, to: 10 }], [{ from: 2, to: 4 }, { from: 8, to: 20 }])).toEqual([{ from: 0, to: 2 }, { from: 4, to: 8 }]);
  });
  it('follows the leader as the live election key with the lowest revision', () => {
    const t = leaderTimeline([
      { at: 1, type: 'election', key: 'a', candidate: 'c1', createRevision: '5', present: true },
      { at: 2, type: 'election', key: 'b', candidate: 'c2', createRevision: '7', present: true },
      { at: 3, type: 'election', key: 'a', candidate: 'c1', createRevision: '5', present: false },
    ]);
    expect(t.map((x) => x.leader)).toEqual(['c1', 'c1', 'c2']);
  });
});
