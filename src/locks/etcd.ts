import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import { z } from 'zod';
import { wrapEtcdError } from './errors.js';

/** 5 s: long enough for a TLS handshake to a loaded member, short enough that an outage is reported promptly. */
export const DEFAULT_DIAL_TIMEOUT_MS = 5_000;
/**
 * Watch streams reconnect after 100 ms, doubling to at most 2 s: etcd3's default backoff grows to 30 s,
 * which would leave mirrors (and so the controller) blind for half a minute after etcd comes back.
 */
const WATCH_BACKOFF_FIRST_MS = 100;
const WATCH_BACKOFF_MAX_MS = 2_000;

export const EtcdConnectOptions = z.object({
  endpoints: z.array(z.string().min(1)).min(1),
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  dialTimeoutMs: z.number().int().positive().optional(),
});
export type EtcdConnectOptions = z.input<typeof EtcdConnectOptions>;

/** Capped exponential backoff, shaped like cockatiel's IBackoff (which etcd3 takes for watches). */
class CappedBackoff {
  constructor(readonly duration: number = WATCH_BACKOFF_FIRST_MS) {}
  next(): CappedBackoff {
    return new CappedBackoff(Math.min(this.duration * 2, WATCH_BACKOFF_MAX_MS));
  }
}

const endpointsByClient = new WeakMap<Etcd3, readonly string[]>();

/** The endpoints a client was opened with (for error messages); `['etcd']` for clients made elsewhere. */
export function endpointsOf(client: Etcd3): readonly string[] {
  return endpointsByClient.get(client) ?? ['etcd'];
}

/** Opens an etcd client (TLS and auth when configured). Connection happens lazily on first call. */
export function connectEtcd(input: EtcdConnectOptions): Etcd3 {
  const opts = EtcdConnectOptions.parse(input);
  const options: IOptions = {
    hosts: opts.endpoints,
    dialTimeout: opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
    faultHandling: { watchBackoff: new CappedBackoff() },
  };
  if (opts.caFile !== undefined || opts.certFile !== undefined) {
    options.credentials = {
      rootCertificate: opts.caFile !== undefined ? readFileSync(opts.caFile) : Buffer.alloc(0),
      ...(opts.certFile !== undefined && opts.keyFile !== undefined
        ? { certChain: readFileSync(opts.certFile), privateKey: readFileSync(opts.keyFile) }
        : {}),
    };
  }
  if (opts.username !== undefined) options.auth = { username: opts.username, password: opts.password ?? '' };
  const client = new Etcd3(options);
  endpointsByClient.set(client, opts.endpoints);
  return client;
}

/** Runs an etcd call, turning transport failures into EtcdUnavailableError naming the endpoints. */
export async function etcdCall<T>(client: Etcd3, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw wrapEtcdError(err, endpointsOf(client), operation);
  }
}
