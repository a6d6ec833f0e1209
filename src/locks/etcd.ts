import { readFileSync } from 'node:fs';
import { noop } from 'cockatiel';
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
/** What connectEtcd built each client from, so single-member clients can share its TLS and auth. */
const optionsByClient = new WeakMap<Etcd3, { options: IOptions; endpoints: readonly string[] }>();
const membersByClient = new WeakMap<Etcd3, readonly MemberClient[]>();

/** A client that talks to exactly one etcd member. */
export interface MemberClient {
  readonly endpoint: string;
  /** The current client for this member (a new one after `reset()`). */
  readonly client: Etcd3;
  /**
   * Drops the member's connection and makes a new client on next use. A renewal that timed out may sit
   * on a connection that is dead without gRPC knowing it (a proxy or NAT that kept the client side open
   * while etcd restarted behind it): without pings nothing ever notices, and every later call on that
   * channel times out too. No-op for a client not made by connectEtcd.
   */
  reset(): void;
}

/** The endpoints a client was opened with (for error messages); `['etcd']` for clients made elsewhere. */
export function endpointsOf(client: Etcd3): readonly string[] {
  return endpointsByClient.get(client) ?? ['etcd'];
}

/** 100 ms, at most 500 ms, between reconnects of a member client: one connect attempt per half second per member while etcd is down. */
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 500;

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
  optionsByClient.set(client, { options, endpoints: opts.endpoints });
  return client;
}

/**
 * One client per member of `client`'s endpoint list (same TLS, auth and dial timeout), in list order,
 * built once and cached. etcd3's pool picks a member per call and does not move a stream-based call
 * (like a lease keepalive) off a member that refuses, resets or swallows connections; a caller that
 * must not lose a whole renewal period to one bad member (the host registrar) sends each call to one
 * member itself and rotates on failure. Closing `client` closes these too. A client not made by
 * connectEtcd yields itself.
 */
export function memberClients(client: Etcd3): readonly MemberClient[] {
  const cached = membersByClient.get(client);
  if (cached) return cached;
  const made = optionsByClient.get(client);
  let members: readonly MemberClient[];
  if (made === undefined) {
    members = [{ endpoint: endpointsOf(client)[0] ?? 'etcd', client, reset: () => undefined }];
  } else {
    // Own clients even for one endpoint, without etcd3's circuit breaker and retries: after an outage
    // the shared client's breaker stays open for 5 s ("Execution prevented because the circuit breaker
    // is open") while etcd already answers, so a renewal through it would fail where a peer's succeeds
    // and the host would fence itself for nothing (chaos seed 14). The caller bounds and rotates itself.
    members = made.endpoints.map((endpoint) => {
      const open = (): Etcd3 => {
        const member = new Etcd3({
          ...made.options,
          hosts: [endpoint],
          faultHandling: { ...made.options.faultHandling, host: () => noop, global: noop },
          // gRPC's reconnect back-off grows to minutes during an outage (1 s × 1.6ⁿ): once etcd is back a
          // renewal could wait seconds for the channel while peers already get through. Cap it low.
          grpcOptions: {
            ...made.options.grpcOptions,
            'grpc.initial_reconnect_backoff_ms': RECONNECT_FIRST_MS,
            'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS,
            // grpc-js shares connections (subchannels) between channels of the same target and options,
            // process-wide: a "new" client after reset() would reuse the dead connection. Own pool each.
            'grpc.use_local_subchannel_pool': 1,
          },
        });
        endpointsByClient.set(member, [endpoint]);
        return member;
      };
      let current: Etcd3 | null = null;
      return {
        endpoint,
        get client(): Etcd3 {
          current ??= open();
          return current;
        },
        reset(): void {
          current?.close();
          current = null;
        },
      };
    });
    // The members live as long as the client they came from: wrap its close() (etcd3 has no close event).
    const close = client.close.bind(client);
    client.close = () => {
      for (const m of members) m.reset();
      close();
    };
  }
  membersByClient.set(client, members);
  return members;
}

/** Runs an etcd call, turning transport failures into EtcdUnavailableError naming the endpoints. */
export async function etcdCall<T>(client: Etcd3, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw wrapEtcdError(err, endpointsOf(client), operation);
  }
}
