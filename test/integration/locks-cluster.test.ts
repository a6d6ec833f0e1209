import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { EtcdUnavailableError, HostRegistrar, campaign, connectEtcd, etcdCall, isEtcdUnavailable, type FenceEvent, type Leadership } from '../../src/locks/index.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { until } from '../fixtures/locks-procs.js';

/**
 * 8 s (renewals every ~2.7 s, leader steps down 2 s before expiry, host fences 1 s before): a host and
 * a leader must survive losing one member — possibly etcd's raft leader — which costs a keepalive that
 * fails on the dead member plus etcd's own leader election (1–2 s with a 1 s election timeout, more on a
 * loaded 2-core CI machine). At 5 s a renewal sent just before the kill left under 2.1 s for both, and a
 * CI run saw the leader step down (and revoke its key) while its first write after the kill was in flight.
 */
const TTL_MS = 8_000;
/** Writes without quorum are bounded so the test does not wait for etcd's own request timeout (~7 s). */
const WRITE_DEADLINE_MS = 2_000;

describe('3-member etcd cluster: one member down changes nothing, two down fail cleanly', () => {
  let cluster: EtcdCluster;
  let client: Etcd3;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    cluster = await startEtcdCluster(3);
    client = connectEtcd({ endpoints: cluster.endpoints, dialTimeoutMs: 2_000 });
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    client?.close();
    await cluster?.stop();
  });

  it('keeps reads, writes, election and host liveness through the loss of one member, fails typed without quorum, recovers', async () => {
    const ks = keyspace(`/t-cluster-${Date.now()}/`);
    const log = silentLogger();
    const registrar = new HostRegistrar({
      client,
      ks,
      log,
      ttlMs: TTL_MS,
      fenceMarginMs: 1_000,
      record: { instanceId: 'i-0eee1111bbbb2222c', az: 'us-east-1a', privateIp: '10.0.0.5', machineId: 'm-e', agentVersion: 'test', labels: {} },
    });
    const fences: FenceEvent[] = [];
    registrar.on('fence', (ev) => fences.push(ev));
    let recovered = 0;
    registrar.on('recovered', () => (recovered += 1));
    await registrar.start();
    const leadership: Leadership = await campaign(client, ks, { candidateId: 'ctl-cluster', ttlMs: TTL_MS, log });
    const key = `${ks.prefix}placements/vol-0aaa12345def67890`;

    // One member down (the one listed first, so the client must fail over to another endpoint).
    const [m0, m1] = cluster.members as [EtcdCluster['members'][0], EtcdCluster['members'][0]];
    m0.kill('SIGKILL');
    await m0.exited();
    await leadership.putGuarded(key, 'one-down');
    expect(await client.get(key).string()).toBe('one-down');
    await new Promise((r) => setTimeout(r, TTL_MS));
    expect(leadership.signal.aborted).toBe(false);
    expect(fences).toHaveLength(0);
    expect(await client.get(ks.host('i-0eee1111bbbb2222c')).string()).not.toBeNull();
    const other = await campaign(client, keyspace(`${ks.prefix}sub/`), { candidateId: 'ctl-other', ttlMs: TTL_MS, log });
    await other.resign();

    // Two members down: no quorum. Every write fails with a typed, retryable error.
    m1.kill('SIGKILL');
    await m1.exited();
    const put = client.put(key).value('no-quorum').options({ deadline: Date.now() + WRITE_DEADLINE_MS });
    const err = await etcdCall(client, 'test put', () => put.exec()).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EtcdUnavailableError);
    expect(isEtcdUnavailable(err)).toBe(true);
    // The leader steps down and the host fences before their leases could expire.
    await until(() => leadership.signal.aborted && fences.length > 0, TTL_MS + 5_000, 'step-down and fence');
    const fence = fences[0] as FenceEvent;
    console.log(`without quorum: fence ${fence.deadline - fence.firedAt} ms before the earliest expiry`);
    expect(fence.firedAt).toBeLessThan(fence.deadline);
    const guarded = await leadership.putGuarded(key, 'deposed').then(() => null, (e: unknown) => e);
    expect((guarded as Error).name).toBe('NotLeaderError');

    // Restart both: service comes back, the host re-registers, a new leader can write.
    await Promise.all([m0.restart({ wait: 'listening' }), m1.restart({ wait: 'listening' })]);
    await until(async () => (await client.put(`${ks.prefix}probe`).value('x').options({ deadline: Date.now() + 1_000 }).exec().then(() => true, () => false)), 30_000, 'writes to work again');
    await until(() => recovered > 0, 15_000, 'host recovered');
    const again = await campaign(client, ks, { candidateId: 'ctl-cluster-2', ttlMs: TTL_MS, log });
    await again.putGuarded(key, 'restored');
    expect(await client.get(key).string()).toBe('restored');
    await again.resign();
    await registrar.stop({ revoke: true });
    expect(unhandled).toEqual([]);
  });
});
