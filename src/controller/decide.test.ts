import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import type { Decision } from './decision.js';
import { advance, newJournal } from './state.js';
import {
  AZ, I1, I2, I3, IB, NOW, UNIT, VOL, host, journal, observed, placement, report, request, service, volume, type Spec,
} from './test-builders.js';

const POLL = 250;

describe('decide: steady state (no failover running)', () => {
  it.each<[string, Spec, Decision]>([
    ['healthy holder', { placements: [placement(I1, 3)] }, { kind: 'noop', volumeId: VOL, reason: `held by ${I1} (generation 3)` }],
    ['no service on the volume', { services: [] }, { kind: 'noop', volumeId: VOL, reason: 'no service is registered on this volume' }],
    ['EC2 did not return the volume', { volumes: [] }, { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL * 4, reason: `EC2 did not describe ${VOL}` }],
    [
      'placed on a live host but not attached',
      { placements: [placement(I1)], volumes: [volume()] },
      { kind: 'attach', volumeId: VOL, instanceId: I1, device: '/dev/xvdf', reason: `placed on live ${I1} but not attached: attaching it there` },
    ],
    [
      'placed on one host, attached to another',
      { placements: [placement(I1)], volumes: [volume({ instanceId: I2 })] },
      { kind: 'noop', volumeId: VOL, reason: `placed on ${I1} but attached to ${I2}: needs a human (never attached twice)` },
    ],
    [
      'unplaced, attachment in transition',
      { volumes: [volume({ instanceId: I1, state: 'attaching' })] },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL, reason: `attachment to ${I1} is attaching` },
    ],
    [
      'adopts a volume attached to a live host',
      { volumes: [volume({ instanceId: I2, device: '/dev/xvdg' })] },
      {
        kind: 'place', volumeId: VOL, instanceId: I2, device: '/dev/xvdg', generation: 1, journal: null, reason: `adopting: attached to live ${I2}`,
        placement: { volumeId: VOL, unit: UNIT, instanceId: I2, device: '/dev/xvdg', generation: 1, updatedAt: NOW },
      },
    ],
  ])('%s', (_name, spec, expected) => {
    expect(decide(observed(spec), VOL)).toEqual(expected);
  });

  it.each<[string, Spec, string | null, string]>([
    ['holder lease gone', { hosts: [host(I2)], placements: [placement(I1)] }, I1, `holder ${I1}'s lease is gone`],
    ['unplaced, attached to a dead host', { hosts: [host(I2)] }, I1, `placed nowhere, attached to ${I1} which has no live agent`],
    ['unplaced and unattached', { volumes: [volume()] }, null, 'volume is placed nowhere and attached nowhere: choosing a host'],
  ])('starts an auto failover: %s', (_name, spec, fromInstanceId, reason) => {
    const expected = newJournal({ volumeId: VOL, unit: UNIT, kind: 'auto', fromInstanceId, note: reason }, NOW);
    expect(decide(observed(spec), VOL)).toEqual({ kind: 'startFailover', volumeId: VOL, journal: expected, deleteRequest: false, reason });
  });

  it('waits after a recent failure instead of retrying hot', () => {
    const failed = journal({ step: 'failed', finishedAt: NOW - 10_000, error: 'boom' });
    const d = decide(observed({ hosts: [host(I2)], placements: [placement(I1)], journals: [failed] }), VOL);
    expect(d).toEqual({ kind: 'wait', volumeId: VOL, requeueAfterMs: 20_000, reason: `holder ${I1}'s lease is gone; last failover failed (boom), retrying later` });
  });
});

describe('decide: manual requests', () => {
  const hosts = [host(I1), host(I2), host(I3), host(IB, { az: 'us-east-1b' })];
  const other = service({ unit: 'postgres@vol-0000000000000000f', volumeId: 'vol-0000000000000000f' });
  it.each<[string, Spec, string]>([
    ['target in another AZ', { hosts, requests: [request({ toInstanceId: IB })] }, `target ${IB} in us-east-1b, not the volume's ${AZ}`],
    ['target not live', { requests: [request({ toInstanceId: I3 })] }, `target ${I3} is not live (no agent lease in etcd)`],
    ['target is the holder', { placements: [placement(I1)], requests: [request({ toInstanceId: I1 })] }, `${UNIT} already runs on ${I1}`],
    [
      'target holds a conflicting service',
      { hosts, services: [service(), other], placements: [placement(I1), placement(I2, 1, { volumeId: other.volumeId, unit: other.unit })], requests: [request({ toInstanceId: I2 })] },
      `target ${I2} already holds ${other.unit} of conflict group postgres`,
    ],
    ['target lacks a required label', { services: [service({ requiredLabels: { role: 'db' } })], requests: [request({ toInstanceId: I2 })] }, `target ${I2} lacks label role=db`],
    ['no eligible host at all', { hosts: [host(I1)], placements: [placement(I1)], requests: [request()] }, `no live host in ${AZ} can take ${UNIT}`],
    ['unit does not match the volume', { requests: [request({ unit: 'postgres@vol-0000000000000000f' })] }, `unknown service postgres@vol-0000000000000000f: ${VOL} belongs to ${UNIT}`],
    ['unknown service', { services: [], requests: [request()] }, `unknown service ${UNIT}: no services/ record for ${VOL}`],
    ['failover already running', { journals: [journal({ step: 'detaching' })], requests: [request()] }, `a auto failover of ${VOL} is already at step detaching`],
  ])('refuses: %s', (_name, spec, reason) => {
    const req = spec.requests?.[0] ?? request();
    expect(decide(observed(spec), VOL)).toEqual({ kind: 'refuseRequest', volumeId: VOL, request: { ...req, refusedReason: reason, refusedAt: NOW }, reason: `refused request req-1: ${reason}` });
  });

  it('ignores a request already refused', () => {
    expect(decide(observed({ placements: [placement(I1)], requests: [request({ refusedReason: 'no', refusedAt: NOW })] }), VOL).kind).toBe('noop');
  });

  it.each<[string, string | null, boolean, string]>([
    ['to a named host', I2, false, `manual request req-1 to ${I2}`],
    ['to a host the controller picks, force allowed', null, true, 'manual request req-1 (force allowed)'],
  ])('accepts: %s', (_name, toInstanceId, force, note) => {
    const d = decide(observed({ placements: [placement(I1)], requests: [request({ toInstanceId, force })] }), VOL);
    const expected = newJournal({ volumeId: VOL, unit: UNIT, kind: 'manual', fromInstanceId: I1, toInstanceId, force, requestId: 'req-1', note }, NOW);
    expect(d).toEqual({ kind: 'startFailover', volumeId: VOL, journal: expected, deleteRequest: true, reason: note });
  });
});

describe('decide: failover steps', () => {
  const dead = { hosts: [host(I2), host(I3)] } satisfies Spec;

  it('detected (auto): placement → nobody and fencing', () => {
    const j = journal();
    const d = decide(observed({ ...dead, placements: [placement(I1, 4)], journals: [j] }), VOL);
    const reason = `${I1}'s lease is gone, so it has fenced itself: fencing it in fleet`;
    expect(d).toEqual({
      kind: 'release', volumeId: VOL, generation: 5, reason, journal: advance(j, 'fencing', NOW, reason),
      placement: { volumeId: VOL, unit: UNIT, instanceId: null, device: null, generation: 5, updatedAt: NOW },
    });
  });

  it('detected (manual, live holder): placement → nobody and releasing', () => {
    const j = journal({ kind: 'manual', toInstanceId: I2 });
    const d = decide(observed({ placements: [placement(I1, 2)], journals: [j] }), VOL);
    const reason = `asking ${I1} to stop ${UNIT} and unmount`;
    expect(d).toEqual({
      kind: 'release', volumeId: VOL, generation: 3, reason, journal: advance(j, 'releasing', NOW, reason),
      placement: { volumeId: VOL, unit: UNIT, instanceId: null, device: null, generation: 3, updatedAt: NOW },
    });
  });

  it('detected without a previous holder goes straight to detaching', () => {
    const j = journal({ fromInstanceId: null });
    expect(decide(observed({ journals: [j], volumes: [volume()] }), VOL)).toEqual({
      kind: 'advance', volumeId: VOL, journal: advance(j, 'detaching', NOW, 'no previous holder'), reason: 'no previous holder: nothing to fence or release',
    });
  });

  it.each<[string, boolean]>([
    ['without StopInstances', false],
    ['with StopInstances', true],
  ])('fencing %s', (_name, stopInstanceOnFence) => {
    const j = journal({ step: 'fencing' });
    const d = decide(observed({ ...dead, journals: [j], config: { stopInstanceOnFence } }), VOL);
    const stop = stopInstanceOnFence ? ' and stopping the instance' : '';
    expect(d).toEqual({
      kind: 'fence', volumeId: VOL, instanceId: I1, machineId: `m-${I1}`, metadataKey: 'postgres', stopInstance: stopInstanceOnFence,
      journal: advance(j, 'detaching', NOW, `fenced ${I1}${stopInstanceOnFence ? ' (StopInstances)' : ''}`), reason: `dropping postgres from ${I1}'s fleet metadata${stop}`,
    });
  });

  it.each<[string, Spec, Decision['kind'], string]>([
    ['released', { reports: [report(I1, 'released', 3)] }, 'advance', `${I1} released ${UNIT}`],
    ['still releasing', { reports: [report(I1, 'releasing', 3)] }, 'wait', `waiting for ${I1} to release ${UNIT} (generation 3)`],
    ['stale released report of an older generation', { reports: [report(I1, 'released', 2)] }, 'wait', `waiting for ${I1} to release ${UNIT} (generation 3)`],
    ['old host died meanwhile', { hosts: [host(I2)] }, 'advance', `${I1} died while releasing: fencing it`],
    ['release failed', { reports: [report(I1, 'failed', 3)] }, 'fail', `${I1} failed to release ${UNIT}: mount failed`],
    ['release overdue', { now: NOW + 200_000 }, 'fail', `${I1} did not release ${UNIT} within 120000 ms`],
  ])('releasing: %s', (_name, spec, kind, reason) => {
    const j = journal({ kind: 'manual', step: 'releasing', stepStartedAt: NOW - 100 });
    const d = decide(observed({ placements: [placement(null, 3)], journals: [j], ...spec }), VOL);
    expect(d).toMatchObject({ kind, volumeId: VOL, reason });
  });

  const detaching = (over = {}) => journal({ step: 'detaching', detachStartedAt: NOW - 1000, stepStartedAt: NOW - 1000, ...over });
  it.each<[string, Parameters<typeof journal>[0], Parameters<typeof volume>[0], Partial<Decision>]>([
    ['auto, attached: forced at once (host is fenced)', {}, { instanceId: I1 }, { kind: 'detach', instanceId: I1, force: true, reason: `detaching from fenced ${I1} (forced)` }],
    ['manual, attached: graceful', { kind: 'manual' }, { instanceId: I1 }, { kind: 'detach', instanceId: I1, force: false, reason: `detaching from ${I1}` }],
    ['manual with force, attached and overdue: forced', { kind: 'manual', force: true, detachStartedAt: NOW - 40_000 }, { instanceId: I1 }, { kind: 'detach', instanceId: I1, force: true, reason: `detaching from ${I1} (forced: overdue)` }],
    ['auto, busy: forced (host is fenced)', {}, { instanceId: I1, state: 'busy' }, { kind: 'detach', instanceId: I1, force: true, reason: `detach from fenced ${I1} is busy: forcing` }],
    ['auto, detaching: wait', {}, { instanceId: I1, state: 'detaching' }, { kind: 'wait', requeueAfterMs: POLL, reason: `detaching from ${I1}` }],
    ['auto, stuck detaching: forced', { detachStartedAt: NOW - 31_000 }, { instanceId: I1, state: 'detaching' }, { kind: 'detach', force: true, reason: `stuck detaching from ${I1} for 31000 ms: forcing` }],
    ['manual, busy: wait, never forced', { kind: 'manual' }, { instanceId: I1, state: 'busy' }, { kind: 'wait', reason: `detach from ${I1} is busy` }],
    ['manual, stuck detaching: not forced', { kind: 'manual', detachStartedAt: NOW - 31_000 }, { instanceId: I1, state: 'detaching' }, { kind: 'wait', reason: `detaching from ${I1}` }],
    ['manual, busy overdue without force: fails', { kind: 'manual', detachStartedAt: NOW - 31_000 }, { instanceId: I1, state: 'busy' }, { kind: 'fail', reason: `detach from ${I1} still busy after 31000 ms and the request does not allow force (retry with --force)` }],
    ['manual with force, busy overdue: forced', { kind: 'manual', force: true, detachStartedAt: NOW - 31_000 }, { instanceId: I1, state: 'busy' }, { kind: 'detach', force: true, reason: `detach from ${I1} busy for 31000 ms: forcing (request allows it)` }],
    ['attached to an unexpected instance: fails loudly', {}, { instanceId: I3 }, { kind: 'fail', reason: `volume is attached to unexpected ${I3} (expected ${I1}): refusing to continue` }],
  ])('detaching: %s', (_name, jOver, attachment, expected) => {
    const d = decide(observed({ ...dead, journals: [detaching(jOver)], volumes: [volume(attachment)] }), VOL);
    expect(d).toMatchObject({ volumeId: VOL, ...expected });
  });

  it('detaching, volume already available (e.g. after a controller crash): chooses a target', () => {
    const j = detaching();
    const d = decide(observed({ ...dead, journals: [j], volumes: [volume()] }), VOL);
    const note = `volume is detached: attaching to ${I2} as /dev/xvdf (least loaded live host in ${AZ} (0 volumes))`;
    expect(d).toEqual({ kind: 'advance', volumeId: VOL, journal: advance(j, 'attaching', NOW, note, { toInstanceId: I2, device: '/dev/xvdf' }), reason: note });
  });

  it('no eligible host in the AZ: blocked with the reason, never cross-AZ', () => {
    const j = detaching();
    const d = decide(observed({ hosts: [host(IB, { az: 'us-east-1b' })], journals: [j], volumes: [volume()] }), VOL);
    const reason = `no live host in ${AZ} can take ${UNIT}`;
    expect(d).toEqual({ kind: 'block', volumeId: VOL, journal: advance(j, 'blocked', NOW, reason, { blockedReason: reason, toInstanceId: null, device: null }), reason });
  });

  it('blocked with the same reason just waits; a host joining unblocks', () => {
    const reason = `no live host in ${AZ} can take ${UNIT}`;
    const j = journal({ step: 'blocked', blockedReason: reason });
    expect(decide(observed({ hosts: [], journals: [j], volumes: [volume()] }), VOL)).toEqual({ kind: 'wait', volumeId: VOL, requeueAfterMs: POLL * 8, reason: `blocked: ${reason}` });
    const d = decide(observed({ hosts: [host(I3)], journals: [j], volumes: [volume()] }), VOL);
    expect(d).toMatchObject({ kind: 'advance', journal: { step: 'attaching', toInstanceId: I3, device: '/dev/xvdf', blockedReason: null } });
  });

  const attaching = (over = {}) => journal({ step: 'attaching', toInstanceId: I2, device: '/dev/xvdf', stepStartedAt: NOW - 1000, ...over });
  it.each<[string, Spec, Partial<Decision>]>([
    ['available: attach', { volumes: [volume()] }, { kind: 'attach', instanceId: I2, device: '/dev/xvdf', reason: `attaching to ${I2} as /dev/xvdf` }],
    ['attaching: wait', { volumes: [volume({ instanceId: I2, state: 'attaching' })] }, { kind: 'wait', reason: `attaching to ${I2}` }],
    ['attached to the target: place it there', { volumes: [volume({ instanceId: I2 })], placements: [placement(null, 5)] }, { kind: 'place', instanceId: I2, device: '/dev/xvdf', generation: 6, reason: `attached to ${I2}: placing it there` }],
    ['attached elsewhere: fail, never attach twice', { volumes: [volume({ instanceId: I3 })] }, { kind: 'fail', reason: `volume is attached to unexpected ${I3} (target ${I2}): refusing to attach twice` }],
    ['attach overdue: fail', { volumes: [volume({ instanceId: I2, state: 'attaching' })], now: NOW + 200_000 }, { kind: 'fail', reason: `attach to ${I2} did not finish within 120000 ms` }],
    ['device in use on the target (EC2 mappings): another name', { volumes: [volume()], instances: [{ instanceId: I2, az: AZ, state: 'running', privateIp: null, devices: ['/dev/xvda', '/dev/sdf'], tags: {} }] },
      { kind: 'advance', journal: expect.objectContaining({ step: 'attaching', toInstanceId: I2, device: '/dev/xvdg' }) as never, reason: `/dev/xvdf is in use on ${I2}: attaching as /dev/xvdg instead` }],
    ['target died (auto): choose again', { hosts: [host(I3)], volumes: [volume()] }, { kind: 'advance', journal: expect.objectContaining({ step: 'attaching', toInstanceId: I3 }) as never }],
  ])('attaching: %s', (_name, spec, expected) => {
    const d = decide(observed({ ...spec, journals: [attaching()] }), VOL);
    expect(d).toMatchObject({ volumeId: VOL, ...expected });
  });

  it('attaching (manual) whose target died fails instead of moving elsewhere', () => {
    const d = decide(observed({ hosts: [host(I1), host(I3)], journals: [attaching({ kind: 'manual' })], volumes: [volume()] }), VOL);
    expect(d).toMatchObject({ kind: 'fail', reason: `requested target ${I2} is no longer live` });
  });

  it('attached: the placement and the starting step are written together', () => {
    const j = attaching();
    const d = decide(observed({ volumes: [volume({ instanceId: I2, device: '/dev/xvdg' })], placements: [placement(null, 5)], journals: [j] }), VOL);
    expect(d).toEqual({
      kind: 'place', volumeId: VOL, instanceId: I2, device: '/dev/xvdg', generation: 6, reason: `attached to ${I2}: placing it there`,
      placement: { volumeId: VOL, unit: UNIT, instanceId: I2, device: '/dev/xvdg', generation: 6, updatedAt: NOW },
      journal: advance(j, 'starting', NOW, `attached to ${I2} as /dev/xvdg; placement generation 6`, { generation: 6, device: '/dev/xvdg' }),
    });
  });

  const starting = journal({ step: 'starting', toInstanceId: I2, device: '/dev/xvdf', generation: 6, stepStartedAt: NOW - 1000 });
  it.each<[string, Spec, Partial<Decision>]>([
    ['active for the generation: complete', { reports: [report(I2, 'active', 6)] }, { kind: 'complete', reason: `${UNIT} active on ${I2} (generation 6)` }],
    ['active for an older generation: wait', { reports: [report(I2, 'active', 4)] }, { kind: 'wait', reason: `waiting for ${I2} to report active (generation 6, now active@4)` }],
    ['mounting: wait', { reports: [report(I2, 'mounting', 6)] }, { kind: 'wait', reason: `waiting for ${I2} to report active (generation 6, now mounting@6)` }],
    ['agent failed: fail', { reports: [report(I2, 'failed', 6)] }, { kind: 'fail', reason: `agent on ${I2} failed: mount failed` }],
    ['target lease gone: fail (a new failover follows)', { hosts: [host(I1)] }, { kind: 'fail', reason: `target ${I2} lost its lease before reporting active` }],
    ['report overdue: fail', { now: NOW + 200_000 }, { kind: 'fail', reason: `${I2} did not report active within 120000 ms` }],
  ])('starting: %s', (_name, spec, expected) => {
    const d = decide(observed({ volumes: [volume({ instanceId: I2 })], placements: [placement(I2, 6)], journals: [starting], ...spec }), VOL);
    expect(d).toMatchObject({ volumeId: VOL, ...expected });
  });

  it('a journal whose service was removed fails', () => {
    const d = decide(observed({ services: [], journals: [journal({ step: 'detaching' })] }), VOL);
    expect(d).toMatchObject({ kind: 'fail', reason: `service ${UNIT} was removed during the failover` });
  });

  it.each<[string, Partial<Parameters<typeof request>[0]>, number, Decision['kind']]>([
    ['refused just now: kept for the CLI to read', { refusedReason: 'no', refusedAt: NOW - 1_000 }, NOW, 'noop'],
    ['refused long ago: dropped so a new request can be made', { refusedReason: 'no', refusedAt: NOW - 30_000 }, NOW, 'dropRequest'],
    ['refused without refusedAt: age from requestedAt', { refusedReason: 'no', requestedAt: NOW - 60_000 }, NOW, 'dropRequest'],
  ])('refused request: %s', (_name, over, now, kind) => {
    const d = decide(observed({ placements: [placement(I1)], reports: [report(I1, 'active', 1)], requests: [request(over)], now }), VOL);
    expect(d.kind).toBe(kind);
  });
});
