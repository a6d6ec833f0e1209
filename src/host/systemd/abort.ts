import { UnitTimeoutError } from './errors.js';
import type { UnitOpOptions } from './port.js';

/** Deadlines and caller aborts for D-Bus calls and job waits. */

/** The caller's signal combined with the operation's deadline. */
export function deadlineSignal(opts: UnitOpOptions): AbortSignal {
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  return opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
}

/** A deadline abort becomes UnitTimeoutError; a caller's abort keeps the caller's reason. */
export function timeoutOr(signal: AbortSignal, unit: string, operation: UnitTimeoutError['operation'], timeoutMs: number): unknown {
  const reason: unknown = signal.reason;
  if (reason instanceof DOMException && reason.name === 'TimeoutError') return new UnitTimeoutError(unit, operation, timeoutMs);
  return reason;
}

export function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => unknown): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      },
    );
  });
}
