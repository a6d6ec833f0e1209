import type { Ec2Port, InstanceInfo } from '../ec2/types.js';
import type { FailoverJournal, HostRecord, Placement } from '../keyspace/records.js';
import type { Logger } from '../log/logger.js';
import { act, DeviceTakenError, isThrottled } from './act.js';
import { decide } from './decide.js';
import { isMutation, type Decision } from './decision.js';
import type { ControllerMetrics } from './metrics.js';
import { buildObserved, describeInstances, describeVolumes, volumesNeedingWork } from './observe.js';
import { isActiveJournal, serviceOfVolume, type DecideConfig, type Observed } from './observed.js';
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
  // 10 s: the host lease TTL assumed when no host record is known (the agents' default).
  defaultHostTtlMs: 10_000,
  // A host gone this many TTLs, and named by no placement or journal, is forgotten (knownHosts stays bounded).
  forgetHostAfterTtls: 10,
  // Many holders vanishing at once (at least this share of the known hosts, and at least 2, within one
  // TTL) looks like an etcd or network event rather than deaths (Kubernetes' node lifecycle controller
  // stops evicting when a whole zone looks unhealthy): failovers caused by a lost holder are then paced
  // to this share of the known hosts (at least 1) per TTL. A real AZ outage still fails over, paced.
  suspectShare: 0.5,
  suspectMinHosts: 2,
  pacedShare: 0.1,
} as const;

/**
 * The grace a newly elected controller, or one whose watches reconnected to etcd, gives hosts before it
 * calls any of them dead: the longest host TTL plus the agents' renewal retry back-off (TTL/3), so every
 * agent that is alive has had a full chance to renew against the etcd that is back.
 */
export function hostGraceMs(ttlMs: number): number {
  return ttlMs + Math.ceil(ttlMs / 3);
}

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
}

/** The level-based leader loop: on change or timer, observe → decide → act for every volume needing work. */
export class FailoverLoop {
  private readonly inflight = new Set<string>();
  private readonly held = new Map<string, HeldLock>();
  private readonly lastCall = new Map<string, { signature: string; at: number }>();
  private readonly backoff = new Map<string, { until: number; delayMs: number }>();
  private readonly knownHosts = new Map<string, HostRecord>();
  /** When each known host was last seen live. */
  private readonly lastSeen = new Map<string, number>();
  /** Hosts live at the previous tick, and when each known host vanished (cleared when it is back). */
  private liveBefore = new Set<string>();
  private readonly vanishedAt = new Map<string, number>();
  /** The hosts of a suspect mass vanishing while its failovers are paced; null: none. */
  private suspect: { hosts: Set<string>; at: number } | null = null;
  /** Lost holders whose failovers were let start, and when (for pacing, by host). */
  private readonly admittedHolders = new Map<string, number>();
  /** No host is called dead before this (set when elected and on an etcd reconnect); null: not yet set. */
  private graceUntil: number | null = null;
  private reconnectedAt: number | null = null;
  private instances: { at: number; map: Map<string, InstanceInfo> } = { at: -Infinity, map: new Map() };
  /** Device names EC2 refused as in use, by instance id: merged into what DescribeInstances shows. */
  private readonly takenDevices = new Map<string, Map<string, number>>();
  private lastResync = -Infinity;
  private lastPrune = -Infinity;
  private kicked = false;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: LoopOptions) {}

  async run(): Promise<void> {
    const { signal, store } = this.opts;
    const unsubscribe = store.onChange(() => this.kick());
    const unsubscribeReconnect = store.onReconnect?.(() => {
      this.reconnectedAt = this.opts.now();
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
    const now = opts.now();
    const snap = opts.store.snapshot();
    this.trackHosts(snap, now);
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
    const ttlMs = this.hostTtlMs();

    // Decisions of one tick are made one after another on a working copy, so two volumes never pick the same device.
    const journals = new Map(snap.journals);
    const placements = new Map(snap.placements);
    let next: number = backoffEnds;
    for (const volumeId of ids) {
      const observed = buildObserved({
        now, config: opts.config, snap: { ...snap, journals, placements }, knownHosts: this.knownHosts, volumes, instances,
        graceUntil: this.graceUntil, pacing: this.pacing(now, ttlMs),
      });
      const decision = decide(observed, volumeId);
      const unit = serviceOfVolume(observed, volumeId)?.unit;
      if (!isMutation(decision)) {
        if (decision.kind === 'wait') next = Math.min(next, decision.requeueAfterMs);
        opts.log.debug({ volumeId, decision: decision.kind, reason: decision.reason }, 'decided');
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
      if (lostHolder !== null && !this.admittedHolders.has(lostHolder)) this.admittedHolders.set(lostHolder, now);
      if ('journal' in decision && decision.journal) journals.set(volumeId, decision.journal);
      if ('placement' in decision) placements.set(volumeId, decision.placement as Placement);
      this.dispatch(decision, unit, snap.journals.get(volumeId));
      next = Math.min(next, opts.config.pollMs);
    }
    return next;
  }

  /** The longest lease TTL among the hosts we know, or the agents' default when none is known. */
  private hostTtlMs(): number {
    let ttl = 0;
    for (const h of this.knownHosts.values()) ttl = Math.max(ttl, h.leaseTtlMs);
    return ttl > 0 ? ttl : LOOP_TIMING.defaultHostTtlMs;
  }

  /**
   * Keeps knownHosts (machine ids of hosts to fence) and their last-seen times, grants the grace when
   * elected or after a reconnect, notices a suspect mass vanishing, and forgets hosts long gone.
   */
  private trackHosts(snap: StoreSnapshot, now: number): void {
    const { log } = this.opts;
    for (const [instanceId, record] of snap.hosts) {
      this.knownHosts.set(instanceId, record);
      this.lastSeen.set(instanceId, now);
      this.vanishedAt.delete(instanceId);
    }
    const ttlMs = this.hostTtlMs();
    if (this.graceUntil === null || this.reconnectedAt !== null) {
      const graceMs = this.opts.hostGraceMs ?? hostGraceMs(ttlMs);
      this.graceUntil = now + graceMs;
      log.info({ graceMs, why: this.reconnectedAt === null ? 'elected' : 'etcd reconnected' }, 'hosts have a grace before any is called dead');
      this.reconnectedAt = null;
    }
    for (const instanceId of this.liveBefore) if (!snap.hosts.has(instanceId)) this.vanishedAt.set(instanceId, now);
    this.liveBefore = new Set(snap.hosts.keys());

    const recent = [...this.vanishedAt].filter(([, at]) => now - at <= ttlMs).map(([id]) => id);
    const threshold = Math.max(LOOP_TIMING.suspectMinHosts, Math.ceil(this.knownHosts.size * LOOP_TIMING.suspectShare));
    if (recent.length >= threshold) {
      if (this.suspect === null) {
        this.suspect = { hosts: new Set(recent), at: now };
        // Leases revoked together (e.g. etcd resumed after a pause and expired them before any agent could
        // renew) come back as soon as the agents re-register: a grace first, so nothing moves for that.
        const graceMs = this.opts.hostGraceMs ?? hostGraceMs(ttlMs);
        this.graceUntil = Math.max(this.graceUntil ?? 0, now + graceMs);
        log.warn({ vanished: recent.length, known: this.knownHosts.size, instanceIds: recent, graceMs }, 'many hosts vanished at once: suspect (an etcd or network event?); a grace, then their failovers paced');
      } else for (const id of recent) this.suspect.hosts.add(id);
    }
    if (this.suspect !== null) {
      // Over once no volume is still placed on a vanished host that is still gone (each has failed over, or its host is back).
      const pending = [...snap.placements.values()].some((p) => p.instanceId !== null && this.suspect?.hosts.has(p.instanceId) === true && !snap.hosts.has(p.instanceId));
      if (!pending) {
        log.info({ tookMs: now - this.suspect.at }, 'suspect mass vanishing handled: failovers no longer paced');
        this.suspect = null;
      }
    }

    const named = new Set<string>();
    for (const p of snap.placements.values()) if (p.instanceId !== null) named.add(p.instanceId);
    for (const j of snap.journals.values()) for (const id of [j.fromInstanceId, j.toInstanceId, ...j.excludedInstanceIds]) if (id !== null) named.add(id);
    for (const [instanceId, seen] of this.lastSeen) {
      if (snap.hosts.has(instanceId) || named.has(instanceId) || now - seen < LOOP_TIMING.forgetHostAfterTtls * ttlMs) continue;
      this.knownHosts.delete(instanceId);
      this.lastSeen.delete(instanceId);
      this.vanishedAt.delete(instanceId);
    }
  }

  /**
   * While a suspect mass vanishing is handled: which lost holders have their turn, and how many more may
   * be admitted now (admissions within the last TTL count against the budget).
   */
  private pacing(now: number, ttlMs: number): Observed['pacing'] {
    // An admission is kept a while (10 TTLs) so all of that host's volumes may still start; it counts
    // against the budget for one TTL only.
    for (const [id, at] of this.admittedHolders) if (now - at > LOOP_TIMING.forgetHostAfterTtls * ttlMs) this.admittedHolders.delete(id);
    if (this.suspect === null) return null;
    const perTtl = Math.max(1, Math.floor(this.knownHosts.size * LOOP_TIMING.pacedShare));
    const recent = [...this.admittedHolders.values()].filter((at) => now - at <= ttlMs).length;
    const reason = `${this.suspect.hosts.size} of ${this.knownHosts.size} known hosts vanished at once (suspect): failovers of at most ${perTtl} host(s) per ${ttlMs} ms`;
    return { remaining: perTtl - recent, admitted: [...this.admittedHolders.keys()], reason };
  }

  /** Known hosts (for tests and status): instance id → record. */
  knownHostIds(): string[] {
    return [...this.knownHosts.keys()].sort();
  }

  private updateGauges(snap: StoreSnapshot): void {
    let blocked = 0;
    let active = 0;
    for (const j of snap.journals.values()) {
      if (j.step === 'blocked') blocked += 1;
      if (isActiveJournal(j)) active += 1;
    }
    this.opts.metrics.setGauges({ blocked, active });
  }

  private async liveInstances(snap: StoreSnapshot, now: number): Promise<Map<string, InstanceInfo>> {
    const missing = [...snap.hosts.keys()].some((id) => !this.instances.map.has(id));
    const age = now - this.instances.at;
    if (age >= LOOP_TIMING.instancesCacheMs || (missing && age >= LOOP_TIMING.instancesMissingRefreshMs)) {
      const ids = [...snap.hosts.keys()].sort();
      try {
        this.instances = { at: now, map: ids.length > 0 ? await describeInstances(this.opts.ec2, ids, this.opts.signal) : new Map() };
      } catch (err) {
        // Device names then come from volume attachments and journals only; the attach fails loudly if one is taken.
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
