/**
 * The fault schedule of one chaos seed: a pure function of (seed, options), so `--seed S` replays
 * exactly what seed S did. The runner (runner.ts) turns each step into real signals, proxy modes,
 * `/_sim/*` calls and CLI runs; nothing here touches a process.
 *
 * Durations scale with the lease TTL (a fault shorter than the TTL must cause nothing, a longer one a
 * failover) and with the run length (an etcd outage of up to 60 s only fits in a long run).
 */
import { createRng, type Rng } from '../prng.js';

export const AZS = ['us-east-1a', 'us-east-1b'] as const;
export type Az = (typeof AZS)[number];

export type Role = 'agent' | 'controller' | 'etcd';
export type NetMode = 'cut' | 'blackhole' | 'delay' | 'slow-close';

export type FaultSpec =
  /** SIGKILL, restarted (same identity, same data) after `downMs`. */
  | { kind: 'proc-kill'; role: Role; index: number; downMs: number }
  /** SIGSTOP, then SIGCONT after `downMs` (a long GC pause, a frozen VM). */
  | { kind: 'proc-stop'; role: Role; index: number; downMs: number }
  /** A clean restart (SIGTERM, start again at once). */
  | { kind: 'proc-restart'; role: Role; index: number }
  /** Every etcd member stopped (SIGSTOP) or killed and restarted: an outage every host shares. */
  | { kind: 'etcd-outage'; mode: 'stop' | 'kill'; downMs: number; quietAfterMs: number }
  /** One process's own path to etcd (all members) or to EC2 through its fault proxy. */
  | { kind: 'net'; side: 'agent' | 'controller'; index: number; path: 'etcd' | 'ec2'; mode: NetMode; delayMs: number; downMs: number }
  /** Every client's path to one etcd member (one member unreachable, refusing, or half-open). */
  | { kind: 'net-member'; member: number; mode: NetMode; delayMs: number; downMs: number }
  /** The next `count` calls of `action` fail with a 5xx or RequestLimitExceeded; cleared after `downMs`. */
  | { kind: 'ec2-errors'; action: string; count: number; error: 500 | 503 | 'throttle'; downMs: number }
  /** A detach of the service's volume hangs in `detaching`, or an attach in `attaching`, until forced. */
  | { kind: 'ec2-stuck'; which: 'detach' | 'attach'; service: number; downMs: number }
  /** Attach takes `attachMs` for a while. */
  | { kind: 'ec2-slow-attach'; attachMs: number; downMs: number }
  /** The service's volume detached behind the controller's back (console, another tool). */
  | { kind: 'oob-detach'; service: number; force: boolean }
  /** The service's volume, if it is free, attached behind the controller's back to a host of its AZ. */
  | { kind: 'oob-attach'; service: number; host: number }
  | { kind: 'op-move'; service: number; toHost: number | null; force: boolean; timeoutS: number }
  | { kind: 'op-cancel'; service: number }
  | { kind: 'op-snapshot'; service: number }
  | { kind: 'op-service-remove'; service: number }
  | { kind: 'op-service-add'; service: number }
  /** Every controller stopped; a manual move whose CLI gives up after `timeoutS`; controllers back after `downMs`. */
  | { kind: 'leaderless-move'; service: number; timeoutS: number; downMs: number }
  /**
   * The leader frozen right before a DetachVolume (its first attempt throttled, so it sits in the SDK's
   * retry back-off when SIGSTOP lands); the holder was killed to start the failover; the successor
   * finishes it, the holder comes back and an operator moves the service back; then the thaw.
   */
  | { kind: 'freeze-leader-before-detach'; service: number; downMs: number };

export type FaultKind = FaultSpec['kind'];

export interface Step {
  /** ms after the fault phase starts. */
  atMs: number;
  fault: FaultSpec;
}

export interface WorldSpec {
  hosts: { az: Az }[];
  controllers: number;
  /** Every service the world knows (agents define all their units); the first `registered` are added at start. */
  services: { az: Az }[];
  registered: number;
}

export interface Schedule {
  seed: number;
  world: WorldSpec;
  /** Fault phase length; the run heals everything after it. */
  durationMs: number;
  steps: Step[];
}

export interface ScheduleOptions {
  /** Fault phase length in ms. */
  durationMs: number;
  /** Agent lease TTL in ms (durations are drawn around it). */
  ttlMs: number;
  /** Fixed host count (4–6 drawn otherwise). */
  hosts?: number;
}

/** Faults that must have the world to themselves: their checks need a clean before and after. */
const EXCLUSIVE: ReadonlySet<FaultKind> = new Set(['etcd-outage', 'leaderless-move', 'freeze-leader-before-detach']);

/** Actions an error burst may hit: the mutating ones and the reads every wait depends on ('*' = any). */
const EC2_FAULT_ACTIONS = ['AttachVolume', 'DetachVolume', 'DescribeVolumes', 'DescribeInstances', '*'] as const;

export function drawWorld(rng: Rng, hostsOpt?: number): WorldSpec {
  const hostCount = hostsOpt ?? rng.int(4, 6);
  if (hostCount < 4) throw new RangeError('at least 4 hosts (two per AZ)');
  // Two per AZ at least, so every AZ has somewhere to fail over to; the rest drawn.
  const hosts: { az: Az }[] = [{ az: AZS[0] }, { az: AZS[0] }, { az: AZS[1] }, { az: AZS[1] }];
  while (hosts.length < hostCount) hosts.push({ az: rng.pick(AZS) });
  const serviceCount = rng.int(3, 8);
  const services = Array.from({ length: serviceCount + 1 }, () => ({ az: rng.chance(0.65) ? AZS[0] : AZS[1] }));
  return { hosts, controllers: rng.int(2, 3), services, registered: serviceCount };
}

export function generateSchedule(seed: number, opts: ScheduleOptions): Schedule {
  const rng = createRng(seed);
  const world = drawWorld(rng.fork('world'), opts.hosts);
  const draw = rng.fork('faults');
  const ttl = opts.ttlMs;
  const steps: Step[] = [];
  const end = opts.durationMs;
  // Exclusive faults: at most one of each per seed, each with a drawn chance, at a drawn moment.
  const exclusives: FaultSpec[] = [];
  const outageMax = Math.min(60_000, Math.max(3 * ttl, Math.floor(end * 0.4)));
  if (draw.chance(0.35)) exclusives.push({ kind: 'etcd-outage', mode: draw.chance(0.5) ? 'stop' : 'kill', downMs: draw.int(Math.min(2 * ttl, outageMax), outageMax), quietAfterMs: Math.min(60_000, 4 * ttl + 5_000) });
  if (draw.chance(0.3)) exclusives.push({ kind: 'freeze-leader-before-detach', service: draw.int(0, world.registered - 1), downMs: 12 * ttl });
  if (draw.chance(0.3)) exclusives.push({ kind: 'leaderless-move', service: draw.int(0, world.registered - 1), timeoutS: Math.max(2, Math.round(ttl / 1000)), downMs: 4 * ttl });
  // Place exclusives in their own windows, in a drawn order; ordinary faults fill the gaps.
  const windows: { from: number; to: number }[] = [];
  let cursor = draw.int(ttl, 3 * ttl);
  for (const fault of exclusives) {
    const span = exclusiveSpan(fault, ttl);
    if (cursor + span > end) break;
    const at = cursor + draw.int(0, 2 * ttl);
    windows.push({ from: at - 2 * ttl, to: at + span });
    steps.push({ atMs: at, fault });
    cursor = at + span + draw.int(ttl, 3 * ttl);
  }
  let t = draw.int(Math.floor(ttl / 2), 2 * ttl);
  while (t < end - ttl) {
    const inWindow = windows.find((w) => t >= w.from && t < w.to);
    if (inWindow) {
      t = inWindow.to + 1;
      continue;
    }
    const fault = drawFault(draw, world, ttl);
    const w = windows.find((x) => x.from > t);
    // Keep ordinary faults from reaching into an exclusive window.
    if (w === undefined || t + faultSpan(fault) < w.from) steps.push({ atMs: t, fault });
    t += draw.int(Math.floor(ttl / 2), 2 * ttl);
  }
  steps.sort((a, b) => a.atMs - b.atMs);
  return { seed, world, durationMs: end, steps };
}

function exclusiveSpan(fault: FaultSpec, ttl: number): number {
  switch (fault.kind) {
    case 'etcd-outage':
      return fault.downMs + fault.quietAfterMs;
    case 'freeze-leader-before-detach':
      return fault.downMs + 6 * ttl;
    case 'leaderless-move':
      return fault.downMs + 6 * ttl;
    default:
      return faultSpan(fault);
  }
}

export function faultSpan(fault: FaultSpec): number {
  return 'downMs' in fault ? fault.downMs : 0;
}

function drawFault(rng: Rng, world: WorldSpec, ttl: number): FaultSpec {
  const kind = rng.weighted({
    'proc-kill': 12,
    'proc-stop': 10,
    'proc-restart': 4,
    net: 12,
    'net-member': 5,
    'ec2-errors': 6,
    'ec2-stuck': 4,
    'ec2-slow-attach': 3,
    'oob-detach': 4,
    'oob-attach': 2,
    'op-move': 8,
    'op-cancel': 2,
    'op-snapshot': 3,
    'op-service-remove': 2,
    'op-service-add': 2,
  });
  const role = (): Role => rng.weighted({ agent: 6, controller: 3, etcd: 2 });
  const indexOf = (r: Role): number => rng.int(0, (r === 'agent' ? world.hosts.length : r === 'controller' ? world.controllers : 3) - 1);
  // Half shorter than the TTL (must change nothing), half longer (a failover or a re-election).
  const down = (): number => (rng.chance(0.5) ? rng.int(Math.floor(ttl / 4), Math.floor(ttl * 0.8)) : rng.int(Math.floor(ttl * 1.5), 5 * ttl));
  const service = (): number => rng.int(0, world.services.length - 1);
  const mode = (): NetMode => rng.weighted({ cut: 3, blackhole: 3, delay: 2, 'slow-close': 2 });
  switch (kind) {
    case 'proc-kill': {
      const r = role();
      return { kind, role: r, index: indexOf(r), downMs: down() };
    }
    case 'proc-stop': {
      const r = role();
      return { kind, role: r, index: indexOf(r), downMs: down() };
    }
    case 'proc-restart': {
      const r = role();
      return { kind, role: r, index: indexOf(r) };
    }
    case 'net': {
      const side = rng.chance(0.7) ? 'agent' : 'controller';
      const path = side === 'controller' && rng.chance(0.4) ? 'ec2' : 'etcd';
      return { kind, side, index: side === 'agent' ? rng.int(0, world.hosts.length - 1) : rng.int(0, world.controllers - 1), path, mode: mode(), delayMs: rng.int(20, Math.floor(ttl / 3)), downMs: down() };
    }
    case 'net-member':
      return { kind, member: rng.int(0, 2), mode: mode(), delayMs: rng.int(20, Math.floor(ttl / 3)), downMs: down() };
    case 'ec2-errors': {
      const error = rng.pick([500, 503, 'throttle'] as const);
      return { kind, action: rng.pick(EC2_FAULT_ACTIONS), count: rng.int(1, 6), error, downMs: rng.int(ttl, 4 * ttl) };
    }
    case 'ec2-stuck':
      return { kind, which: rng.chance(0.5) ? 'detach' : 'attach', service: service(), downMs: rng.int(2 * ttl, 6 * ttl) };
    case 'ec2-slow-attach':
      return { kind, attachMs: rng.int(ttl, 4 * ttl), downMs: rng.int(2 * ttl, 6 * ttl) };
    case 'oob-detach':
      return { kind, service: service(), force: rng.chance(0.5) };
    case 'oob-attach':
      return { kind, service: service(), host: rng.int(0, world.hosts.length - 1) };
    case 'op-move':
      return { kind, service: service(), toHost: rng.chance(0.6) ? rng.int(0, world.hosts.length - 1) : null, force: rng.chance(0.5), timeoutS: rng.int(Math.max(2, Math.round((2 * ttl) / 1000)), Math.max(4, Math.round((10 * ttl) / 1000))) };
    case 'op-cancel':
    case 'op-snapshot':
    case 'op-service-remove':
    case 'op-service-add':
      return { kind, service: service() };
  }
}

/** Counts per fault kind, for the results table. */
export function countKinds(steps: readonly Step[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of steps) {
    const k = s.fault.kind === 'proc-kill' || s.fault.kind === 'proc-stop' || s.fault.kind === 'proc-restart' ? `${s.fault.kind}:${s.fault.role}` : s.fault.kind;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export { EXCLUSIVE };
