import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { PrefixMirror, connectEtcd, type MirrorChange } from '../../src/locks/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { until } from '../fixtures/locks-procs.js';

/**
 * Issue 9, finding 6: several events in ONE etcd revision (a lease revoke deleting all its keys, a
 * transaction with several puts or deletes) must all reach the mirror. Each case ends with a sentinel
 * put in a LATER revision: once the mirror shows it, every earlier event has been delivered, so the
 * comparison with etcd's contents is a plain assertion rather than a wait that might time out.
 */
describe('prefix watch: every event of one revision reaches the mirror (real etcd)', () => {
  let etcd: EtcdServer;
  let client: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    client = connectEtcd({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  async function contents(prefix: string): Promise<Map<string, string>> {
    const res = await client.getAll().prefix(prefix).exec();
    return new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
  }

  /** Puts a sentinel after the change under test and waits until the mirror shows it. */
  async function settle(mirror: PrefixMirror, prefix: string, n: number): Promise<void> {
    const key = `${prefix}zz-sentinel`;
    await client.put(key).value(String(n));
    await until(() => mirror.get(key) === String(n), 15_000, `sentinel ${n} in the mirror`);
  }

  /** A mirror over a fresh prefix, plus its 'change' log. */
  async function freshMirror(name: string): Promise<{ mirror: PrefixMirror; prefix: string; changes: MirrorChange[] }> {
    const prefix = keyspace(`/t-rev-${name}-${Date.now()}/`).statusPrefix();
    const mirror = new PrefixMirror(client, prefix, silentLogger());
    const changes: MirrorChange[] = [];
    mirror.on('change', (c) => changes.push(c));
    await mirror.start();
    return { mirror, prefix, changes };
  }

  /** The watch never fell back to re-listing: the case's changes came as events. */
  function expectOnlyEvents(mirror: PrefixMirror, changes: MirrorChange[]): void {
    expect(mirror.relists).toBe(0);
    expect(changes.filter((c) => c === 'reset')).toHaveLength(1);
  }

  it('a lease revoke deleting three keys in one revision empties the mirror', async () => {
    const { mirror, prefix, changes } = await freshMirror('revoke');
    const lease = client.lease(30);
    for (const k of ['a', 'b', 'c']) await lease.put(`${prefix}lease-${k}`).value(k);
    await settle(mirror, prefix, 1);
    expect([...mirror.entries().keys()].filter((k) => k.includes('lease-'))).toHaveLength(3);
    await lease.revoke();
    await settle(mirror, prefix, 2);
    const ghosts = [...mirror.entries().keys()].filter((k) => k.includes('lease-'));
    expect(ghosts, 'keys deleted by the lease revoke still in the mirror').toEqual([]);
    expect(mirror.entries()).toEqual(await contents(prefix));
    expectOnlyEvents(mirror, changes);
    await mirror.stop();
  });

  it('one transaction with two puts puts both in the mirror', async () => {
    const { mirror, prefix, changes } = await freshMirror('puts');
    const txn = await client
      .if(`${prefix}txn-x`, 'Create', '==', 0)
      .then(client.put(`${prefix}txn-x`).value('x'), client.put(`${prefix}txn-y`).value('y'))
      .commit();
    expect(txn.succeeded).toBe(true);
    await settle(mirror, prefix, 1);
    expect(mirror.get(`${prefix}txn-x`)).toBe('x');
    expect(mirror.get(`${prefix}txn-y`), 'second put of one txn').toBe('y');
    expect(mirror.entries()).toEqual(await contents(prefix));
    expectOnlyEvents(mirror, changes);
    await mirror.stop();
  });

  it('one transaction deleting two keys removes both from the mirror', async () => {
    const { mirror, prefix, changes } = await freshMirror('deletes');
    await client.put(`${prefix}txn-x`).value('x');
    await client.put(`${prefix}txn-y`).value('y');
    await settle(mirror, prefix, 1);
    expect(mirror.get(`${prefix}txn-y`)).toBe('y');
    const del = await client
      .if(`${prefix}txn-x`, 'Value', '==', 'x')
      .then(client.delete().key(`${prefix}txn-x`), client.delete().key(`${prefix}txn-y`))
      .commit();
    expect(del.succeeded).toBe(true);
    await settle(mirror, prefix, 2);
    expect(mirror.entries().has(`${prefix}txn-x`)).toBe(false);
    expect(mirror.entries().has(`${prefix}txn-y`), 'second delete of one txn').toBe(false);
    expect(mirror.entries()).toEqual(await contents(prefix));
    expectOnlyEvents(mirror, changes);
    await mirror.stop();
  });
});
