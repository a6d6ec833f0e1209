import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

/** The repository root, where `src/cli/main.ts` lives (this file is src/demo/proc.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A daemon gets this long to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;

/** The real CLI, run the way an operator's wrapper would: node + the tsx loader, no build step. */
function cliArgv(args: readonly string[]): string[] {
  return ['--import', 'tsx', 'src/cli/main.ts', ...args];
}

export class DaemonExitedError extends Error {
  override readonly name = 'DaemonExitedError';
  constructor(
    readonly daemon: string,
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(`${daemon} exited (code ${code ?? '-'}, signal ${signal ?? '-'})`);
  }
}

/**
 * One long-running `failover <controller|agent>` child. Its output (pino JSON on stderr) goes to
 * `logFile`, which the demo prints the tail of when something goes wrong.
 */
export class Daemon {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  /** Set when the demo killed it on purpose, so the exit is not reported as a failure. */
  private expectedExit = false;
  onUnexpectedExit: ((err: DaemonExitedError) => void) | null = null;

  constructor(
    readonly name: string,
    private readonly args: readonly string[],
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null;
  }

  start(): void {
    if (this.child) throw new Error(`${this.name} is already running`);
    const log: WriteStream = createWriteStream(this.logFile, { flags: 'a' });
    const child = spawn(process.execPath, cliArgv(this.args), { cwd: REPO_ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    this.expectedExit = false;
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.child = null;
        log.end();
        if (!this.expectedExit) this.onUnexpectedExit?.(new DaemonExitedError(this.name, code, signal));
        resolve();
      });
    });
  }

  /** The host "dies": no chance to fence, release or revoke anything. */
  async kill(): Promise<void> {
    if (!this.child) return;
    this.expectedExit = true;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL if it does not exit within the grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.expectedExit = true;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  async logTail(lines = 15): Promise<string[]> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines);
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one `failover …` command to completion. With `onLine`, stdout lines are handed over as they
 * come (a manual failover prints its steps live); a command still running after `timeoutMs` is killed.
 */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv, opts: { timeoutMs: number; onLine?: (line: string) => void }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, cliArgv(args), { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      stdout += `${line}\n`;
      opts.onLine?.(line);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/**
 * A pino JSON line as `HH:MM:SS.mmm LEVEL msg key=value…` (ids and the error message only), so the
 * tails printed on failure are readable; other lines are returned as they are.
 */
export function compactLogLine(line: string): string {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof rec !== 'object' || rec === null || !('msg' in rec)) return line;
  const r = rec as Record<string, unknown>;
  const level = typeof r.level === 'number' ? (PINO_LEVELS[r.level] ?? String(r.level)) : '?';
  const time = typeof r.time === 'number' ? new Date(r.time).toISOString().slice(11, 23) : '';
  const ids = ['volumeId', 'instanceId', 'unit', 'step']
    .filter((k) => typeof r[k] === 'string')
    .map((k) => `${k}=${String(r[k])}`);
  const err = r.err as { message?: unknown } | undefined;
  if (typeof err?.message === 'string') ids.push(`err="${err.message}"`);
  return [time, level, String(r.msg), ...ids].filter((p) => p !== '').join(' ');
}

const PINO_LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
