import { readFileSync } from 'node:fs';
import { Config } from './schema.js';
import { configFromEnv } from './env.js';
import { ConfigError, fromZodError } from './errors.js';
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

/**
 * Loads the daemon/CLI config: flags > env (`EBS_FAILOVER_*`) > file > defaults, validated once with
 * zod. Throws `ConfigError` naming the first bad field and where it came from.
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const file = opts.file ? readConfigFile(opts.file) : {};
  const env = configFromEnv(opts.env ?? process.env);
  const flags = opts.flags ?? {};
  const parsed = Config.safeParse(mergeLayers(file, env, flags));
  if (parsed.success) return withSecrets(parsed.data);
  const path = parsed.error.issues[0]?.path ?? [];
  const source = hasPath(flags, path) ? 'flags' : hasPath(env, path) ? 'env' : hasPath(file, path) && opts.file ? `file ${opts.file}` : undefined;
  throw fromZodError(parsed.error, source);
}
