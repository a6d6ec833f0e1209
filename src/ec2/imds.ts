/**
 * IMDSv2 client: the agent learns its own instance id, AZ and private IP from the instance metadata
 * service. IMDSv2 needs a session token (PUT) first; every GET carries it. Only loopback stand-ins are
 * used in tests, through `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the variable the AWS SDKs read too).
 */

export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';

/** IMDS answers in well under 10 ms on EC2; 2 s per request bounds a start-up off EC2 without stalling it. */
export const IMDS_REQUEST_TIMEOUT_MS = 2_000;

/** The token only needs to outlive our three GETs; 6 hours is the maximum, 60 s is plenty. */
export const IMDS_TOKEN_TTL_SECONDS = 60;

export interface InstanceIdentity {
  instanceId: string;
  az: string;
  privateIp: string;
}

export class ImdsError extends Error {
  override readonly name = 'ImdsError';
  constructor(
    readonly endpoint: string,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`instance metadata ${path} from ${endpoint}: ${message}`, options);
  }
}

export interface ImdsOptions {
  endpoint?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

function resolveEndpoint(opts: ImdsOptions): string {
  const raw = opts.endpoint ?? (opts.env ?? process.env).AWS_EC2_METADATA_SERVICE_ENDPOINT ?? DEFAULT_IMDS_ENDPOINT;
  return raw.replace(/\/+$/, '');
}

async function request(endpoint: string, path: string, init: RequestInit, timeoutMs: number): Promise<string> {
  let res: Response;
  try {
    res = await fetch(`${endpoint}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message;
    throw new ImdsError(endpoint, path, reason, { cause: err });
  }
  const body = await res.text();
  if (!res.ok) throw new ImdsError(endpoint, path, `HTTP ${res.status}`);
  return body.trim();
}

/** Fetches instance id, AZ and private IPv4 with one IMDSv2 token. */
export async function fetchInstanceIdentity(opts: ImdsOptions = {}): Promise<InstanceIdentity> {
  const endpoint = resolveEndpoint(opts);
  const timeoutMs = opts.timeoutMs ?? IMDS_REQUEST_TIMEOUT_MS;
  const token = await request(
    endpoint,
    '/latest/api/token',
    { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(IMDS_TOKEN_TTL_SECONDS) } },
    timeoutMs,
  );
  const get = (path: string): Promise<string> =>
    request(endpoint, `/latest/meta-data/${path}`, { headers: { 'X-aws-ec2-metadata-token': token } }, timeoutMs);
  const [instanceId, az, privateIp] = await Promise.all([get('instance-id'), get('placement/availability-zone'), get('local-ipv4')]);
  return { instanceId, az, privateIp };
}

/**
 * Config overrides win; IMDS is only asked when something is missing (so a fully configured test or
 * demo host never touches the network).
 */
export async function resolveInstanceIdentity(
  overrides: Partial<InstanceIdentity>,
  opts: ImdsOptions = {},
): Promise<InstanceIdentity> {
  const { instanceId, az, privateIp } = overrides;
  if (instanceId && az && privateIp) return { instanceId, az, privateIp };
  const fetched = await fetchInstanceIdentity(opts);
  return { instanceId: instanceId ?? fetched.instanceId, az: az ?? fetched.az, privateIp: privateIp ?? fetched.privateIp };
}
