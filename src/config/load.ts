import { readFileSync } from 'node:fs';
import { Config } from './schema.js';
import { configFromEnv, ENV_PREFIX, ENV_VARS } from './env.js';
import { ConfigError, fieldPath, type ConfigProblem } from './errors.js';
import { InsecureFileModeError, SecretFileError, checkSecretFileMode, readPasswordFile } from '../security/files.js';

export interface LoadConfigOptions {
  /** A JSON file; missing `file` means none. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Nested partial from command-line flags (highest precedence). */
  flags?: Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Later layers win field by field; arrays and scalars replace, objects merge. */
export function mergeLayers(...layers: Array<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const prev = out[key];
      out[key] = isPlainObject(prev) && isPlainObject(value) ? mergeLayers(prev, value) : value;
    }
  }
  return out;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('(file)', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('(file)', `${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(json)) throw new ConfigError('(root)', 'expected a JSON object', `file ${file}`);
  return json;
}

/** Warnings about a loaded config (secret files accessible by others, started anyway), for the caller to log. */
const warningsOf = new WeakMap<Config, string[]>();
export function configWarnings(config: Config): readonly string[] {
  return warningsOf.get(config) ?? [];
}

/**
 * Secret files are checked where the config is loaded, so that every command and daemon refuses a
 * too-open key or password file before it does anything: keyFile's mode, and passwordFile's mode
 * and contents (which become `etcd.password`).
 */
function withSecrets(config: Config): Config {
  const { etcd } = config;
  const warnings: string[] = [];
  try {
    if (etcd.keyFile !== undefined) {
      const w = checkSecretFileMode('etcd.keyFile', etcd.keyFile, etcd.allowInsecureFileModes);
      if (w) warnings.push(w);
    }
    if (etcd.passwordFile !== undefined) {
      const { password, warning } = readPasswordFile(etcd.passwordFile, etcd.allowInsecureFileModes);
      if (warning) warnings.push(warning);
      config = { ...config, etcd: { ...etcd, password } };
    }
  } catch (err) {
    if (err instanceof InsecureFileModeError || err instanceof SecretFileError) throw new ConfigError(err.field, err.message.slice(err.field.length + 1));
    throw err;
  }
  warningsOf.set(config, warnings);
  return config;
}

function hasPath(layer: Record<string, unknown>, path: ReadonlyArray<PropertyKey>): boolean {
  let node: unknown = layer;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return false;
    node = (node as Record<PropertyKey, unknown>)[part];
    if (node === undefined) return false;
  }
  return true;
}

/** Where a value at `path` came from: the highest layer holding it (flags > env > file), as the merge does. */
function sourceOf(path: ReadonlyArray<PropertyKey>, layers: { flags: Record<string, unknown>; env: Record<string, unknown>; file: Record<string, unknown>; fileName?: string }): string | undefined {
  if (hasPath(layers.flags, path)) return 'flags';
  if (hasPath(layers.env, path)) {
    const spec = ENV_VARS.find((v) => v.path.every((part, i) => part === path[i]));
    return spec ? `env ${ENV_PREFIX}${spec.name}` : 'env';
  }
  if (layers.fileName !== undefined && hasPath(layers.file, path)) return `file ${layers.fileName}`;
  return undefined;
}

/** The environment, variable by variable, so that every bad variable is reported, not just the first. */
function envLayer(env: NodeJS.ProcessEnv, problems: ConfigProblem[]): Record<string, unknown> {
  try {
    return configFromEnv(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
  }
  let out: Record<string, unknown> = {};
  for (const spec of ENV_VARS) {
    const name = ENV_PREFIX + spec.name;
    try {
      out = mergeLayers(out, configFromEnv({ [name]: env[name] }));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push({ field: err.field, reason: err.reason, source: err.source });
    }
  }
  return out;
}

/**
 * Loads the daemon/CLI config: flags > env (`EBS_FAILOVER_*`) > file > defaults, validated once with
 * zod. Throws `ConfigError` naming every bad field and where each came from.
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const file = opts.file ? readConfigFile(opts.file) : {};
  const problems: ConfigProblem[] = [];
  const env = envLayer(opts.env ?? process.env, problems);
  const flags = opts.flags ?? {};
  const merged = mergeLayers(file, env, flags);
  if (merged.etcd === undefined) {
    // The usual first run: say how to give the one required setting, not zod's "expected object".
    problems.push({ field: 'etcd.endpoints', reason: `no etcd endpoints configured: pass --etcd http://10.0.0.5:2379, set ${ENV_PREFIX}ETCD_ENDPOINTS, or give a config file (--config FILE or ${ENV_PREFIX}CONFIG) with {"etcd":{"endpoints":["http://10.0.0.5:2379"]}}` });
  }
  const parsed = Config.safeParse(merged);
  if (parsed.success && problems.length === 0) return withSecrets(parsed.data);
  const layers = { flags, env, file, fileName: opts.file };
  for (const issue of parsed.success ? [] : parsed.error.issues) {
    if (issue.path.length === 1 && issue.path[0] === 'etcd' && merged.etcd === undefined) continue; // said above
    if (issue.code === 'unrecognized_keys') {
      // One line per unknown key, each from the layer that holds it (not blamed on flags).
      for (const key of issue.keys) problems.push({ field: fieldPath(issue.path), reason: `unknown key "${key}"`, source: sourceOf([...issue.path, key], layers) });
      continue;
    }
    problems.push({ field: fieldPath(issue.path), reason: issue.message, source: sourceOf(issue.path, layers) });
  }
  throw ConfigError.of(problems);
}
