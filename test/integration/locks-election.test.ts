import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { NotLeaderError, TxnConflictError, campaign, connectEtcd, currentLeader } from '../../src/locks/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { LocksChild, sleep, until } from '../fixtures/locks-procs.js';

/** 3 s: short for a quick test, long enough that a loaded machine does not depose a healthy leader. */
const TTL_MS = 3_000;

describe('controller election (real etcd, child processes)', () => {
  let etcd: EtcdServer;
  let client: Etcd3;
  const children: LocksChild[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    client = connectEtcd({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop()));
    client?.close();
    await etcd?.stop();
  });

  /** Children that were elected and neither lost leadership nor died. */
  const leaders = (): LocksChild[] => children.filter((c) => c.has('elected') && !c.has('lost') && c.proc.exitCode === null && c.proc.signalCode === null);

  it('one leader among three; SIGKILL the leader and another leads within TTL + 2 s', async () => {
    const ks = keyspace(`/t-elect-${Date.now()}/`);
    for (const name of ['ctl-a', 'ctl-b', 'ctl-c']) {
      children.push(new LocksChild({ mode: 'candidate', endpoints: [etcd.endpoint], prefix: ks.prefix, id: name, ttlMs: TTL_MS }));
    }
    await until(() => leaders().length === 1, 30_000, 'a first leader');
    // Watch for a second leader while the others keep campaigning.
    await sleep(TTL_MS);
    expect(leaders()).toHaveLength(1);
    const first = leaders()[0] as LocksChild;
    const firstElected = await first.waitFor('elected');
    expect((await currentLeader(client, ks))?.leaderKey).toBe(firstElected.leaderKey);

    const killedAt = Date.now();
    first.kill('SIGKILL');
    await first.exited;
    await until(() => leaders().length === 1, TTL_MS + 10_000, 'a successor');
    const successor = leaders()[0] as LocksChild;
    const elected = await successor.waitFor('elected');
    console.log(`successor elected ${elected.at - killedAt} ms after the leader's SIGKILL (TTL ${TTL_MS} ms)`);
    expect(elected.at - killedAt).toBeLessThanOrEqual(TTL_MS + 2_000);
    expect(BigInt(String(elected.revision))).toBeGreaterThan(BigInt(String(firstElected.revision)));
    await sleep(500);
    expect(leaders()).toHaveLength(1);
  });

  it("a leader paused past its lease is deposed: its guarded write fails with NotLeaderError", async () => {
    const leader = leaders()[0] as LocksChild;
    const standby = children.find((c) => c !== leader && c.proc.exitCode === null && c.proc.signalCode === null) as LocksChild;
    const ks = keyspace(`/t-elect-${Date.now()}/`);
    leader.kill('SIGSTOP');
    await until(() => standby.has('elected'), TTL_MS + 10_000, 'the standby to be elected');
    leader.kill('SIGCONT');
    const key = `${ks.prefix}placements/vol-0aaa12345def67890`;
    leader.send(`write ${key} from-deposed`);
    const write = await leader.waitFor('write', 10_000);
    console.log(`deposed leader's write: ${JSON.stringify(write)}`);
    expect(write.local).toBe('NotLeaderError');
    // Without the local check, etcd's compare on the leader key's create revision refuses it too.
    expect(write.raw).toBe('NotLeaderError');
    expect(await client.get(key).string()).toBeNull();
    // The new leader's write goes through.
    standby.send(`write ${key} from-leader`);
    const ok = await standby.waitFor('write', 10_000);
    expect(ok.local).toBe('ok');
    expect(await client.get(key).string()).toBe('from-leader');
  });

  it('in-process: txnGuarded applies puts and deletes atomically, honours compares, and resign() aborts the signal', async () => {
    const ks = keyspace(`/t-inproc-${Date.now()}/`);
    const leadership = await campaign(client, ks, { candidateId: 'ctl-local', ttlMs: TTL_MS, log: silentLogger() });
    const a = `${ks.prefix}placements/a`;
    const b = `${ks.prefix}placements/b`;
    await leadership.txnGuarded({ puts: [{ key: a, value: '1' }, { key: b, value: '2' }] });
    await expect(leadership.txnGuarded({ compares: [{ key: a, target: 'Value', op: '==', value: 'nope' }], deletes: [a] })).rejects.toBeInstanceOf(TxnConflictError);
    expect(await client.get(a).string()).toBe('1');
    await leadership.txnGuarded({ compares: [{ key: a, target: 'Value', op: '==', value: '1' }], deletes: [a] });
    expect(await client.get(a).string()).toBeNull();
    await leadership.resign();
    expect(leadership.signal.aborted).toBe(true);
    expect(leadership.signal.reason).toBeInstanceOf(NotLeaderError);
    await expect(leadership.putGuarded(b, '3')).rejects.toBeInstanceOf(NotLeaderError);
    expect(await currentLeader(client, ks)).toBeNull();
  });

  it('deleting the leader key deposes the leader', async () => {
    const ks = keyspace(`/t-delkey-${Date.now()}/`);
    const leadership = await campaign(client, ks, { candidateId: 'ctl-del', ttlMs: TTL_MS, log: silentLogger() });
    await client.delete().key(leadership.leaderKey).exec();
    await until(() => leadership.signal.aborted, 5_000, 'leadership signal to abort');
    expect((leadership.signal.reason as Error).message).toMatch(/leader key deleted/);
  });
});
