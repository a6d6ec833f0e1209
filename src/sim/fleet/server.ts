import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import { z } from 'zod';
import { DesiredState, MetadataOp, UnitOption } from '../../fleet/types.js';
import { FleetState, PatchError, UnitConflictError } from './state.js';

/** fleet serves pages of 100 entities; tests lower it to exercise nextPageToken. */
const DEFAULT_PAGE_SIZE = 100;
/** Request bodies above this are refused: the stand-in only ever sees small JSON documents. */
const MAX_BODY_BYTES = 1 << 20;

export interface FleetServerOptions {
  /** Listen on this unix socket (fleet's way). Without it: 127.0.0.1 on `port` (0 = any free port). */
  socketPath?: string;
  port?: number;
  pageSize?: number;
  now?: () => number;
  autoRegister?: boolean;
  /** Act on changes this long after them, as real fleetd does (see FleetState.actDelayMs). Default 0. */
  actDelayMs?: number;
  /**
   * Answer 503 "fleet server unable to communicate with etcd" for this long after start, as real
   * fleetd does while it connects to etcd (also settable later: POST /_sim/unavailable {"ms": N}).
   */
  unavailableForMs?: number;
}

export interface FleetServer {
  /** `unix:<path>` or `http://127.0.0.1:<port>`. */
  readonly address: string;
  readonly socketPath: string | undefined;
  readonly url: string | undefined;
  readonly state: FleetState;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const PutUnitBody = z.object({ name: z.string().optional(), desiredState: DesiredState.optional(), options: z.array(UnitOption).optional() });
const SimUnavailableBody = z.object({ ms: z.number().int().nonnegative() });
/** Real fleetd's 503 while it cannot reach etcd (start-up, etcd down, SIGHUP reload). */
const UNAVAILABLE_MESSAGE = 'fleet server unable to communicate with etcd';
const SimMachineBody = z.object({ machineId: z.string().min(1), primaryIP: z.string().optional(), metadata: z.record(z.string(), z.string()).optional() });
const SimUnitStateBody = z.object({ name: z.string().min(1), active: z.string().min(1), sub: z.string().default('') });

/**
 * A stand-in for fleetd's HTTP API v1 (coreos/fleet Documentation/api-v1.md): machines with
 * metadata (JSON Patch), units with a desired state, unit states, pagination and error entities. A
 * control API under `/_sim/` lets other processes seed machines and read the change log.
 */
export async function startFleetServer(opts: FleetServerOptions = {}): Promise<FleetServer> {
  const state = new FleetState(opts.now, opts.autoRegister ?? true);
  state.actDelayMs = opts.actDelayMs ?? 0;
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  const unavailable = { until: performance.now() + (opts.unavailableForMs ?? 0) };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (performance.now() < unavailable.until && !path.startsWith('/_sim/')) {
      req.resume();
      return send(res, 503, { error: { code: 503, message: UNAVAILABLE_MESSAGE } });
    }
    if (path === '/_sim/unavailable' && req.method === 'POST') {
      readJson(req)
        .then((body) => {
          unavailable.until = performance.now() + SimUnavailableBody.parse(body).ms;
          send(res, 204);
        })
        .catch((err: unknown) => send(res, 400, { error: { code: 400, message: (err as Error).message } }));
      return;
    }
    handle(state, pageSize, req, res).catch((err: unknown) => {
      const status =
        err instanceof HttpError ? err.status : err instanceof UnitConflictError ? 409 : err instanceof PatchError || err instanceof z.ZodError ? 400 : 500;
      send(res, status, { error: { code: status, message: (err as Error).message } });
    });
  });
  if (opts.socketPath) await rm(opts.socketPath, { force: true });
  await listen(server, opts.socketPath, opts.port ?? 0);
  const addr = server.address();
  const url = opts.socketPath || typeof addr !== 'object' || !addr ? undefined : `http://127.0.0.1:${addr.port}`;
  return {
    address: opts.socketPath ? `unix:${opts.socketPath}` : (url as string),
    socketPath: opts.socketPath,
    url,
    state,
    close: async () => {
      state.dispose();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (opts.socketPath) await rm(opts.socketPath, { force: true });
    },
  };
}

function listen(server: Server, socketPath: string | undefined, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (socketPath) server.listen(socketPath, done);
    else server.listen(port, '127.0.0.1', done);
  });
}

async function handle(state: FleetState, pageSize: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://fleet');
  const method = req.method ?? 'GET';
  const path = url.pathname;
  if (path === '/fleet/v1/machines') {
    if (method === 'GET') return send(res, 200, page('machines', state.listMachines(), url, pageSize));
    if (method === 'PATCH') {
      requireJsonContentType(req);
      const ops = z.array(MetadataOp).parse(await readJson(req));
      state.applyPatch(ops);
      return send(res, 204);
    }
    throw new HttpError(405, `${method} not allowed on ${path}`);
  }
  if (path === '/fleet/v1/state' && method === 'GET') {
    const filter = { machineId: url.searchParams.get('machineID') ?? undefined, unitName: url.searchParams.get('unitName') ?? undefined };
    return send(res, 200, page('states', state.states(filter), url, pageSize));
  }
  if (path === '/fleet/v1/units' && method === 'GET') {
    return send(res, 200, page('units', [...state.units.values()].map(unitEntity), url, pageSize));
  }
  const unitMatch = /^\/fleet\/v1\/units\/([^/]+)$/.exec(path);
  if (unitMatch?.[1]) return handleUnit(state, decodeURIComponent(unitMatch[1]), method, req, res);
  if (path.startsWith('/_sim/')) return handleControl(state, path, method, req, res);
  throw new HttpError(404, `no such resource ${path}`);
}

async function handleUnit(state: FleetState, name: string, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (method === 'GET') {
    const unit = state.units.get(name);
    if (!unit) throw new HttpError(404, `unit ${name} not found`);
    return send(res, 200, unitEntity(unit));
  }
  if (method === 'DELETE') {
    if (!state.deleteUnit(name)) throw new HttpError(404, `unit ${name} not found`);
    return send(res, 204);
  }
  if (method === 'PUT') {
    requireJsonContentType(req);
    const body = PutUnitBody.parse(await readJson(req));
    if (body.name !== undefined && body.name !== name) throw new HttpError(400, `name ${body.name} does not match URL ${name}`);
    // Real fleetd v1.0.0: 201 for a new unit, 204 for a desired-state change of an existing one.
    return send(res, state.putUnit(name, body.desiredState, body.options) === 'created' ? 201 : 204);
  }
  throw new HttpError(405, `${method} not allowed on units`);
}

async function handleControl(state: FleetState, path: string, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (path === '/_sim/state' && method === 'GET') {
    return send(res, 200, {
      machines: state.listMachines(),
      units: [...state.units.values()].map(unitEntity),
      changes: state.changes,
      schedule: state.schedule,
    });
  }
  if (path === '/_sim/machines' && method === 'POST') {
    const body = SimMachineBody.parse(await readJson(req));
    state.addMachine(body.machineId, { primaryIP: body.primaryIP, metadata: body.metadata });
    return send(res, 204);
  }
  if (path === '/_sim/unit-state' && method === 'POST') {
    const body = SimUnitStateBody.parse(await readJson(req));
    state.reported.set(body.name, { active: body.active, sub: body.sub });
    return send(res, 204);
  }
  throw new HttpError(404, `no such control resource ${method} ${path}`);
}

function unitEntity(unit: { name: string; options: unknown[]; desiredState: string; machineId: string | null }): object {
  return {
    name: unit.name,
    options: unit.options,
    desiredState: unit.desiredState,
    currentState: unit.machineId ? unit.desiredState : 'inactive',
    ...(unit.machineId ? { machineID: unit.machineId } : {}),
  };
}

/**
 * Page tokens as real fleetd's: opaque base64 (here of a small binary cursor, not a readable number);
 * a FULL page always carries a token, so a full last page is followed by one empty page (`{}`, no
 * field at all, as fleet omits empty lists); a token that is not base64 is a 400.
 */
function page<T>(field: string, items: T[], url: URL, pageSize: number): Record<string, unknown> {
  const token = url.searchParams.get('nextPageToken');
  let offset = 0;
  if (token !== null) {
    const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(token) ? Buffer.from(token, 'base64') : Buffer.alloc(0);
    if (raw.length !== 4 || raw[0] !== 2) throw new HttpError(400, `illegal base64 data in nextPageToken ${token}`);
    offset = raw.readUInt16LE(2);
  }
  const slice = items.slice(offset, offset + pageSize);
  const cursor = Buffer.from([2, 0, 0, 0]);
  cursor.writeUInt16LE(Math.min(offset + pageSize, 0xffff), 2);
  const out: Record<string, unknown> = slice.length > 0 ? { [field]: slice } : {};
  if (slice.length === pageSize) out.nextPageToken = cursor.toString('base64');
  return out;
}

/** Real fleetd refuses bodies that are not declared JSON: 415. */
function requireJsonContentType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, 'only acceptable Content-Type is application/json');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
