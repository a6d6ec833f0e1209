import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { Logger } from '../../log/logger.js';
import { silentLogger } from '../../log/logger.js';
import { CALLER_HEADER, MUTATING_ACTIONS, TERM_HEADER } from '../../ec2/gate.js';
import { ACTIONS } from './actions/index.js';
import { handleControl } from './control.js';
import { Ec2SimError } from './errors.js';
import { requestLimitExceeded } from './faults.js';
import { parseQuery } from './protocol.js';
import { Ec2Sim, type Ec2SimOptions } from './sim.js';
import { categorize } from './throttle.js';
import { errorDocument, responseDocument } from './xml.js';

/** EC2 request bodies are small; a cap keeps a runaway client from exhausting memory. */
const MAX_BODY_BYTES = 1024 * 1024;
/**
 * Idle kept-alive connections stay open this long (Node's default is 5 s). AWS endpoints keep idle
 * connections for minutes, and a client frozen for seconds must find its connection still open, as
 * it would against AWS (the deposed-controller test depends on it).
 */
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;

export interface Ec2EndpointOptions extends Ec2SimOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Loopback by default: the simulator is for tests and demos on this machine. */
  host?: string;
  /** Serve an existing simulator instead of a new one. */
  sim?: Ec2Sim;
  log?: Logger;
}

export interface Ec2Endpoint {
  /** `http://127.0.0.1:<port>`: pass as `endpoint` to the SDK's EC2Client. */
  url: string;
  sim: Ec2Sim;
  close(): Promise<void>;
}

export async function startEc2Endpoint(opts: Ec2EndpointOptions = {}): Promise<Ec2Endpoint> {
  const sim = opts.sim ?? new Ec2Sim(opts);
  const log = opts.log ?? silentLogger();
  const server = createServer((req, res) => {
    readBody(req)
      .then((body) => route(sim, log, req, res, body))
      .catch((err: unknown) => {
        log.error({ err }, 'ec2 sim request failed');
        if (!res.headersSent) send(res, 500, 'text/plain', 'internal error');
      });
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // Node closes a connection that sent no request headers for headersTimeout; keep it above the idle time.
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    sim,
    close: () =>
      new Promise<void>((resolve) => {
        // The SDK keeps connections alive; drop them so close() does not wait for their idle timeout.
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function route(sim: Ec2Sim, log: Logger, req: IncomingMessage, res: ServerResponse, body: string): void {
  const url = new URL(req.url ?? '/', 'http://sim');
  if (url.pathname.startsWith('/_sim/')) {
    const result = handleControl(sim, req.method ?? 'GET', url.pathname, body);
    send(res, result.status, 'application/json', JSON.stringify(result.body));
    return;
  }
  const params = parseQuery(req.method === 'POST' ? body : url.search.slice(1));
  const requestId = randomUUID();
  const action = params.get('Action') ?? '';
  const receivedAt = sim.internals.clock.now();
  const record = (outcome: string): void => {
    if (!MUTATING_ACTIONS.has(action)) return;
    sim.recordRequest({
      at: receivedAt, action, outcome,
      volumeId: params.get('VolumeId') ?? null,
      instanceId: params.get('InstanceId') ?? params.get('InstanceId.1') ?? null,
      snapshotId: params.get('SnapshotId') ?? null,
      force: params.get('Force') === 'true',
      device: params.get('Device') ?? null,
      caller: headerOf(req, CALLER_HEADER),
      term: headerOf(req, TERM_HEADER),
    });
  };
  // The state changes on receipt; `callMs` only delays the answer, as network and API time would.
  const answer = (status: number, xml: string): void => {
    const delay = sim.jittered(sim.internals.latencies.callMs);
    if (delay <= 0) send(res, status, 'text/xml;charset=UTF-8', xml, requestId);
    else setTimeout(() => send(res, status, 'text/xml;charset=UTF-8', xml, requestId), delay * sim.internals.timeScale()).unref();
  };
  try {
    const handler = ACTIONS.get(action);
    if (action === '') throw new Ec2SimError('MissingAction', 'The request must contain the parameter Action');
    if (handler === undefined) throw new Ec2SimError('InvalidAction', `The action ${action} is not valid for this web service.`);
    // Injected faults and throttling come first: a real 5xx or throttle changes no state.
    const fault = sim.internals.faults.take(action);
    if (fault !== undefined) throw fault;
    if (!sim.throttle.admit(categorize(action, params))) throw requestLimitExceeded(action);
    const xml = responseDocument(action, requestId, handler(sim, params));
    sim.countCall(action);
    record('ok');
    log.debug({ action, requestId }, 'ec2 sim call');
    answer(200, xml);
  } catch (err) {
    const error = toSimError(err, action);
    if (error.httpStatus >= 500 && error.code === 'InternalError' && !(err instanceof Ec2SimError)) log.error({ err, action }, 'ec2 sim handler crashed');
    sim.countCall(action || '(none)', error.code);
    record(error.code);
    log.debug({ action, requestId, code: error.code, ...error.ids }, 'ec2 sim call failed');
    answer(error.httpStatus, errorDocument(error.code, error.message, requestId));
  }
}

function headerOf(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  return typeof value === 'string' ? value : null;
}

function toSimError(err: unknown, action: string): Ec2SimError {
  if (err instanceof Ec2SimError) return err;
  if (err instanceof z.ZodError) return new Ec2SimError('InvalidParameterValue', err.issues.map((i) => i.message).join('; '));
  return new Ec2SimError('InternalError', `An internal error has occurred (${String(err)})`, 500, { action });
}

function send(res: ServerResponse, status: number, contentType: string, body: string, requestId?: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    ...(requestId === undefined ? {} : { 'x-amzn-requestid': requestId }),
  });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`request body over ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
