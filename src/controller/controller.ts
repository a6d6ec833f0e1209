import type { Etcd3 } from 'etcd3';
import { keyspace, type Keyspace } from '../keyspace/index.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { EtcdStore, volumeLocks, type GuardedWriter, type MirrorLike } from './etcd-store.js';
import { FailoverLoop } from './loop.js';
import { ControllerMetrics, serveMetrics } from './metrics.js';
import { DEFAULT_DECIDE_CONFIG } from './observed.js';
import type { ControllerOptions, ControllerResult } from './options.js';
import type { HeldLock } from './ports.js';

/** 10 s: a dead leader is replaced within about this long, while a slow etcd round trip does not depose a live one. */
const DEFAULT_ELECTION_TTL_MS = 10_000;

interface LeadershipLike extends GuardedWriter {
  readonly signal: AbortSignal;
  resign(): Promise<void>;
}

interface StartableMirror extends MirrorLike {
  start(): Promise<unknown>;
  stop(): Promise<unknown> | unknown;
}

/** The parts of src/locks (colleague H3) the controller uses, as documented in the cross-team API. */
interface LocksModule {
  campaign(client: Etcd3, ks: Keyspace, opts: { candidateId: string; ttlMs: number; log: Logger }): Promise<LeadershipLike>;
  PrefixMirror: new (client: Etcd3, prefix: string, log: Logger) => StartableMirror;
  acquireVolumeLock(client: Etcd3, ks: Keyspace, volumeId: string, opts: { ttlMs: number; waitMs: number; owner: string }): Promise<HeldLock>;
}

/**
 * src/locks is written in parallel by a colleague; it is loaded by a computed path so this file type-checks
 * before it exists. Once it does, this becomes a plain static import.
 */
async function loadLocks(): Promise<LocksModule> {
  const path = '../locks/index.js';
  return (await import(path)) as LocksModule;
}

/** Resolves with `promise`'s value, or null as soon as `signal` aborts. */
async function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | null> {
  if (signal.aborted) return null;
  return await new Promise<T | null>((resolve, reject) => {
    const onAbort = (): void => resolve(null);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Campaigns for leadership, runs the failover loop while leading (campaigning again when leadership is
 * lost), and returns once `opts.signal` aborts, after resigning so a standby takes over at once.
 */
export async function runController(opts: ControllerOptions): Promise<ControllerResult> {
  const log = opts.log ?? silentLogger();
  const now = opts.now ?? Date.now;
  const ks = keyspace(opts.prefix);
  const ttlMs = opts.electionTtlMs ?? DEFAULT_ELECTION_TTL_MS;
  const locks = await loadLocks();
  const metrics = new ControllerMetrics();
  const server = opts.metricsListen ? await serveMetrics(metrics, opts.metricsListen) : null;
  if (server) log.info({ port: server.port }, 'serving /metrics');

  // Mirrors run while standing by too, so a new leader starts from a warm view.
  const make = (prefix: string): StartableMirror => new locks.PrefixMirror(opts.etcd, prefix, log);
  const mirrors = {
    hosts: make(ks.hostsPrefix()), services: make(ks.servicesPrefix()), placements: make(ks.placementsPrefix()),
    journals: make(ks.journalPrefix()), reports: make(ks.statusPrefix()), requests: make(ks.requestsPrefix()),
  };
  let terms = 0;
  try {
    await Promise.all(Object.values(mirrors).map((m) => m.start()));
    while (!opts.signal.aborted) {
      const leadership = await unlessAborted(locks.campaign(opts.etcd, ks, { candidateId: opts.candidateId, ttlMs, log }), opts.signal);
      if (leadership === null) break;
      if (opts.signal.aborted) {
        await leadership.resign().catch(() => undefined);
        break;
      }
      terms += 1;
      metrics.setLeader(true);
      log.info({ candidateId: opts.candidateId, term: terms }, 'elected: running the failover loop');
      const store = new EtcdStore({
        ks, leadership, mirrors, log, now,
        listKeys: (prefix) => opts.etcd.getAll().prefix(prefix).sort('Key', 'Ascend').keys(),
      });
      const loop = new FailoverLoop({
        store, ec2: opts.ec2, fleet: opts.fleet, log, metrics, now, parallelism: opts.parallelism,
        locks: volumeLocks((volumeId, o) => locks.acquireVolumeLock(opts.etcd, ks, volumeId, o), opts.candidateId, ttlMs),
        signal: AbortSignal.any([opts.signal, leadership.signal]),
        config: {
          ...DEFAULT_DECIDE_CONFIG,
          forceDetachAfterMs: opts.forceDetachAfterMs,
          stopInstanceOnFence: opts.stopInstanceOnFence,
          reportTimeoutMs: opts.reportTimeoutMs ?? DEFAULT_DECIDE_CONFIG.reportTimeoutMs,
        },
        onPersisted: opts.onPersisted,
      });
      await loop.run();
      metrics.setLeader(false);
      if (opts.signal.aborted) await leadership.resign().catch((err: unknown) => log.warn({ err }, 'resign failed; the election lease expires instead'));
      else log.warn({ candidateId: opts.candidateId }, 'leadership lost: standing by and campaigning again');
    }
  } finally {
    await Promise.allSettled(Object.values(mirrors).map(async (m) => m.stop()));
    await server?.close();
  }
  return { terms };
}
