import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnitFailedError, UnitNotFoundError, UnitTimeoutError } from './errors.js';
import type { ActiveState, JobResult, ReloadOptions, SystemdPort, UnitOpOptions, UnitState } from './port.js';

/**
 * In-process stand-in for systemd, for controller end-to-end tests and the demo (agents as separate
 * processes, no real systemd). Semantics kept close to the real thing:
 * - `Requires=`/`After=` between units registered in code: starting a service starts its mount first,
 *   a failed mount fails the service's job with `dependency`; stopping a mount first stops every
 *   active unit that requires it.
 * - A mount unit "mounts" its `What=` device path: the path must exist, else the start fails with
 *   result `exit-code`. While active it holds `<device file>.in-use` (what the EC2 simulator reads to
 *   answer `busy` on a non-forced detach) and removes it on stop.
 * - `reload()` re-reads `What=` from drop-ins `<runDir>/<unit>.d/*.conf`, like daemon-reload.
 * - Jobs run one at a time, in order, like systemd's job queue for our purposes.
 */

export interface MemoryUnitSpec {
  /** Full unit name, e.g. `data-postgres.mount`, `postgres@vol-0abc….service`. */
  name: string;
  /** Units this one `Requires=` (and is ordered `After=`). */
  requires?: string[];
  /** Mount units: the device path to mount, until a drop-in's `What=` overrides it. */
  what?: string;
}

export interface MemorySystemdOptions {
  /** Where drop-ins are read from on `reload()`; without it only `what` from the spec is used. */
  runDir?: string;
  /** Simulated duration of each start/stop job (ms); default 0. */
  jobDelayMs?: number;
}

export interface MemoryJobRecord {
  at: number;
  unit: string;
  operation: 'start' | 'stop';
  jobResult: JobResult;
}

interface MemoryUnit {
  spec: MemoryUnitSpec;
  what: string | undefined;
  state: UnitState;
  /** Result the next starts fail with; undefined = they succeed. */
  failWith: string | undefined;
  /** The in-use marker written while a mount is active. */
  marker: string | undefined;
}

export class MemorySystemd implements SystemdPort {
  private readonly units = new Map<string, MemoryUnit>();
  private readonly events = new EventEmitter();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Every finished job, in order (tests assert on it). */
  readonly history: MemoryJobRecord[] = [];

  constructor(private readonly opts: MemorySystemdOptions = {}) {
    this.events.setMaxListeners(0);
  }

  /** Registers (or replaces the definition of) a unit. */
  defineUnit(spec: MemoryUnitSpec): void {
    const existing = this.units.get(spec.name);
    this.units.set(spec.name, {
      spec,
      // A redefinition without `what` keeps the What= read from drop-ins, as a unit file edit would not drop them.
      what: spec.what ?? existing?.what,
      state: existing?.state ?? { activeState: 'inactive', subState: 'dead', result: 'success', loadState: 'loaded' },
      failWith: existing?.failWith,
      marker: existing?.marker,
    });
  }

  /** Makes the next starts of `unit` fail with `result` (`exit-code`, `signal`, ...); undefined heals it. */
  setFailure(unit: string, result: string | undefined): void {
    this.get(unit).failWith = result;
  }

  /** The unit's process died on its own: it becomes `failed` with `result` (a crash, an OOM kill). */
  crash(unit: string, result = 'signal'): void {
    const u = this.get(unit);
    if (u.state.activeState !== 'active') return;
    this.stopDependents(unit);
    this.release(u);
    this.setState(u, { activeState: 'failed', subState: 'failed', result });
  }

  startUnit(unit: string, opts: UnitOpOptions): Promise<UnitState> {
    return this.enqueue(unit, 'start', opts, () => this.doStart(unit, new Set()));
  }

  stopUnit(unit: string, opts: UnitOpOptions): Promise<UnitState> {
    return this.enqueue(unit, 'stop', opts, () => {
      this.get(unit);
      this.stopDependents(unit);
      this.doStop(unit);
      return 'done';
    });
  }

  async restartUnit(unit: string, opts: UnitOpOptions): Promise<UnitState> {
    await this.stopUnit(unit, opts);
    return this.startUnit(unit, opts);
  }

  async reload(_opts?: ReloadOptions): Promise<void> {
    const runDir = this.opts.runDir;
    if (!runDir) return;
    for (const u of this.units.values()) {
      const dir = join(runDir, `${u.spec.name}.d`);
      let what = u.spec.what;
      if (existsSync(dir)) {
        for (const file of readdirSync(dir).filter((f) => f.endsWith('.conf')).sort()) {
          for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
            const m = /^\s*What\s*=\s*(.*?)\s*$/.exec(line);
            if (m) what = m[1]; // later drop-ins win, as in systemd
          }
        }
      }
      u.what = what;
    }
  }

  async unitState(unit: string): Promise<UnitState> {
    const u = this.units.get(unit);
    if (!u) return { activeState: 'inactive', subState: 'dead', result: '', loadState: 'not-found' };
    return { ...u.state };
  }

  waitForState(unit: string, states: readonly ActiveState[], opts: UnitOpOptions): Promise<UnitState> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const u = this.units.get(unit);
        if (u && states.includes(u.state.activeState)) done(undefined, { ...u.state });
      };
      const done = (err: unknown, state?: UnitState): void => {
        clearTimeout(timer);
        this.events.off('change', check);
        opts.signal?.removeEventListener('abort', onAbort);
        if (state) resolve(state);
        else reject(err);
      };
      const onAbort = (): void => done(opts.signal?.reason);
      const timer = setTimeout(() => done(new UnitTimeoutError(unit, 'wait', opts.timeoutMs)), opts.timeoutMs);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.events.on('change', check);
      check();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // --- internals -----------------------------------------------------------------------------

  private get(unit: string): MemoryUnit {
    const u = this.units.get(unit);
    if (!u) throw new UnitNotFoundError(unit, 'not-found');
    return u;
  }

  private setState(u: MemoryUnit, s: Omit<UnitState, 'loadState'>): void {
    u.state = { ...s, loadState: 'loaded' };
    this.events.emit('change', u.spec.name);
  }

  private enqueue(unit: string, operation: 'start' | 'stop', opts: UnitOpOptions, job: () => JobResult): Promise<UnitState> {
    if (this.closed) return Promise.reject(new Error('MemorySystemd is closed'));
    const run = async (): Promise<UnitState> => {
      opts.signal?.throwIfAborted();
      const delay = this.opts.jobDelayMs ?? 0;
      if (delay > opts.timeoutMs) throw new UnitTimeoutError(unit, operation, opts.timeoutMs);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const jobResult = job();
      this.history.push({ at: Date.now(), unit, operation, jobResult });
      const u = this.get(unit);
      if (jobResult !== 'done') throw new UnitFailedError(unit, u.state.result, jobResult);
      return { ...u.state };
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private doStart(unit: string, visiting: Set<string>): JobResult {
    const u = this.get(unit);
    if (u.state.activeState === 'active') return 'done';
    if (visiting.has(unit)) return 'done'; // dependency cycle: systemd breaks it too
    visiting.add(unit);
    for (const dep of u.spec.requires ?? []) {
      if (!this.units.has(dep)) return 'dependency';
      if (this.doStart(dep, visiting) !== 'done') {
        this.history.push({ at: Date.now(), unit: dep, operation: 'start', jobResult: 'failed' });
        return 'dependency';
      }
    }
    if (u.failWith !== undefined) {
      this.setState(u, { activeState: 'failed', subState: 'failed', result: u.failWith });
      return 'failed';
    }
    if (unit.endsWith('.mount')) {
      // Like mount(8): no device node, no mount.
      if (!u.what || !existsSync(u.what)) {
        this.setState(u, { activeState: 'failed', subState: 'failed', result: 'exit-code' });
        return 'failed';
      }
      u.marker = `${realpathSync(u.what)}.in-use`;
      writeFileSync(u.marker, `${unit}\n`);
      this.setState(u, { activeState: 'active', subState: 'mounted', result: 'success' });
    } else {
      this.setState(u, { activeState: 'active', subState: 'running', result: 'success' });
    }
    return 'done';
  }

  /** Stops, deepest first, every active unit that (transitively) requires `unit`. */
  private stopDependents(unit: string): void {
    for (const other of this.units.values()) {
      if (other.spec.requires?.includes(unit) && other.state.activeState === 'active') {
        this.stopDependents(other.spec.name);
        this.doStop(other.spec.name);
      }
    }
  }

  private doStop(unit: string): void {
    const u = this.get(unit);
    this.release(u);
    // Stopping a failed unit leaves it failed (until reset-failed) in systemd, with its result.
    if (u.state.activeState === 'failed' || u.state.activeState === 'inactive') return;
    this.setState(u, { activeState: 'inactive', subState: 'dead', result: 'success' });
  }

  private release(u: MemoryUnit): void {
    if (u.marker) rmSync(u.marker, { force: true });
    u.marker = undefined;
  }
}
