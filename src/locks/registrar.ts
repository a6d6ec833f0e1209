import { EventEmitter } from 'node:events';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Etcd3 } from 'etcd3';
import { HostRecord, encodeRecord, type Keyspace } from '../keyspace/index.js';
import type { Logger } from '../log/logger.js';
import { endpointsOf, etcdCall } from './etcd.js';
import { wrapEtcdError } from './errors.js';
import { LeaseClock } from './lease-clock.js';

/** 10 s: a dead host is noticed within ~10 s, while a GC pause or a slow etcd round trip is not mistaken for death. */
export const DEFAULT_HOST_TTL_MS = 10_000;
/** First retry after a failed renewal: quick enough to try another member well within the margin. */
const RETRY_FIRST_MS = 100;

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
  log: Logger;
}

export interface FenceEvent {
  /** Send time of the last keepalive etcd confirmed. */
  lastRenewedAt: number;
  /** The earliest time the lease can expire on the etcd side (lastRenewedAt + TTL). */
  deadline: number;
  firedAt: number;
}

export interface RegisteredEvent {
  leaseId: string;
  /** true: an existing lease was resumed (keys under it survived); false: a new lease (they are gone). */
  resumed: boolean;
}

interface Events {
  fence: [FenceEvent];
  registered: [RegisteredEvent];
  recovered: [RegisteredEvent];
  error: [Error];
}

/**
 * Host liveness: `hosts/<instanceId>` under a lease this class renews itself every TTL/3. It does
 * not use etcd3's Lease 'lost' (which fires only after 2 × TTL): it fences at
 * (send time of the last confirmed keepalive + TTL − margin), i.e. before etcd can expire the
 * lease and the controller can move the volume. After an outage it re-registers (a new lease if
 * the old one expired) and emits 'registered' and 'recovered'.
 */
export class HostRegistrar extends EventEmitter<Events> {
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private clock: LeaseClock;
  private currentLease: string | null = null;
  private running = false;
  private loopTimer: NodeJS.Timeout | null = null;
  private fenceTimer: NodeJS.Timeout | null = null;
  private fencedNow = false;
  /** Consecutive failed renewals. */
  private failures = 0;
  private readonly log: Logger;

  constructor(private readonly opts: HostRegistrarOptions) {
    super();
    this.ttlMs = Math.max(1, Math.ceil((opts.ttlMs ?? DEFAULT_HOST_TTL_MS) / 1000)) * 1000;
    this.marginMs = opts.fenceMarginMs ?? Math.max(500, Math.floor(this.ttlMs / 4));
    if (this.marginMs >= this.ttlMs) throw new RangeError(`fenceMarginMs ${this.marginMs} must be below the TTL ${this.ttlMs}`);
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

  get lastRenewedAt(): number {
    return this.clock.renewedAt;
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
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    const leaseId = this.currentLease;
    if (opts.revoke && leaseId !== null) {
      await etcdCall(this.opts.client, 'revoke host lease', () => this.opts.client.leaseClient.leaseRevoke({ ID: leaseId }));
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
    const { client } = this.opts;
    const resumed = tryResume ? await this.resumable() : null;
    let leaseId: string;
    if (resumed !== null) {
      leaseId = resumed;
    } else {
      const sentAt = Date.now();
      const grant = await etcdCall(client, 'grant host lease', () => client.leaseClient.leaseGrant({ TTL: this.ttlMs / 1000 }));
      leaseId = grant.ID;
      this.clock = new LeaseClock(this.ttlMs, sentAt);
    }
    const record = HostRecord.parse({ ...this.opts.record, leaseTtlMs: this.ttlMs, fenceMarginMs: this.marginMs, registeredAt: Date.now() });
    await etcdCall(client, 'put host record', () => client.put(this.opts.ks.host(record.instanceId)).value(encodeRecord(record)).lease(leaseId).exec());
    this.currentLease = leaseId;
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
    const sentAt = Date.now();
    const ttl = await this.keepaliveOnce(leaseId);
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

  /** One keepalive round trip; the TTL etcd reports (0: the lease no longer exists). */
  private async keepaliveOnce(leaseId: string): Promise<number> {
    const { client } = this.opts;
    // A third of the TTL: an answer slower than that is as good as none for fencing purposes.
    const timeoutMs = this.ttlMs / 3;
    try {
      const stream = await client.leaseClient.leaseKeepAlive();
      try {
        const res = await new Promise<{ TTL: string }>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`keepalive timed out after ${timeoutMs} ms`)), timeoutMs);
          stream.on('data', (r: { TTL: string }) => {
            clearTimeout(timer);
            resolve(r);
          });
          stream.on('error', (err: Error) => {
            clearTimeout(timer);
            reject(err);
          });
          stream.write({ ID: leaseId });
        });
        return Number(res.TTL);
      } finally {
        stream.end();
      }
    } catch (err) {
      throw wrapEtcdError(err, endpointsOf(client), 'host lease keepalive');
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
      const sentAt = Date.now();
      const ttl = await this.keepaliveOnce(leaseId);
      if (!this.running) return;
      this.failures = 0;
      if (ttl > 0) {
        this.clock.renewed(sentAt);
        this.armFence();
        if (this.fencedNow) this.recover({ leaseId, resumed: true });
      } else {
        this.log.warn({ leaseId }, 'host lease expired in etcd; registering with a new lease');
        const ev = await this.register(false);
        if (this.fencedNow) this.recover(ev);
      }
    } catch (err) {
      this.failures += 1;
      this.log.warn({ err, lastRenewedAt: this.clock.renewedAt }, 'host lease renewal failed');
    } finally {
      this.schedule();
    }
  }

  private recover(ev: RegisteredEvent): void {
    this.fencedNow = false;
    this.log.info(ev, 'etcd reachable again: host recovered');
    this.emit('recovered', ev);
  }

  private armFence(): void {
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    if (!this.running) return;
    const lastRenewedAt = this.clock.renewedAt;
    const deadline = lastRenewedAt + this.ttlMs;
    this.fenceTimer = setTimeout(() => {
      if (this.fencedNow || !this.running) return;
      this.fencedNow = true;
      const ev = { lastRenewedAt, deadline, firedAt: Date.now() };
      this.log.error(ev, 'lease renewals failed: fencing before the lease can expire in etcd');
      this.emit('fence', ev);
    }, Math.max(0, deadline - this.marginMs - Date.now()));
  }
}
