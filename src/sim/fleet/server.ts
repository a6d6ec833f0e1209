import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import { z } from 'zod';
import { DesiredState, MetadataOp, UnitOption } from '../../fleet/types.js';
import { FleetState, PatchError } from './state.js';

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

const PutUnitBody = z.object({ name: z.string().optional(), desiredState: DesiredState, options: z.array(UnitOption).optional() });
const SimMachineBody = z.object({ machineId: z.string().min(1), primaryIP: z.string().optional(), metadata: z.record(z.string(), z.string()).optional() });
const SimUnitStateBody = z.object({ name: z.string().min(1), active: z.string().min(1), sub: z.string().default('') });

/**
 * A stand-in for fleetd's HTTP API v1 (coreos/fleet Documentation/api-v1.md): machines with
 * metadata (JSON Patch), units with a desired state, unit states, pagination and error entities. A
 * control API under `/_sim/` lets other processes seed machines and read the change log.
 */
export async function startFleetServer(opts: FleetServerOptions = {}): Promise<FleetServer> {
  const state = new FleetState(opts.now, opts.autoRegister ?? true);
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  const server = createServer((req, res) => {
    handle(state, pageSize, req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : err instanceof PatchError || err instanceof z.ZodError ? 400 : 500;
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
    const body = PutUnitBody.parse(await readJson(req));
    if (body.name !== undefined && body.name !== name) throw new HttpError(400, `name ${body.name} does not match URL ${name}`);
    if (!state.units.has(name) && !body.options?.length) throw new HttpError(409, `unit ${name} has no options`);
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

/** Offset-based page tokens (opaque to clients, as fleet's are). */
function page<T>(field: string, items: T[], url: URL, pageSize: number): Record<string, unknown> {
  const token = url.searchParams.get('nextPageToken');
  let offset = 0;
  if (token !== null) {
    offset = Number.parseInt(Buffer.from(token, 'base64url').toString('utf8'), 10);
    if (!Number.isInteger(offset) || offset < 0) throw new HttpError(400, 'invalid value of nextPageToken query parameter');
  }
  const slice = items.slice(offset, offset + pageSize);
  const next = offset + pageSize < items.length ? Buffer.from(String(offset + pageSize)).toString('base64url') : undefined;
  return next ? { [field]: slice, nextPageToken: next } : { [field]: slice };
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
