/**
 * What the host agent needs from systemd, and nothing more: start/stop/restart a unit and wait for
 * the job to finish, daemon-reload, read a unit's state, wait for a state. Two implementations:
 * `DbusSystemd` (real systemd over D-Bus) and `MemorySystemd` (in-process stand-in for controller
 * end-to-end tests and the demo).
 *
 * Contract shared by both:
 * - `startUnit`/`stopUnit`/`restartUnit` resolve once systemd's job for the unit has finished with
 *   result `done`, returning the unit's state at that moment. Any other job result rejects with
 *   `UnitFailedError` (carrying the unit's `Result`, e.g. `exit-code`, and the job result, e.g.
 *   `failed` or `dependency`). No deadline → `UnitTimeoutError`; `signal` aborted → rejects with
 *   the signal's reason. On timeout/abort of a start/restart a stop job replaces it (a cancelled
 *   start job alone leaves an already running ExecStart going), so nothing comes up late.
 * - Stopping a unit stops the units that `Requires=` it (a service on top of a mount), as systemd does.
 */

/** systemd's ActiveState values. */
export type ActiveState =
  | 'active'
  | 'reloading'
  | 'inactive'
  | 'failed'
  | 'activating'
  | 'deactivating'
  | 'maintenance'
  | 'refreshing';

/** A job's result as systemd's `JobRemoved` signal reports it. */
export type JobResult = 'done' | 'canceled' | 'timeout' | 'failed' | 'dependency' | 'skipped' | 'invalid' | 'assert' | 'unsupported' | 'collected' | 'once';

export interface UnitState {
  /** `active`, `inactive`, `failed`, ... */
  activeState: ActiveState;
  /** Type-specific detail: `running`, `mounted`, `dead`, `exited`, ... */
  subState: string;
  /**
   * The unit type's `Result` property (`success`, `exit-code`, `signal`, `timeout`, `resources`, ...);
   * empty for unit types that have none.
   */
  result: string;
  /** `loaded`, `not-found`, `masked`, `error`, ... */
  loadState: string;
}

export interface UnitOpOptions {
  /** Deadline for the job to finish (ms). */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ReloadOptions {
  /** Deadline for the daemon-reload to finish (ms); default 60 s. */
  timeoutMs?: number;
}

export interface SystemdPort {
  startUnit(unit: string, opts: UnitOpOptions): Promise<UnitState>;
  stopUnit(unit: string, opts: UnitOpOptions): Promise<UnitState>;
  restartUnit(unit: string, opts: UnitOpOptions): Promise<UnitState>;
  /** daemon-reload; resolves once systemd has re-read its unit files and drop-ins. */
  reload(opts?: ReloadOptions): Promise<void>;
  unitState(unit: string): Promise<UnitState>;
  /** Resolves with the first observed state whose `activeState` is one of `states`. */
  waitForState(unit: string, states: readonly ActiveState[], opts: UnitOpOptions): Promise<UnitState>;
  close(): Promise<void>;
}
