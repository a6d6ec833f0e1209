import { describe, expect, it } from 'vitest';
import type { FailoverJournal, HostRecord, Placement } from '../keyspace/records.js';
import { silentLogger } from '../log/logger.js';
import { HOST_TIMING, HostTracker, hostGraceMs } from './hosts.js';
import type { StoreSnapshot } from './ports.js';
import { NOW, host, journal, placement } from '../testing/controller-builders.js';

const TTL = 1_000;
const id = (n: number): string => `i-${n.toString(16).padStart(17, '0')}`;
const vol = (n: number): string => `vol-${n.toString(16).padStart(17, '0')}`;

function snap(live: number[], placements: Placement[] = [], journals: FailoverJournal[] = []): StoreSnapshot {
  const hosts = new Map<string, HostRecord>(live.map((n) => [id(n), host(id(n), { leaseTtlMs: TTL })]));
  return { hosts, services: new Map(), placements: new Map(placements.map((p) => [p.volumeId, p])), journals: new Map(journals.map((j) => [j.volumeId, j])), reports: new Map(), requests: new Map() };
}

/** Volume n placed on host n. */
const onHost = (n: number): Placement => placement(id(n), 1, { volumeId: vol(n) });

describe('HostTracker', () => {
  it('grace: TTL + TTL/3 from the first look (a controller that just started; longest known TTL), again after a reconnect', () => {
    expect(hostGraceMs(10_000)).toBe(13_334);
    const t = new HostTracker({ log: silentLogger() });
    t.observe(snap([1, 2]), NOW);
    expect(t.graceUntil).toBe(NOW + hostGraceMs(TTL));
    t.observe(snap([1, 2]), NOW + 5_000);
    expect(t.graceUntil).toBe(NOW + hostGraceMs(TTL)); // not renewed by looking again
    t.reconnected();
    t.observe(snap([1, 2]), NOW + 6_000);
    expect(t.graceUntil).toBe(NOW + 6_000 + hostGraceMs(TTL));
  });

  it('no host known yet: the agents\' default TTL (10 s), shortened once the hosts (and their TTL) are known', () => {
    const t = new HostTracker({ log: silentLogger() });
    t.observe(snap([]), NOW);
    expect(t.graceUntil).toBe(NOW + hostGraceMs(10_000));
    t.observe(snap([1]), NOW + 200);
    expect(t.graceUntil).toBe(NOW + hostGraceMs(TTL));
  });

  it.each<[string, number, number[], boolean]>([
    ['one of four vanishes: a death, not suspect', 4, [1], false],
    ['two of four vanish at once: suspect (half, and at least 2)', 4, [1, 2], true],
    ['one of two vanishes: not suspect (fewer than 2)', 2, [1], false],
    ['five of eight vanish at once: suspect', 8, [1, 2, 3, 4, 5], true],
  ])('%s', (_name, hosts, vanish, suspect) => {
    const t = new HostTracker({ log: silentLogger(), hostGraceMs: 0 });
    const all = Array.from({ length: hosts }, (_, i) => i + 1);
    const placements = all.map(onHost);
    t.observe(snap(all, placements), NOW);
    t.observe(snap(all.filter((n) => !vanish.includes(n)), placements), NOW + 100);
    expect(t.pacing(NOW + 100) !== null).toBe(suspect);
  });

  it('vanishings spread over more than one TTL are deaths, not suspect', () => {
    const t = new HostTracker({ log: silentLogger(), hostGraceMs: 0 });
    const placements = [1, 2, 3, 4].map(onHost);
    t.observe(snap([1, 2, 3, 4], placements), NOW);
    t.observe(snap([2, 3, 4], placements), NOW + 100);
    t.observe(snap([3, 4], placements), NOW + 100 + TTL + 1);
    expect(t.pacing(NOW + 100 + TTL + 1)).toBeNull();
  });

  it('suspect: a grace first, then one host admitted per TTL (10 % of 8, at least 1); over once every vanished holder is handled', () => {
    const t = new HostTracker({ log: silentLogger(), hostGraceMs: 500 });
    const all = [1, 2, 3, 4, 5, 6, 7, 8];
    const placements = all.map(onHost);
    t.observe(snap(all, placements), NOW);
    const alive = snap([6, 7, 8], placements);
    t.observe(alive, NOW + 1_000);
    expect(t.graceUntil).toBe(NOW + 1_500);
    expect(t.pacing(NOW + 1_500)).toEqual({ remaining: 1, admitted: [], reason: '5 of 8 known hosts vanished at once (suspect): failovers of at most 1 host(s) per 1000 ms' });
    t.admit(id(1), NOW + 1_500);
    expect(t.pacing(NOW + 1_600)).toMatchObject({ remaining: 0, admitted: [id(1)] });
    expect(t.pacing(NOW + 2_501)).toMatchObject({ remaining: 1, admitted: [id(1)] });
    // Every vanished holder's volume has moved (placements now name live hosts): no longer paced.
    t.observe(snap([6, 7, 8], [6, 7, 8].map(onHost)), NOW + 3_000);
    expect(t.pacing(NOW + 3_000)).toBeNull();
  });

  // bench/failover leader-killed: a successor adopts what its predecessor admitted, through the journals.
  it('a suspect holder with a running holder-lost journal (a previous leader admitted it) is admitted from the journal\'s start', () => {
    const t = new HostTracker({ log: silentLogger(), hostGraceMs: 500 });
    const all = [1, 2, 3, 4, 5, 6, 7, 8];
    const placements = all.map(onHost);
    t.observe(snap(all, placements), NOW);
    // Host 1's failover was started by the dead leader 200 ms ago; host 2's finished; host 6 is alive.
    const running = journal({ volumeId: vol(1), fromInstanceId: id(1), startedAt: NOW + 1_300, step: 'detaching' });
    const finished = journal({ volumeId: vol(2), fromInstanceId: id(2), startedAt: NOW + 1_300, step: 'done' });
    const manual = journal({ volumeId: vol(3), fromInstanceId: id(3), startedAt: NOW + 1_300, kind: 'manual', cause: 'manual' });
    t.observe(snap([6, 7, 8], placements, [running, finished, manual]), NOW + 1_000);
    t.observe(snap([6, 7, 8], placements, [running, finished, manual]), NOW + 1_500);
    // Host 1 has its turn (its other volumes may start) and used the budget (1 per TTL) until NOW + 2_300.
    expect(t.pacing(NOW + 1_500)).toMatchObject({ remaining: 0, admitted: [id(1)] });
    expect(t.pacing(NOW + 2_301)).toMatchObject({ remaining: 1, admitted: [id(1)] });
    // Proof requests skip the admitted holder.
    expect(t.proofWanted(snap([6, 7, 8], placements, [running]), NOW + 2_301)).toEqual([id(2), id(3), id(4), id(5)]);
  });

  // A CI run of controller-ec2-proof: once every volume of the vanished hosts had moved, each later look
  // within their TTL started a new suspect episode (and a new grace for all), every few ms.
  it('a handled suspect vanishing is not suspect again on later looks; hosts vanishing later are judged afresh', () => {
    let suspects = 0;
    const t = new HostTracker({ log: silentLogger(), hostGraceMs: 500, onSuspect: () => (suspects += 1) });
    const all = [1, 2, 3, 4, 5, 6, 7, 8];
    t.observe(snap(all, all.map(onHost)), NOW);
    t.observe(snap([6, 7, 8], all.map(onHost)), NOW + 100);
    expect(suspects).toBe(1);
    // Their volumes moved at once (EC2 proved them dead): handled, still within one TTL of the vanishing.
    const moved = [6, 7, 8].map(onHost);
    for (let at = NOW + 200; at <= NOW + 900; at += 50) t.observe(snap([6, 7, 8], moved), at);
    expect(suspects).toBe(1);
    expect(t.pacing(NOW + 900)).toBeNull();
    expect(t.graceUntil).toBe(NOW + 100 + 500); // the grace of the one episode, not renewed
    // Three of the five come back, then vanish again with one more (4 of 8): a new vanishing, suspect again.
    t.observe(snap([1, 2, 3, 6, 7, 8], moved), NOW + 3_000);
    t.observe(snap([7, 8], [1, 2, 3, 6, 7, 8].map(onHost)), NOW + 3_100);
    expect(suspects).toBe(2);
  });

  it('forgets a host gone 10 TTLs unless a placement or journal names it', () => {
    const t = new HostTracker({ log: silentLogger(), hostGraceMs: 0 });
    t.observe(snap([1, 2, 3]), NOW);
    const named = [journal({ volumeId: vol(9), fromInstanceId: null, toInstanceId: null, excludedInstanceIds: [id(3)] })];
    t.observe(snap([], [onHost(2)], named), NOW + 10 * TTL - 1);
    expect([...t.known.keys()]).toEqual([id(1), id(2), id(3)]);
    t.observe(snap([], [onHost(2)], named), NOW + 10 * TTL);
    expect([...t.known.keys()]).toEqual([id(2), id(3)]);
  });

  describe('EC2 proof of death (stopped, terminated, impaired): no grace, no pacing for the proven', () => {
    const all = [1, 2, 3, 4, 5, 6, 7, 8];
    const placements = all.map(onHost);
    /** 5 of 8 vanish at once: suspect, a grace of 500 ms, then 1 host per TTL. */
    function suspectTracker(): HostTracker {
      const t = new HostTracker({ log: silentLogger(), hostGraceMs: 500 });
      t.observe(snap(all, placements), NOW);
      t.observe(snap([6, 7, 8], placements), NOW + 1_000);
      return t;
    }

    it('asks only for gone holders held back (the suspects), at most one look per proofEveryMs', () => {
      const t = suspectTracker();
      const s = snap([6, 7, 8], placements);
      expect(t.proofWanted(s, NOW + 1_000)).toEqual([1, 2, 3, 4, 5].map(id));
      t.proofLooked([1, 2, 3, 4, 5].map(id), new Map(), NOW + 1_000);
      expect(t.proofWanted(s, NOW + 1_000 + HOST_TIMING.proofEveryMs - 1)).toEqual([]);
      expect(t.proofWanted(s, NOW + 1_000 + HOST_TIMING.proofEveryMs)).toEqual([1, 2, 3, 4, 5].map(id));
    });

    it('nothing held back (no grace, not suspect): no look at all, even with a dead holder', () => {
      const t = new HostTracker({ log: silentLogger(), hostGraceMs: 0 });
      const four = [1, 2, 3, 4].map(onHost);
      t.observe(snap([1, 2, 3, 4], four), NOW);
      t.observe(snap([2, 3, 4], four), NOW + 100);
      expect(t.pacing(NOW + 100)).toBeNull();
      expect(t.proofWanted(snap([2, 3, 4], four), NOW + 100)).toEqual([]);
    });

    it('proven hosts are admitted at once and take no turn; the unproven stay paced', () => {
      const t = suspectTracker();
      t.proofLooked([1, 2, 3, 4, 5].map(id), new Map([[id(1), 'EC2 reports the instance stopped'], [id(2), 'EC2 status check(s) impaired: system']]), NOW + 1_000);
      expect(Object.fromEntries(t.provenDead())).toEqual({ [id(1)]: 'EC2 reports the instance stopped', [id(2)]: 'EC2 status check(s) impaired: system' });
      t.admit(id(1), NOW + 1_000);
      t.admit(id(2), NOW + 1_000);
      const p = t.pacing(NOW + 1_000);
      expect(p?.remaining).toBe(1); // the budget of 1 host per TTL is untouched
      expect(p?.admitted).toEqual([id(1), id(2)]);
      t.admit(id(3), NOW + 1_500);
      expect(t.pacing(NOW + 1_500)).toMatchObject({ remaining: 0, admitted: [id(3), id(1), id(2)] });
      // Still asked about: the unproven suspects without their turn (3 has its turn).
      expect(t.proofWanted(snap([6, 7, 8], placements), NOW + 2_000)).toEqual([4, 5].map(id));
    });

    it('a proof found for a host not asked about is ignored; a host back with a lease loses its proof', () => {
      const t = suspectTracker();
      t.proofLooked([id(1)], new Map([[id(1), 'EC2 reports the instance stopped'], [id(6), 'EC2 reports the instance stopped']]), NOW + 1_000);
      expect([...t.provenDead().keys()]).toEqual([id(1)]);
      t.observe(snap([1, 6, 7, 8], placements), NOW + 1_100);
      expect(t.provenDead().size).toBe(0);
    });

    it('a new leader\'s grace: gone holders of placements and of running journals are asked about, live ones never', () => {
      const t = new HostTracker({ log: silentLogger(), hostGraceMs: 5_000 });
      const running = journal({ volumeId: vol(20), fromInstanceId: id(9), toInstanceId: id(2), step: 'detaching' });
      const s = snap([2], [onHost(1), onHost(2)], [running]);
      t.observe(s, NOW);
      expect(t.proofWanted(s, NOW)).toEqual([id(1), id(9)]);
      expect(t.proofWanted(s, NOW + 5_000 + HOST_TIMING.proofEveryMs)).toEqual([]); // grace over, nothing suspect
    });
  });
});
