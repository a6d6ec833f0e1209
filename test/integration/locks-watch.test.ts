import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { PrefixMirror, connectEtcd, type MirrorChange } from '../../src/locks/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { TcpProxy, until } from '../fixtures/locks-procs.js';

describe('prefix watch / PrefixMirror (real etcd behind a loopback proxy)', () => {
  let etcd: EtcdServer;
  let direct: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    direct = connectEtcd({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    direct?.close();
    await etcd?.stop();
  });

  /** A mirror whose client reaches etcd only through a proxy the test can cut. */
  async function mirrorBehindProxy(prefix: string): Promise<{ mirror: PrefixMirror; proxy: TcpProxy; client: Etcd3; changes: MirrorChange[]; reconnects: number[] }> {
    const proxy = new TcpProxy(etcd.clientPort);
    const endpoint = await proxy.start();
    const client = connectEtcd({ endpoints: [endpoint] });
    const mirror = new PrefixMirror(client, prefix, silentLogger());
    const changes: MirrorChange[] = [];
    mirror.on('change', (c) => changes.push(c));
    const reconnects: number[] = [];
    mirror.on('reconnected', () => reconnects.push(Date.now()));
    await mirror.start();
    return { mirror, proxy, client, changes, reconnects };
  }

  async function contents(prefix: string): Promise<Map<string, string>> {
    const res = await direct.getAll().prefix(prefix).exec();
    return new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
  }

  it('resumes from the last seen revision after a disconnect, without re-listing', async () => {
    const ks = keyspace(`/t-resume-${Date.now()}/`);
    const prefix = ks.hostsPrefix();
    await direct.put(`${prefix}a`).value('1');
    const { mirror, proxy, client, reconnects } = await mirrorBehindProxy(prefix);
    expect(mirror.get(`${prefix}a`)).toBe('1');
    await direct.put(`${prefix}b`).value('2');
    await until(() => mirror.get(`${prefix}b`) === '2', 10_000, 'b in the mirror');
    // The first watcher's connect is not a reconnection.
    expect(reconnects).toHaveLength(0);
    proxy.pause();
    await direct.put(`${prefix}c`).value('3');
    await direct.delete().key(`${prefix}a`);
    await direct.put(`${prefix}b`).value('2b');
    proxy.resume();
    await until(() => mirror.get(`${prefix}c`) === '3' && mirror.get(`${prefix}b`) === '2b' && !mirror.entries().has(`${prefix}a`), 15_000, 'catch-up');
    expect(mirror.entries()).toEqual(await contents(prefix));
    expect(mirror.relists).toBe(0);
    await until(() => reconnects.length > 0, 10_000, "'reconnected' after the proxy resumed");
    await mirror.stop();
    client.close();
    await proxy.stop();
  });

  it('re-lists when its revision was compacted while disconnected, ending with the right contents', async () => {
    const ks = keyspace(`/t-compact-${Date.now()}/`);
    const prefix = ks.placementsPrefix();
    for (const k of ['a', 'b', 'c']) await direct.put(`${prefix}${k}`).value(`v-${k}`);
    const { mirror, proxy, client, changes, reconnects } = await mirrorBehindProxy(prefix);
    expect(mirror.entries().size).toBe(3);
    proxy.pause();
    await direct.delete().key(`${prefix}a`);
    await direct.put(`${prefix}b`).value('v-b2');
    await direct.put(`${prefix}d`).value('v-d');
    // Also churn keys outside the prefix so the compaction point lies past anything the mirror saw.
    for (let i = 0; i < 5; i += 1) await direct.put(`/t-other/${i}`).value('x');
    const head = await direct.get(`${prefix}d`).exec();
    await direct.kv.compact({ revision: head.header.revision, physical: true });
    const resetsBefore = changes.filter((c) => c === 'reset').length;
    proxy.resume();
    await until(() => mirror.relists > 0, 15_000, 'a re-list after compaction');
    await until(() => mirror.get(`${prefix}d`) === 'v-d', 5_000, 'd in the mirror');
    expect(mirror.entries()).toEqual(await contents(prefix));
    expect(mirror.entries().has(`${prefix}a`)).toBe(false);
    expect(changes.filter((c) => c === 'reset').length).toBeGreaterThan(resetsBefore);
    expect(reconnects.length, "'reconnected' after the re-list").toBeGreaterThan(0);
    // And it keeps following changes after the re-list.
    await direct.put(`${prefix}e`).value('v-e');
    await until(() => mirror.get(`${prefix}e`) === 'v-e', 10_000, 'e after the re-list');
    await mirror.stop();
    client.close();
    await proxy.stop();
  });
});
