import type { JobResult } from './port.js';

/** A unit's job ended in anything but `done`, or the unit ended `failed`. */
export class UnitFailedError extends Error {
  override readonly name = 'UnitFailedError';
  constructor(
    readonly unit: string,
    /** The unit's `Result` property (`exit-code`, `signal`, `timeout`, `protocol`, ...); '' when none. */
    readonly result: string,
    /** The job result from `JobRemoved` (`failed`, `dependency`, `canceled`, ...), or undefined when no job ran. */
    readonly jobResult: JobResult | undefined,
    /** Last journal lines of the unit, when they could be read. */
    readonly journal: string[] = [],
    options?: { cause?: unknown; message?: string },
  ) {
    super(options?.message ?? `unit ${unit} failed (job ${jobResult ?? 'none'}, result ${result || 'unknown'})`, options);
  }
}

/** A job (or a wait for a state) did not finish within its deadline. The job was cancelled. */
export class UnitTimeoutError extends Error {
  override readonly name = 'UnitTimeoutError';
  constructor(
    readonly unit: string,
    readonly operation: 'start' | 'stop' | 'restart' | 'reload' | 'wait',
    readonly timeoutMs: number,
  ) {
    super(`${operation} of ${unit} did not finish within ${timeoutMs} ms`);
  }
}

/** systemd has no such unit (no unit file, or masked) — a configuration error, not retryable. */
export class UnitNotFoundError extends Error {
  override readonly name = 'UnitNotFoundError';
  constructor(readonly unit: string, readonly loadState: string, options?: { cause?: unknown }) {
    super(`unit ${unit} cannot be loaded (${loadState})`, options);
  }
}

/** The D-Bus connection failed or a call returned a D-Bus error we do not classify further. */
export class SystemdBusError extends Error {
  override readonly name = 'SystemdBusError';
  constructor(
    readonly busAddress: string,
    /** D-Bus error name, e.g. `org.freedesktop.DBus.Error.AccessDenied`. */
    readonly dbusError: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
