import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { HostRegistrar, PrefixMirror, connectEtcd, type FenceEvent } from '../../src/locks/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { LocksChild, until } from '../fixtures/locks-procs.js';

/** 2 s: short so tests are quick, but ≥ 2 renewal periods above any scheduling hiccup on a busy machine. */
const TTL_MS = 2_000;
const MARGIN_MS = 500;
/** 6 s for the restart test: starting a tsx child takes seconds on a loaded 2-core machine. */
const RESUME_TTL_MS = 6_000;

const host = (instanceId: string) => ({
  instanceId,
  az: 'us-east-1a',
  privateIp: '10.0.0.9',
  machineId: `machine-${instanceId}`,
  agentVersion: 'test',
  labels: {},
});

describe('host registrar (real etcd, child processes)', () => {
  let etcd: EtcdServer;
  let client: Etcd3;
  let dir: string;
  const children: LocksChild[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    client = connectEtcd({ endpoints: [etcd.endpoint] });
    dir = mkdtempSync(join(tmpdir(), 'locks-registrar-'));
  });
  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop()));
    client?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a SIGKILLed host disappears within TTL + 1 s and a watcher sees the delete', async () => {
    const ks = keyspace(`/t-kill-${Date.now()}/`);
    const mirror = new PrefixMirror(client, ks.hostsPrefix(), silentLogger());
    const deletedAt: number[] = [];
    mirror.on('change', (keys) => {
      if (keys !== 'reset' && keys.includes(ks.host('i-0aaa1111bbbb2222c')) && mirror.get(ks.host('i-0aaa1111bbbb2222c')) === undefined) deletedAt.push(Date.now());
    });
    await mirror.start();
    const child = new LocksChild({ mode: 'registrar', endpoints: [etcd.endpoint], prefix: ks.prefix, id: 'i-0aaa1111bbbb2222c', ttlMs: TTL_MS, fenceMarginMs: MARGIN_MS });
    children.push(child);
    await child.waitFor('ready');
    await until(() => mirror.get(ks.host('i-0aaa1111bbbb2222c')) !== undefined, 5_000, 'host key in the mirror');
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await until(() => deletedAt.length > 0, TTL_MS + 5_000, 'host key delete');
    const gone = (deletedAt[0] as number) - killedAt;
    console.log(`host key deleted ${gone} ms after SIGKILL (TTL ${TTL_MS} ms)`);
    expect(gone).toBeLessThanOrEqual(TTL_MS + 1_000);
    await mirror.stop();
  });

  it('a restart within the TTL resumes the saved lease: the host key is never deleted', async () => {
    const ks = keyspace(`/t-resume-${Date.now()}/`);
    const leaseStateFile = join(dir, 'lease.json');
    const cfg = { mode: 'registrar', endpoints: [etcd.endpoint], prefix: ks.prefix, id: 'i-0bbb1111bbbb2222c', ttlMs: RESUME_TTL_MS, fenceMarginMs: MARGIN_MS, leaseStateFile };
    const first = new LocksChild(cfg);
    children.push(first);
    const reg1 = await first.waitFor('registered');
    expect(reg1.resumed).toBe(false);
    const before = await client.get(ks.host('i-0bbb1111bbbb2222c')).exec();
    const killedAt = Date.now();
    first.kill('SIGKILL');
    await first.exited;
    const second = new LocksChild(cfg);
    children.push(second);
    const reg2 = await second.waitFor('registered');
    expect(reg2.resumed).toBe(true);
    expect(reg2.leaseId).toBe(reg1.leaseId);
    console.log(`restarted agent resumed its lease ${reg2.at - killedAt} ms after SIGKILL`);
    // Outlive the old process's TTL: the key is kept alive by the resumed lease.
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + RESUME_TTL_MS + 500 - Date.now())));
    const after = await client.get(ks.host('i-0bbb1111bbbb2222c')).exec();
    expect(after.kvs[0]?.create_revision).toBe(before.kvs[0]?.create_revision);
    await second.stop();
  });

  it('fences before the lease can expire when etcd becomes unreachable, and recovers after', async () => {
    const ks = keyspace(`/t-fence-${Date.now()}/`);
    const registrar = new HostRegistrar({ client, ks, log: silentLogger(), ttlMs: TTL_MS, fenceMarginMs: MARGIN_MS, record: host('i-0ccc1111bbbb2222c') });
    const fences: FenceEvent[] = [];
    registrar.on('fence', (ev) => fences.push(ev));
    let recovered = 0;
    registrar.on('recovered', () => (recovered += 1));
    await registrar.start();
    // Let a few renewals happen, then take etcd away.
    await new Promise((r) => setTimeout(r, TTL_MS));
    etcd.kill('SIGKILL');
    await etcd.exited();
    await until(() => fences.length > 0, TTL_MS + 3_000, 'fence');
    const fence = fences[0] as FenceEvent;
    const margin = fence.deadline - fence.firedAt;
    console.log(`fence fired ${margin} ms before the earliest etcd-side expiry (configured margin ${MARGIN_MS} ms)`);
    expect(fence.firedAt).toBeLessThan(fence.deadline);
    expect(registrar.fenced).toBe(true);
    await etcd.restart();
    await until(() => recovered > 0, 15_000, 'recovered');
    expect(registrar.fenced).toBe(false);
    const res = await client.get(ks.host('i-0ccc1111bbbb2222c')).exec();
    expect(res.kvs).toHaveLength(1);
    await registrar.stop({ revoke: false });
  });

  it('putUnderLease keys die with the lease; stop({ revoke: true }) removes the host at once', async () => {
    const ks = keyspace(`/t-revoke-${Date.now()}/`);
    const registrar = new HostRegistrar({ client, ks, log: silentLogger(), ttlMs: TTL_MS, fenceMarginMs: MARGIN_MS, record: host('i-0ddd1111bbbb2222c') });
    await registrar.start();
    const reportKey = ks.status('i-0ddd1111bbbb2222c', 'vol-0aaa12345def67890');
    await registrar.putUnderLease(reportKey, '{"phase":"active"}');
    expect(await client.get(reportKey).string()).toBe('{"phase":"active"}');
    await registrar.stop({ revoke: true });
    expect(await client.get(reportKey).string()).toBeNull();
    expect(await client.get(ks.host('i-0ddd1111bbbb2222c')).string()).toBeNull();
  });
});
