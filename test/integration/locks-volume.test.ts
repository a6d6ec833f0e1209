import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { LockTimeoutError, acquireVolumeLock, connectEtcd, tryAcquireVolumeLock } from '../../src/locks/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { LocksChild } from '../fixtures/locks-procs.js';

/** 2 s: a dead holder's lock is freed quickly, yet renewals (every ~0.7 s) survive a busy machine. */
const TTL_MS = 2_000;
const VOL = 'vol-0aaa12345def67890';

describe('per-volume locks (real etcd)', () => {
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

  it('excludes a second holder, names the holder on timeout, hands over on release with a larger token', async () => {
    const ks = keyspace(`/t-lock-${Date.now()}/`);
    const first = await acquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 0, owner: 'controller:a' });
    expect(await tryAcquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 0, owner: 'snapshot:b' })).toBeNull();
    const timeout = await acquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 300, owner: 'snapshot:b' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(timeout).toBeInstanceOf(LockTimeoutError);
    expect((timeout as LockTimeoutError).volumeId).toBe(VOL);
    expect((timeout as LockTimeoutError).holder).toBe('controller:a');

    // A waiter gets the lock as soon as it is released (the wait is far longer than the hand-over).
    const waiting = acquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 20_000, owner: 'snapshot:b' });
    await new Promise((r) => setTimeout(r, 200));
    await first.release();
    const second = await waiting;
    expect(second.owner).toBe('snapshot:b');
    expect(BigInt(second.token)).toBeGreaterThan(BigInt(first.token));
    // A stale release by the first holder cannot delete the second holder's lock.
    await first.release();
    expect(await tryAcquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 0, owner: 'x' })).toBeNull();
    await second.release();
    const third = await acquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 0, owner: 'controller:c' });
    expect(BigInt(third.token)).toBeGreaterThan(BigInt(second.token));
    await third.release();
  });

  it('a SIGKILLed holder loses the lock when its lease expires', async () => {
    const ks = keyspace(`/t-lockdeath-${Date.now()}/`);
    const child = new LocksChild({ mode: 'lock', endpoints: [etcd.endpoint], prefix: ks.prefix, id: 'snapshot:child', ttlMs: TTL_MS, volumeId: VOL });
    children.push(child);
    const locked = await child.waitFor('locked');
    const busy = await acquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 0, owner: 'controller:a' }).catch((e: unknown) => e);
    expect((busy as LockTimeoutError).holder).toBe('snapshot:child');
    const killedAt = Date.now();
    child.kill('SIGKILL');
    const lock = await acquireVolumeLock(client, ks, VOL, { ttlMs: TTL_MS, waitMs: 20_000, owner: 'controller:a' });
    const waited = Date.now() - killedAt;
    console.log(`lock taken over ${waited} ms after its holder's SIGKILL (TTL ${TTL_MS} ms)`);
    expect(waited).toBeLessThanOrEqual(TTL_MS + 2_000);
    expect(BigInt(lock.token)).toBeGreaterThan(BigInt(String(locked.token)));
    await lock.release();
  });
});
