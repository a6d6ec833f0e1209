import { describe, expect, it } from 'vitest';
import { monoNow } from '../ec2/gate.js';
import { silentLogger } from '../log/logger.js';
import { leaderGuard } from './controller.js';
import { racesIntent, repeatsIntent, volumesInFlight, type Intent } from './in-flight.js';
import { FailoverLoop, quietLeftMs } from './loop.js';
import { MemoryLocks, MemoryStore } from './memory.js';
import { ControllerMetrics } from './metrics.js';
import { DEFAULT_DECIDE_CONFIG } from './observed.js';
import { FakeEc2 } from '../testing/fake-ec2-port.js';
import { AZ, I1, eventually, host, journal, placement, service } from '../testing/controller-builders.js';

const until = eventually;

const vol = (n: number): string => `vol-${n.toString(16).padStart(17, '0')}`;
const intent = (term: string) => ({ action: 'detach' as const, instanceId: I1, force: true, device: null, term, at: 0 });

describe('which volumes a new term waits the quiet period for', () => {
  it('running failovers whose journal records another term\'s call; not ours, not finished ones, not those with no call yet', () => {
    const journals = [
      journal({ volumeId: vol(1), step: 'detaching', intent: intent('7') }),
      journal({ volumeId: vol(2), step: 'attaching', intent: intent('9') }),
      journal({ volumeId: vol(3), step: 'done', intent: intent('7') }),
      journal({ volumeId: vol(4), step: 'failed', intent: intent('7') }),
      journal({ volumeId: vol(5), step: 'detected', intent: null }),
      journal({ volumeId: vol(6), step: 'blocked', intent: intent('3') }),
    ];
    expect([...volumesInFlight(journals, '9')].sort()).toEqual([[vol(1), intent('7')], [vol(6), intent('3')]]);
  });

  it('a call races the one in flight when it names the same instance and is not its repeat', () => {
    const detach = intent('7');
    expect(racesIntent(detach, { action: 'AttachVolume', volumeId: vol(1), instanceId: I1, device: '/dev/xvdf' })).toBe(true);
    expect(racesIntent(detach, { action: 'DetachVolume', volumeId: vol(1), instanceId: I1 })).toBe(false);
    expect(racesIntent(detach, { action: 'AttachVolume', volumeId: vol(1), instanceId: 'i-00000000000000009', device: '/dev/xvdf' })).toBe(false);
    const attach = { ...detach, action: 'attach' as const, force: false, device: '/dev/xvdf' };
    // Retargeting away from the instance a late attach names: held.
    expect(racesIntent(attach, { action: 'DetachVolume', volumeId: vol(1), instanceId: I1 })).toBe(true);
    expect(racesIntent(attach, { action: 'AttachVolume', volumeId: vol(1), instanceId: I1, device: '/dev/xvdg' })).toBe(true);
  });

  it('a repeat of the call in flight: the same detach (graceful or forced) from the same instance, the same attach (instance and device)', () => {
    const detach = intent('7');
    expect(repeatsIntent(detach, { action: 'DetachVolume', volumeId: vol(1), instanceId: I1 })).toBe(true);
    expect(repeatsIntent({ ...detach, force: false }, { action: 'DetachVolume', volumeId: vol(1), instanceId: I1 })).toBe(true);
    expect(repeatsIntent(detach, { action: 'AttachVolume', volumeId: vol(1), instanceId: I1, device: '/dev/xvdf' })).toBe(false);
    const attach = { ...detach, action: 'attach' as const, force: false, device: '/dev/xvdf' };
    expect(repeatsIntent(attach, { action: 'AttachVolume', volumeId: vol(1), instanceId: I1, device: '/dev/xvdf' })).toBe(true);
    expect(repeatsIntent(attach, { action: 'AttachVolume', volumeId: vol(1), instanceId: I1, device: '/dev/xvdg' })).toBe(false);
    expect(repeatsIntent(attach, { action: 'DetachVolume', volumeId: vol(1), instanceId: I1 })).toBe(false);
    expect(repeatsIntent({ ...detach, action: 'stop' }, { action: 'DetachVolume', volumeId: vol(1), instanceId: I1 })).toBe(false);
  });

  it('the term\'s guard: the quiet for calls naming such a volume or none; for every call when the journals could not be read', () => {
    const leadership = { candidateId: 'c2', revision: '9', assertLeading: () => undefined, leaseRemainingMs: () => 5_000, electedAtMono: monoNow() };
    const known = leaderGuard(leadership, 2_000, new Map([[vol(1), intent('7')]]));
    expect(known.notBeforeMono).toBe(leadership.electedAtMono + 2_000);
    // An attach to the instance a late forced detach names: that detach would undo it.
    expect(known.quietApplies?.({ action: 'AttachVolume', volumeId: vol(1), instanceId: I1, device: '/dev/xvdf' })).toBe(true);
    // Calls naming another instance: a late detach from I1 finds the volume not attached there.
    expect(known.quietApplies?.({ action: 'DetachVolume', volumeId: vol(1), instanceId: 'i-00000000000000009' })).toBe(false);
    expect(known.quietApplies?.({ action: 'AttachVolume', volumeId: vol(1), instanceId: 'i-00000000000000009', device: '/dev/xvdf' })).toBe(false);
    // The very call in flight, repeated: EC2 applies one, the other finds it done.
    expect(known.quietApplies?.({ action: 'DetachVolume', volumeId: vol(1), instanceId: I1 })).toBe(false);
    expect(known.quietApplies?.({ action: 'AttachVolume', volumeId: vol(2), instanceId: I1, device: '/dev/xvdf' })).toBe(false);
    expect(known.quietApplies?.({ instanceId: I1 })).toBe(true);
    expect(known.quietApplies?.({ snapshotId: 'snap-0123456789abcdef0' })).toBe(true);
    const unknown = leaderGuard(leadership, 2_000, null);
    expect(unknown.quietApplies?.({ volumeId: vol(2), instanceId: I1 })).toBe(true);
  });
});

describe('the loop and a new term\'s quiet period', () => {
  const inst = (n: number): string => `i-${n.toString(16).padStart(17, '0')}`;

  it('a mutation the gate would hold takes no parallelism slot: other failovers go on, it goes once the quiet period ends', async () => {
    // Three volumes on host 1, which dies; parallelism 1. Vol 1's journal records a previous term's call in
    // flight that ours could race (an attach to host 1: our detach from host 1 is not its repeat), vol 2
    // none, vol 3 the very detach ours repeats (and its attach names another host). Had vol 1's detach
    // been dispatched, it would sleep in the gate on the only slot (the fake port does not sleep: it
    // would simply be sent, and the test sees that).
    const store = new MemoryStore();
    const ec2 = new FakeEc2();
    for (const h of [1, 2, 3]) {
      store.putHost(host(inst(h)));
      ec2.addInstance(inst(h), AZ);
    }
    for (const v of [1, 2, 3]) {
      const s = service({ unit: `postgres@${vol(v)}`, volumeId: vol(v), conflictGroup: undefined });
      store.services.set(s.unit, s);
      ec2.addVolume(vol(v), AZ, inst(1));
      store.placements.set(vol(v), { ...placement(inst(1), 1), volumeId: vol(v), unit: s.unit });
    }
    const previous = intent('7');
    const attachToHolder = { ...previous, action: 'attach' as const, instanceId: inst(1), force: false, device: '/dev/xvdf' };
    const detachFromHolder = { ...previous, instanceId: inst(1) };
    store.journals.set(vol(1), journal({ volumeId: vol(1), unit: `postgres@${vol(1)}`, fromInstanceId: inst(1), step: 'detaching', intent: attachToHolder }));
    store.journals.set(vol(3), journal({ volumeId: vol(3), unit: `postgres@${vol(3)}`, fromInstanceId: inst(1), step: 'detaching', intent: detachFromHolder }));
    const inFlight = new Map<string, Intent>([[vol(1), attachToHolder], [vol(3), detachFromHolder]]);
    const quiet = { until: monoNow() + 600_000 };
    ec2.guard = {
      caller: 'c2', term: '9', assert: () => undefined, remainingMs: () => 5_000,
      get notBeforeMono() {
        return quiet.until;
      },
      quietApplies: leaderGuard({ candidateId: 'c2', revision: '9', assertLeading: () => undefined, leaseRemainingMs: () => 5_000, electedAtMono: 0 }, 0, inFlight).quietApplies,
    };
    store.hosts.delete(inst(1));
    const signal = new AbortController();
    const loop = new FailoverLoop({
      store, ec2, locks: new MemoryLocks(), metrics: new ControllerMetrics(), parallelism: 1, log: silentLogger(), now: Date.now,
      signal: signal.signal, config: { ...DEFAULT_DECIDE_CONFIG, pollMs: 20 }, hostGraceMs: 0,
    });
    const running = loop.run();
    try {
      await until('vols 2 and 3 attached elsewhere', () => [2, 3].every((v) => ec2.calls.some((c) => c.startsWith(`AttachVolume ${vol(v)}`))));
      expect(ec2.calls.filter((c) => c.includes(vol(1)) && !c.startsWith('Describe'))).toEqual([]);
      // The quiet period ends: vol 1's detach goes.
      quiet.until = monoNow();
      store.changed();
      await until('vol 1 detached', () => ec2.calls.some((c) => c.startsWith(`DetachVolume ${vol(1)}`)));
    } finally {
      signal.abort();
      await running;
    }
  });

  it('quietLeftMs: attach and detach by their volume, StopInstances and CreateVolume always; nothing without a guard', () => {
    const until = monoNow() + 60_000;
    const port = { guard: { caller: 'c', term: '9', assert: () => undefined, remainingMs: () => 1, notBeforeMono: until, quietApplies: (ids: { volumeId?: string }) => ids.volumeId !== vol(2) } };
    const detach = (v: number) => ({ kind: 'detach' as const, volumeId: vol(v), instanceId: I1, force: true, reason: '' });
    expect(quietLeftMs(port, detach(1))).toBeGreaterThan(50_000);
    expect(quietLeftMs(port, detach(2))).toBe(0);
    expect(quietLeftMs(port, { kind: 'fence', volumeId: vol(2), instanceId: I1, machineId: null, metadataKey: 'k', stopInstance: true, journal: journal(), reason: '' })).toBeGreaterThan(50_000);
    expect(quietLeftMs(port, { kind: 'fence', volumeId: vol(2), instanceId: I1, machineId: null, metadataKey: 'k', stopInstance: false, journal: journal(), reason: '' })).toBe(0);
    expect(quietLeftMs({}, detach(1))).toBe(0);
  });
});
