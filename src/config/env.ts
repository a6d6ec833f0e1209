import { ConfigError } from './errors.js';

/** How an environment string becomes a config value. */
type Kind = 'string' | 'list' | 'int' | 'bool' | 'labels';

/** `EBS_FAILOVER_<NAME>` → config path. One table, so `--help` and the loader cannot drift. */
export const ENV_VARS: ReadonlyArray<{ name: string; path: string[]; kind: Kind }> = [
  { name: 'ETCD_ENDPOINTS', path: ['etcd', 'endpoints'], kind: 'list' },
  { name: 'ETCD_CA_FILE', path: ['etcd', 'caFile'], kind: 'string' },
  { name: 'ETCD_CERT_FILE', path: ['etcd', 'certFile'], kind: 'string' },
  { name: 'ETCD_KEY_FILE', path: ['etcd', 'keyFile'], kind: 'string' },
  { name: 'ETCD_USERNAME', path: ['etcd', 'username'], kind: 'string' },
  { name: 'ETCD_PASSWORD', path: ['etcd', 'password'], kind: 'string' },
  { name: 'ETCD_PASSWORD_FILE', path: ['etcd', 'passwordFile'], kind: 'string' },
  { name: 'ETCD_ALLOW_INSECURE_FILE_MODES', path: ['etcd', 'allowInsecureFileModes'], kind: 'bool' },
  { name: 'PREFIX', path: ['prefix'], kind: 'string' },
  { name: 'AWS_REGION', path: ['aws', 'region'], kind: 'string' },
  { name: 'AWS_ENDPOINT', path: ['aws', 'endpoint'], kind: 'string' },
  { name: 'LEASE_TTL_MS', path: ['lease', 'ttlMs'], kind: 'int' },
  { name: 'FENCE_MARGIN_MS', path: ['lease', 'fenceMarginMs'], kind: 'int' },
  { name: 'FORCE_DETACH_AFTER_MS', path: ['controller', 'forceDetachAfterMs'], kind: 'int' },
  { name: 'PARALLELISM', path: ['controller', 'parallelism'], kind: 'int' },
  { name: 'STOP_INSTANCE_ON_FENCE', path: ['controller', 'stopInstanceOnFence'], kind: 'bool' },
  { name: 'METRICS_LISTEN', path: ['controller', 'metricsListen'], kind: 'string' },
  { name: 'AUTO_RESTORE', path: ['controller', 'autoRestore', 'enabled'], kind: 'bool' },
  { name: 'AUTO_RESTORE_AFTER_MS', path: ['controller', 'autoRestore', 'afterMs'], kind: 'int' },
  { name: 'AUTO_RESTORE_SNAPSHOT_MAX_AGE_MS', path: ['controller', 'autoRestore', 'snapshotMaxAgeMs'], kind: 'int' },
  { name: 'INSTANCE_ID', path: ['agent', 'instanceId'], kind: 'string' },
  { name: 'AZ', path: ['agent', 'az'], kind: 'string' },
  { name: 'PRIVATE_IP', path: ['agent', 'privateIp'], kind: 'string' },
  { name: 'MACHINE_ID', path: ['agent', 'machineId'], kind: 'string' },
  { name: 'MACHINE_ID_FILE', path: ['agent', 'machineIdFile'], kind: 'string' },
  { name: 'MODE', path: ['agent', 'mode'], kind: 'string' },
  { name: 'FLEET_SOCKET', path: ['agent', 'fleetSocket'], kind: 'string' },
  { name: 'DEVICE_ROOT', path: ['agent', 'deviceRoot'], kind: 'string' },
  { name: 'SYSTEMD_BUS', path: ['agent', 'systemdBus'], kind: 'string' },
  { name: 'LABELS', path: ['agent', 'labels'], kind: 'labels' },
  { name: 'LEASE_STATE_FILE', path: ['agent', 'leaseStateFile'], kind: 'string' },
  { name: 'PEER_LISTEN', path: ['agent', 'peerListen'], kind: 'string' },
  { name: 'VERIFY_EVERY_MS', path: ['agent', 'verifyEveryMs'], kind: 'int' },
];

export const ENV_PREFIX = 'EBS_FAILOVER_';

/** `a,b , c` → `['a','b','c']` */
export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** `role=db,tier=1` → `{ role: 'db', tier: '1' }`; throws on an item without `=`. */
export function parseLabels(raw: string, field: string, source?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of parseList(raw)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(field, `expected key=value, got "${item}"`, source);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function convert(raw: string, kind: Kind, field: string, source: string): unknown {
  switch (kind) {
    case 'string':
      return raw;
    case 'list':
      return parseList(raw);
    case 'labels':
      return parseLabels(raw, field, source);
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(field, `expected a whole number, got "${raw}"`, source);
      return Number(raw);
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
      throw new ConfigError(field, `expected true or false, got "${raw}"`, source);
    }
  }
}

/** The nested partial config the environment describes (only variables that are set). */
export function configFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of ENV_VARS) {
    const raw = env[ENV_PREFIX + spec.name];
    // `VAR=` in a unit's EnvironmentFile means "not set", as it does for most tools.
    if (raw === undefined || raw === '') continue;
    setPath(out, spec.path, convert(raw, spec.kind, spec.path.join('.'), `env ${ENV_PREFIX}${spec.name}`));
  }
  return out;
}

export function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  path.slice(0, -1).forEach((key) => {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  });
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}
