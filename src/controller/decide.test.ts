import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import type { Decision } from './decision.js';
import { advance, newJournal, retarget, type FailoverCause } from './state.js';
import type { FailoverJournal } from '../keyspace/records.js';
import {
  AZ, I1, I2, I3, IB, NOW, UNIT, VOL, host, instance, journal, observed, placement, report, request, service, volume, type Spec,
} from '../testing/controller-builders.js';

const POLL = 250;

describe('decide: steady state (no failover running)', () => {
  it.each<[string, Spec, Decision]>([
    ['healthy holder', { placements: [placement(I1, 3)], reports: [report(I1, 'active', 3)] }, { kind: 'noop', volumeId: VOL, reason: `held by ${I1} (generation 3)` }],
    [
      'live holder reports drift: not healthy, its agent re-acquires',
      { placements: [placement(I1, 3)], reports: [{ ...report(I1, 'drift', 3), error: 'unit inactive' }] },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL * 8, reason: `placed on ${I1} (generation 3) and attached, but its agent reports drift@3: unit inactive` },
    ],
    [
      'live holder still waiting for its device',
      { placements: [placement(I1, 3)], reports: [report(I1, 'waiting-device', 3)] },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL * 8, reason: `placed on ${I1} (generation 3) and attached, but its agent reports waiting-device@3` },
    ],
    [
      'live holder whose active report is of an older generation',
      { placements: [placement(I1, 3)], reports: [report(I1, 'active', 2)] },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL * 8, reason: `placed on ${I1} (generation 3) and attached, but its agent reports active@2` },
    ],
    [
      'placed on a live host, a detach in progress behind our back',
      { placements: [placement(I1, 3)], volumes: [volume({ instanceId: I1, state: 'detaching' })] },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL, reason: `placed on ${I1}, attachment is detaching` },
    ],
    [
      'Multi-Attach volume: never touched',
      { volumes: [volume(undefined, { multiAttachEnabled: true })] },
      { kind: 'noop', volumeId: VOL, reason: `${VOL} has EBS Multi-Attach enabled: never attached or failed over (one attachment is the fence that keeps it exclusive)` },
    ],
    [
      'Multi-Attach volume whose holder died: not failed over',
      { hosts: [host(I2)], placements: [placement(I1)], volumes: [volume({ instanceId: I1 }, { multiAttachEnabled: true })] },
      { kind: 'noop', volumeId: VOL, reason: `${VOL} has EBS Multi-Attach enabled: never attached or failed over (one attachment is the fence that keeps it exclusive)` },
    ],
    [
      'holder gone within the grace after an election or etcd reconnect: waits',
      { hosts: [host(I2)], placements: [placement(I1)], graceUntil: NOW + 2_000 },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: 2_000, reason: `${I1}'s lease is gone, but hosts have a grace for 2000 ms more (controller just started, etcd just reconnected, or many hosts vanished at once): not calling it dead yet` },
    ],
    [
      'unplaced, attached to a host gone within the grace: waits',
      { hosts: [host(I2)], graceUntil: NOW + 500 },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: 500, reason: `${I1}'s lease is gone, but hosts have a grace for 500 ms more (controller just started, etcd just reconnected, or many hosts vanished at once): not calling it dead yet` },
    ],
    [
      'holder gone while failovers are paced (many hosts vanished at once): waits its turn',
      { hosts: [host(I2)], placements: [placement(I1)], pacing: { remaining: 0, admitted: [I3], reason: '5 of 8 hosts vanished at once (suspect)' } },
      { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL * 8, reason: `holder ${I1}'s lease is gone; 5 of 8 hosts vanished at once (suspect): this failover waits for its turn` },
    ],
    ['no service on the volume', { services: [] }, { kind: 'noop', volumeId: VOL, reason: 'no service is registered on this volume' }],
    ['EC2 did not return the volume', { volumes: [] }, { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL * 4, reason: `EC2 did not describe ${VOL}` }],
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

  it.each<[string, Spec, string | null, FailoverCause, string]>([
    ['holder lease gone', { hosts: [host(I2)], placements: [placement(I1)] }, I1, 'holder-lost', `holder ${I1}'s lease is gone`],
    ['unplaced, attached to a dead host', { hosts: [host(I2)] }, I1, 'holder-lost', `placed nowhere, attached to ${I1} which has no live agent`],
    ['unplaced and unattached', { volumes: [volume()] }, null, 'placement', 'volume is placed nowhere and attached nowhere: choosing a host'],
    [
      'placed on a live host but detached behind our back: re-acquire',
      { placements: [placement(I1, 3)], reports: [report(I1, 'active', 3)], volumes: [volume()] },
      I1, 'reacquire', `placed on live ${I1} (generation 3) but EC2 shows it detached: re-acquiring it`,
    ],
    ['holder gone once the grace has passed', { hosts: [host(I2)], placements: [placement(I1)], graceUntil: NOW }, I1, 'holder-lost', `holder ${I1}'s lease is gone`],
    [
      'holder gone while paced, with turns left',
      { hosts: [host(I2)], placements: [placement(I1)], pacing: { remaining: 1, admitted: [], reason: 'suspect' } }, I1, 'holder-lost', `holder ${I1}'s lease is gone`,
    ],
    [
      'holder gone while paced, no turns left, but its host already admitted: all its volumes go',
      { hosts: [host(I2)], placements: [placement(I1)], pacing: { remaining: 0, admitted: [I1], reason: 'suspect' } }, I1, 'holder-lost', `holder ${I1}'s lease is gone`,
    ],
    [
      'pacing applies to lost holders only: a first placement is not delayed',
      { volumes: [volume()], pacing: { remaining: 0, admitted: [], reason: 'suspect' } }, null, 'placement', 'volume is placed nowhere and attached nowhere: choosing a host',
    ],
    [
      'a failed manual move does not delay a failover caused by the holder\'s loss',
      { hosts: [host(I2)], placements: [placement(I1)], journals: [journal({ kind: 'manual', cause: 'manual', step: 'failed', finishedAt: NOW - 1_000, error: 'detach busy' })] },
      I1, 'holder-lost', `holder ${I1}'s lease is gone`,
    ],
    [
      'a failed failover of another cause (old journal without cause: a manual) does not delay it',
      { hosts: [host(I2)], placements: [placement(I1)], journals: [{ ...journal({ kind: 'manual', step: 'failed', finishedAt: NOW - 1_000, error: 'x' }), cause: undefined }] },
      I1, 'holder-lost', `holder ${I1}'s lease is gone`,
    ],
  ])('starts an auto failover: %s', (_name, spec, fromInstanceId, cause, reason) => {
    const expected = newJournal({ volumeId: VOL, unit: UNIT, kind: 'auto', fromInstanceId, cause, note: reason }, NOW);
    expect(decide(observed(spec), VOL)).toEqual({ kind: 'startFailover', volumeId: VOL, journal: expected, deleteRequest: false, reason });
  });

  it('waits after a recent failure instead of retrying hot', () => {
    const failed = journal({ step: 'failed', finishedAt: NOW - 10_000, error: 'boom' });
    const d = decide(observed({ hosts: [host(I2)], placements: [placement(I1)], journals: [failed] }), VOL);
    expect(d).toEqual({ kind: 'wait', volumeId: VOL, requeueAfterMs: 20_000, reason: `holder ${I1}'s lease is gone; last holder-lost failover failed (boom), retrying later` });
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
    expect(decide(observed({ placements: [placement(I1)], reports: [report(I1, 'active', 1)], requests: [request({ refusedReason: 'no', refusedAt: NOW })] }), VOL).kind).toBe('noop');
  });

  it.each<[string, Spec, Decision]>([
    [
      'past its deadline and not started: dropped, never started',
      { placements: [placement(I1)], requests: [request({ toInstanceId: I2, deadline: NOW - 1_500 })] },
      { kind: 'dropRequest', volumeId: VOL, requestId: 'req-1', reason: 'dropping request req-1: its deadline passed 1500 ms ago before it started' },
    ],
    [
      'past its deadline while another failover runs: dropped, not refused',
      { placements: [placement(I1)], journals: [journal({ step: 'detaching' })], requests: [request({ deadline: NOW - 1 })] },
      { kind: 'dropRequest', volumeId: VOL, requestId: 'req-1', reason: 'dropping request req-1: its deadline passed 1 ms ago before it started' },
    ],
    [
      'Multi-Attach volume: refused with the reason',
      { placements: [placement(I1)], volumes: [volume({ instanceId: I1 }, { multiAttachEnabled: true })], requests: [request({ toInstanceId: I2 })] },
      {
        kind: 'refuseRequest', volumeId: VOL, request: { ...request({ toInstanceId: I2 }), refusedAt: NOW, refusedReason: `${VOL} has EBS Multi-Attach enabled: never attached or failed over (one attachment is the fence that keeps it exclusive)` },
        reason: `refused request req-1: ${VOL} has EBS Multi-Attach enabled: never attached or failed over (one attachment is the fence that keeps it exclusive)`,
      },
    ],
    [
      'target instance stopped in EC2: refused',
      { placements: [placement(I1)], instances: [instance(I2, { state: 'stopped' })], requests: [request({ toInstanceId: I2 })] },
      { kind: 'refuseRequest', volumeId: VOL, request: { ...request({ toInstanceId: I2 }), refusedAt: NOW, refusedReason: `target ${I2} is stopped in EC2` }, reason: `refused request req-1: target ${I2} is stopped in EC2` },
    ],
  ])('request: %s', (_name, spec, expected) => {
    expect(decide(observed(spec), VOL)).toEqual(expected);
  });

  it('a request within its deadline starts', () => {
    const d = decide(observed({ placements: [placement(I1)], requests: [request({ toInstanceId: I2, deadline: NOW + 1 })] }), VOL);
    expect(d).toMatchObject({ kind: 'startFailover', journal: { kind: 'manual', cause: 'manual', toInstanceId: I2 } });
  });

  it.each<[string, string | null, boolean, string]>([
    ['to a named host', I2, false, `manual request req-1 to ${I2}`],
    ['to a host the controller picks, force allowed', null, true, 'manual request req-1 (force allowed)'],
  ])('accepts: %s', (_name, toInstanceId, force, note) => {
    const d = decide(observed({ placements: [placement(I1)], requests: [request({ toInstanceId, force })] }), VOL);
    const expected = newJournal({ volumeId: VOL, unit: UNIT, kind: 'manual', fromInstanceId: I1, toInstanceId, force, requestId: 'req-1', cause: 'manual', note }, NOW);
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
    // A force already sent is given the bound before the next (bench az1000: re-forced every tick, never detached).
    ['auto, stuck detaching, forced 5 s ago: waits', { detachStartedAt: NOW - 31_000, intent: { action: 'detach', instanceId: I1, force: true, device: null, term: '7', at: NOW - 5_000 } }, { instanceId: I1, state: 'detaching' }, { kind: 'wait', reason: `forced detach from ${I1} sent 5000 ms ago: 25000 ms more before forcing again` }],
    ['auto, stuck detaching, forced past the bound: forced again', { detachStartedAt: NOW - 61_000, intent: { action: 'detach', instanceId: I1, force: true, device: null, term: '7', at: NOW - 30_000 } }, { instanceId: I1, state: 'detaching' }, { kind: 'detach', force: true, reason: `stuck detaching from ${I1} for 61000 ms: forcing` }],
    ['auto, stuck detaching, only a graceful detach sent: forced', { detachStartedAt: NOW - 31_000, intent: { action: 'detach', instanceId: I1, force: false, device: null, term: '7', at: NOW - 5_000 } }, { instanceId: I1, state: 'detaching' }, { kind: 'detach', force: true, reason: `stuck detaching from ${I1} for 31000 ms: forcing` }],
    ['manual, source gone, busy: wait for the bound', { kind: 'manual' }, { instanceId: I1, state: 'busy' }, { kind: 'wait', reason: `detach from ${I1} is busy` }],
    ['manual with force, busy overdue: forced', { kind: 'manual', force: true, detachStartedAt: NOW - 31_000 }, { instanceId: I1, state: 'busy' }, { kind: 'detach', force: true, reason: `detach from ${I1} busy for 31000 ms: forcing (request allows it)` }],
    ['attached to an unexpected instance: fails loudly', {}, { instanceId: I3 }, { kind: 'fail', reason: `volume is attached to unexpected ${I3} (expected ${I1}): refusing to continue` }],
  ])('detaching: %s', (_name, jOver, attachment, expected) => {
    const d = decide(observed({ ...dead, journals: [detaching(jOver)], volumes: [volume(attachment)] }), VOL);
    expect(d).toMatchObject({ volumeId: VOL, ...expected });
  });

  // Finding 4: a manual move without --force whose SOURCE's lease is gone proceeds as fenced.
  const manual = (over = {}) => detaching({ kind: 'manual', cause: 'manual', toInstanceId: I2, ...over });
  it.each<[string, Spec, FailoverJournal, Decision]>([
    [
      'source live, stuck detaching past the bound, not released: not forced (no --force), fails instead of hanging',
      {}, manual({ detachStartedAt: NOW - 31_000 }),
      { kind: 'fail', volumeId: VOL, journal: expect.anything() as never, reason: `detach from ${I1} still detaching after 31000 ms and ${I1} has not released the volume (retry with --force-detach)` },
    ],
    [
      // Chaos seed 55: the source stopped the unit and unmounted, then EC2 kept the detach in `detaching`.
      'source live and released, stuck detaching past the bound: forced (nothing there uses the device)',
      { reports: [{ ...report(I1, 'released', 1), volumeId: VOL }] }, manual({ detachStartedAt: NOW - 31_000 }),
      { kind: 'detach', volumeId: VOL, instanceId: I1, force: true, reason: `stuck detaching from ${I1} for 31000 ms: forcing (${I1} released it: nothing there uses the device)` },
    ],
    [
      'source live and released, stuck detaching within the bound: waits',
      { reports: [{ ...report(I1, 'released', 1), volumeId: VOL }] }, manual(), { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL, reason: `detaching from ${I1}` },
    ],
    [
      'source live, busy past the bound: fails, asks for --force',
      {}, manual({ detachStartedAt: NOW - 31_000 }),
      { kind: 'fail', volumeId: VOL, journal: expect.anything() as never, reason: `detach from ${I1} still busy after 31000 ms and the request does not allow force (retry with --force)` },
    ],
    [
      'source lease gone, stuck detaching past the bound: forced',
      dead, manual({ detachStartedAt: NOW - 31_000 }), { kind: 'detach', volumeId: VOL, instanceId: I1, force: true, reason: `stuck detaching from ${I1} for 31000 ms: forcing` },
    ],
    [
      'source lease gone, busy past the bound: forced',
      dead, manual({ detachStartedAt: NOW - 31_000 }),
      { kind: 'detach', volumeId: VOL, instanceId: I1, force: true, reason: `detach from ${I1} busy for 31000 ms: forcing (${I1}'s lease is gone: it has fenced itself)` },
    ],
    [
      'source lease gone, stuck detaching within the bound: waits',
      dead, manual(), { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL, reason: `detaching from ${I1}` },
    ],
    [
      'source within the grace: not called dead, not forced',
      { ...dead, graceUntil: NOW + 1_000 }, manual({ detachStartedAt: NOW - 31_000 }), { kind: 'wait', volumeId: VOL, requeueAfterMs: POLL, reason: `detaching from ${I1}` },
    ],
  ])('detaching (manual): %s', (name, spec, j, expected) => {
    const state = name.includes('busy') ? 'busy' : 'detaching';
    expect(decide(observed({ ...spec, journals: [j], volumes: [volume({ instanceId: I1, state })] }), VOL)).toEqual(expected);
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
    // The whole AZ is gone and us-east-1b could run it: the reason names the way out (auto-restore.ts azGoneHint).
    const reason = `no live host in ${AZ} can take ${UNIT}; ${AZ} has no live host at all: restore it from a snapshot in another AZ with failover restore ${UNIT} --latest --az us-east-1b (or enable controller.autoRestore)`;
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
    ['attach calls never took effect, overdue: fail', { volumes: [volume()], now: NOW + 200_000 }, { kind: 'fail', reason: `attach to ${I2} did not finish within 120000 ms` }],
    ['device in use on the target (EC2 mappings): another name', { volumes: [volume()], instances: [{ instanceId: I2, az: AZ, state: 'running', privateIp: null, devices: ['/dev/xvda', '/dev/sdf'], tags: {} }] },
      { kind: 'advance', journal: expect.objectContaining({ step: 'attaching', toInstanceId: I2, device: '/dev/xvdg' }) as never, reason: `/dev/xvdf is in use on ${I2}: attaching as /dev/xvdg instead` }],
    ['target died (auto): choose again', { hosts: [host(I3)], volumes: [volume()] }, { kind: 'advance', journal: expect.objectContaining({ step: 'attaching', toInstanceId: I3 }) as never }],
  ])('attaching: %s', (_name, spec, expected) => {
    const d = decide(observed({ ...spec, journals: [attaching()] }), VOL);
    expect(d).toMatchObject({ volumeId: VOL, ...expected });
  });

  it('attaching (manual) whose target died: another host is chosen (availability), never the source', () => {
    const j = attaching({ kind: 'manual', cause: 'manual' });
    const d = decide(observed({ hosts: [host(I1), host(I3)], journals: [j], volumes: [volume()] }), VOL);
    const note = `target ${I2} is gone; requested target ${I2} is no longer live: attaching to ${I3} as /dev/xvdf (least loaded live host in ${AZ} (0 volumes))`;
    expect(d).toEqual({ kind: 'advance', volumeId: VOL, journal: advance(j, 'attaching', NOW, note, { toInstanceId: I3, device: '/dev/xvdf' }), reason: note });
  });

  it('attaching (manual) whose live target has become unusable still fails (nobody asked for another host)', () => {
    const j = journal({ kind: 'manual', cause: 'manual', step: 'detaching', toInstanceId: I2 });
    const d = decide(observed({ instances: [instance(I2, { state: 'stopping' })], journals: [j], volumes: [volume()] }), VOL);
    const reason = `requested target ${I2} is stopping in EC2`;
    expect(d).toEqual({ kind: 'fail', volumeId: VOL, journal: advance(j, 'failed', NOW, reason, { error: reason }), reason });
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

// Finding 7: a target that dies (or whose attach sticks) before `active` is failed over AT ONCE, without it.
describe('decide: re-targeting a failover whose target was lost', () => {
  const I4 = 'i-00000000000000004';
  const starting = (over: Partial<FailoverJournal> = {}) =>
    journal({ step: 'starting', toInstanceId: I2, device: '/dev/xvdf', generation: 6, stepStartedAt: NOW - 1000, ...over });
  const emptied = { volumeId: VOL, unit: UNIT, instanceId: null, device: null, generation: 7, updatedAt: NOW };

  it.each<[string, FailoverJournal, string[]]>([
    ['auto: the dead target is fenced and excluded', starting(), [I2]],
    ['manual: its source is excluded too (the operator moved away from it)', starting({ kind: 'manual', cause: 'manual', requestId: 'req-1' }), [I1, I2]],
    ['a second loss adds to the exclusions', starting({ excludedInstanceIds: [I4] }), [I2, I4]],
  ])('starting, target lease gone: %s', (_name, j, excludedInstanceIds) => {
    const d = decide(observed({ hosts: [host(I1), host(I3)], volumes: [volume({ instanceId: I2 })], placements: [placement(I2, 6)], journals: [j] }), VOL);
    const reason = `target ${I2} lost its lease before reporting active: failing over again at once, without it`;
    const next: FailoverJournal = {
      ...j, step: 'fencing', stepStartedAt: NOW, fromInstanceId: I2, toInstanceId: null, device: null, generation: null, detachStartedAt: null, excludedInstanceIds,
      history: [...j.history, { step: 'fencing', at: NOW, note: reason }],
    };
    expect(d).toEqual({ kind: 'release', volumeId: VOL, generation: 7, placement: emptied, journal: next, reason });
  });

  it('starting, target within the grace: waits, is not called dead', () => {
    const d = decide(observed({ hosts: [host(I1)], graceUntil: NOW + 100, volumes: [volume({ instanceId: I2 })], placements: [placement(I2, 6)], journals: [starting()] }), VOL);
    expect(d).toEqual({ kind: 'wait', volumeId: VOL, requeueAfterMs: 100, reason: `${I2}'s lease is gone, but hosts have a grace for 100 ms more (controller just started, etcd just reconnected, or many hosts vanished at once): not calling it dead yet` });
  });

  it('fencing the lost target drops its fleet metadata, then detaching forces at once', () => {
    const j = retarget(starting(), 'target-lost', NOW - 10, 'lost');
    const fence = decide(observed({ hosts: [host(I1), host(I3)], known: [host(I2)], journals: [j], volumes: [volume({ instanceId: I2 })] }), VOL);
    expect(fence).toEqual({
      kind: 'fence', volumeId: VOL, instanceId: I2, machineId: `m-${I2}`, metadataKey: 'postgres', stopInstance: false,
      journal: advance(j, 'detaching', NOW, `fenced ${I2}`), reason: `dropping postgres from ${I2}'s fleet metadata`,
    });
    const detaching = advance(j, 'detaching', NOW, `fenced ${I2}`);
    for (const j2 of [detaching, { ...detaching, kind: 'manual' as const, cause: 'manual' as const }]) {
      expect(decide(observed({ hosts: [host(I1), host(I3)], journals: [j2], volumes: [volume({ instanceId: I2 })] }), VOL)).toEqual({
        kind: 'detach', volumeId: VOL, instanceId: I2, force: true, reason: `detaching from given-up target ${I2} (forced)`,
      });
    }
  });

  it('once detached, the next target is neither the lost one nor the old holder', () => {
    const j = { ...advance(retarget(starting(), 'target-lost', NOW - 10, 'lost'), 'detaching', NOW - 5, 'fenced'), excludedInstanceIds: [I2] };
    const d = decide(observed({ hosts: [host(I1), host(I2), host(I3)], journals: [j], volumes: [volume()] }), VOL);
    const note = `volume is detached: attaching to ${I1} as /dev/xvdf (least loaded live host in ${AZ} (0 volumes))`;
    // The old holder I1 came back and is eligible (auto); the lost target I2, even alive again, is excluded.
    expect(d).toEqual({ kind: 'advance', volumeId: VOL, journal: advance(j, 'attaching', NOW, note, { toInstanceId: I1, device: '/dev/xvdf' }), reason: note });
  });

  it('every live candidate given up: one of them again rather than blocked (chaos seed 96)', () => {
    const j = { ...journal({ step: 'detaching', fromInstanceId: I2 }), excludedInstanceIds: [I2, I3] };
    const d = decide(observed({ hosts: [host(I2), host(I3)], journals: [j], volumes: [volume()] }), VOL);
    expect(d).toMatchObject({ kind: 'advance', volumeId: VOL, journal: { step: 'attaching' } });
    expect(d.reason).toContain('every other host was given up by this failover, so one of them again');
  });

  it('every candidate given up and none live: blocked, and the reason names them', () => {
    const j = { ...journal({ step: 'detaching', fromInstanceId: I2 }), excludedInstanceIds: [I2, I3] };
    const d = decide(observed({ hosts: [], journals: [j], volumes: [volume()] }), VOL);
    expect(d).toMatchObject({ kind: 'block', volumeId: VOL });
    expect(d.reason).toContain(`(given up by this failover: ${I2}, ${I3})`);
  });

  const attaching = (over: Partial<FailoverJournal> = {}) => journal({ step: 'attaching', toInstanceId: I2, device: '/dev/xvdf', stepStartedAt: NOW - 1000, ...over });
  it.each<[string, Spec, FailoverJournal, RetargetCase]>([
    [
      'attach stuck in attaching past attachStuckAfterMs',
      { volumes: [volume({ instanceId: I2, state: 'attaching' })], now: NOW + 19_000 }, attaching(),
      { step: 'detaching', reason: `attach to ${I2} stuck in attaching for 20000 ms: force-detaching it and choosing another host`, excluded: [I2] },
    ],
    [
      'a retried attach counts from EC2\'s attach time, not the step start',
      { volumes: [volume({ instanceId: I2, state: 'attaching', attachTime: NOW + 9_000 })], now: NOW + 29_000 }, attaching(),
      { step: 'detaching', reason: `attach to ${I2} stuck in attaching for 20000 ms: force-detaching it and choosing another host`, excluded: [I2] },
    ],
    [
      'target dead with the volume attaching to it',
      { hosts: [host(I3)], volumes: [volume({ instanceId: I2, state: 'attaching' })] }, attaching(),
      { step: 'detaching', reason: `target ${I2} lost its lease before the volume was placed there: failing over again at once, without it`, excluded: [I2] },
    ],
    [
      'manual: target dead with the volume attached to it',
      { hosts: [host(I1), host(I3)], volumes: [volume({ instanceId: I2 })] }, attaching({ kind: 'manual', cause: 'manual' }),
      { step: 'detaching', reason: `target ${I2} lost its lease before the volume was placed there: failing over again at once, without it`, excluded: [I1, I2] },
    ],
  ])('attaching: %s', (_name, spec, j, expected) => {
    const now = spec.now ?? NOW;
    const next = retarget(j, 'attach-stuck', now, expected.reason);
    expect(next).toMatchObject({ step: expected.step, fromInstanceId: I2, toInstanceId: null, device: null, excludedInstanceIds: expected.excluded, detachStartedAt: now });
    expect(decide(observed({ ...spec, journals: [j] }), VOL)).toEqual({ kind: 'advance', volumeId: VOL, journal: next, reason: expected.reason });
  });

  it('attaching within attachStuckAfterMs: waits', () => {
    const d = decide(observed({ volumes: [volume({ instanceId: I2, state: 'attaching' })], now: NOW + 18_999, journals: [attaching()] }), VOL);
    expect(d).toEqual({ kind: 'wait', volumeId: VOL, requeueAfterMs: POLL, reason: `attaching to ${I2}` });
  });

  it('a stuck attach of a given-up target is ended by a forced detach', () => {
    const j = retarget(attaching(), 'attach-stuck', NOW - 5, 'stuck');
    expect(decide(observed({ hosts: [host(I2), host(I3)], journals: [j], volumes: [volume({ instanceId: I2, state: 'attaching' })] }), VOL)).toEqual({
      kind: 'detach', volumeId: VOL, instanceId: I2, force: true, reason: `attach to given-up target ${I2} is still attaching: forcing a detach`,
    });
  });
});

interface RetargetCase {
  step: FailoverJournal['step'];
  reason: string;
  excluded: string[];
}

// Finding 2: a volume detached behind our back from a live holder is re-attached, with a new generation.
describe('decide: re-acquiring a volume detached behind our back', () => {
  const reacquire = (over: Partial<FailoverJournal> = {}) => journal({ cause: 'reacquire', fromInstanceId: I1, ...over });

  it('detected: placement → nobody (the holder lets go of its generation), then straight to detaching', () => {
    const j = reacquire();
    const reason = `${I1} lost ${VOL} behind our back: placement → nobody, then re-attach`;
    expect(decide(observed({ placements: [placement(I1, 3)], journals: [j], volumes: [volume()] }), VOL)).toEqual({
      kind: 'release', volumeId: VOL, generation: 4, reason, journal: advance(j, 'detaching', NOW, reason),
      placement: { volumeId: VOL, unit: UNIT, instanceId: null, device: null, generation: 4, updatedAt: NOW },
    });
  });

  it.each<[string, Spec, string, string]>([
    ['the live holder is preferred', {}, I1, `volume is detached: attaching to its holder ${I1} as /dev/xvdf`],
    ['holder dead meanwhile: any eligible host', { hosts: [host(I2)] }, I2, `volume is detached: attaching to ${I2} as /dev/xvdf (least loaded live host in ${AZ} (0 volumes))`],
    [
      'holder\'s instance stopping: any eligible host', { instances: [instance(I1, { state: 'stopping' })] }, I2,
      `volume is detached: attaching to ${I2} as /dev/xvdf (least loaded live host in ${AZ} (0 volumes))`,
    ],
  ])('detaching, volume available: %s', (_name, spec, target, note) => {
    const j = reacquire({ step: 'detaching', detachStartedAt: NOW - 10 });
    const d = decide(observed({ ...spec, placements: [placement(null, 4)], journals: [j], volumes: [volume()] }), VOL);
    expect(d).toEqual({ kind: 'advance', volumeId: VOL, journal: advance(j, 'attaching', NOW, note, { toInstanceId: target, device: '/dev/xvdf' }), reason: note });
  });

  it('attached to the holder again: the placement is written with the next generation', () => {
    const j = reacquire({ step: 'attaching', toInstanceId: I1, device: '/dev/xvdf' });
    const d = decide(observed({ placements: [placement(null, 4)], journals: [j], volumes: [volume({ instanceId: I1 })] }), VOL);
    expect(d).toEqual({
      kind: 'place', volumeId: VOL, instanceId: I1, device: '/dev/xvdf', generation: 5, reason: `attached to ${I1}: placing it there`,
      placement: { volumeId: VOL, unit: UNIT, instanceId: I1, device: '/dev/xvdf', generation: 5, updatedAt: NOW },
      journal: advance(j, 'starting', NOW, `attached to ${I1} as /dev/xvdf; placement generation 5`, { generation: 5, device: '/dev/xvdf' }),
    });
  });

  it('a live holder is never force-detached by a re-acquire', () => {
    const j = reacquire({ step: 'detaching', detachStartedAt: NOW - 1_000 });
    expect(decide(observed({ placements: [placement(null, 4)], journals: [j], volumes: [volume({ instanceId: I1, state: 'busy' })] }), VOL)).toEqual({
      kind: 'wait', volumeId: VOL, requeueAfterMs: POLL, reason: `detach from ${I1} is busy`,
    });
  });

  it('a failed re-acquire backs off only the next re-acquire', () => {
    const failed = reacquire({ step: 'failed', finishedAt: NOW - 1_000, error: 'agent failed' });
    const spec = { placements: [placement(I1, 5)], journals: [failed], volumes: [volume()] };
    expect(decide(observed(spec), VOL)).toEqual({
      kind: 'wait', volumeId: VOL, requeueAfterMs: 29_000, reason: `placed on live ${I1} (generation 5) but EC2 shows it detached: re-acquiring it; last reacquire failover failed (agent failed), retrying later`,
    });
    expect(decide(observed({ ...spec, hosts: [host(I2)], volumes: [volume({ instanceId: I1 })] }), VOL)).toMatchObject({ kind: 'startFailover', journal: { cause: 'holder-lost' } });
  });
});
