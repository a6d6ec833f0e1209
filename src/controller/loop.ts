import type { Ec2ErrorIds } from '../ec2/errors.js';
import { monoNow } from '../ec2/gate.js';
import type { Ec2Port, InstanceInfo, SnapshotInfo, VolumeInfo } from '../ec2/types.js';
import type { FailoverJournal, Placement } from '../keyspace/records.js';
import type { Logger } from '../log/logger.js';
import { TxnConflictError } from '../locks/index.js';
import { act, DeviceTakenError, isThrottled } from './act.js';
import type { AutoRestoreFacts } from './auto-restore.js';
import { RESTORE_TAGS } from './restore-common.js';
import { decide } from './decide.js';
import { isMutation, type Decision } from './decision.js';
import { lookForDeathProof } from './death-proof.js';
import { HOST_TIMING, HostTracker } from './hosts.js';
import type { ControllerMetrics } from './metrics.js';
import { buildObserved, describeInstances, describeVolumes, volumesNeedingWork } from './observe.js';
import { isActiveJournal, serviceOfVolume, type DecideConfig } from './observed.js';
import type { FleetMetadataPort } from './options.js';
import type { HeldLock, LockPort, StorePort, StoreSnapshot } from './ports.js';

/** Timing of the loop; every value is a trade-off between reaction time and EC2/etcd calls. */
export const LOOP_TIMING = {
  // 100 ms: ticks woken by etcd changes are coalesced to at most ~10 DescribeVolumes calls a second.
  minTickGapMs: 100,
  // 2 s: with nothing in flight, still look regularly so time-based steps (force, timeouts) fire.
  idleTickMs: 2_000,
  // 30 s: a full resync also describes healthy volumes to catch drift made outside the controller.
  resyncEveryMs: 30_000,
  // 3 s: the same Attach/Detach call is not repeated sooner; EC2 shows its effect within a poll or two.
  reissueAfterMs: 3_000,
  // 5 s: device names change only when volumes move, and our own moves are tracked in the journals.
  instancesCacheMs: 5_000,
  // 1 s then doubling to 15 s: retry a volume whose action failed without hammering a broken API.
  errorBackoffMs: 1_000,
  errorBackoffMaxMs: 15_000,
  // 250 ms: a throttled call is simply looked at again; the EC2 layer's token bucket already spaces
  // calls, so a long backoff here would only add latency on top of it (the 100-failover bench).
  throttledRetryMs: 250,
  // 30 s: a device name EC2 refused (InvalidDevice.InUse) stays marked taken at least until a fresh
  // DescribeInstances (cached 5 s) can show it.
  deviceTakenMs: 30_000,
  // 1 s: a volume locked by someone else (a snapshot run) is tried again soon.
  lockedRetryMs: 1_000,
  // 30 s between prunes of the events prefix, which keeps the newest `eventsKeep`.
  pruneEveryMs: 30_000,
  // 1 s: a live host missing from the cached DescribeInstances (it just joined) is looked up this soon,
  // since until then it is not eligible as a target.
  instancesMissingRefreshMs: 1_000,
  // Auto-restore facts: snapshots change hourly at most (30 s), an old holder's state within seconds
  // (5 s, as the instances cache), and a restore's own volume is looked for every second while it runs.
  restoreSnapshotsCacheMs: 30_000,
  restoreHoldersCacheMs: 5_000,
  restoreVolumeCacheMs: 1_000,
} as const;


export interface LoopOptions {
  store: StorePort;
  ec2: Ec2Port;
  fleet?: FleetMetadataPort;
  locks: LockPort;
  config: DecideConfig;
  /** Actions (EC2 calls, writes) in flight at once, across volumes. */
  parallelism: number;
  log: Logger;
  metrics: ControllerMetrics;
  now: () => number;
  /** Aborted when leadership is lost or the controller stops. */
  signal: AbortSignal;
  eventsKeep?: number;
  /** Called after a journal was persisted (tests use it to crash at a given step). */
  onPersisted?: (journal: FailoverJournal) => void;
  /** Overrides `hostGraceMs(longest host TTL)` (tests); 0 disables the grace. */
  hostGraceMs?: number;
  /**
   * The process's host liveness bookkeeping, kept across terms (runController looks with it while
   * standing by); a loop of its own when absent (tests).
   */
  hosts?: HostTracker;
}

/**
 * How long the EC2 gate would hold `d`'s mutating call in the new term's quiet period (ms, ≤ 0: not at
 * all): what the call names decides, with the same ids the gate sees (src/ec2/call.ts, controller.ts
 * leaderGuard).
 */
export function quietLeftMs(ec2: Pick<Ec2Port, 'guard'>, d: Decision): number {
  const guard = ec2.guard;
  if (guard?.notBeforeMono === undefined) return 0;
  const ids: Ec2ErrorIds | null =
    d.kind === 'attach' ? { action: 'AttachVolume', volumeId: d.volumeId, instanceId: d.instanceId, device: d.device }
      : d.kind === 'detach' ? { action: 'DetachVolume', volumeId: d.volumeId, instanceId: d.instanceId }
      : d.kind === 'fence' && d.stopInstance ? { instanceId: d.instanceId }
        : d.kind === 'createRestoreVolume' ? { snapshotId: d.snapshotId }
          : null;
  if (ids === null || guard.quietApplies?.(ids) === false) return 0;
  return guard.notBeforeMono - monoNow();
}

/** The level-based leader loop: on change or timer, observe → decide → act for every volume needing work. */
export class FailoverLoop {
  private readonly inflight = new Set<string>();
  private readonly held = new Map<string, HeldLock>();
  private readonly lastCall = new Map<string, { signature: string; at: number }>();
  private readonly backoff = new Map<string, { until: number; delayMs: number }>();
  /** Liveness bookkeeping: known hosts, the grace, suspect mass vanishings and their pacing. */
  private readonly hosts: HostTracker;
  /** The last DescribeInstances: when, what it returned, and which ids it asked for. */
  private instances: { at: number; map: Map<string, InstanceInfo>; asked: Set<string> } = { at: -Infinity, map: new Map(), asked: new Set() };
  /** Device names EC2 refused as in use, by instance id: merged into what DescribeInstances shows. */
  private readonly takenDevices = new Map<string, Map<string, number>>();
  /** Cached EC2 facts for controller.autoRestore (see autoRestoreFacts). */
  private readonly restoreCache = {
    snapshots: new Map<string, { at: number; list: SnapshotInfo[] }>(),
    holders: new Map<string, { at: number; info: InstanceInfo }>(),
    restored: new Map<string, { at: number; volume: VolumeInfo | null }>(),
  };
  private lastResync = -Infinity;
  private lastPrune = -Infinity;
  private kicked = false;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: LoopOptions) {
    this.hosts = opts.hosts ?? new HostTracker({ log: opts.log, hostGraceMs: opts.hostGraceMs, onSuspect: () => opts.metrics.suspectVanishing() });
  }

  async run(): Promise<void> {
    const { signal, store } = this.opts;
    const unsubscribe = store.onChange(() => this.kick());
    const unsubscribeReconnect = store.onReconnect?.(() => {
      this.hosts.reconnected();
      this.kick();
    });
    const onAbort = (): void => this.kick();
    signal.addEventListener('abort', onAbort);
    try {
      while (!signal.aborted) {
        let delay: number = LOOP_TIMING.idleTickMs;
        try {
          delay = await this.tick();
        } catch (err) {
          if (signal.aborted) break;
          if (isThrottled(err)) {
            this.opts.log.info({ err: (err as Error).message }, 'EC2 throttled the tick; looking again soon');
            delay = LOOP_TIMING.throttledRetryMs;
          } else {
            this.opts.log.warn({ err }, 'controller tick failed; retrying');
            delay = LOOP_TIMING.errorBackoffMs;
          }
        }
        await this.sleep(Math.max(delay, LOOP_TIMING.minTickGapMs));
      }
    } finally {
      unsubscribe();
      unsubscribeReconnect?.();
      signal.removeEventListener('abort', onAbort);
      await this.drain();
    }
  }

  private kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.kicked ? LOOP_TIMING.minTickGapMs : ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = null;
  }

  /** Waits for actions in flight, then lets go of every volume lock (their failovers resume under the next leader). */
  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await new Promise((r) => setTimeout(r, 20));
    await Promise.allSettled([...this.held.values()].map((l) => l.release()));
    this.held.clear();
  }

  /** One pass; returns how long to sleep before the next. */
  async tick(): Promise<number> {
    this.kicked = false;
    const { opts } = this;
    let { snap, now } = this.freshView();
    const all = now - this.lastResync >= LOOP_TIMING.resyncEveryMs;
    if (all) this.lastResync = now;
    this.updateGauges(snap);
    if (now - this.lastPrune >= LOOP_TIMING.pruneEveryMs) {
      this.lastPrune = now;
      opts.store.pruneEvents(opts.eventsKeep ?? 500).catch((err: unknown) => opts.log.warn({ err }, 'pruning events failed'));
    }

    let backoffEnds: number = LOOP_TIMING.idleTickMs;
    const ids = volumesNeedingWork(snap, all).filter((v) => {
      const until = this.backoff.get(v)?.until ?? 0;
      // Wake when the first backoff ends, not at the next idle tick.
      if (until > now) backoffEnds = Math.min(backoffEnds, until - now);
      return !this.inflight.has(v) && until <= now;
    });
    if (ids.length === 0) return backoffEnds;
    const volumes = await describeVolumes(opts.ec2, ids, opts.signal);
    const instances = await this.liveInstances(snap, now);
    const autoRestore = await this.autoRestoreFacts(snap, volumes, now);
    const doubted = await this.lookForDeathProof(snap, now);
    // The look-ups above can take seconds (EC2 retries under throttling or 5xx): decide on what the
    // watches show now, not on what they showed before them. A host that came back meanwhile is not
    // failed over (chaos seed 70), and a request withdrawn meanwhile is not started.
    ({ snap, now } = this.freshView());

    // Decisions of one tick are made one after another on a working copy, so two volumes never pick the same device.
    const journals = new Map(snap.journals);
    const placements = new Map(snap.placements);
    // Hosts still in doubt are looked at again next second (a status check may fail meanwhile).
    let next: number = doubted ? Math.min(backoffEnds, HOST_TIMING.proofEveryMs) : backoffEnds;
    for (const volumeId of ids) {
      const observed = buildObserved({
        now, config: opts.config, snap: { ...snap, journals, placements }, knownHosts: this.hosts.known, volumes, instances,
        graceUntil: this.hosts.graceUntil, pacing: this.hosts.pacing(now), autoRestore, provenDead: this.hosts.provenDead(),
      });
      const decision = decide(observed, volumeId);
      const unit = serviceOfVolume(observed, volumeId)?.unit;
      if (!isMutation(decision)) {
        if (decision.kind === 'wait') next = Math.min(next, decision.requeueAfterMs);
        opts.log.debug({ volumeId, decision: decision.kind, reason: decision.reason }, 'decided');
        continue;
      }
      // A call the new term's quiet period holds would sleep in the EC2 gate while taking one of the
      // `parallelism` slots: 16 such sleepers stalled every other failover for the whole quiet period
      // (bench/failover leader-killed). It is decided again when the quiet period ends.
      const quietLeft = quietLeftMs(opts.ec2, decision);
      if (quietLeft > 0) {
        next = Math.min(next, quietLeft);
        continue;
      }
      if (this.inflight.size >= opts.parallelism) {
        next = LOOP_TIMING.minTickGapMs;
        break;
      }
      if (this.isRepeat(decision, now)) {
        next = Math.min(next, opts.config.pollMs);
        continue;
      }
      const lostHolder = decision.kind === 'startFailover' && decision.journal.cause === 'holder-lost' ? decision.journal.fromInstanceId : null;
      if (lostHolder !== null) this.hosts.admit(lostHolder, now);
      if ('journal' in decision && decision.journal) journals.set(volumeId, decision.journal);
      if ('placement' in decision) placements.set(volumeId, decision.placement as Placement);
      this.dispatch(decision, unit, snap.journals.get(volumeId));
      next = Math.min(next, opts.config.pollMs);
    }
    return next;
  }

  /** The store's current snapshot, with host liveness brought up to date from it. */
  private freshView(): { snap: StoreSnapshot; now: number } {
    const now = this.opts.now();
    const snap = this.opts.store.snapshot();
    this.hosts.observe(snap, now);
    return { snap, now };
  }

  /**
   * EC2 facts for controller.autoRestore, for failovers it tracks only (their volume's AZ has no live
   * host): the volume's snapshots, the instance it is still attached to, a begun restore's volume by tag.
   * A failed look-up leaves the fact out, so that restore waits; it never stops the tick.
   */
  private async autoRestoreFacts(snap: StoreSnapshot, volumes: ReadonlyMap<string, VolumeInfo>, now: number): Promise<AutoRestoreFacts | undefined> {
    const { opts } = this;
    if (!opts.config.autoRestore?.enabled) return undefined;
    const cache = this.restoreCache;
    const facts = { snapshots: new Map<string, SnapshotInfo[]>(), holders: new Map<string, InstanceInfo>(), restored: new Map<string, VolumeInfo | null>() };
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        if (!opts.signal.aborted) opts.log.warn({ err, what }, 'auto-restore: EC2 look-up failed; the restore waits');
      }
    };
    for (const j of snap.journals.values()) {
      if (!isActiveJournal(j) || j.autoRestore === undefined) continue;
      const restoreId = j.autoRestore.restore?.restoreId;
      if (restoreId !== undefined) {
        const hit = cache.restored.get(restoreId);
        if (hit && now - hit.at < LOOP_TIMING.restoreVolumeCacheMs) facts.restored.set(restoreId, hit.volume);
        else if (opts.ec2.findVolumes) {
          const find = opts.ec2.findVolumes.bind(opts.ec2);
          await attempt(`volume of restore ${restoreId}`, async () => {
            const [volume] = await find({ tags: { [RESTORE_TAGS.restoreId]: restoreId } }, { signal: opts.signal });
            cache.restored.set(restoreId, { at: now, volume: volume ?? null });
            facts.restored.set(restoreId, volume ?? null);
          });
        }
        continue;
      }
      const hit = cache.snapshots.get(j.volumeId);
      if (hit && now - hit.at < LOOP_TIMING.restoreSnapshotsCacheMs) facts.snapshots.set(j.volumeId, hit.list);
      else {
        await attempt(`snapshots of ${j.volumeId}`, async () => {
          const list = await opts.ec2.listSnapshots({ volumeIds: [j.volumeId], ownerSelf: true }, { signal: opts.signal });
          cache.snapshots.set(j.volumeId, { at: now, list });
          facts.snapshots.set(j.volumeId, list);
        });
      }
      const holder = volumes.get(j.volumeId)?.attachments[0]?.instanceId;
      if (holder === undefined) continue;
      const known = cache.holders.get(holder);
      if (known && now - known.at < LOOP_TIMING.restoreHoldersCacheMs) facts.holders.set(holder, known.info);
      else {
        await attempt(`instance ${holder}`, async () => {
          const [info] = await opts.ec2.describeInstances([holder], { signal: opts.signal });
          if (info === undefined) return;
          cache.holders.set(holder, { at: now, info });
          facts.holders.set(holder, info);
        });
      }
    }
    return facts;
  }

  /**
   * Gone holders the grace or the suspect pacing holds back: one bounded look at EC2 for proof that they
   * are dead (death-proof.ts); none when nothing is held back. True: some asked were not proven.
   */
  private async lookForDeathProof(snap: StoreSnapshot, now: number): Promise<boolean> {
    const { opts } = this;
    const wanted = this.hosts.proofWanted(snap, now);
    if (wanted.length === 0) return false;
    let found = new Map<string, string>();
    try {
      found = await lookForDeathProof(opts.ec2, wanted, opts.signal, (err) => opts.log.warn({ err }, 'DescribeInstanceStatus failed; only instance states count as proof this time'));
    } catch (err) {
      if (!opts.signal.aborted) opts.log.warn({ err, instanceIds: wanted }, 'EC2 look for proof of lost hosts\' deaths failed; the grace and pacing hold');
    }
    this.hosts.proofLooked(wanted, found, now);
    return wanted.some((id) => !found.has(id));
  }

  /** Known hosts (for tests and status): instance ids, sorted. */
  knownHostIds(): string[] {
    return [...this.hosts.known.keys()].sort();
  }

  private updateGauges(snap: StoreSnapshot): void {
    let blocked = 0;
    let active = 0;
    for (const j of snap.journals.values()) {
      if (j.step === 'blocked') blocked += 1;
      if (isActiveJournal(j)) active += 1;
    }
    this.opts.metrics.setGauges({ blocked, active });
    let tracked = 0;
    for (const j of snap.journals.values()) if (isActiveJournal(j) && j.autoRestore !== undefined) tracked += 1;
    this.opts.metrics.setAutoRestoreTracked(tracked);
  }

  private async liveInstances(snap: StoreSnapshot, now: number): Promise<Map<string, InstanceInfo>> {
    // A host that joined since the last look (not asked for yet) is looked up soon; one EC2 does not
    // describe at all (not eligible anyway) waits for the normal refresh, so it costs no extra calls.
    const missing = [...snap.hosts.keys()].some((id) => !this.instances.asked.has(id));
    const age = now - this.instances.at;
    if (age >= LOOP_TIMING.instancesCacheMs || (missing && age >= LOOP_TIMING.instancesMissingRefreshMs)) {
      const ids = [...snap.hosts.keys()].sort();
      try {
        this.instances = { at: now, map: ids.length > 0 ? await describeInstances(this.opts.ec2, ids, this.opts.signal) : new Map(), asked: new Set(ids) };
      } catch (err) {
        // The last answer stays (instance states and device names; hosts it lacks are not eligible targets);
        // device names also come from attachments and journals, and the attach fails loudly if one is taken.
        this.opts.log.warn({ err }, 'DescribeInstances failed; choosing devices from what is known');
      }
    }
    if (this.takenDevices.size === 0) return this.instances.map;
    const merged = new Map(this.instances.map);
    for (const [instanceId, devices] of this.takenDevices) {
      for (const [device, at] of devices) if (now - at >= LOOP_TIMING.deviceTakenMs) devices.delete(device);
      if (devices.size === 0) {
        this.takenDevices.delete(instanceId);
        continue;
      }
      const base = merged.get(instanceId);
      const known = base?.devices ?? [];
      merged.set(instanceId, { instanceId, az: base?.az ?? '', state: base?.state ?? 'running', privateIp: base?.privateIp ?? null, tags: base?.tags ?? {}, devices: [...known, ...devices.keys()] });
    }
    return merged;
  }

  /** EC2 refused `device` on `instanceId`: decide() sees it taken and moves the journal to another name. */
  private markDeviceTaken(err: DeviceTakenError): void {
    const devices = this.takenDevices.get(err.instanceId) ?? new Map<string, number>();
    devices.set(err.device, this.opts.now());
    this.takenDevices.set(err.instanceId, devices);
    this.lastCall.delete(err.volumeId);
  }

  /** The same Attach/Detach call again before EC2 could show the first one's effect. */
  private isRepeat(d: Decision, now: number): boolean {
    if (d.kind !== 'attach' && d.kind !== 'detach') return false;
    const signature = d.kind === 'attach' ? `attach ${d.instanceId} ${d.device}` : `detach ${d.instanceId} ${d.force}`;
    const last = this.lastCall.get(d.volumeId);
    if (last?.signature === signature && now - last.at < LOOP_TIMING.reissueAfterMs) return true;
    this.lastCall.set(d.volumeId, { signature, at: now });
    return false;
  }

  private dispatch(d: Decision, unit: string | undefined, previous: FailoverJournal | undefined): void {
    const { opts } = this;
    const { volumeId } = d;
    const log = opts.log.child({ volumeId, unit, step: previous?.step });
    this.inflight.add(volumeId);
    const run = async (): Promise<void> => {
      if (!(await this.ensureLock(d, previous))) return;
      log.info({ decision: d.kind, instanceId: 'instanceId' in d ? d.instanceId : undefined, reason: d.reason }, 'acting');
      const written = await act({ store: opts.store, ec2: opts.ec2, fleet: opts.fleet, log, signal: opts.signal, now: opts.now }, d, unit);
      this.backoff.delete(volumeId);
      if (d.kind === 'swapRestored') opts.metrics.autoRestored();
      if (written) this.persisted(previous, written);
    };
    run()
      .catch((err: unknown) => {
        if (opts.signal.aborted) return;
        opts.metrics.actionFailed();
        if (err instanceof DeviceTakenError) {
          this.markDeviceTaken(err);
          log.warn({ instanceId: err.instanceId, device: err.device }, 'device name in use on the target: choosing another');
          return;
        }
        if (isThrottled(err)) {
          this.backoff.set(volumeId, { until: opts.now() + LOOP_TIMING.throttledRetryMs, delayMs: LOOP_TIMING.throttledRetryMs });
          // A throttled Attach/Detach did not happen: let the next look issue it again at once.
          this.lastCall.delete(volumeId);
          log.info({ decision: d.kind }, 'EC2 throttled the call; looking again soon');
          return;
        }
        if (err instanceof TxnConflictError && d.kind === 'startFailover' && !isActiveJournal(previous)) {
          // Nothing was started (e.g. the request was withdrawn while this tick was busy): let go of the
          // volume lock taken for it, or a snapshot of this volume would wait for a failover that is not.
          const lock = this.held.get(volumeId);
          this.held.delete(volumeId);
          lock?.release().catch((e: unknown) => log.warn({ err: e }, 'releasing volume lock failed'));
          log.info({ keys: err.keys }, 'records changed since the decision (a request withdrawn, or the lost host back?): not started; deciding again');
        }
        const delayMs = Math.min((this.backoff.get(volumeId)?.delayMs ?? LOOP_TIMING.errorBackoffMs / 2) * 2, LOOP_TIMING.errorBackoffMaxMs);
        this.backoff.set(volumeId, { until: opts.now() + delayMs, delayMs });
        log.warn({ err, decision: d.kind, retryInMs: delayMs }, 'action failed; will retry');
      })
      .finally(() => {
        this.inflight.delete(volumeId);
        this.kick();
      });
  }

  /** A failover holds its volume's lock from its first write to its last; false: someone else has it. */
  private async ensureLock(d: Decision, previous: FailoverJournal | undefined): Promise<boolean> {
    const needs = d.kind === 'startFailover' || isActiveJournal(previous);
    if (!needs || this.held.has(d.volumeId)) return true;
    const lock = await this.opts.locks.tryAcquire(d.volumeId);
    if (lock === null) {
      this.opts.log.info({ volumeId: d.volumeId }, 'volume locked by another holder (a snapshot?); trying again soon');
      this.backoff.set(d.volumeId, { until: this.opts.now() + LOOP_TIMING.lockedRetryMs, delayMs: LOOP_TIMING.lockedRetryMs });
      return false;
    }
    this.held.set(d.volumeId, lock);
    return true;
  }

  private persisted(previous: FailoverJournal | undefined, journal: FailoverJournal): void {
    const { metrics, log } = this.opts;
    if (journal.excludedInstanceIds.length > (previous?.excludedInstanceIds.length ?? 0)) metrics.retargeted();
    if (previous && isActiveJournal(previous) && previous.step !== journal.step) {
      metrics.stepDuration(previous.step, Math.max(0, journal.stepStartedAt - previous.stepStartedAt) / 1000);
    }
    if (journal.step === 'done' || journal.step === 'failed') {
      metrics.failoverFinished(journal.kind, journal.step);
      log.info({ volumeId: journal.volumeId, outcome: journal.step, tookMs: (journal.finishedAt ?? 0) - journal.startedAt, error: journal.error }, 'failover finished');
      const lock = this.held.get(journal.volumeId);
      this.held.delete(journal.volumeId);
      lock?.release().catch((err: unknown) => log.warn({ err, volumeId: journal.volumeId }, 'releasing volume lock failed'));
    }
    this.opts.onPersisted?.(journal);
  }
}
