import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/log/logger.js';
import {
  HostRegistrar,
  LockLostError,
  NotLeaderError,
  acquireVolumeLock,
  campaign,
  connectEtcd,
  type FenceDeferredEvent,
  type FenceEvent,
} from '../../src/locks/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { sleep, until } from '../fixtures/locks-procs.js';

/**
 * The guards other parts build on (issue 9): Leadership.assertLeading() and VolumeLock.assertHeld()
 * for the EC2 mutation gate, and the registrar's confirmFence hook and reachesEtcd() for the agent.
 */
const TTL_MS = 3_000;
const MARGIN_MS = 1_000;
const VOL = 'vol-0aaa12345def67890';

const record = (instanceId: string) => ({
  instanceId,
  az: 'us-east-1a',
  privateIp: '10.0.0.8',
  machineId: `machine-${instanceId}`,
  agentVersion: 'test',
  labels: {},
});

/**
 * Blocks the event loop (as a GC pause or a SIGSTOP of this process would) until `done()`; no timer,
 * no keepalive answer, no step-down interval runs meanwhile. Bounded so a bug cannot hang the run.
 */
function freezeUntil(done: () => boolean, maxMs: number): void {
  const end = performance.now() + maxMs;
  while (!done()) {
    if (performance.now() > end) throw new Error(`freeze: condition not reached within ${maxMs} ms`);
  }
}

describe('lease guards (real etcd)', () => {
  let etcd: EtcdServer;
  let client: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    client = connectEtcd({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    etcd?.kill('SIGCONT');
    client?.close();
    await etcd?.stop();
  });

  it('Leadership.assertLeading() refuses once the step-down deadline passed, before the step-down timer could run', async () => {
    const ks = keyspace(`/t-guard-lead-${Date.now()}/`);
    const before = performance.now();
    const leadership = await campaign(client, ks, { candidateId: 'ctl-guard', ttlMs: TTL_MS, log: silentLogger() });
    expect(leadership.ttlMs).toBe(TTL_MS);
    expect(leadership.electedAtMono).toBeGreaterThanOrEqual(before);
    expect(leadership.electedAtMono).toBeLessThanOrEqual(performance.now());
    // Let a renewal or two happen: the deadline follows them.
    await sleep(TTL_MS / 2);
    expect(() => leadership.assertLeading()).not.toThrow();
    const remaining = leadership.leaseRemainingMs();
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(TTL_MS);

    // Frozen past the deadline: nothing asynchronous ran, so the signal cannot know yet.
    freezeUntil(() => leadership.leaseRemainingMs() <= 0, TTL_MS + 1_000);
    expect(leadership.signal.aborted).toBe(false);
    expect(() => leadership.assertLeading()).toThrow(NotLeaderError);
    // The check deposed it for everyone else too.
    expect(leadership.signal.aborted).toBe(true);
    expect(leadership.leaseRemainingMs()).toBeLessThanOrEqual(0);
    await expect(leadership.putGuarded(`${ks.prefix}placements/x`, '1')).rejects.toBeInstanceOf(NotLeaderError);
  });

  it('VolumeLock.assertHeld() refuses when renewals are stale past TTL − margin, and after release', async () => {
    const ks = keyspace(`/t-guard-lock-${Date.now()}/`);
    const lock = await acquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 0, owner: 'controller:guard', marginMs: MARGIN_MS });
    expect(() => lock.assertHeld()).not.toThrow();
    expect(lock.leaseRemainingMs()).toBeGreaterThan(0);
    expect(lock.leaseRemainingMs()).toBeLessThanOrEqual(TTL_MS - MARGIN_MS);

    freezeUntil(() => lock.leaseRemainingMs() <= 0, TTL_MS + 1_000);
    let err: unknown = null;
    try {
      lock.assertHeld();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LockLostError);
    expect((err as LockLostError).volumeId).toBe(VOL);
    expect((err as Error).message).toContain(VOL);

    await lock.release();
    expect(() => lock.assertHeld()).toThrow(/released/);
    expect(lock.leaseRemainingMs()).toBe(0);
  });

  it('confirmFence: no fence while it answers false (etcd SIGSTOPped), a prompt fence once it answers true', async () => {
    const ks = keyspace(`/t-guard-fence-${Date.now()}/`);
    let answer = false;
    let asked = 0;
    const deferring = new HostRegistrar({
      client,
      ks,
      log: silentLogger(),
      ttlMs: TTL_MS,
      fenceMarginMs: MARGIN_MS,
      record: record('i-0fff1111bbbb2222c'),
      confirmFence: async () => {
        asked += 1;
        return answer;
      },
    });
    // Its confirmFence never answers: treated as "fence" after min(margin/2, 1 s).
    const silent = new HostRegistrar({
      client,
      ks,
      log: silentLogger(),
      ttlMs: TTL_MS,
      fenceMarginMs: MARGIN_MS,
      record: record('i-0fff2222bbbb2222c'),
      confirmFence: () => new Promise<boolean>(() => undefined),
    });
    // Its confirmFence never answers either, but its peers said etcd is down for everyone: it waits.
    const patient = new HostRegistrar({
      client,
      ks,
      log: silentLogger(),
      ttlMs: TTL_MS,
      fenceMarginMs: MARGIN_MS,
      record: record('i-0fff3333bbbb2222c'),
      confirmFence: () => new Promise<boolean>(() => undefined),
      fenceOnSilence: () => false,
    });
    const fences: FenceEvent[] = [];
    const deferred: FenceDeferredEvent[] = [];
    const silentFences: FenceEvent[] = [];
    const patientFences: FenceEvent[] = [];
    const patientDeferred: FenceDeferredEvent[] = [];
    const renewalFailures: number[] = [];
    patient.on('fence', (ev) => patientFences.push(ev));
    patient.on('fence-deferred', (ev) => patientDeferred.push(ev));
    deferring.on('renewal-failed', (ev) => renewalFailures.push(ev.failures));
    let recovered = 0;
    deferring.on('fence', (ev) => fences.push(ev));
    deferring.on('fence-deferred', (ev) => deferred.push(ev));
    deferring.on('recovered', () => (recovered += 1));
    silent.on('fence', (ev) => silentFences.push(ev));
    await deferring.start();
    await silent.start();
    await patient.start();
    await until(() => deferring.reachesEtcd(), 5_000, 'reachesEtcd() while etcd runs');
    const leaseBefore = deferring.leaseId;
    expect(deferring.lastRenewalAgoMs()).toBeLessThan(TTL_MS / 2);

    etcd.kill('SIGSTOP');
    try {
      // Well past the TTL: the fence was due and asked about several times.
      await until(() => deferred.length >= 3 && deferring.lastRenewalAgoMs() > TTL_MS + 1_000, 30_000, 'three deferrals, past the TTL');
      expect(fences).toEqual([]);
      expect(deferring.fenced).toBe(false);
      expect(deferring.fenceDeferred).toBe(true);
      expect(deferring.reachesEtcd()).toBe(false);
      expect(deferred[0]?.reason).toMatch(/confirmFence answered false/);
      expect(deferred[0]?.lastRenewedAt).toBeLessThanOrEqual(Date.now() - (TTL_MS - MARGIN_MS));
      // The registrar whose check never answers fenced as it would without the hook.
      expect(silentFences).toHaveLength(1);
      expect(silent.fenced).toBe(true);
      expect(silentFences[0]?.reason).toMatch(/peer check gave no answer: confirmFence timed out/);
      // fenceOnSilence said no: deferred like a false answer, asked again, never fenced.
      expect(patientFences).toEqual([]);
      expect(patientDeferred.length).toBeGreaterThanOrEqual(2);
      // Each failed renewal is announced (the agent's early peer survey starts on the first).
      expect(renewalFailures.slice(0, 3)).toEqual([1, 2, 3]);

      const askedBefore = asked;
      answer = true;
      const switchedAt = Date.now();
      await until(() => fences.length > 0, 10_000, 'a fence once confirmFence answers true');
      console.log(`fence ${Date.now() - switchedAt} ms after confirmFence switched to true (re-asked every ${Math.min(TTL_MS / 3, 1_000)} ms)`);
      expect(asked).toBeGreaterThan(askedBefore);
      expect(deferring.fenced).toBe(true);
      expect(deferring.fenceDeferred).toBe(false);
      expect(fences).toHaveLength(1);
      expect(fences[0]?.reason).toMatch(/peer check confirmed it/);
    } finally {
      etcd.kill('SIGCONT');
    }
    // etcd back: the registrar recovers (with a new lease if etcd expired the old one on resuming).
    await until(() => recovered > 0, 20_000, 'recovered after SIGCONT');
    expect(deferring.fenced).toBe(false);
    await until(() => deferring.reachesEtcd(), 5_000, 'reachesEtcd() after recovery');
    // Informational: etcd resumed after a pause longer than the TTL, with no leader change.
    console.log(`after SIGCONT the registrar ${deferring.leaseId === leaseBefore ? 'kept its lease' : 'registered a new lease (etcd expired the old one on resuming)'}`);
    expect(await client.get(ks.host('i-0fff1111bbbb2222c')).string()).not.toBeNull();
    await deferring.stop({ revoke: true });
    await silent.stop({ revoke: true });
    await patient.stop({ revoke: true });
  });
});
