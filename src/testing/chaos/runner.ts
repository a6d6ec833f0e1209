/**
 * Runs one chaos seed: builds its world (world.ts), records its history (recorder.ts, the agents'
 * ledger, the EC2 simulator, the controllers' EC2 proxies), plays the seed's schedule (schedule.ts)
 * as real signals, proxy modes, `/_sim/*` faults and CLI runs, heals everything, waits for
 * quiescence, writes the history as JSONL and checks it (checker.ts).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentLeader } from '../../locks/index.js';
import type { HttpRequestSeen, ProxyMode } from '../fault-proxy.js';
import { createRng } from '../prng.js';
import type { FixtureProc } from '../proc.js';
import { buildWorld, type Member, type World } from '../world.js';
import { check, type CheckResult } from './checker.js';
import { sortHistory, toJsonl, type Effect, type HistoryEvent, type OperatorEvent } from './history.js';
import { EtcdRecorder } from './recorder.js';
import { countKinds, generateSchedule, type FaultSpec, type NetMode, type Schedule } from './schedule.js';

export interface ChaosConfig {
  /** Fault phase length. */
  durationMs: number;
  hosts?: number;
  leaseTtlMs: number;
  fenceMarginMs: number;
  electionTtlMs: number;
  forceDetachAfterMs: number;
  reportTimeoutMs: number;
  /** AWS-like attach/detach (5 s / 10 s) times this factor, with ±50 % jitter on every action. */
  ec2TimeScale: number;
  outDir: string;
  /** Repository whose fixtures run (this one by default). */
  repo?: string;
  log?: (line: string) => void;
}

/**
 * How much of each process's stderr a seed keeps. 8,000 characters lost the agents' fence decisions
 * (with their reasons and peer evidence) behind later retries, which is what a failed invariant 7 needs.
 */
const LOG_TAIL_CHARS = 400_000;

export const DEFAULT_CHAOS: Omit<ChaosConfig, 'outDir'> = {
  durationMs: 40_000,
  leaseTtlMs: 2_000,
  // Half the TTL (production: 3 s of 10 s). The peer check gets min(margin/2 − 50, 800) ms; at 500 ms that
  // was 200 ms, and a peer's answer during an etcd outage takes half of it by design (its fresh probe of
  // etcd) plus the HTTP exchange: rounds of 150–213 ms were seen, so under CPU contention an agent found
  // "no peer answered" and fenced at the start of an outage for everyone (invariant 7; seeds 19, 37, 42,
  // 82, 89 of a 100-seed run beside other test runs). Everything else in the world is compressed in time;
  // scheduling delays are not, so this one absolute budget stays closer to what production gets (800 ms).
  fenceMarginMs: 1_000,
  electionTtlMs: 2_000,
  forceDetachAfterMs: 5_000,
  reportTimeoutMs: 20_000,
  ec2TimeScale: 0.05,
};

export interface SeedResult {
  seed: number;
  result: CheckResult;
  historyPath: string;
  wallMs: number;
  faultsByKind: Record<string, number>;
  /** Steps not played because their target was busy with another fault or did not apply (e.g. no holder). */
  skipped: number;
  error?: string;
}

const AWS_ATTACH_MS = 5_000;
const AWS_DETACH_MS = 10_000;
/** Slack in the checker's bound: process start-up, watch delays and the machine's load. */
const BOUND_SLACK_MS = 8_000;
/** Worlds running now, so an interrupted campaign can stop their processes (see main.ts). */
export const activeWorlds = new Set<World>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The bound of invariants 4 and 8: TTL + a re-election + EC2's floor (forced detach bound, detach, slowest attach) + slack. */
export function boundFor(c: Omit<ChaosConfig, 'outDir'>): number {
  const detach = Math.round(AWS_DETACH_MS * c.ec2TimeScale * 1.5);
  const slowestAttach = 3 * c.leaseTtlMs; // ec2-slow-attach draws up to 3 TTL
  return c.leaseTtlMs + c.electionTtlMs + c.forceDetachAfterMs + detach + slowestAttach + BOUND_SLACK_MS;
}

export async function runSeed(seed: number, config: ChaosConfig): Promise<SeedResult> {
  const started = Date.now();
  const log = config.log ?? (() => undefined);
  const schedule = generateSchedule(seed, { durationMs: config.durationMs, ttlMs: config.leaseTtlMs, hosts: config.hosts });
  const events: HistoryEvent[] = [];
  // The last journal step per volume, for quiescence: a failover under way means "not settled yet".
  const journalSteps = new Map<string, string>();
  const record = (e: HistoryEvent): void => {
    events.push(e);
    if (e.type === 'journal') journalSteps.set(e.volumeId, e.step);
  };
  const requestHooks: ((controller: string, req: HttpRequestSeen) => void)[] = [];
  const historyPath = join(config.outDir, `seed-${seed}.jsonl`);
  let world: World | undefined;
  let recorder: EtcdRecorder | undefined;
  let skipped = 0;
  let error: string | undefined;
  const boundMs = boundFor(config);
  try {
    world = await buildWorld({
      name: `s${seed}-${process.pid}`, hosts: schedule.world.hosts, controllers: schedule.world.controllers, services: schedule.world.services,
      registered: schedule.world.registered, leaseTtlMs: config.leaseTtlMs, fenceMarginMs: config.fenceMarginMs, electionTtlMs: config.electionTtlMs,
      forceDetachAfterMs: config.forceDetachAfterMs, reportTimeoutMs: config.reportTimeoutMs,
      latencies: { attachMs: AWS_ATTACH_MS * config.ec2TimeScale, detachMs: AWS_DETACH_MS * config.ec2TimeScale },
      repo: config.repo,
      // Issue 9 finding 1 needs a leader frozen right before it writes a DetachVolume: fixtures that have
      // the hook stop themselves there (once per process); the player records and thaws the pause.
      ...(schedule.steps.some((x) => x.fault.kind === 'freeze-leader-before-detach') ? { controllerExtra: { pauseBeforeMutation: 'DetachVolume' } } : {}),
      beforeProcesses: async ({ client, ks }) => {
        recorder = new EtcdRecorder(client, ks, record);
        await recorder.start();
      },
      logLevel: process.env.CHAOS_LOG_LEVEL ?? 'warn',
      agentVerifyEveryMs: config.leaseTtlMs,
      onEc2Request: (controller, req) => {
        const p = new URLSearchParams(req.body);
        const action = p.get('Action') ?? '';
        if (action === '') return;
        record({ at: req.at, type: 'ec2-request', caller: controller, action, volumeId: p.get('VolumeId') ?? undefined, instanceId: p.get('InstanceId') ?? p.get('InstanceId.1') ?? undefined, force: p.get('Force') === 'true' });
        for (const h of requestHooks) h(controller, req);
      },
    });
    const w = world;
    activeWorlds.add(w);
    record({
      at: Date.now(), type: 'world', seed, leaseTtlMs: config.leaseTtlMs, electionTtlMs: config.electionTtlMs, boundMs,
      thawGraceMs: config.leaseTtlMs, driftGraceMs: 2 * config.leaseTtlMs + 2_000,
      hosts: w.agents.map((a) => ({ id: a.id, az: a.az ?? '' })), controllers: w.controllers.map((c) => c.id),
      services: w.services.map((s) => ({ unit: s.unit, volumeId: s.volumeId, az: s.az, registered: s.index < schedule.world.registered, mountUnit: s.mountUnit })),
    });
    log(`seed ${seed}: world up (${w.agents.length} hosts, ${w.controllers.length} controllers, ${schedule.world.registered} services) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // Initial placement. Not settling is not a run error: the checker judges the services' downtime
    // from the start of the faults, so a world that never placed a service fails invariant 8 or 4.
    await waitSettled(w, schedule.world.registered, journalSteps, 60_000).catch((err: unknown) => log(`seed ${seed}: initial placement: ${(err as Error).message}`));
    const play = new Player(w, schedule, config, record, requestHooks, log);
    record({ at: Date.now(), type: 'phase', name: 'faults-start' });
    await play.run();
    skipped = play.skipped;
    await play.healAll();
    record({ at: Date.now(), type: 'phase', name: 'healed' });
    // Quiescence: every registered service active once on a live host of its AZ with no failover under
    // way, and still so QUIET_MS later (a late move after the heal is seen, and waited for: chaos seed
    // 70 ended 3 s after the heal in the middle of one); or the bound passed.
    await waitQuiet(w, play.registered(), journalSteps, Date.now() + boundMs + 5_000).catch((err: unknown) => log(`seed ${seed}: not settled after the heal: ${(err as Error).message}`));
    record({ at: Date.now(), type: 'phase', name: 'end' });
  } catch (err) {
    error = (err as Error).stack ?? String(err);
    log(`seed ${seed}: run error: ${error}`);
  } finally {
    await recorder?.stop();
    if (world) {
      for (const line of readFileSync(world.ledger, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        const l = JSON.parse(line) as { at: number; instanceId: string; unit?: string; active?: boolean; fence?: boolean; volumeIds?: string[]; mountUnit?: string; mounted?: boolean; reason?: string };
        if (l.unit !== undefined) record({ at: l.at, type: 'unit', host: l.instanceId, unit: l.unit, active: l.active === true });
        else if (l.mountUnit !== undefined) record({ at: l.at, type: 'mount', host: l.instanceId, mountUnit: l.mountUnit, mounted: l.mounted === true });
        else if (l.fence) record({ at: l.at, type: 'fence', host: l.instanceId, volumeIds: l.volumeIds ?? [], ...(l.reason === undefined ? {} : { reason: l.reason }) });
      }
      // Newer endpoints log every mutating request with the caller and term the mutation gate sent.
      const simRequests = (world.ec2.sim as unknown as { requests?: Record<string, unknown>[] }).requests ?? [];
      for (const q of simRequests) {
        const s = (k: string): string | null => (typeof q[k] === 'string' ? (q[k] as string) : null);
        record({ at: Number(q.at), type: 'ec2-sim-request', action: s('action') ?? '', volumeId: s('volumeId'), instanceId: s('instanceId'), force: q.force === true, caller: s('caller'), term: s('term'), outcome: s('outcome') ?? '' });
      }
      for (const h of world.ec2.sim.history) {
        // Extra fields (e.g. the caller and term of the request, when the simulator records them) are kept.
        const { at, ...rest } = h as typeof h & Record<string, unknown>;
        record({ ...(rest as Omit<typeof h, 'at'>), at, type: 'ec2-change' });
      }
      // The processes' last words (pino logs at CHAOS_LOG_LEVEL, default warn), for reading a failed seed.
      writeFileSync(join(config.outDir, `seed-${seed}.logs.txt`), [...world.agents, ...world.controllers].map((m) => `--- ${m.id} (pid ${m.proc.pid ?? '?'})\n${m.proc.stderr.slice(-LOG_TAIL_CHARS)}`).join('\n'));
      activeWorlds.delete(world);
      await world.stop().catch((err: unknown) => log(`seed ${seed}: stop failed: ${String(err)}`));
    }
  }
  const sorted = sortHistory(events);
  writeFileSync(historyPath, toJsonl(sorted));
  let result: CheckResult;
  if (error !== undefined || !sorted.some((e) => e.type === 'world')) {
    result = { seed, boundMs, violations: [], notCheckable: [], recoveryMs: null, downtimesMs: [], falseFailovers: 0 };
  } else result = check(seed, sorted);
  return { seed, result, historyPath, wallMs: Date.now() - started, faultsByKind: countKinds(schedule.steps), skipped, error };
}

/** Unit-active state per host from the ledger: the latest line of each host's current process. */
function ledgerState(w: World): Map<string, Map<string, boolean>> {
  const state = new Map<string, Map<string, boolean>>();
  const since = new Map(w.agents.map((a) => [a.id, a.proc.startedAt]));
  for (const line of readFileSync(w.ledger, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const l = JSON.parse(line) as { at: number; instanceId: string; unit?: string; active?: boolean };
    if (l.unit === undefined || l.at < (since.get(l.instanceId) ?? 0)) continue;
    const m = state.get(l.unit) ?? new Map<string, boolean>();
    m.set(l.instanceId, l.active === true);
    state.set(l.unit, m);
  }
  return state;
}

/** How long a settled world must stay settled after the heal before the run ends. */
const QUIET_MS = 3_000;
/** Journal steps with nothing left to do, or waiting on a human (the checker judges `blocked`'s reason). */
const RESTING_STEPS = new Set(['done', 'failed', 'blocked']);

/** Why the world is not settled, or '' when it is: each service active once on a live host of its AZ, no failover under way. */
function unsettled(w: World, registered: ReadonlySet<number> | number, journalSteps: ReadonlyMap<string, string>): string {
  const want = typeof registered === 'number' ? new Set(Array.from({ length: registered }, (_, i) => i)) : registered;
  const state = ledgerState(w);
  const alive = new Map(w.agents.filter((a) => !a.proc.exited && !a.proc.frozen).map((a) => [a.id, a.az]));
  for (const i of want) {
    const s = w.services[i];
    if (s === undefined) continue;
    const on = [...(state.get(s.unit) ?? new Map<string, boolean>())].filter(([h, up]) => up && alive.has(h)).map(([h]) => h);
    if (on.length !== 1 || alive.get(on[0] as string) !== s.az) return `${s.unit} on [${on.join(', ')}]`;
    const step = journalSteps.get(s.volumeId);
    if (step !== undefined && !RESTING_STEPS.has(step)) return `${s.unit}: failover at step ${step}`;
  }
  return '';
}

async function waitSettled(w: World, registered: ReadonlySet<number> | number, journalSteps: ReadonlyMap<string, string>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const why = unsettled(w, registered, journalSteps);
    if (why === '') return;
    if (Date.now() > deadline) throw new Error(`not settled after ${ms} ms: ${why}`);
    await sleep(250);
  }
}

/** Settled, and still settled QUIET_MS later (starting over when it is not), by `deadline` (epoch ms). */
async function waitQuiet(w: World, registered: ReadonlySet<number>, journalSteps: ReadonlyMap<string, string>, deadline: number): Promise<void> {
  let quietSince: number | null = null;
  for (;;) {
    const why = unsettled(w, registered, journalSteps);
    const now = Date.now();
    if (why !== '') quietSince = null;
    else if (quietSince === null) quietSince = now;
    else if (now - quietSince >= QUIET_MS) return;
    if (now > deadline) throw new Error(why === '' ? 'settled, but not for long enough before the bound' : `not settled by the bound: ${why}`);
    await sleep(250);
  }
}

/** Plays a schedule against a world. Each step is its own task: inject, wait, heal. */
class Player {
  skipped = 0;
  private nextFaultId = 1;
  private nextOpId = 1;
  private readonly busy = new Set<string>();
  private readonly tasks: Promise<void>[] = [];
  private healing = false;
  private readonly wake = new Set<() => void>();
  private readonly registeredSet: Set<number>;
  private slowAttach = false;
  private jitterTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly w: World,
    private readonly schedule: Schedule,
    private readonly config: ChaosConfig,
    private readonly record: (e: HistoryEvent) => void,
    private readonly requestHooks: ((controller: string, req: HttpRequestSeen) => void)[],
    private readonly log: (line: string) => void,
  ) {
    this.registeredSet = new Set(Array.from({ length: schedule.world.registered }, (_, i) => i));
  }

  registered(): ReadonlySet<number> {
    return this.registeredSet;
  }

  /** Lines of each controller process already looked at for a self-pause. */
  private readonly pauseSeen = new Map<FixtureProc, number>();
  /** The freeze composite takes over the first pause while it runs; any other pause is thawed after TTL/4. */
  private onPause: ((m: Member, id: number) => boolean) | null = null;
  private pauseTimer: NodeJS.Timeout | null = null;

  /** Watches controllers for the fixture's `pausing` line (it SIGSTOPped itself before a mutation). */
  private watchPauses(): void {
    this.pauseTimer = setInterval(() => {
      for (const m of this.w.controllers) {
        const seen = this.pauseSeen.get(m.proc) ?? 0;
        const lines = m.proc.lines;
        this.pauseSeen.set(m.proc, lines.length);
        const line = lines.slice(seen).find((l) => l.includes('"pausing"'));
        if (line === undefined) continue;
        m.proc.markFrozen();
        const id = this.inject('self-pause', 'freeze-leader-before-detach', [m.id], 'frozen', { line: line.slice(0, 300) });
        if (this.onPause?.(m, id) === true) continue;
        // Not the composite's: a short pause (a GC pause well inside the lease), then on.
        this.tasks.push(this.hold(Math.floor(this.config.leaseTtlMs / 4)).then(() => {
          m.proc.signal('SIGCONT');
          this.heal(id, 'self-pause', 'freeze-leader-before-detach', [m.id], 'frozen');
        }));
      }
    }, 20);
  }

  async run(): Promise<void> {
    const t0 = Date.now();
    this.watchPauses();
    const jitter = createRng(this.schedule.seed).fork('jitter');
    const attachMs = AWS_ATTACH_MS * this.config.ec2TimeScale;
    const detachMs = AWS_DETACH_MS * this.config.ec2TimeScale;
    // Latency jitter on every EC2 action: ±50 % around the scaled AWS figures, redrawn every 200 ms.
    this.jitterTimer = setInterval(() => {
      const l = { detachMs: Math.round(detachMs * (0.5 + jitter.next())), ...(this.slowAttach ? {} : { attachMs: Math.round(attachMs * (0.5 + jitter.next())) }) };
      this.w.ec2.sim.setLatencies(l);
    }, 200);
    for (const step of this.schedule.steps) {
      const wait = t0 + step.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      this.tasks.push(this.play(step.fault).catch((err: unknown) => this.log(`seed ${this.schedule.seed}: ${step.fault.kind} failed: ${(err as Error).message}`)));
    }
    const rest = t0 + this.schedule.durationMs - Date.now();
    if (rest > 0) await sleep(rest);
  }

  /** Sleeps `ms`, or less once healing began. */
  private hold(ms: number): Promise<void> {
    if (this.healing) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake.add(done);
    });
  }

  private inject(kind: string, of: string, targets: string[], effect: Effect, detail?: Record<string, unknown>): number {
    const id = this.nextFaultId++;
    this.record({ at: Date.now(), type: 'fault', phase: 'inject', id, kind, of, targets, effect, ...(detail ? { detail } : {}) });
    return id;
  }

  private heal(id: number, kind: string, of: string, targets: string[], effect: Effect, detail?: Record<string, unknown>): void {
    this.record({ at: Date.now(), type: 'fault', phase: 'heal', id, kind, of, targets, effect, ...(detail ? { detail } : {}) });
  }

  private member(role: 'agent' | 'controller', index: number): Member {
    const list = role === 'agent' ? this.w.agents : this.w.controllers;
    return list[index % list.length] as Member;
  }

  /** Runs `body` holding `targets` (skipped if any is held by another fault). */
  private async exclusive(targets: string[], body: () => Promise<void>): Promise<void> {
    if (targets.some((t) => this.busy.has(t)) || this.healing) {
      this.skipped += 1;
      return;
    }
    for (const t of targets) this.busy.add(t);
    try {
      await body();
    } finally {
      for (const t of targets) this.busy.delete(t);
    }
  }

  private async play(f: FaultSpec): Promise<void> {
    switch (f.kind) {
      case 'proc-kill':
      case 'proc-stop':
      case 'proc-restart':
        return this.procFault(f);
      case 'etcd-outage':
        return this.exclusive(['etcd0', 'etcd1', 'etcd2'], async () => {
          const kind = f.mode === 'stop' ? 'sigstop-all' : 'sigkill-all';
          const detail = { mode: f.mode, quietAfterMs: f.quietAfterMs };
          const id = this.inject(kind, f.kind, ['etcd'], 'etcd-outage', detail);
          for (const m of this.w.etcd.members) m.kill(f.mode === 'stop' ? 'SIGSTOP' : 'SIGKILL');
          await this.hold(f.downMs);
          await this.restoreEtcd();
          this.heal(id, kind, f.kind, ['etcd'], 'etcd-outage', detail);
          // The quiet time after the outage belongs to this fault: nothing else may start in it.
          await this.hold(f.quietAfterMs);
        });
      case 'net': {
        const m = this.member(f.side, f.index);
        const proxies = f.path === 'ec2' ? (m.ec2Proxy ? [m.ec2Proxy] : []) : m.etcdProxies;
        return this.exclusive([`${m.id}:${f.path}`], async () => {
          const detail = { path: f.path, delayMs: f.delayMs };
          const id = this.inject(`proxy-${f.mode}`, f.kind, [m.id], 'net', detail);
          for (const p of proxies) p.set(proxyMode(f.mode, f.delayMs));
          await this.hold(f.downMs);
          for (const p of proxies) p.set({ mode: 'pass' });
          this.heal(id, `proxy-${f.mode}`, f.kind, [m.id], 'net', detail);
        });
      }
      case 'net-member':
        return this.exclusive([`etcd${f.member}`], async () => {
          const target = `etcd${f.member}`;
          const id = this.inject(`proxy-${f.mode}`, f.kind, [target], 'net', { delayMs: f.delayMs });
          this.w.setMemberPath(f.member, proxyMode(f.mode, f.delayMs));
          await this.hold(f.downMs);
          this.w.setMemberPath(f.member, { mode: 'pass' });
          this.heal(id, `proxy-${f.mode}`, f.kind, [target], 'net');
        });
      case 'ec2-errors': {
        const id = this.inject(`ec2-${f.error}`, f.kind, [f.action], 'ec2', { count: f.count });
        if (f.error === 'throttle') this.w.ec2.sim.injectFault({ kind: 'throttle', action: f.action, count: f.count });
        else this.w.ec2.sim.injectFault({ kind: 'server-error', action: f.action, count: f.count, status: f.error });
        // Counted faults are spent by calls; the heal only marks the end of the burst's window.
        await this.hold(f.downMs);
        this.heal(id, `ec2-${f.error}`, f.kind, [f.action], 'ec2');
        return;
      }
      case 'ec2-stuck': {
        const s = this.service(f.service);
        return this.exclusive([`${s.volumeId}:stuck`], async () => {
          const id = this.inject(`ec2-stuck-${f.which}`, f.kind, [s.volumeId], 'ec2');
          this.w.ec2.sim.injectFault({ kind: f.which === 'detach' ? 'stuck-detach' : 'stuck-attach', volumeId: s.volumeId });
          await this.hold(f.downMs);
          // A detach or attach already stuck stays stuck until forced, as on AWS; only new ones go through.
          this.w.ec2.sim.internals.faults.clearStuck(s.volumeId);
          this.heal(id, `ec2-stuck-${f.which}`, f.kind, [s.volumeId], 'ec2');
        });
      }
      case 'ec2-slow-attach':
        return this.exclusive(['slow-attach'], async () => {
          const id = this.inject('ec2-slow-attach', f.kind, ['*'], 'ec2', { attachMs: f.attachMs });
          this.slowAttach = true;
          this.w.ec2.sim.setLatencies({ attachMs: f.attachMs });
          await this.hold(f.downMs);
          this.slowAttach = false;
          this.w.ec2.sim.setLatencies({ attachMs: AWS_ATTACH_MS * this.config.ec2TimeScale });
          this.heal(id, 'ec2-slow-attach', f.kind, ['*'], 'ec2');
        });
      case 'oob-detach': {
        const s = this.service(f.service);
        const att = this.w.ec2.sim.volume(s.volumeId)?.attachment;
        if (!att || att.state !== 'attached') {
          this.skipped += 1;
          return;
        }
        const id = this.inject('oob-detach', f.kind, [s.volumeId, att.instanceId], 'oob', { force: f.force });
        try {
          this.w.ec2.sim.detachVolume({ volumeId: s.volumeId, force: f.force });
        } catch (err) {
          this.log(`oob-detach ${s.volumeId}: ${(err as Error).message}`);
        }
        this.heal(id, 'oob-detach', f.kind, [s.volumeId, att.instanceId], 'oob');
        return;
      }
      case 'oob-attach': {
        const s = this.service(f.service);
        const inAz = this.w.agents.filter((a) => a.az === s.az);
        const host = inAz[f.host % inAz.length];
        if (!host || this.w.ec2.sim.volume(s.volumeId)?.attachment) {
          this.skipped += 1;
          return;
        }
        const id = this.inject('oob-attach', f.kind, [s.volumeId, host.id], 'oob');
        try {
          this.w.ec2.sim.attachVolume(s.volumeId, host.id, '/dev/xvdz');
        } catch (err) {
          this.log(`oob-attach ${s.volumeId}: ${(err as Error).message}`);
        }
        this.heal(id, 'oob-attach', f.kind, [s.volumeId, host.id], 'oob');
        return;
      }
      case 'op-move': {
        const s = this.service(f.service);
        const to = f.toHost === null ? null : this.member('agent', f.toHost).id;
        await this.cli('move', s.unit, [s.unit, ...(to ? ['--to', to] : []), ...(f.force ? ['--force'] : []), '--timeout', String(f.timeoutS)], f.timeoutS * 1000);
        return;
      }
      case 'op-cancel': {
        const s = this.service(f.service);
        await this.cli('cancel', s.unit, ['cancel', s.unit]);
        return;
      }
      case 'op-snapshot': {
        const s = this.service(f.service);
        await this.cli('snapshot', s.unit, ['snapshot', s.unit, '--keep-last', '2']);
        return;
      }
      case 'op-service-remove': {
        const s = this.service(f.service);
        const r = await this.cli('service-remove', s.unit, ['service', 'remove', s.unit]);
        if (r === 0) this.registeredSet.delete(s.index);
        return;
      }
      case 'op-service-add': {
        const s = this.service(f.service);
        const r = await this.cli('service-add', s.unit, ['service', 'add', s.unit, '--mount-unit', s.mountUnit, '--mount-point', s.mountPoint, '--metadata-key', s.metadataKey]);
        if (r === 0) this.registeredSet.add(s.index);
        return;
      }
      case 'leaderless-move':
        return this.leaderlessMove(f);
      case 'freeze-leader-before-detach':
        return this.freezeLeaderBeforeDetach(f);
    }
  }

  private service(index: number): World['services'][number] {
    return this.w.services[index % this.w.services.length] as World['services'][number];
  }

  private async procFault(f: Extract<FaultSpec, { kind: 'proc-kill' | 'proc-stop' | 'proc-restart' }>): Promise<void> {
    if (f.role === 'etcd') {
      const m = this.w.etcd.members[f.index % this.w.etcd.members.length];
      if (!m) return;
      const target = `etcd${f.index}`;
      return this.exclusive([target], async () => {
        if (f.kind === 'proc-stop') {
          const id = this.inject('sigstop', f.kind, [target], 'frozen');
          m.kill('SIGSTOP');
          await this.hold(f.downMs);
          m.kill('SIGCONT');
          this.heal(id, 'sigstop', f.kind, [target], 'frozen');
          return;
        }
        const kind = f.kind === 'proc-kill' ? 'sigkill' : 'restart';
        const id = this.inject(kind, f.kind, [target], 'dead');
        if (f.kind === 'proc-kill') {
          m.kill('SIGKILL');
          await m.exited();
          await this.hold(f.downMs);
        }
        await m.restart({ wait: 'listening' });
        this.heal(id, kind, f.kind, [target], 'dead');
      });
    }
    const m = this.member(f.role, f.index);
    return this.exclusive([m.id], async () => {
      if (m.proc.exited) {
        this.skipped += 1;
        return;
      }
      if (f.kind === 'proc-stop') {
        const id = this.inject('sigstop', f.kind, [m.id], 'frozen');
        m.proc.signal('SIGSTOP');
        await this.hold(f.downMs);
        m.proc.signal('SIGCONT');
        this.heal(id, 'sigstop', f.kind, [m.id], 'frozen');
        return;
      }
      const kind = f.kind === 'proc-kill' ? 'sigkill' : 'restart';
      const id = this.inject(kind, f.kind, [m.id], 'dead');
      if (f.kind === 'proc-kill') {
        await m.proc.kill();
        await this.hold(f.downMs);
      } else await m.proc.stop();
      this.heal(id, kind, f.kind, [m.id], 'dead');
      await m.respawn();
    });
  }

  /** Every controller killed; a manual move whose CLI gives up; controllers back later. */
  private async leaderlessMove(f: Extract<FaultSpec, { kind: 'leaderless-move' }>): Promise<void> {
    const ids = this.w.controllers.map((c) => c.id);
    return this.exclusive(ids, async () => {
      const s = this.service(f.service);
      const id = this.inject('sigkill', f.kind, ids, 'dead');
      await Promise.all(this.w.controllers.map((c) => c.proc.kill()));
      // Let the election lease lapse so nobody leads when the request is written.
      await sleep(this.config.electionTtlMs + 1_000);
      await this.cli('move', s.unit, [s.unit, '--timeout', String(f.timeoutS)], f.timeoutS * 1000);
      await this.hold(f.downMs);
      this.heal(id, 'sigkill', f.kind, ids, 'dead');
      await Promise.all(this.w.controllers.map((c) => c.respawn()));
    });
  }

  /**
   * Issue 9 finding 1, made likely: the leader is frozen in the SDK's back-off after a throttled
   * DetachVolume of a failover; a successor finishes it, the old holder comes back and an operator
   * moves the service back to it; then the old leader thaws with its DetachVolume(force) still to send.
   */
  private async freezeLeaderBeforeDetach(f: Extract<FaultSpec, { kind: 'freeze-leader-before-detach' }>): Promise<void> {
    const s = this.service(f.service);
    const leaderInfo = await currentLeader(this.w.client, this.w.ks).catch(() => null);
    const leader = this.w.controllers.find((c) => c.id === leaderInfo?.candidateId);
    const holderId = this.w.ec2.sim.volume(s.volumeId)?.attachment?.instanceId;
    const holder = this.w.agents.find((a) => a.id === holderId);
    if (!leader || !holder || leader.proc.exited || holder.proc.exited) {
      this.skipped += 1;
      return;
    }
    return this.exclusive([leader.id, holder.id], async () => {
      let frozenId: number | null = null;
      let frozen: Member = leader;
      this.onPause = (m, id) => {
        if (frozenId !== null) return false;
        frozenId = id;
        frozen = m;
        return true;
      };
      const hook = (controller: string, req: HttpRequestSeen): void => {
        if (frozenId !== null || controller !== leader.id) return;
        const p = new URLSearchParams(req.body);
        if (p.get('Action') !== 'DetachVolume' || p.get('VolumeId') !== s.volumeId) return;
        leader.proc.signal('SIGSTOP');
        frozenId = this.inject('sigstop', f.kind, [leader.id], 'frozen', { before: 'DetachVolume', volumeId: s.volumeId });
      };
      this.requestHooks.push(hook);
      const throttleId = this.inject('ec2-throttle', f.kind, ['DetachVolume'], 'ec2', { count: 2 });
      this.w.ec2.sim.injectFault({ kind: 'throttle', action: 'DetachVolume', count: 2 });
      const killId = this.inject('sigkill', f.kind, [holder.id], 'dead');
      await holder.proc.kill();
      const frozenBy = Date.now() + 6 * this.config.leaseTtlMs;
      while (frozenId === null && Date.now() < frozenBy && !this.healing) await sleep(20);
      this.heal(throttleId, 'ec2-throttle', f.kind, ['DetachVolume'], 'ec2');
      const thawAt = Date.now() + f.downMs;
      // The holder comes back after the successor has had time to move the service away.
      await this.hold(3 * this.config.leaseTtlMs);
      this.heal(killId, 'sigkill', f.kind, [holder.id], 'dead');
      await holder.respawn();
      const movedBy = Date.now() + 6 * this.config.leaseTtlMs;
      while (Date.now() < movedBy && !this.healing) {
        const on = ledgerState(this.w).get(s.unit);
        if ([...(on ?? new Map<string, boolean>())].some(([h, up]) => up && h !== holder.id)) break;
        await sleep(200);
      }
      if (!this.healing) await this.cli('move', s.unit, [s.unit, '--to', holder.id, '--timeout', String(Math.round((4 * this.config.leaseTtlMs) / 1000) + 10)], 0);
      await this.hold(Math.max(0, thawAt - Date.now()));
      this.requestHooks.splice(this.requestHooks.indexOf(hook), 1);
      this.onPause = null;
      if (frozenId !== null) {
        frozen.proc.signal('SIGCONT');
        this.heal(frozenId, 'sigstop', f.kind, [frozen.id], 'frozen');
        // Give the thawed controller a moment to do whatever it still had to do, under this fault's exclusivity.
        await this.hold(2 * this.config.leaseTtlMs);
      }
    });
  }

  /** Runs the real CLI against the world; records start and end. Returns its exit code. */
  private cli(action: OperatorEvent['action'], unit: string, args: string[], timeoutMs = 0): Promise<number | null> {
    const id = this.nextOpId++;
    this.record({ at: Date.now(), type: 'operator', phase: 'start', id, action, unit, args, ...(action === 'move' ? { timeoutMs } : {}) });
    return new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: this.w.repo, env: { ...process.env, ...this.w.cliEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const keep = (d: Buffer): void => void (output = (output + d.toString()).slice(-600));
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      // The CLI's own --timeout ends a move; this only guards against a hung child.
      const guard = setTimeout(() => child.kill('SIGKILL'), Math.max(timeoutMs, 30_000) + 30_000);
      child.on('close', (code) => {
        clearTimeout(guard);
        this.record({ at: Date.now(), type: 'operator', phase: 'end', id, action, unit, args, code, output: output.trim().split('\n').slice(-3).join(' | ') });
        resolve(code);
      });
    });
  }

  private async restoreEtcd(): Promise<void> {
    for (const m of this.w.etcd.members) m.kill('SIGCONT');
    await Promise.all(this.w.etcd.members.map(async (m) => {
      if (!m.running) await m.restart({ wait: 'listening' });
    }));
  }

  /** Ends every fault: wakes all held faults (each heals itself), then makes sure all is back. */
  async healAll(): Promise<void> {
    this.healing = true;
    for (const wake of [...this.wake]) wake();
    await Promise.all(this.tasks);
    if (this.jitterTimer) clearInterval(this.jitterTimer);
    if (this.pauseTimer) clearInterval(this.pauseTimer);
    this.w.ec2.sim.clearFaults();
    this.w.ec2.sim.setLatencies({ attachMs: AWS_ATTACH_MS * this.config.ec2TimeScale, detachMs: AWS_DETACH_MS * this.config.ec2TimeScale });
    for (const m of [...this.w.agents, ...this.w.controllers]) {
      for (const p of m.etcdProxies) p.set({ mode: 'pass' });
      m.ec2Proxy?.set({ mode: 'pass' });
      if (m.proc.frozen) m.proc.signal('SIGCONT');
    }
    await this.restoreEtcd();
    await Promise.all([...this.w.agents, ...this.w.controllers].filter((m) => m.proc.exited).map((m) => m.respawn()));
  }
}

function proxyMode(mode: NetMode, delayMs: number): ProxyMode {
  switch (mode) {
    case 'cut':
      return { mode: 'cut' };
    case 'blackhole':
      return { mode: 'blackhole' };
    case 'delay':
      return { mode: 'delay', delayMs };
    case 'slow-close':
      return { mode: 'slow-close', delayMs };
  }
}
