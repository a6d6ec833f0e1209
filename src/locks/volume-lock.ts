import type { Etcd3, Lease } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import { endpointsOf, etcdCall } from './etcd.js';
import { LockLostError, LockTimeoutError, wrapEtcdError } from './errors.js';
import { LeaseClock, monoNow, wallOf } from './lease-clock.js';

export interface VolumeLockOptions {
  /** Lease TTL: the lock disappears this long after its holder dies (whole seconds, at least 1 s). */
  ttlMs: number;
  /** How long to wait for a held lock to be released before LockTimeoutError. 0: one attempt. */
  waitMs: number;
  /** Who holds it, e.g. `controller:<host>` or `snapshot:<host>`; shown to whoever waits. */
  owner: string;
  /**
   * assertHeld() fails this long before the lock's lease could expire when renewals stall (default a
   * quarter of the TTL, at most 2 s, as the election's step-down margin).
   */
  marginMs?: number;
  signal?: AbortSignal;
}

export interface VolumeLock {
  readonly volumeId: string;
  readonly owner: string;
  /** Fencing token: the lock key's create revision (decimal string), larger for every later holder. */
  readonly token: string;
  /** Aborted when the lock's lease is lost (the lock may now be someone else's), or on release. */
  readonly signal: AbortSignal;
  /**
   * Synchronous check before an action the lock guards: throws LockLostError (naming the volume) when
   * the signal aborted or no lease renewal was confirmed within TTL − margin (monotonic clock).
   */
  assertHeld(): void;
  /** ms until the lock's lease could be gone, less the margin (≤ 0: must not act). */
  leaseRemainingMs(): number;
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
  const started = monoNow();
  const ttlMs = Math.max(1, Math.ceil(opts.ttlMs / 1000)) * 1000;
  // Started before the grant is sent, so the lock never believes its lease lives longer than it does.
  const clock = new LeaseClock(ttlMs);
  const lease = client.lease(ttlMs / 1000);
  clock.attach(lease);
  lease.on('lost', () => undefined); // reported through the lock's signal below
  try {
    for (;;) {
      const r = await attempt(client, key, lease, opts.owner);
      if ('token' in r) {
        const marginMs = opts.marginMs ?? Math.min(2_000, Math.floor(ttlMs / 4));
        return held({ client, key, volumeId, owner: opts.owner, token: r.token, lease, clock, marginMs });
      }
      const left = opts.waitMs - (monoNow() - started);
      if (left <= 0 || opts.signal?.aborted) {
        clock.detach();
        await lease.revoke().catch(() => undefined);
        if (!throwOnTimeout) return null;
        throw new LockTimeoutError(volumeId, r.holder, Math.round(monoNow() - started));
      }
      await waitForDelete(client, key, r.revision, left, opts.signal);
    }
  } catch (err) {
    clock.detach();
    lease.release();
    await lease.revoke().catch(() => undefined);
    throw wrapEtcdError(err, endpointsOf(client), `lock ${volumeId}`);
  }
}

interface HeldParts {
  client: Etcd3;
  key: string;
  volumeId: string;
  owner: string;
  token: string;
  lease: Lease;
  clock: LeaseClock;
  marginMs: number;
}

function held({ client, key, volumeId, owner, token, lease, clock, marginMs }: HeldParts): VolumeLock {
  const controller = new AbortController();
  lease.on('lost', (err) => {
    clock.detach();
    controller.abort(err);
  });
  let released = false;
  const leaseRemainingMs = (): number => (controller.signal.aborted ? 0 : clock.remainingMs(marginMs));
  return {
    volumeId,
    owner,
    token,
    signal: controller.signal,
    assertHeld() {
      if (controller.signal.aborted) {
        const reason = controller.signal.reason as unknown;
        throw new LockLostError(volumeId, owner, reason instanceof Error ? reason.message : String(reason), { cause: reason });
      }
      if (clock.remainingMs(marginMs) <= 0) {
        throw new LockLostError(volumeId, owner, `no lease renewal confirmed since ${new Date(wallOf(clock.renewedAt)).toISOString()}`);
      }
    },
    leaseRemainingMs,
    async release() {
      if (released) return;
      released = true;
      clock.detach();
      controller.abort(new Error(`lock on ${volumeId} released`));
      // Delete only our own incarnation of the key, then drop the lease (which would delete it anyway).
      await etcdCall(client, `release lock ${volumeId}`, async () => {
        await client.if(key, 'Create', '==', token).then(client.delete().key(key)).commit();
        await lease.revoke();
      });
    },
  };
}
