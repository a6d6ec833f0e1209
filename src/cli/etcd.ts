import { ClientClosedError, GRPCDeadlineExceededError, GRPCGenericError, type Etcd3 } from 'etcd3';
import type { Config } from '../config/index.js';
import { connectEtcd, EtcdUnavailableError } from '../locks/index.js';
import { EXIT_FAILED, UsageError } from './errors.js';

/**
 * How long one CLI etcd call may take before the CLI gives up: a person is waiting, and an etcd that
 * accepts connections but never answers would otherwise hang `status` forever (etcd3 sets no deadline
 * of its own, and its `dialTimeout` option is not used by the library). `--etcd-timeout` /
 * `EBS_FAILOVER_ETCD_TIMEOUT` change it.
 */
export const DEFAULT_CLI_ETCD_TIMEOUT_MS = 5_000;

/** etcd could not be reached within the bound, or refused the connection. Exit 1, one readable line. */
export class EtcdUnreachableError extends Error {
  override readonly name = 'EtcdUnreachableError';
  readonly exitCode = EXIT_FAILED;
  constructor(
    readonly endpoints: readonly string[],
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach etcd at ${endpoints.map(hostPort).join(', ')} (${reason})`, options);
  }
}

/** `http://127.0.0.1:2379` → `127.0.0.1:2379`: what an operator types and looks for. */
function hostPort(endpoint: string): string {
  return endpoint.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
}

export function parseEtcdTimeoutSeconds(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_CLI_ETCD_TIMEOUT_MS;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`bad --etcd-timeout "${raw}": expected seconds > 0`);
  return Math.round(value * 1000);
}

export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

interface Bound {
  endpoints: readonly string[];
  timeoutMs: number;
}

/** The bound of each client `openEtcd` made; a client made elsewhere (tests) has none. */
const bounds = new WeakMap<Etcd3, Bound>();

export function openEtcd(config: Config['etcd'], timeoutMs = DEFAULT_CLI_ETCD_TIMEOUT_MS): Etcd3 {
  const client = connectEtcd({ ...config, dialTimeoutMs: timeoutMs });
  bounds.set(client, { endpoints: config.endpoints, timeoutMs });
  return client;
}

function messages(err: unknown): string {
  const out: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth += 1) out.push(e.message);
  return out.join(' | ');
}

/**
 * Why etcd could not be reached, in words, or null when `err` is not a transport failure (a refused
 * txn, a bad value, an auth error are reported as they are).
 */
export function unreachableReason(err: unknown, timeoutMs: number): string | null {
  // Only etcd's own error types: our messages ("timed out waiting for …") must never read as etcd's.
  if (!(err instanceof GRPCGenericError || err instanceof EtcdUnavailableError || err instanceof ClientClosedError)) return null;
  if (err instanceof ClientClosedError) return 'the client was closed before etcd answered';
  const text = messages(err);
  if (/ECONNREFUSED/.test(text)) return 'connection refused';
  if (/ENOTFOUND|EAI_AGAIN|Name resolution failed/i.test(text)) return 'host name not found';
  if (/EHOSTUNREACH|ENETUNREACH/.test(text)) return 'host unreachable';
  if (/ECONNRESET|socket hang up|Connection dropped/i.test(text)) return 'connection reset';
  if (/certificate|SSL|TLS|handshake/i.test(text)) return 'TLS handshake failed';
  if (err instanceof GRPCDeadlineExceededError || /DEADLINE_EXCEEDED|deadline|ETIMEDOUT/i.test(text)) return `no answer within ${formatSeconds(timeoutMs)}`;
  // e.g. `14 UNAVAILABLE: etcdserver: no leader`: keep etcd's words, drop gRPC's status prefix.
  const last = text.split(' | ').at(-1) ?? text;
  return last.replace(/^\d+ [A-Z_]+: /, '').split('. ')[0] ?? last;
}

/** `err` as an EtcdUnreachableError when it is an etcd transport failure; null otherwise. */
export function asEtcdUnreachable(err: unknown, endpoints: readonly string[], timeoutMs: number): EtcdUnreachableError | null {
  if (err instanceof EtcdUnreachableError) return err;
  const reason = unreachableReason(err, timeoutMs);
  return reason === null ? null : new EtcdUnreachableError(endpoints, reason, { cause: err });
}

/**
 * Runs one etcd call of a CLI command within the client's bound: past it, or on a transport error,
 * throws EtcdUnreachableError. The abandoned call is cancelled when the session closes the client.
 */
export async function etcdBounded<T>(client: Etcd3, fn: () => Promise<T>): Promise<T> {
  const bound = bounds.get(client);
  if (!bound) return fn();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EtcdUnreachableError(bound.endpoints, `no answer within ${formatSeconds(bound.timeoutMs)}`)), bound.timeoutMs);
  });
  try {
    return await Promise.race([fn(), timeout]);
  } catch (err) {
    throw asEtcdUnreachable(err, bound.endpoints, bound.timeoutMs) ?? err;
  } finally {
    clearTimeout(timer);
  }
}
