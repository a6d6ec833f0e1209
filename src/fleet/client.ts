import { request, type IncomingMessage } from 'node:http';
import { z } from 'zod';
import { FleetApiError, FleetUnavailableError } from './errors.js';
import {
  FleetUnit,
  MachinePage,
  StatePage,
  metadataPath,
  type DesiredState,
  type FleetMachine,
  type FleetPort,
  type FleetUnitState,
  type MetadataOp,
  type UnitOption,
} from './types.js';

/** fleetd's default API socket on CoreOS. */
export const DEFAULT_FLEET_SOCKET = '/var/run/fleet.sock';
/**
 * 10 s per request: fleet answers from its etcd registry within milliseconds; a longer stall means
 * fleetd or its etcd is unhealthy, and callers (agent reconcile, controller fencing) must move on.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** A page loop that never ends (a broken token) is cut off here; fleet pages hold 100 entities. */
const MAX_PAGES = 1_000;
/**
 * 15 s of retrying 503: real fleetd answers "fleet server unable to communicate with etcd" (503) for
 * the first second or so after (socket-)activation, and while its etcd is unreachable. That is a
 * transient state of the server, not an answer: retry it, bounded so a caller's loop still moves on.
 */
export const DEFAULT_UNAVAILABLE_RETRY_MS = 15_000;
/** First pause between 503 retries; doubles up to RETRY_MAX_PAUSE_MS. */
const RETRY_FIRST_PAUSE_MS = 100;
const RETRY_MAX_PAUSE_MS = 2_000;
/**
 * 30 s for fleet to act on a change: measured on real fleetd v1.0.0, a unit is scheduled ~2.4 s and
 * running ~3.9 s after a metadata add (up to ~6 s on a loaded 2-core machine), unscheduled ~1.2 s and
 * its state gone ~2.6–4.5 s after a remove; its agent reconciles every 5 s.
 */
export const DEFAULT_ACT_TIMEOUT_MS = 30_000;
/** Poll interval while waiting for fleet to act: fleet's engine reconciles every 1–2 s. */
const ACT_POLL_MS = 250;

const FleetClientOptions = z
  .object({
    socketPath: z.string().min(1).optional(),
    url: z.string().regex(/^http:\/\//, 'fleet url must be http://host:port').optional(),
    timeoutMs: z.number().int().positive().default(DEFAULT_REQUEST_TIMEOUT_MS),
    /** Budget for retrying 503 answers (0: no retry, the 503 is thrown at once). */
    unavailableRetryMs: z.number().int().nonnegative().default(DEFAULT_UNAVAILABLE_RETRY_MS),
  })
  .refine((o) => !(o.socketPath && o.url), 'give either socketPath or url, not both');
export type FleetClientOptions = z.input<typeof FleetClientOptions>;

const MachineIdArg = z.string().regex(/^[A-Za-z0-9_-]+$/, 'machine id must be [A-Za-z0-9_-]+');
const MetadataKeyArg = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'metadata key must be [A-Za-z0-9_.-]+');

interface Reply {
  status: number;
  body: string;
}

/**
 * Client of fleet's HTTP API v1 over its unix socket (default) or an http URL. Only what ebs-failover
 * needs: machines and their metadata, unit states, and unit desired state.
 */
export class FleetClient implements FleetPort {
  private readonly socketPath: string | undefined;
  private readonly base: URL | undefined;
  private readonly timeoutMs: number;
  private readonly unavailableRetryMs: number;

  constructor(input: FleetClientOptions = {}) {
    const opts = FleetClientOptions.parse(input);
    this.timeoutMs = opts.timeoutMs;
    this.unavailableRetryMs = opts.unavailableRetryMs;
    if (opts.url) this.base = new URL(opts.url);
    else this.socketPath = opts.socketPath ?? DEFAULT_FLEET_SOCKET;
  }

  /** Where requests go, for logs and errors. */
  get target(): string {
    return this.base ? this.base.origin : `unix:${this.socketPath}`;
  }

  async listMachines(): Promise<FleetMachine[]> {
    const out: FleetMachine[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const path = `/fleet/v1/machines${token ? `?nextPageToken=${encodeURIComponent(token)}` : ''}`;
      const parsed = MachinePage.parse(await this.json('GET', path));
      out.push(...parsed.machines);
      if (!parsed.nextPageToken) return out;
      token = parsed.nextPageToken;
    }
    throw new FleetApiError(0, 'GET', '/fleet/v1/machines', `more than ${MAX_PAGES} pages`);
  }

  async getState(filter: { machineId?: string; unitName?: string } = {}): Promise<FleetUnitState[]> {
    const out: FleetUnitState[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const q = new URLSearchParams();
      if (filter.machineId) q.set('machineID', filter.machineId);
      if (filter.unitName) q.set('unitName', filter.unitName);
      if (token) q.set('nextPageToken', token);
      const qs = q.toString();
      const parsed = StatePage.parse(await this.json('GET', `/fleet/v1/state${qs ? `?${qs}` : ''}`));
      out.push(...parsed.states);
      if (!parsed.nextPageToken) return out;
      token = parsed.nextPageToken;
    }
    throw new FleetApiError(0, 'GET', '/fleet/v1/state', `more than ${MAX_PAGES} pages`);
  }

  /** Sets (adds or overwrites) one metadata key of one machine. */
  async setMetadata(machineId: string, key: string, value: string): Promise<void> {
    MachineIdArg.parse(machineId);
    MetadataKeyArg.parse(key);
    await this.patchMachines([{ op: 'add', path: metadataPath(machineId, key), value: { value } }], machineId, key);
  }

  /**
   * Removes one metadata key. A key that is already absent counts as removed: the caller's goal
   * (fleet must not schedule the unit there) already holds, which keeps release and fencing idempotent.
   */
  async removeMetadata(machineId: string, key: string): Promise<void> {
    MachineIdArg.parse(machineId);
    MetadataKeyArg.parse(key);
    try {
      await this.patchMachines([{ op: 'remove', path: metadataPath(machineId, key) }], machineId, key);
    } catch (err) {
      if (err instanceof FleetApiError && err.status === 404) return;
      throw err;
    }
  }

  async getUnit(name: string): Promise<FleetUnit | undefined> {
    const reply = await this.send('GET', `/fleet/v1/units/${encodeURIComponent(name)}`);
    if (reply.status === 404) return undefined;
    this.check(reply, 'GET', `/fleet/v1/units/${name}`);
    return FleetUnit.parse(JSON.parse(reply.body));
  }

  /** Creates a unit (with options) or changes an existing one's desired state. */
  async putUnit(name: string, desiredState: DesiredState, options?: UnitOption[]): Promise<void> {
    const path = `/fleet/v1/units/${encodeURIComponent(name)}`;
    const body = JSON.stringify(options ? { name, desiredState, options } : { name, desiredState });
    this.check(await this.send('PUT', path, body), 'PUT', path);
  }

  /**
   * What `fleetctl submit` sends: a PUT with options and no desiredState, which creates the unit
   * `inactive` (real fleetd: 201; the same PUT for an existing unit is a 409).
   */
  async submitUnit(name: string, options: UnitOption[]): Promise<void> {
    const path = `/fleet/v1/units/${encodeURIComponent(name)}`;
    this.check(await this.send('PUT', path, JSON.stringify({ name, options })), 'PUT', path);
  }

  async listUnits(): Promise<FleetUnit[]> {
    const out: FleetUnit[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const path = `/fleet/v1/units${token ? `?nextPageToken=${encodeURIComponent(token)}` : ''}`;
      const parsed = UnitPage.parse(await this.json('GET', path));
      out.push(...parsed.units);
      // Tokens are opaque (real fleet: base64 of an internal cursor); a full last page still carries
      // one and the page after it is empty, so only a missing token ends the loop.
      if (!parsed.nextPageToken) return out;
      token = parsed.nextPageToken;
    }
    throw new FleetApiError(0, 'GET', '/fleet/v1/units', `more than ${MAX_PAGES} pages`);
  }

  /**
   * Polls `/fleet/v1/state` until `done` holds for the states matching `filter`, and returns them.
   * fleet acts on every change asynchronously (seconds, not milliseconds): a caller that needs the
   * effect of a PATCH or PUT (unit stopped there, unit running here) must wait for it, never assume it.
   */
  async waitForStates(
    filter: { machineId?: string; unitName?: string },
    done: (states: FleetUnitState[]) => boolean,
    opts: { timeoutMs?: number; what?: string } = {},
  ): Promise<FleetUnitState[]> {
    return this.poll(() => this.getState(filter), done, opts.timeoutMs, opts.what ?? `fleet state ${JSON.stringify(filter)}`);
  }

  /** Waits until fleet reports `unitName` active on `machineId` (or, with null, running nowhere). */
  async waitForUnitOn(unitName: string, machineId: string | null, opts: { timeoutMs?: number } = {}): Promise<FleetUnitState[]> {
    return this.waitForStates(
      { unitName },
      (states) =>
        machineId === null
          ? states.length === 0
          : states.some((s) => s.machineID === machineId && s.systemdActiveState === 'active'),
      { ...opts, what: machineId === null ? `${unitName} running nowhere` : `${unitName} active on ${machineId}` },
    );
  }

  /** Waits until a machine's metadata `key` reads `value` (undefined: absent), as listed by fleet. */
  async waitForMetadata(machineId: string, key: string, value: string | undefined, opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.poll(
      () => this.listMachines(),
      (machines) => {
        const m = machines.find((x) => x.id === machineId);
        return value === undefined ? m?.metadata[key] === undefined : m?.metadata[key] === value;
      },
      opts.timeoutMs,
      `metadata ${key}=${value ?? '(absent)'} on ${machineId}`,
    );
  }

  private async poll<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = DEFAULT_ACT_TIMEOUT_MS, what: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let last: T | undefined;
    for (;;) {
      last = await read();
      if (done(last)) return last;
      if (performance.now() >= deadline) throw new FleetWaitTimeoutError(what, timeoutMs, last);
      await sleep(ACT_POLL_MS);
    }
  }

  private async patchMachines(ops: MetadataOp[], machineId: string, key: string): Promise<void> {
    const path = '/fleet/v1/machines';
    this.check(await this.send('PATCH', path, JSON.stringify(ops)), 'PATCH', path, machineId, key);
  }

  private async json(method: string, path: string): Promise<unknown> {
    const reply = await this.send(method, path);
    this.check(reply, method, path);
    try {
      return JSON.parse(reply.body) as unknown;
    } catch (err) {
      throw new FleetApiError(reply.status, method, path, 'response is not JSON', undefined, undefined, { cause: err });
    }
  }

  private check(reply: Reply, method: string, path: string, machineId?: string, key?: string): void {
    if (reply.status >= 200 && reply.status < 300) return;
    throw new FleetApiError(reply.status, method, path, errorMessage(reply.body), machineId, key);
  }

  /** One request; 503 ("unable to communicate with etcd") is retried with backoff within the budget. */
  private async send(method: string, path: string, body?: string): Promise<Reply> {
    const deadline = performance.now() + this.unavailableRetryMs;
    let pause = RETRY_FIRST_PAUSE_MS;
    for (;;) {
      const reply = await this.sendOnce(method, path, body);
      if (reply.status !== 503 || performance.now() + pause > deadline) return reply;
      await sleep(pause);
      pause = Math.min(pause * 2, RETRY_MAX_PAUSE_MS);
    }
  }

  private sendOnce(method: string, path: string, body?: string): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: 'application/json' };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const req = request(
        this.base
          ? { host: this.base.hostname, port: this.base.port || 80, path, method, headers, timeout: this.timeoutMs }
          : { socketPath: this.socketPath, path, method, headers, timeout: this.timeoutMs },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (err) => reject(new FleetUnavailableError(this.target, method, path, { cause: err })));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(new FleetUnavailableError(this.target, method, path, { cause: err })));
      req.end(body);
    });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const UnitPage = z.object({ units: z.array(FleetUnit).default([]), nextPageToken: z.string().optional() });

/** fleet did not reach the awaited state within the budget; carries what it last reported. */
export class FleetWaitTimeoutError extends Error {
  override readonly name = 'FleetWaitTimeoutError';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly last: unknown,
  ) {
    super(`fleet did not reach "${what}" within ${timeoutMs} ms; last seen: ${JSON.stringify(last)?.slice(0, 400)}`);
  }
}

/** fleet's error entity is `{"error":{"code":400,"message":"…"}}`; fall back to the raw text. */
function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === 'string') return parsed.error.message;
  } catch {
    // Not JSON: fleet (or a proxy in front of it) answered with plain text.
  }
  return body.trim().slice(0, 200) || 'no message';
}
