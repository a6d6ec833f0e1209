/**
 * Shared parts of the real-stack benches (bench/failover.ts, bench/steady.ts): AWS-like timings scaled by
 * one factor, the world (src/testing/world.ts: 3-member etcd, EC2 endpoint over HTTP, agent and controller
 * processes) with AWS's throttling buckets scaled alike, and small readers of what the world recorded.
 */
import { readFileSync } from 'node:fs';
import { ControllerConfig } from '../src/config/index.js';
import { DEFAULT_DECIDE_CONFIG } from '../src/controller/observed.js';
import { AWS_THROTTLE_DEFAULTS } from '../src/sim/ec2/index.js';
import type { World } from '../src/testing/world.js';

/** Every AWS-like time is multiplied by this (and every rate divided by it); printed by each bench. */
export const SCALE = Number(process.env.BENCH_SCALE ?? '0.2');
export const AZ = 'us-east-1a';

/** AWS-like figures (ms) before scaling, and the project's defaults they go with. */
export const AWS_LIKE = { attachMs: 5_000, forcedDetachMs: 10_000, ttlMs: 10_000, fenceMarginMs: 3_000, electionTtlMs: 10_000 } as const;

export const scaled = (ms: number): number => Math.round(ms * SCALE);

/** The agents' lease TTL (default 10 s) scaled; the config refuses below 2 s, so SCALE < 0.2 is refused here too. */
export const TTL_MS = scaled(AWS_LIKE.ttlMs);
if (TTL_MS < 2_000) throw new RangeError(`BENCH_SCALE ${SCALE} makes the lease TTL ${TTL_MS} ms, below the config's 2 s minimum`);

/** AWS's default buckets with the refill sped up by 1/SCALE: the same calls per simulated second. */
export const BUCKETS = {
  mutating: { burst: AWS_THROTTLE_DEFAULTS.mutating.burst, perSecond: AWS_THROTTLE_DEFAULTS.mutating.perSecond / SCALE },
  describeFiltered: { burst: AWS_THROTTLE_DEFAULTS.describeFiltered.burst, perSecond: AWS_THROTTLE_DEFAULTS.describeFiltered.perSecond / SCALE },
  describeUnfiltered: { burst: AWS_THROTTLE_DEFAULTS.describeUnfiltered.burst, perSecond: AWS_THROTTLE_DEFAULTS.describeUnfiltered.perSecond / SCALE },
};

/** The controller's client-side limiter with the same scaled rates (its default is AWS's unscaled). */
export const CLIENT_BUCKET = {
  mutating: BUCKETS.mutating,
  describe: BUCKETS.describeFiltered,
};

const CONFIG_DEFAULTS = ControllerConfig.parse({});
/** Defaults of the controller configuration (src/config/schema.ts) that the fixture does not take from it, read from it. */
export const CONTROLLER_DEFAULTS = {
  parallelism: CONFIG_DEFAULTS.parallelism,
  forceDetachAfterMs: CONFIG_DEFAULTS.forceDetachAfterMs,
  reportTimeoutMs: DEFAULT_DECIDE_CONFIG.reportTimeoutMs,
} as const;

export function throttleWorld(world: World): void {
  world.ec2.sim.setThrottle({ enabled: true, scale: 1, buckets: BUCKETS });
}

export interface LedgerLine {
  at: number;
  instanceId: string;
  unit?: string;
  active?: boolean;
  mountUnit?: string;
  mounted?: boolean;
}

export function readLedger(world: World): LedgerLine[] {
  return readFileSync(world.ledger, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LedgerLine);
}

/** Units active now, by unit: the holder (from the ledger's last line per host and unit). */
export function activeUnits(lines: readonly LedgerLine[]): Map<string, string> {
  const last = new Map<string, boolean>();
  for (const l of lines) if (l.unit !== undefined && l.active !== undefined) last.set(`${l.instanceId} ${l.unit}`, l.active);
  const out = new Map<string, string>();
  for (const [k, up] of last) {
    if (!up) continue;
    const [instanceId, unit] = k.split(' ') as [string, string];
    out.set(unit, instanceId);
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, budgetMs: number, check: () => boolean | Promise<boolean>, everyMs = 200): Promise<void> {
  const deadline = Date.now() + budgetMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${budgetMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** p-th percentile (nearest rank) of a sorted list. */
export function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Prometheus text: the sum of every sample of `name` (all label sets) whose labels contain `labelFilter`. */
export function metricSum(text: string, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m?.[1] !== name || !(m[2] ?? '').includes(labelFilter)) continue;
    sum += Number(m[3]);
  }
  return sum;
}

export async function etcdMetrics(world: World): Promise<string[]> {
  return Promise.all(world.etcd.members.map(async (m) => (await fetch(`${m.endpoint}/metrics`)).text()));
}

/** Index of the member that leads the etcd cluster now (from its /metrics), or -1. */
export async function etcdLeader(world: World): Promise<number> {
  const texts = await etcdMetrics(world);
  return texts.findIndex((t) => metricSum(t, 'etcd_server_is_leader') === 1);
}
