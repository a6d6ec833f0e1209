import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { silentLogger, type Logger } from '../log/logger.js';
import type { SystemdPort } from './systemd/port.js';

/**
 * How the agent publishes "this machine holds vol-…" to fleet, so that fleet schedules the unit
 * (`MachineMetadata=postgres=vol-…`) here and nowhere else. Two ways:
 * - API (fleet ≥ 1.0): PATCH /fleet/v1/machines through `FleetClient`.
 * - Drop-in (fleet < 1.0, no metadata API): fleet reads `FLEET_METADATA` from its environment at start,
 *   so the agent writes a `fleet.service` drop-in and restarts fleet — only when the value changed.
 *   Measured on real fleetd v1.0.0 (issue 11): fleetd STOPS EVERY FLEET UNIT of its host on SIGTERM,
 *   so a restart would take down every other service running there. The drop-in mode therefore never
 *   restarts fleet while any fleet unit (a unit fleet wrote under /run/fleet/units) is active or
 *   changing: it refuses with FleetRestartRefusedError and changes nothing. Use the API mode (fleet
 *   ≥ 1.0, `PATCH /fleet/v1/machines`), the only safe way; the drop-in is kept for fleet < 1.0 hosts
 *   that run one fleet unit at most.
 */
export interface MetadataPort {
  readonly kind: 'api' | 'dropin' | 'none';
  set(key: string, value: string): Promise<void>;
  remove(key: string): Promise<void>;
}

/** The part of `FleetClient` (src/fleet) the API mode uses. */
export interface FleetMetadataClient {
  setMetadata(machineId: string, key: string, value: string): Promise<void>;
  removeMetadata(machineId: string, key: string): Promise<void>;
}

/** Metadata key or value that fleet's `key=value,key=value` syntax cannot carry. */
export class MetadataValueError extends Error {
  override readonly name = 'MetadataValueError';
  constructor(
    readonly key: string,
    readonly value: string,
  ) {
    super(`fleet metadata ${key}=${value} cannot be written (keys are [A-Za-z0-9_.-]+, values have no ',', '=', quotes or whitespace)`);
  }
}

const KEY_RE = /^[A-Za-z0-9_.-]+$/;
const VALUE_RE = /^[^,=\s"'\\]*$/;

function checkEntry(key: string, value: string): void {
  if (!KEY_RE.test(key) || !VALUE_RE.test(value)) throw new MetadataValueError(key, value);
}

export function apiMetadata(client: FleetMetadataClient, machineId: string): MetadataPort {
  return {
    kind: 'api',
    set: async (key, value) => {
      checkEntry(key, value);
      await client.setMetadata(machineId, key, value);
    },
    remove: (key) => client.removeMetadata(machineId, key),
  };
}

/** systemd mode without fleet: nothing schedules units from metadata, so there is nothing to publish. */
export function noMetadata(): MetadataPort {
  return { kind: 'none', set: async () => undefined, remove: async () => undefined };
}

export const FLEET_DROPIN_PATH = '/run/systemd/system/fleet.service.d/50-ebs-failover-metadata.conf';
/**
 * 60 s for fleet.service's restart job: fleetd stops within a second or two, but its start waits for
 * etcd and may take longer on a loaded host; the metadata step fails (and is retried) beyond it.
 */
const FLEET_RESTART_TIMEOUT_MS = 60_000;

/** fleet v1.0.0 writes the unit files of the units it runs on a host here (then links them into systemd). */
export const FLEET_UNITS_DIR = '/run/fleet/units';

/** The drop-in would need a fleet restart, and fleet units run here: restarting fleet would stop them. */
export class FleetRestartRefusedError extends Error {
  override readonly name = 'FleetRestartRefusedError';
  constructor(
    readonly key: string,
    readonly runningUnits: string[],
  ) {
    super(`fleet metadata ${key} not changed: it needs a fleet restart, which would stop the fleet units running here (${runningUnits.join(', ')}); use fleet's metadata API (fleet >= 1.0)`);
  }
}

export interface DropinMetadataOptions {
  systemd: SystemdPort;
  /** Static metadata fleet must keep (e.g. `role=db,az=us-east-1a`), as in fleet's own config. */
  base?: string | Record<string, string>;
  /** Prefix of every path (tests: `/proc/<pid>/root` of a systemd host). Default ''. */
  rootDir?: string;
  dropinPath?: string;
  fleetUnit?: string;
  /** Where fleet keeps the units it runs on this host (default FLEET_UNITS_DIR, under rootDir). */
  fleetUnitsDir?: string;
  log?: Logger;
}

/** Parses fleet's `a=b,c=d` metadata syntax (whitespace around entries is ignored, as fleet does). */
export function parseFleetMetadata(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const entry = part.trim();
    if (!entry) continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    out.set(entry.slice(0, eq).trim(), entry.slice(eq + 1).trim());
  }
  return out;
}

export function formatFleetMetadata(entries: Map<string, string>): string {
  return [...entries].map(([k, v]) => `${k}=${v}`).join(',');
}

/** The drop-in's text for a metadata value. */
export function renderDropin(value: string): string {
  return `# Written by the ebs-failover agent: fleet < 1.0 has no metadata API.\n[Service]\nEnvironment=FLEET_METADATA=${value}\n`;
}

/** Reads the FLEET_METADATA value back out of a drop-in written by `renderDropin` (or by hand). */
export function readDropinValue(text: string): string | undefined {
  let value: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^\s*Environment=\s*"?FLEET_METADATA=([^"]*)"?\s*$/.exec(line);
    if (m) value = m[1];
  }
  return value;
}

/**
 * Drop-in mode. Operations are serialised (volumes reconcile in parallel, and two read-modify-write
 * cycles on one file would lose an entry). The written value is: base entries, then every key already
 * in the drop-in (other volumes of this host), with this call's change applied.
 */
export function dropinMetadata(opts: DropinMetadataOptions): MetadataPort & { current(): Promise<Map<string, string>> } {
  const path = join(opts.rootDir ?? '', opts.dropinPath ?? FLEET_DROPIN_PATH);
  const fleetUnit = opts.fleetUnit ?? 'fleet.service';
  const base = typeof opts.base === 'string' ? parseFleetMetadata(opts.base) : new Map(Object.entries(opts.base ?? {}));
  const log = (opts.log ?? silentLogger()).child({ dropin: path });
  let queue: Promise<unknown> = Promise.resolve();

  const current = async (): Promise<Map<string, string>> => {
    const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    const existing = readDropinValue(text);
    return new Map([...base, ...parseFleetMetadata(existing ?? '')]);
  };

  /** fleet units active (or starting/stopping) on this host: a fleet restart would stop them. */
  const runningFleetUnits = async (): Promise<string[]> => {
    const dir = join(opts.rootDir ?? '', opts.fleetUnitsDir ?? FLEET_UNITS_DIR);
    const names = await readdir(dir).catch(() => [] as string[]);
    const running: string[] = [];
    for (const name of names) {
      const state = await opts.systemd.unitState(name);
      if (state.activeState !== 'inactive' && state.activeState !== 'failed') running.push(name);
    }
    return running;
  };

  const update = (key: string, change: (m: Map<string, string>) => void): Promise<void> => {
    const run = queue.then(async () => {
      const before = await current();
      const after = new Map(before);
      change(after);
      for (const [k, v] of base) if (!after.has(k)) after.set(k, v);
      const value = formatFleetMetadata(after);
      // Unchanged (including removing a key that is not there): no write and, above all, no fleet restart.
      if (value === formatFleetMetadata(before)) {
        log.debug({ value }, 'fleet metadata unchanged; fleet not restarted');
        return;
      }
      const running = await runningFleetUnits();
      if (running.length > 0) throw new FleetRestartRefusedError(key, running);
      await mkdir(dirname(path), { recursive: true });
      // Write-then-rename so that a crash never leaves fleet a half-written drop-in.
      await writeFile(`${path}.tmp`, renderDropin(value));
      await rename(`${path}.tmp`, path);
      await opts.systemd.reload();
      await opts.systemd.restartUnit(fleetUnit, { timeoutMs: FLEET_RESTART_TIMEOUT_MS });
      log.info({ value }, 'fleet metadata drop-in changed; fleet restarted');
    });
    queue = run.catch(() => undefined);
    return run;
  };

  return {
    kind: 'dropin',
    current,
    set: async (key, value) => {
      checkEntry(key, value);
      await update(key, (m) => m.set(key, value));
    },
    remove: (key) =>
      update(key, (m) => {
        // A base (static) key is configuration, not ours to drop.
        if (!base.has(key)) m.delete(key);
      }),
  };
}
