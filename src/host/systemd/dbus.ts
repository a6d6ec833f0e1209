import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../../log/logger.js';
import { silentLogger } from '../../log/logger.js';
import {
  JOB,
  MANAGER,
  MANAGER_PATH,
  PROPERTIES,
  UNIT,
  addMatchCall,
  dbusErrorName,
  defaultBusAddress,
  methodCall,
  openBus,
  signalRule,
  variantValue,
  type Bus,
  type Message,
} from './bus.js';
import { SystemdBusError, UnitFailedError, UnitNotFoundError, UnitTimeoutError } from './errors.js';
import { deadlineSignal, raceAbort, timeoutOr } from './abort.js';
import { JobTracker } from './jobs.js';
import type { ActiveState, JobResult, ReloadOptions, SystemdPort, UnitOpOptions, UnitState } from './port.js';

const execFileP = promisify(execFile);

/** 10 s to connect: a local bus socket answers Hello in milliseconds; a stuck dbus-daemon does not. */
const CONNECT_TIMEOUT_MS = 10_000;
/** 60 s for daemon-reload: re-reading all unit files takes well under a second, even on a busy host. */
const RELOAD_TIMEOUT_MS = 60_000;
/** 3 s to read journal lines for an error report: best effort, must not delay the error much. */
const JOURNAL_TIMEOUT_MS = 3_000;
const JOURNAL_LINES = 20;

/** Reads the last journal lines of a unit; return [] when unreadable. */
export type JournalReader = (unit: string) => Promise<string[]>;

export interface DbusSystemdOptions {
  /** D-Bus address; default `$DBUS_SYSTEM_BUS_ADDRESS` or the system bus socket. */
  busAddress?: string;
  log?: Logger;
  /** How to read journal lines for `UnitFailedError`; default `journalctl` here; `false` for none. */
  journal?: JournalReader | false;
}

const localJournal: JournalReader = async (unit) => {
  try {
    const { stdout } = await execFileP('journalctl', ['--no-pager', '-o', 'cat', '-n', String(JOURNAL_LINES), '-u', unit], {
      timeout: JOURNAL_TIMEOUT_MS,
    });
    return stdout.split('\n').filter((l) => l.length > 0);
  } catch {
    return []; // no journalctl or no access: the error still carries result and job result
  }
};

/** Unit type suffix → the D-Bus interface holding that type's `Result` property. */
const RESULT_INTERFACE: Record<string, string> = {
  service: 'org.freedesktop.systemd1.Service',
  mount: 'org.freedesktop.systemd1.Mount',
  socket: 'org.freedesktop.systemd1.Socket',
  swap: 'org.freedesktop.systemd1.Swap',
  timer: 'org.freedesktop.systemd1.Timer',
  path: 'org.freedesktop.systemd1.Path',
  scope: 'org.freedesktop.systemd1.Scope',
  automount: 'org.freedesktop.systemd1.Automount',
};

/**
 * systemd over D-Bus. Every job-creating call follows the same protocol: `Subscribe()` once at
 * connect (without a subscriber systemd does not broadcast `JobRemoved`), then the method call returns
 * a job path, and the job's `JobRemoved` signal tells its result. No sleeping, no polling.
 */
export class DbusSystemd implements SystemdPort {
  private readonly jobs = new JobTracker();
  private readonly unitPaths = new Map<string, string>();
  /** Listeners for PropertiesChanged per unit object path (waitForState). */
  private readonly propertyListeners = new Map<string, Set<() => void>>();
  private closed = false;

  private constructor(
    private readonly bus: Bus,
    readonly busAddress: string,
    private readonly log: Logger,
    private readonly journal: JournalReader | undefined,
  ) {
    bus.on('message', (msg: Message) => this.onMessage(msg));
    bus.on('error', (err: unknown) => this.log.error({ err, busAddress }, 'D-Bus connection error'));
  }

  static async connect(opts: DbusSystemdOptions = {}): Promise<DbusSystemd> {
    const busAddress = opts.busAddress ?? defaultBusAddress();
    const log = (opts.log ?? silentLogger()).child({ component: 'systemd' });
    const bus = await openBus(busAddress, CONNECT_TIMEOUT_MS);
    const journal = opts.journal === false ? undefined : (opts.journal ?? localJournal);
    const systemd = new DbusSystemd(bus, busAddress, log, journal);
    try {
      await systemd.call(MANAGER_PATH, MANAGER, 'Subscribe');
      await systemd.addMatch(signalRule(MANAGER, 'JobRemoved'));
      await systemd.addMatch(signalRule(PROPERTIES, 'PropertiesChanged', `,path_namespace='${MANAGER_PATH}/unit'`));
    } catch (err) {
      bus.disconnect();
      throw err;
    }
    log.debug({ busAddress }, 'connected to systemd');
    return systemd;
  }

  startUnit(unit: string, opts: UnitOpOptions): Promise<UnitState> {
    return this.runJob('start', unit, 'StartUnit', opts);
  }

  stopUnit(unit: string, opts: UnitOpOptions): Promise<UnitState> {
    return this.runJob('stop', unit, 'StopUnit', opts);
  }

  restartUnit(unit: string, opts: UnitOpOptions): Promise<UnitState> {
    return this.runJob('restart', unit, 'RestartUnit', opts);
  }

  async reload(opts: ReloadOptions = {}): Promise<void> {
    // systemd sends the reply to Reload only once the reload has finished.
    const timeoutMs = opts.timeoutMs ?? RELOAD_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    await raceAbort(this.call(MANAGER_PATH, MANAGER, 'Reload'), timeout, () => new UnitTimeoutError('daemon', 'reload', timeoutMs));
    // Unit objects may have been replaced; their paths are stable, but drop the cache to re-load.
    this.unitPaths.clear();
  }

  async unitState(unit: string): Promise<UnitState> {
    const path = await this.unitPath(unit);
    const reply = await this.call(path, PROPERTIES, 'GetAll', 's', [UNIT]);
    const props = (reply?.body[0] ?? {}) as Record<string, unknown>;
    const str = (k: string): string => {
      const v = variantValue(props[k]);
      return typeof v === 'string' ? v : '';
    };
    const loadState = str('LoadState');
    let result = '';
    const iface = RESULT_INTERFACE[unit.slice(unit.lastIndexOf('.') + 1)];
    if (iface && loadState === 'loaded') {
      const r = await this.call(path, PROPERTIES, 'Get', 'ss', [iface, 'Result']);
      const v = variantValue(r?.body[0]);
      result = typeof v === 'string' ? v : '';
    }
    return { activeState: str('ActiveState') as ActiveState, subState: str('SubState'), result, loadState };
  }

  async waitForState(unit: string, states: readonly ActiveState[], opts: UnitOpOptions): Promise<UnitState> {
    const path = await this.unitPath(unit);
    const abort = deadlineSignal(opts);
    let wake: () => void = () => undefined;
    let changed = true; // check once at start, then on every PropertiesChanged of the unit
    const listener = (): void => {
      changed = true;
      wake();
    };
    this.onProperties(path, listener);
    try {
      for (;;) {
        if (changed) {
          changed = false;
          const state = await raceAbort(this.unitState(unit), abort, () => timeoutOr(abort, unit, 'wait', opts.timeoutMs));
          if (states.includes(state.activeState)) return state;
          continue; // re-check at once if a change arrived while we were reading
        }
        await raceAbort(new Promise<void>((r) => (wake = r)), abort, () => timeoutOr(abort, unit, 'wait', opts.timeoutMs));
      }
    } finally {
      this.offProperties(path, listener);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.bus.disconnect();
  }

  // --- internals -----------------------------------------------------------------------------

  private async runJob(operation: 'start' | 'stop' | 'restart', unit: string, member: string, opts: UnitOpOptions): Promise<UnitState> {
    const abort = deadlineSignal(opts);
    abort.throwIfAborted();
    const t0 = performance.now();
    let jobPath: string;
    let finished: Promise<JobResult>;
    this.jobs.begin();
    try {
      // 'replace': our job replaces a conflicting queued one (a stop queued by an earlier release).
      const reply = await raceAbort(this.call(MANAGER_PATH, MANAGER, member, 'ss', [unit, 'replace']), abort, () =>
        timeoutOr(abort, unit, operation, opts.timeoutMs),
      );
      jobPath = String(reply?.body[0]);
      finished = this.jobs.wait(jobPath);
    } catch (err) {
      throw this.classify(err, unit);
    } finally {
      this.jobs.end();
    }
    let jobResult: JobResult;
    try {
      jobResult = await raceAbort(finished, abort, () => timeoutOr(abort, unit, operation, opts.timeoutMs));
    } catch (err) {
      this.jobs.forget(jobPath);
      if (operation === 'stop') {
        await this.call(jobPath, JOB, 'Cancel').catch(() => undefined); // job may have just finished
      } else {
        // Cancelling a start job does not stop a process already running (a oneshot, an ExecStartPre):
        // the unit would still come up later, after the caller gave up on it. A stop job replacing
        // the start does stop it. Not awaited: its own duration is the unit's stop timeout.
        await this.call(MANAGER_PATH, MANAGER, 'StopUnit', 'ss', [unit, 'replace']).catch(() => undefined);
      }
      throw err;
    }
    const state = await this.unitState(unit);
    const ms = Math.round(performance.now() - t0);
    if (jobResult !== 'done' || (operation !== 'stop' && state.activeState === 'failed')) {
      const journal = this.journal ? await this.journal(unit) : [];
      this.log.warn({ unit, operation, jobResult, result: state.result, ms }, 'unit job failed');
      throw new UnitFailedError(unit, state.result, jobResult, journal);
    }
    this.log.debug({ unit, operation, ms, activeState: state.activeState }, 'unit job done');
    return state;
  }

  private onMessage(msg: Message): void {
    if (msg.interface === MANAGER && msg.member === 'JobRemoved') {
      const [, jobPath, , result] = msg.body as [number, string, string, JobResult];
      this.jobs.removed(jobPath, result);
    } else if (msg.interface === PROPERTIES && msg.member === 'PropertiesChanged') {
      for (const l of this.propertyListeners.get(msg.path) ?? []) l();
    }
  }

  private onProperties(path: string, listener: () => void): void {
    let set = this.propertyListeners.get(path);
    if (!set) this.propertyListeners.set(path, (set = new Set()));
    set.add(listener);
  }

  private offProperties(path: string, listener: () => void): void {
    const set = this.propertyListeners.get(path);
    set?.delete(listener);
    if (set?.size === 0) this.propertyListeners.delete(path);
  }

  private async unitPath(unit: string): Promise<string> {
    const cached = this.unitPaths.get(unit);
    if (cached) return cached;
    try {
      // LoadUnit (not GetUnit): answers for units that are not loaded yet, too.
      const reply = await this.call(MANAGER_PATH, MANAGER, 'LoadUnit', 's', [unit]);
      const path = String(reply?.body[0]);
      this.unitPaths.set(unit, path);
      return path;
    } catch (err) {
      throw this.classify(err, unit);
    }
  }

  private async addMatch(rule: string): Promise<void> {
    await this.bus.call(addMatchCall(rule));
  }

  private async call(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<Message | null> {
    if (this.closed) throw new SystemdBusError(this.busAddress, undefined, 'systemd client is closed');
    try {
      return await this.bus.call(methodCall(path, iface, member, signature, body));
    } catch (err) {
      const name = dbusErrorName(err);
      if (name === undefined) throw new SystemdBusError(this.busAddress, undefined, `${member} failed: ${String(err)}`, { cause: err });
      throw err; // classified by the caller, which knows the unit
    }
  }

  private classify(err: unknown, unit: string): unknown {
    const name = dbusErrorName(err);
    if (name === 'org.freedesktop.systemd1.NoSuchUnit' || name === 'org.freedesktop.systemd1.LoadFailed') {
      return new UnitNotFoundError(unit, 'not-found', { cause: err });
    }
    if (name === 'org.freedesktop.systemd1.UnitMasked') return new UnitNotFoundError(unit, 'masked', { cause: err });
    if (name !== undefined) {
      return new SystemdBusError(this.busAddress, name, `${name} for ${unit}: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
    return err;
  }
}
