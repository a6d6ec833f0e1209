import { EventEmitter } from 'node:events';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Etcd3 } from 'etcd3';
import { HostRecord, encodeRecord, type Keyspace } from '../keyspace/index.js';
import type { Logger } from '../log/logger.js';
import { etcdCall, memberClients, type MemberClient } from './etcd.js';
import { wrapEtcdError } from './errors.js';
import { LeaseClock, monoNow, wallOf } from './lease-clock.js';

/** 10 s: a dead host is noticed within ~10 s, while a GC pause or a slow etcd round trip is not mistaken for death. */
export const DEFAULT_HOST_TTL_MS = 10_000;
/** First retry after a failed renewal (on the next member): quick enough to try all members well within the margin. */
const RETRY_FIRST_MS = 100;
/** Floor of one renewal attempt's time budget: a loaded machine's loopback round trip plus a fresh HTTP/2 connect. */
const ATTEMPT_MIN_MS = 250;
/** Longest wait for confirmFence's answer (and at most half the margin): a hung agent-side check must not eat the margin. */
const CONFIRM_MAX_MS = 1_000;
/** Longest interval between confirmFence questions while a fence is deferred. */
const REASK_MAX_MS = 1_000;

export interface HostRegistrarOptions {
  client: Etcd3;
  ks: Keyspace;
  /** The host record; `leaseTtlMs`, `fenceMarginMs` and `registeredAt` are filled in here. */
  record: Omit<HostRecord, 'leaseTtlMs' | 'fenceMarginMs' | 'registeredAt'>;
  /** Lease TTL (whole seconds in etcd; default 10 s). */
  ttlMs?: number;
  /** 'fence' fires this long before the lease could expire in etcd (default a quarter of the TTL, >= 500 ms). */
  fenceMarginMs?: number;
  /** Where the lease id is kept, so a restarted agent resumes its lease instead of looking dead. */
  leaseStateFile?: string;
  /**
   * Asked when the fence is due (renewals failed up to TTL − margin). Resolving false defers the fence
   * ('fence-deferred'; asked again every min(TTL/3, 1 s) while renewals keep failing); true or an error
   * fences; no answer within min(margin/2, 1 s) does what `fenceOnSilence` says. Without it the
   * registrar fences when due.
   */
  confirmFence?: () => Promise<boolean>;
  /**
   * When confirmFence does not answer in time: fence (true, the default) or defer and ask again. The
   * agent defers only when its peers already said, this episode, that etcd is down for everyone: a
   * slow answer then is the outage loading every machine, not this host cut off (chaos seed 65).
   */
  fenceOnSilence?: () => boolean;
  log: Logger;
}

/** Wall-clock fields are for display; the *Mono ones (performance.now()) are what the timers used. */
export interface FenceEvent {
  /** Send time of the last keepalive etcd confirmed (wall clock). */
  lastRenewedAt: number;
  /** The earliest time the lease can expire on the etcd side (lastRenewedAt + TTL, wall clock). */
  deadline: number;
  /** When the fence fired (wall clock). */
  firedAt: number;
  lastRenewedAtMono: number;
  deadlineMono: number;
  firedAtMono: number;
  /** Why now: no confirmFence configured, its answer, or its failure (time-out, error). */
  reason: string;
}

export interface RenewalFailedEvent {
  /** Failed attempts in a row (1: the first of an episode). */
  failures: number;
  /** Send time of the last keepalive etcd confirmed (wall clock). */
  lastRenewedAt: number;
}

export interface FenceDeferredEvent {
  reason: string;
  /** Send time of the last keepalive etcd confirmed (wall clock). */
  lastRenewedAt: number;
}

export interface RegisteredEvent {
  leaseId: string;
  /** true: an existing lease was resumed (keys under it survived); false: a new lease (they are gone). */
  resumed: boolean;
}

interface Events {
  fence: [FenceEvent];
  'fence-deferred': [FenceDeferredEvent];
  /** A renewal attempt failed: the agent starts asking its peers long before a fence is due. */
  'renewal-failed': [RenewalFailedEvent];
  registered: [RegisteredEvent];
  recovered: [RegisteredEvent];
  error: [Error];
}

/**
 * Host liveness: `hosts/<instanceId>` under a lease this class renews itself every TTL/3. It does
 * not use etcd3's Lease 'lost' (which fires only after 2 × TTL): it fences at
 * (send time of the last confirmed keepalive + TTL − margin, on the monotonic clock), i.e. before
 * etcd can expire the lease and the controller can move the volume. After an outage it re-registers
 * (a new lease if the old one expired, e.g. when a paused etcd resumes and expires it) and emits
 * 'registered' and 'recovered'.
 *
 * Renewals go to ONE member at a time through a single-member client, each attempt bounded; a failed
 * or timed-out attempt moves to the next member for the retry 100 ms later. So a member that refuses,
 * resets or swallows connections costs one bounded attempt, not the lease (etcd3's pool keeps a
 * keepalive stream's failures on whatever member it picked).
 */
export class HostRegistrar extends EventEmitter<Events> {
  private readonly ttlMs: number;
  private readonly marginMs: number;
  /** Time budget of one renewal attempt on one member (see the constructor). */
  private readonly attemptMs: number;
  private readonly members: readonly MemberClient[];
  /** The member renewals go to until one fails. */
  private memberIndex = 0;
  private clock: LeaseClock;
  private currentLease: string | null = null;
  private running = false;
  private loopTimer: NodeJS.Timeout | null = null;
  private fenceTimer: NodeJS.Timeout | null = null;
  /** Bumped whenever the fence is re-armed or stopped: a stale timer or confirmFence answer then does nothing. */
  private fenceEpoch = 0;
  private fencedNow = false;
  private deferred = false;
  /** Whether the latest renewal (or registration) succeeded. */
  private lastAttemptOk = false;
  /** Consecutive failed renewals. */
  private failures = 0;
  private readonly log: Logger;

  constructor(private readonly opts: HostRegistrarOptions) {
    super();
    this.ttlMs = Math.max(1, Math.ceil((opts.ttlMs ?? DEFAULT_HOST_TTL_MS) / 1000)) * 1000;
    this.marginMs = opts.fenceMarginMs ?? Math.max(500, Math.floor(this.ttlMs / 4));
    if (this.marginMs >= this.ttlMs) throw new RangeError(`fenceMarginMs ${this.marginMs} must be below the TTL ${this.ttlMs}`);
    // After a renewal sent at t, the next goes at t + TTL/3 and the fence is due at t + TTL − margin.
    // A third of what lies between lets a bad member's attempt time out, plus a retry on the next
    // member, and one more, before the fence; never more than TTL/3 (an answer slower than that is as
    // good as none for fencing), never under ATTEMPT_MIN_MS.
    const slack = this.ttlMs - this.marginMs - this.ttlMs / 3;
    this.attemptMs = Math.round(Math.min(this.ttlMs / 3, Math.max(ATTEMPT_MIN_MS, slack / 3)));
    this.members = memberClients(opts.client);
    this.clock = new LeaseClock(this.ttlMs);
    this.log = opts.log.child({ instanceId: opts.record.instanceId });
  }

  get leaseId(): string | null {
    return this.currentLease;
  }

  /** Whether the host is fenced now (renewals failed past the margin and not yet recovered). */
  get fenced(): boolean {
    return this.fencedNow;
  }

  /** Whether a fence is due but confirmFence answered false (renewals still failing). */
  get fenceDeferred(): boolean {
    return this.deferred;
  }

  /** Send time of the last confirmed renewal, wall clock (display only). */
  get lastRenewedAt(): number {
    return wallOf(this.clock.renewedAt);
  }

  /** ms since the send time of the last confirmed renewal (monotonic). */
  lastRenewalAgoMs(): number {
    return monoNow() - this.clock.renewedAt;
  }

  /** "I reach etcd right now": the latest renewal succeeded and was sent less than TTL/2 ago. */
  reachesEtcd(): boolean {
    return this.running && this.lastAttemptOk && this.lastRenewalAgoMs() < this.ttlMs / 2;
  }

  /**
   * A fresh round trip to etcd now (one keepalive of our lease, bounded by `timeoutMs`), for a peer that
   * asks whether etcd answers: a claim from the last periodic renewal could predate an outage that just
   * began. Changes no renewal state; false on any failure or when not registered.
   */
  async probeEtcd(timeoutMs: number): Promise<boolean> {
    const leaseId = this.currentLease;
    if (!this.running || leaseId === null) return false;
    const ms = Math.max(1, Math.min(timeoutMs, this.attemptMs));
    // Every member at once: the question is whether etcd answers at all, not whether our current member does.
    try {
      return await Promise.any(this.members.map(async (member) => {
        if ((await bounded(ms, `etcd probe on ${member.endpoint}`, () => this.keepaliveOn(member, leaseId))) > 0) return true;
        throw new Error('lease gone');
      }));
    } catch {
      return false;
    }
  }

  /** Registers (resuming the lease named in leaseStateFile if etcd still has it) and starts renewing. */
  async start(): Promise<RegisteredEvent> {
    this.running = true;
    const ev = await this.register(true);
    this.schedule();
    return ev;
  }

  /** Stops renewing. revoke: true deletes the host key now; false lets it expire (a quick restart resumes it). */
  async stop(opts: { revoke: boolean } = { revoke: false }): Promise<void> {
    this.running = false;
    if (this.loopTimer) clearTimeout(this.loopTimer);
    this.disarmFence();
    const leaseId = this.currentLease;
    if (opts.revoke && leaseId !== null) {
      // Member by member, each bounded: a shutdown must not hang on a member that swallows requests.
      await this.onAnyMember('revoke host lease', (member, deadline) => member.client.leaseClient.leaseRevoke({ ID: leaseId }, { deadline }));
      this.currentLease = null;
    }
  }

  /** Puts a key that must die with this host (e.g. an agent report). */
  async putUnderLease(key: string, value: string): Promise<void> {
    const leaseId = this.requireLease();
    await etcdCall(this.opts.client, `put ${key}`, () => this.opts.client.put(key).value(value).lease(leaseId).exec());
  }

  async deleteKey(key: string): Promise<void> {
    await etcdCall(this.opts.client, `delete ${key}`, () => this.opts.client.delete().key(key).exec());
  }

  private requireLease(): string {
    if (this.currentLease === null) throw new Error(`host ${this.opts.record.instanceId} has no lease (not started)`);
    return this.currentLease;
  }

  private async register(tryResume: boolean): Promise<RegisteredEvent> {
    const resumed = tryResume ? await this.resumable() : null;
    let leaseId: string;
    if (resumed !== null) {
      leaseId = resumed;
    } else {
      let sentAt = monoNow();
      const grant = await this.onAnyMember('grant host lease', (member, deadline) => {
        sentAt = monoNow();
        return member.client.leaseClient.leaseGrant({ TTL: this.ttlMs / 1000 }, { deadline });
      });
      leaseId = grant.ID;
      this.clock = new LeaseClock(this.ttlMs, sentAt);
    }
    const record = HostRecord.parse({ ...this.opts.record, leaseTtlMs: this.ttlMs, fenceMarginMs: this.marginMs, registeredAt: Date.now() });
    const key = this.opts.ks.host(record.instanceId);
    await this.onAnyMember('put host record', (member, deadline) =>
      member.client.put(key).value(encodeRecord(record)).lease(leaseId).options({ deadline }).exec(),
    );
    this.currentLease = leaseId;
    this.lastAttemptOk = true;
    await this.saveLease(leaseId);
    this.armFence();
    const ev = { leaseId, resumed: resumed !== null };
    this.log.info(ev, 'host registered');
    this.emit('registered', ev);
    return ev;
  }

  /** The lease from leaseStateFile if etcd still has it (renewed once here), else null. */
  private async resumable(): Promise<string | null> {
    const file = this.opts.leaseStateFile;
    if (file === undefined) return null;
    let leaseId: string;
    try {
      const saved = JSON.parse(await readFile(file, 'utf8')) as { leaseId?: unknown; instanceId?: unknown };
      if (typeof saved.leaseId !== 'string' || saved.instanceId !== this.opts.record.instanceId) return null;
      leaseId = saved.leaseId;
    } catch {
      return null; // no file or unreadable: register afresh
    }
    let sentAt = monoNow();
    const ttl = await this.onAnyMember('resume host lease', (member) => {
      sentAt = monoNow();
      return this.keepaliveOn(member, leaseId);
    });
    if (ttl <= 0) return null;
    this.clock = new LeaseClock(this.ttlMs, sentAt);
    return leaseId;
  }

  private async saveLease(leaseId: string): Promise<void> {
    const file = this.opts.leaseStateFile;
    if (file === undefined) return;
    // Write-then-rename: a crash mid-write never leaves a torn file.
    await writeFile(`${file}.tmp`, JSON.stringify({ leaseId, instanceId: this.opts.record.instanceId }));
    await rename(`${file}.tmp`, file);
  }

  /** The member renewals go to now. */
  private get member(): MemberClient {
    return this.members[this.memberIndex % this.members.length] as MemberClient;
  }

  /** After a failed attempt: the next attempt goes to the next member. */
  private rotate(err: unknown, operation: string): void {
    // A fresh connection next time: the failed one may be dead without gRPC knowing (see MemberClient.reset).
    this.member.reset();
    const from = this.member.endpoint;
    this.memberIndex = (this.memberIndex + 1) % this.members.length;
    if (this.members.length > 1) this.log.warn({ err, operation, from, to: this.member.endpoint }, 'etcd member failed; moving to the next one');
  }

  /**
   * `fn` on the current member, bounded by the attempt budget (its deadline is passed on for gRPC);
   * on failure or time-out, the next member, until each was tried once. Throws the last error.
   */
  private async onAnyMember<T>(operation: string, fn: (member: MemberClient, deadline: number) => Promise<T>): Promise<T> {
    let lastErr: unknown = null;
    for (let i = 0; i < this.members.length; i += 1) {
      const member = this.member;
      try {
        // gRPC takes an absolute (wall-clock) deadline; the monotonic timer in bounded() is what counts.
        return await bounded(this.attemptMs, `${operation} on ${member.endpoint}`, () => fn(member, Date.now() + this.attemptMs));
      } catch (err) {
        lastErr = wrapEtcdError(err, [member.endpoint], operation);
        this.rotate(lastErr, operation);
      }
    }
    throw lastErr;
  }

  /** One keepalive round trip to `member`, bounded; the TTL etcd reports (0: the lease no longer exists). */
  private async keepaliveOn(member: MemberClient, leaseId: string): Promise<number> {
    type Stream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;
    let stream: Stream | null = null;
    let settled: 'answered' | 'abandoned' | null = null;
    try {
      const res = await bounded(this.attemptMs, `keepalive on ${member.endpoint}`, async () => {
        const s = await member.client.leaseClient.leaseKeepAlive();
        stream = s;
        // Opened after we gave up (e.g. an auth round trip that hung): nobody will read it.
        if (settled === 'abandoned') s.cancel();
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          s.on('data', (r: { TTL: string }) => resolve(r));
          s.on('error', (err: Error) => reject(err));
          s.write({ ID: leaseId });
        });
      });
      settled = 'answered';
      return Number(res.TTL);
    } finally {
      const answered = settled === 'answered';
      if (!answered) settled = 'abandoned';
      const s = stream as Stream | null;
      // A stream that never answered may sit on a black-holed connection forever: cancel it.
      if (s !== null) {
        if (answered) s.end();
        else s.cancel();
      }
    }
  }

  /** One renewal on the current member; on failure the next attempt goes to the next member. */
  private async keepaliveOnce(leaseId: string): Promise<number> {
    const member = this.member;
    try {
      return await this.keepaliveOn(member, leaseId);
    } catch (err) {
      const wrapped = wrapEtcdError(err, [member.endpoint], 'host lease keepalive');
      this.rotate(wrapped, 'host lease keepalive');
      throw wrapped;
    }
  }

  private schedule(): void {
    if (!this.running) return;
    // Every TTL/3, as etcd's own clients do. After a failure, retry soon (100 ms doubling, at most
    // TTL/3): the next call goes to another member, so losing one member never costs a whole period.
    const delay = this.failures === 0 ? this.ttlMs / 3 : Math.min(RETRY_FIRST_MS * 2 ** (this.failures - 1), this.ttlMs / 3);
    this.loopTimer = setTimeout(() => void this.tick(), delay);
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    try {
      const leaseId = this.requireLease();
      const sentAt = monoNow();
      const ttl = await this.keepaliveOnce(leaseId);
      if (!this.running) return;
      this.failures = 0;
      if (ttl > 0) {
        this.clock.renewed(sentAt);
        this.lastAttemptOk = true;
        if (this.deferred) this.log.info({ leaseId }, 'lease renewed again: deferred fence cleared');
        this.armFence();
        if (this.fencedNow) this.recover({ leaseId, resumed: true });
      } else {
        this.log.warn({ leaseId }, 'host lease expired in etcd; registering with a new lease');
        // No fence here: after an outage for everyone etcd expires every lease as it resumes, and
        // stopping then would be the outage stopping everything (chaos seeds 73, 79). A host that was
        // frozen past its TTL finds its volumes placed elsewhere and releases them by the placements
        // (with the last service record it used, even if the record is gone: seed 95).
        const ev = await this.register(false);
        if (this.fencedNow) this.recover(ev);
      }
    } catch (err) {
      this.failures += 1;
      this.lastAttemptOk = false;
      this.log.warn({ err, lastRenewedAt: wallOf(this.clock.renewedAt), member: this.member.endpoint }, 'host lease renewal failed');
      this.emit('renewal-failed', { failures: this.failures, lastRenewedAt: wallOf(this.clock.renewedAt) });
    } finally {
      this.schedule();
    }
  }

  private recover(ev: RegisteredEvent): void {
    this.fencedNow = false;
    this.log.info(ev, 'etcd reachable again: host recovered');
    this.emit('recovered', ev);
  }

  private disarmFence(): void {
    this.fenceEpoch += 1;
    this.deferred = false;
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    this.fenceTimer = null;
  }

  /** (Re)starts the fence timer from the latest confirmed renewal; clears a deferred fence. */
  private armFence(): void {
    this.disarmFence();
    if (!this.running) return;
    const epoch = this.fenceEpoch;
    this.fenceTimer = setTimeout(() => void this.fenceDue(epoch), Math.max(0, this.clock.remainingMs(this.marginMs)));
  }

  /** The fence timer fired: fence, or (when confirmFence says no) defer and ask again later. */
  private async fenceDue(epoch: number): Promise<void> {
    const current = (): boolean => epoch === this.fenceEpoch && this.running && !this.fencedNow;
    if (!current()) return;
    const confirm = this.opts.confirmFence;
    if (confirm === undefined) {
      this.fence('renewals failed up to the fence deadline (no peer check configured)');
      return;
    }
    const answer = await this.askConfirm(confirm);
    // A renewal (or stop) while we asked: nothing is due any more.
    if (!current()) return;
    if (answer.fence) {
      this.fence(answer.reason);
      return;
    }
    const ev = {
      reason: `no lease renewal confirmed for ${Math.round(this.lastRenewalAgoMs())} ms; confirmFence answered false`,
      lastRenewedAt: wallOf(this.clock.renewedAt),
    };
    if (!this.deferred) this.log.warn(ev, 'fence due but deferred');
    this.deferred = true;
    this.emit('fence-deferred', ev);
    this.fenceTimer = setTimeout(() => void this.fenceDue(epoch), Math.min(this.ttlMs / 3, REASK_MAX_MS));
  }

  /** confirmFence's answer; fence when it throws or does not answer within min(margin/2, 1 s). */
  private async askConfirm(confirm: () => Promise<boolean>): Promise<{ fence: boolean; reason: string }> {
    const limitMs = Math.min(this.marginMs / 2, CONFIRM_MAX_MS);
    try {
      const fence = await bounded(limitMs, 'confirmFence', confirm);
      return { fence, reason: fence ? 'renewals failed up to the fence deadline and the peer check confirmed it' : '' };
    } catch (err) {
      const silent = err instanceof BoundExceededError;
      if (silent && this.opts.fenceOnSilence?.() === false) {
        this.log.warn({ err, limitMs }, 'confirmFence did not answer in time; etcd was down for everyone this episode: asking again');
        return { fence: false, reason: '' };
      }
      this.log.warn({ err, limitMs }, 'confirmFence failed or did not answer in time: fencing');
      return { fence: true, reason: `renewals failed up to the fence deadline and the peer check gave no answer: ${(err as Error).message}` };
    }
  }

  private fence(reason: string): void {
    this.deferred = false;
    this.fencedNow = true;
    const lastRenewedAtMono = this.clock.renewedAt;
    const deadlineMono = this.clock.expiresAt();
    const firedAtMono = monoNow();
    const ev: FenceEvent = {
      lastRenewedAt: wallOf(lastRenewedAtMono),
      deadline: wallOf(deadlineMono),
      firedAt: wallOf(firedAtMono),
      lastRenewedAtMono,
      deadlineMono,
      firedAtMono,
      reason,
    };
    this.log.error(ev, 'lease renewals failed: fencing before the lease can expire in etcd');
    this.emit('fence', ev);
  }
}

/** `fn()`, or a rejection once `ms` passed (the timer is monotonic: Node's timers do not follow the wall clock). */
/** bounded()'s own time-out, told apart from the work's errors. */
class BoundExceededError extends Error {
  override readonly name = 'BoundExceededError';
}

async function bounded<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const work = fn();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BoundExceededError(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
    // The loser may still settle; its rejection is of no interest once we moved on.
    work.catch(() => undefined);
  }
}
