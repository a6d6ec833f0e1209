import { Election, type Campaign, type ElectionObserver, type Etcd3, type Lease } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { endpointsOf, etcdCall } from './etcd.js';
import { NotLeaderError, wrapEtcdError } from './errors.js';
import { guardedTxn, type GuardedOps } from './txn.js';
import { LeaseClock, monoNow, wallOf } from './lease-clock.js';

/** The election's name under `<prefix>election/`; one controller election per keyspace. */
const ELECTION_NAME = 'controller';

/** etcd leases have whole-second TTLs; round up so the lease never lives shorter than asked. */
function ttlSeconds(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs / 1000));
}

/** Who leads, for status displays. */
export interface LeaderInfo {
  candidateId: string;
  leaderKey: string;
  /** The leader key's create revision (the term's fencing value). */
  revision: string;
}

export interface CampaignOptions {
  candidateId: string;
  /** Leader lease TTL; a dead leader is replaced within about this long. */
  ttlMs: number;
  /**
   * The leader steps down this long before its lease could expire when renewals fail, so that it stops
   * acting (EC2 calls included) before a successor can be elected. Default: a quarter of the TTL, ≤ 2 s.
   */
  stepDownMarginMs?: number;
  log?: Logger;
  /** Abandons the campaign (the returned promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /**
   * Called each time etcd answers a keepalive of the campaign's lease, while campaigning and while
   * leading: how a controller notices etcd stalling (src/controller/etcd-stall.ts).
   */
  onLeaseAnswer?: () => void;
}

export interface Leadership {
  readonly candidateId: string;
  readonly leaderKey: string;
  /** The leader key's create revision: every guarded write compares it. */
  readonly revision: string;
  /** Aborted (reason: NotLeaderError) once leadership is lost or may be lost. */
  readonly signal: AbortSignal;
  /** The election lease's TTL (whole seconds, in ms). */
  readonly ttlMs: number;
  /** performance.now() when this process was elected. */
  readonly electedAtMono: number;
  /**
   * Synchronous last check before an action that must not outlive the term (e.g. an EC2 mutation):
   * throws NotLeaderError when deposed, or when the step-down deadline (send time of the last
   * confirmed lease renewal + TTL − step-down margin, monotonic) has passed — even if the 100 ms
   * step-down timer has not run yet (a paused process resumes with its timers late).
   */
  assertLeading(): void;
  /** ms until the step-down deadline (≤ 0: must not act). */
  leaseRemainingMs(): number;
  /** One transaction: the caller's compares AND "the leader key is still ours"; puts/deletes applied atomically. */
  txnGuarded(ops: GuardedOps): Promise<void>;
  putGuarded(key: string, value: string): Promise<void>;
  resign(): Promise<void>;
}

/** etcd3's Campaign keeps its lease private; the step-down timer needs its keepalive events. */
function leaseOf(campaign: Campaign): Lease {
  return (campaign as unknown as { lease: Lease }).lease;
}

/** Campaigns until elected and returns the leadership. Uses etcd3's Election (double-leader fix in 1.1.2). */
export async function campaign(client: Etcd3, ks: Keyspace, opts: CampaignOptions): Promise<Leadership> {
  const log = (opts.log ?? silentLogger()).child({ candidateId: opts.candidateId });
  const ttlMs = ttlSeconds(opts.ttlMs) * 1000;
  const margin = opts.stepDownMarginMs ?? Math.min(2_000, Math.floor(ttlMs / 4));
  const election = new Election(client.namespace(ks.prefix), ELECTION_NAME, ttlSeconds(opts.ttlMs));
  const clock = new LeaseClock(ttlMs);
  const cand = election.campaign(opts.candidateId);
  // etcd3's lease 'lost' fires only after 2 × TTL: track renewals ourselves to step down in time.
  clock.attach(leaseOf(cand), opts.onLeaseAnswer);

  const lost = new AbortController();
  let lostReason: string | null = null;
  const loseLeadership = (reason: string): void => {
    if (lost.signal.aborted) return;
    lostReason = reason;
    lost.abort(new NotLeaderError(opts.candidateId, '(campaigning)', reason));
  };
  cand.on('error', (err) => loseLeadership(`campaign error: ${err.message}`));

  const onAbort = (): void => {
    cand.resign().catch(() => undefined);
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      if (opts.signal?.aborted) reject(opts.signal.reason as Error);
      opts.signal?.addEventListener('abort', () => reject(opts.signal?.reason as Error), { once: true });
      cand.on('elected', () => resolve());
      cand.on('error', (err) => reject(wrapEtcdError(err, endpointsOf(client), 'campaign')));
    });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }

  const leaderKey = await cand.getCampaignKey();
  const res = await etcdCall(client, 'read leader key', () => client.get(leaderKey).exec());
  const kv = res.kvs[0];
  if (kv === undefined || lost.signal.aborted) {
    await cand.resign().catch(() => undefined);
    throw new NotLeaderError(opts.candidateId, leaderKey, lostReason ?? 'leader key vanished right after election');
  }
  const revision = String(kv.create_revision);
  // etcd3's resign() revokes only on its first call: share that call so resign() really awaits the revoke.
  let resigning: Promise<void> | null = null;
  const resignOnce = (): Promise<void> => (resigning ??= cand.resign());
  const deposed = new AbortController();
  const depose = (reason: string): void => {
    if (deposed.signal.aborted) return;
    log.warn({ leaderKey, revision, reason }, 'leadership lost');
    deposed.abort(new NotLeaderError(opts.candidateId, leaderKey, reason));
    clearInterval(stepDownTimer);
    clock.detach();
    void watcher.then((w) => w.cancel()).catch(() => undefined);
    // Our lease may still exist in etcd: revoke it so a successor need not wait for it to expire.
    resignOnce().catch(() => undefined);
  };
  lost.signal.addEventListener('abort', () => depose(lostReason ?? 'lease lost'), { once: true });
  /** ms until the step-down deadline, on the monotonic clock (a wall-clock step must not move it). */
  const leaseRemainingMs = (): number => (deposed.signal.aborted ? 0 : clock.remainingMs(margin));
  const checkLease = (): void => {
    if (clock.remainingMs(margin) <= 0) depose(`no lease renewal since ${new Date(wallOf(clock.renewedAt)).toISOString()}`);
  };
  // 100 ms checks: the step-down margin is ≥ 250 ms, so the check itself cannot make us late.
  // (assertLeading() checks the deadline itself: a thawed process runs code before its late timers.)
  const stepDownTimer = setInterval(checkLease, 100);
  const watcher = client.watch().key(leaderKey).startRevision(String(Number(res.header.revision) + 1)).create();
  watcher
    .then((w) => {
      w.on('delete', () => depose('leader key deleted'));
      // A compacted or cancelled watch cannot prove the key still exists: be safe and step down.
      w.on('error', (err) => depose(`leader key watch failed: ${err.message}`));
      if (deposed.signal.aborted) void w.cancel();
    })
    .catch((err: unknown) => depose(`leader key watch failed: ${String(err)}`));
  const electedAtMono = monoNow();
  log.info({ leaderKey, revision }, 'elected');

  const guard = { candidateId: opts.candidateId, leaderKey, revision };
  const txnGuarded = async (ops: GuardedOps): Promise<void> => {
    // Checked first so a leader that may be deposed never writes; etcd's compare is the real guard.
    if (!deposed.signal.aborted) checkLease();
    if (deposed.signal.aborted) throw deposed.signal.reason as Error;
    try {
      await guardedTxn(client, guard, ops);
    } catch (err) {
      if (err instanceof NotLeaderError) depose(err.message);
      throw err;
    }
  };
  return {
    candidateId: opts.candidateId,
    leaderKey,
    revision,
    signal: deposed.signal,
    ttlMs,
    electedAtMono,
    assertLeading: () => {
      if (!deposed.signal.aborted) checkLease();
      if (deposed.signal.aborted) throw deposed.signal.reason as Error;
    },
    leaseRemainingMs,
    txnGuarded,
    putGuarded: (key, value) => txnGuarded({ puts: [{ key, value }] }),
    resign: async () => {
      depose('resigned');
      await etcdCall(client, 'resign', resignOnce);
    },
  };
}

/** Who leads now, or null when nobody does. */
export async function currentLeader(client: Etcd3, ks: Keyspace): Promise<LeaderInfo | null> {
  const prefix = `${ks.electionPrefix()}/${ELECTION_NAME}/`;
  const res = await etcdCall(client, 'read leader', () => client.getAll().prefix(prefix).sort('Create', 'Ascend').limit(1).exec());
  const kv = res.kvs[0];
  if (kv === undefined) return null;
  return { candidateId: kv.value.toString(), leaderKey: kv.key.toString(), revision: String(kv.create_revision) };
}

/** Follows the leader for status displays: `observer.leader()`, 'change' events, `cancel()`. */
export async function observeLeader(client: Etcd3, ks: Keyspace): Promise<ElectionObserver> {
  const election = new Election(client.namespace(ks.prefix), ELECTION_NAME);
  return etcdCall(client, 'observe leader', () => election.observe());
}
