import { EC2_TIMING, withGuard, type MutationGuard } from '../ec2/index.js';
import { keyspace } from '../keyspace/index.js';
import { NotLeaderError, PrefixMirror, acquireVolumeLock, campaign, type Leadership } from '../locks/index.js';
import { silentLogger } from '../log/logger.js';
import { EtcdStore, volumeLocks } from './etcd-store.js';
import { HostTracker } from './hosts.js';
import { FailoverLoop } from './loop.js';
import { racesIntent, readVolumesInFlight, type Intent } from './in-flight.js';
import { EtcdStallWatch } from './etcd-stall.js';
import { StandbyLiveness } from './standby-liveness.js';
import { ControllerMetrics, serveMetrics } from './metrics.js';
import { DEFAULT_DECIDE_CONFIG, isActiveJournal } from './observed.js';
import { DEFAULT_AUTO_RESTORE } from './auto-restore.js';
import type { ControllerOptions, ControllerResult } from './options.js';

/** 10 s: a dead leader is replaced within about this long, while a slow etcd round trip does not depose a live one. */
const DEFAULT_ELECTION_TTL_MS = 10_000;

/**
 * The EC2 gate's view of one term: every mutating call checks `assertLeading()` (monotonic deadline)
 * as its last step, never outlives the step-down deadline, and none that could race a deposed
 * predecessor's call starts before `quietMs` after the election, the longest such a call can still be
 * in flight: each was cut at ITS deadline (≤ its lease's expiry ≤ our election), so this is margin for
 * requests already on the wire or being processed by EC2 when they were cut, and for clock-rate
 * differences. Which calls could race one: those naming a volume in `inFlight` (a running failover
 * whose journal records another term's call, in-flight.ts) and the same instance, unless they repeat
 * that very call, and those naming no volume (StopInstances, CreateVolume); every call when `inFlight`
 * is null (not known).
 */
export function leaderGuard(
  leadership: Pick<Leadership, 'candidateId' | 'revision' | 'assertLeading' | 'leaseRemainingMs' | 'electedAtMono'>,
  quietMs: number,
  inFlight: ReadonlyMap<string, Intent> | null = null,
): MutationGuard {
  return {
    caller: leadership.candidateId,
    term: leadership.revision,
    assert: () => leadership.assertLeading(),
    remainingMs: () => leadership.leaseRemainingMs(),
    notBeforeMono: leadership.electedAtMono + quietMs,
    quietApplies: (ids) => {
      if (inFlight === null || ids.volumeId === undefined) return true;
      const intent = inFlight.get(ids.volumeId);
      return intent !== undefined && racesIntent(intent, ids);
    },
  };
}

/** 1 s between campaigns that failed because etcd was unreachable: prompt once it is back, quiet meanwhile. */
const CAMPAIGN_RETRY_MS = 1_000;

async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
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
  const metrics = new ControllerMetrics();
  const server = opts.metricsListen ? await serveMetrics(metrics, opts.metricsListen) : null;
  if (server) log.info({ port: server.port }, 'serving /metrics');

  // Mirrors run while standing by too, so a new leader starts from a warm view.
  const make = (prefix: string): PrefixMirror => new PrefixMirror(opts.etcd, prefix, log);
  const mirrors = {
    hosts: make(ks.hostsPrefix()), services: make(ks.servicesPrefix()), placements: make(ks.placementsPrefix()),
    journals: make(ks.journalPrefix()), reports: make(ks.statusPrefix()), requests: make(ks.requestsPrefix()),
  };
  if (opts.autoRestore?.enabled) log.warn({ autoRestore: opts.autoRestore }, 'controller.autoRestore is on: a service whose whole AZ is gone is restored from a snapshot (data loss: writes after the snapshot)');
  let terms = 0;
  // One liveness bookkeeping for the process, looking while standing by too (hosts.ts says why). The
  // standby's store only reads: its writer refuses, as a standby must never write.
  const hosts = new HostTracker({ log, hostGraceMs: opts.hostGraceMs, onSuspect: () => metrics.suspectVanishing() });
  const readOnly = new EtcdStore({
    ks, mirrors, log, now,
    leadership: { txnGuarded: () => Promise.reject(new NotLeaderError(opts.candidateId, '(standing by)', 'a standby does not write')) },
    listKeys: () => Promise.resolve([]),
  });
  let standby: StandbyLiveness | null = null;
  // etcd stalls that no watch notices (a paused etcd keeps its connections) get the grace too: a
  // stall longer than two thirds of the hosts' TTL may expire live agents' leases as etcd resumes.
  // Half the election TTL at least: keepalives are answered every third of it.
  const stall = new EtcdStallWatch({
    log,
    stallAfterMs: () => Math.max(Math.ceil((2 * hosts.ttlMs()) / 3), Math.ceil(ttlMs / 2)),
    onStall: () => hosts.reconnected(),
  });
  try {
    await Promise.all(Object.values(mirrors).map((m) => m.start()));
    standby = new StandbyLiveness(hosts, readOnly, now, log);
    while (!opts.signal.aborted) {
      let leadership: Leadership | null;
      try {
        stall.restart();
        leadership = await unlessAborted(campaign(opts.etcd, ks, { candidateId: opts.candidateId, ttlMs, log, signal: opts.signal, onLeaseAnswer: () => stall.answered() }), opts.signal);
      } catch (err) {
        if (opts.signal.aborted) break;
        // Our campaign's lease lost or etcd unreachable: whatever agents could not renew meanwhile
        // gets the grace, as after a reconnect.
        hosts.reconnected();
        // etcd down (e.g. etcd3's BrokenCircuitError while every member is unreachable): a standby that
        // exits would only be restarted into the same outage; campaign again once etcd may be back.
        log.warn({ err, retryInMs: CAMPAIGN_RETRY_MS }, 'campaign failed; campaigning again');
        await abortableSleep(CAMPAIGN_RETRY_MS, opts.signal);
        continue;
      }
      if (leadership === null) break;
      if (opts.signal.aborted) {
        await leadership.resign().catch(() => undefined);
        break;
      }
      terms += 1;
      metrics.setLeader(true);
      const quietMs = opts.mutationQuietMs ?? Math.min(leadership.ttlMs, EC2_TIMING.mutationMaxMs);
      const inFlight = await readVolumesInFlight(opts.etcd, ks, leadership.revision, log);
      log.info({ candidateId: opts.candidateId, term: terms, revision: leadership.revision, quietMs }, 'elected: running the failover loop');
      // One gated EC2 port per term: no mutation of this term can skip the leadership check.
      const ec2 = withGuard(opts.ec2, leaderGuard(leadership, quietMs, inFlight));
      const store = new EtcdStore({
        ks, leadership, mirrors, log, now,
        listKeys: (prefix) => opts.etcd.getAll().prefix(prefix).sort('Key', 'Ascend').keys(),
      });
      // What a previous term was about to send (journalled before each call): for the operator's record.
      for (const [volumeId, intent] of inFlight ?? []) {
        log.warn({ volumeId, intent, quietMs }, "a previous term's EC2 call may still be in flight: no mutation of this volume before the quiet period ends");
      }
      if (inFlight === null || inFlight.size > 0) {
        log.warn({ quietMs, volumes: inFlight?.size ?? 'all' }, `new term: ${inFlight === null ? 'every' : inFlight.size} volume(s) wait the quiet period (a previous term's call may be in flight) for calls that could race it; the others go at once`);
      }
      for (const j of store.snapshot().journals.values()) {
        const restore = isActiveJournal(j) ? j.autoRestore?.restore : undefined;
        if (restore && restore.newVolumeId === null) {
          log.warn({ volumeId: j.volumeId, restore, quietMs }, "a previous term's auto-restore CreateVolume may have been sent: its volume is looked up by restore id after the quiet period, never created twice");
        }
      }
      const loop = new FailoverLoop({
        store, ec2, fleet: opts.fleet, log, metrics, now, parallelism: opts.parallelism,
        locks: volumeLocks((volumeId, o) => acquireVolumeLock(opts.etcd, ks, volumeId, o), opts.candidateId, ttlMs),
        signal: AbortSignal.any([opts.signal, leadership.signal]),
        config: {
          ...DEFAULT_DECIDE_CONFIG,
          forceDetachAfterMs: opts.forceDetachAfterMs,
          stopInstanceOnFence: opts.stopInstanceOnFence,
          reportTimeoutMs: opts.reportTimeoutMs ?? DEFAULT_DECIDE_CONFIG.reportTimeoutMs,
          autoRestore: { ...DEFAULT_AUTO_RESTORE, ...opts.autoRestore, snapshotMaxAgeMs: opts.autoRestore?.snapshotMaxAgeMs ?? null },
          ...opts.decide,
        },
        hosts,
        onPersisted: opts.onPersisted,
      });
      standby.pause();
      try {
        await loop.run();
      } finally {
        standby.resume();
      }
      metrics.setLeader(false);
      // Leadership is lost to etcd trouble (a lease not renewed in time, a watch failed) or to an
      // operator's resign: either way, hosts get the grace before this process calls any dead again.
      hosts.reconnected();
      if (opts.signal.aborted) await leadership.resign().catch((err: unknown) => log.warn({ err }, 'resign failed; the election lease expires instead'));
      else log.warn({ candidateId: opts.candidateId }, 'leadership lost: standing by and campaigning again');
    }
  } finally {
    stall.stop();
    standby?.stop();
    await Promise.allSettled(Object.values(mirrors).map(async (m) => m.stop()));
    await server?.close();
  }
  return { terms };
}
