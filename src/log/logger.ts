import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stderr (stdout is kept for command output). Children carry the ids an
 * operator greps for: `volumeId`, `instanceId`, `unit`, `step`.
 */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

/** A logger that drops everything, for tests and library use where the caller passes none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
