import type { Etcd3, Lease } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import { endpointsOf, etcdCall } from './etcd.js';
import { LockTimeoutError, wrapEtcdError } from './errors.js';

export interface VolumeLockOptions {
  /** Lease TTL: the lock disappears this long after its holder dies (whole seconds, at least 1 s). */
  ttlMs: number;
  /** How long to wait for a held lock to be released before LockTimeoutError. 0: one attempt. */
  waitMs: number;
  /** Who holds it, e.g. `controller:<host>` or `snapshot:<host>`; shown to whoever waits. */
  owner: string;
  signal?: AbortSignal;
}

export interface VolumeLock {
  readonly volumeId: string;
  readonly owner: string;
  /** Fencing token: the lock key's create revision (decimal string), larger for every later holder. */
  readonly token: string;
  /** Aborted when the lock's lease is lost (the lock may now be someone else's). */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

interface LockValue {
  owner: string;
  at: number;
}

function holderOf(raw: string | undefined): string | null {
  if (raw === undefined) return null;
  try {
    return (JSON.parse(raw) as Partial<LockValue>).owner ?? raw;
  } catch {
    return raw;
  }
}

/** One attempt: the lock, or the current holder and the revision we saw it at. */
async function attempt(client: Etcd3, key: string, lease: Lease, owner: string): Promise<{ token: string } | { holder: string | null; revision: string }> {
  const leaseId = await lease.grant();
  const value = JSON.stringify({ owner, at: Date.now() } satisfies LockValue);
  const res = await client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(leaseId)).else(client.get(key)).commit();
  if (res.succeeded) return { token: res.header.revision };
  const kv = res.responses[0]?.response_range?.kvs[0];
  return { holder: holderOf(kv?.value.toString()), revision: res.header.revision };
}

/** Resolves when `key` is deleted after `revision`, or after `ms`, or when `signal` aborts. */
async function waitForDelete(client: Etcd3, key: string, revision: string, ms: number, signal?: AbortSignal): Promise<void> {
  const watcher = client.watch().key(key).startRevision((BigInt(revision) + 1n).toString()).only('delete').watcher();
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      watcher.once('delete', done);
      watcher.once('error', done);
      signal?.addEventListener('abort', done, { once: true });
    });
  } finally {
    // Not awaited: etcd3's cancel() of a watcher the server already cancelled (e.g. its start
    // revision was compacted) waits forever for a 'connected' that never comes.
    void watcher.cancel().catch(() => undefined);
  }
}

/**
 * Takes `locks/<volumeId>` under a fresh lease, waiting up to `waitMs` for the current holder to let
 * go (or die: its lease then deletes the key). Throws LockTimeoutError naming the holder, or
 * EtcdUnavailableError.
 */
export async function acquireVolumeLock(client: Etcd3, ks: Keyspace, volumeId: string, opts: VolumeLockOptions): Promise<VolumeLock> {
  const lock = await tryAcquireInner(client, ks, volumeId, opts, true);
  if (lock === null) throw new Error('unreachable: acquire without a timeout result');
  return lock;
}

/** Like acquireVolumeLock, but resolves null (instead of LockTimeoutError) when the lock stays held. */
export async function tryAcquireVolumeLock(client: Etcd3, ks: Keyspace, volumeId: string, opts: VolumeLockOptions): Promise<VolumeLock | null> {
  return tryAcquireInner(client, ks, volumeId, opts, false);
}

async function tryAcquireInner(client: Etcd3, ks: Keyspace, volumeId: string, opts: VolumeLockOptions, throwOnTimeout: boolean): Promise<VolumeLock | null> {
  const key = ks.lock(volumeId);
  const started = Date.now();
  const lease = client.lease(Math.max(1, Math.ceil(opts.ttlMs / 1000)));
  lease.on('lost', () => undefined); // reported through the lock's signal below
  try {
    for (;;) {
      const r = await attempt(client, key, lease, opts.owner);
      if ('token' in r) return held(client, key, volumeId, opts.owner, r.token, lease);
      const left = opts.waitMs - (Date.now() - started);
      if (left <= 0 || opts.signal?.aborted) {
        await lease.revoke().catch(() => undefined);
        if (!throwOnTimeout) return null;
        throw new LockTimeoutError(volumeId, r.holder, Date.now() - started);
      }
      await waitForDelete(client, key, r.revision, left, opts.signal);
    }
  } catch (err) {
    lease.release();
    await lease.revoke().catch(() => undefined);
    throw wrapEtcdError(err, endpointsOf(client), `lock ${volumeId}`);
  }
}

function held(client: Etcd3, key: string, volumeId: string, owner: string, token: string, lease: Lease): VolumeLock {
  const controller = new AbortController();
  lease.on('lost', (err) => controller.abort(err));
  let released = false;
  return {
    volumeId,
    owner,
    token,
    signal: controller.signal,
    async release() {
      if (released) return;
      released = true;
      controller.abort(new Error(`lock on ${volumeId} released`));
      // Delete only our own incarnation of the key, then drop the lease (which would delete it anyway).
      await etcdCall(client, `release lock ${volumeId}`, async () => {
        await client.if(key, 'Create', '==', token).then(client.delete().key(key)).commit();
        await lease.revoke();
      });
    },
  };
}
