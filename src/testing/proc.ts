/**
 * Child processes of a local world, spawned one way: `node --import tsx <script> [args…]` (tsx compiles
 * on start, no build step). Used for the test fixtures (agents and controllers of test/fixtures), for
 * the real `failover` CLI run as daemons (`Daemon`) and as one-shot commands (`runCli`), by the chaos
 * runner, the demo, bench and the integration tests. Kept in src/testing, not in test/fixtures, so the
 * chaos runner, demo and bench can use it without importing from the test tree.
 */
import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

/** The repository root, where `src/cli/main.ts` lives (this file is src/testing/proc.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The real CLI, run the way an operator's wrapper would: node + the tsx loader, no build step. */
export const CLI_SCRIPT = 'src/cli/main.ts';

/** 60 s: tsx compiles on start, and two worlds side by side on two cores are slow, never this slow. */
export const READY_TIMEOUT_MS = 60_000;

/** A process gets this long to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;

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

/** What to run: `node --import tsx <script> [args…]` in `cwd`. */
export interface TsxLaunch {
  cwd: string;
  script: string;
  env: NodeJS.ProcessEnv;
  /** Command-line arguments after the script (`agent --instance-id …` for the CLI). */
  args?: readonly string[];
  /** false: `env` is the whole environment (a caller that removed variables); default: it is laid over process.env. */
  inheritEnv?: boolean;
}

/** The one way this project's test worlds start a TypeScript entry point (stdout and stderr piped). */
export function spawnTsx(l: TsxLaunch): ChildProcessByStdio<null, Readable, Readable> {
  const env = l.inheritEnv === false ? l.env : { ...process.env, ...l.env };
  return spawn(process.execPath, ['--import', 'tsx', l.script, ...(l.args ?? [])], { cwd: l.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface FixtureProcOptions {
  /** Also append everything the process prints to this file (a daemon's log, printed in part on failure). */
  logFile?: string;
  /** Called when the process exits without kill() or stop() having asked it to (a daemon that crashed). */
  onUnexpectedExit?: (err: DaemonExitedError) => void;
}

/**
 * One child process running a TypeScript entry point (a fixture, or the CLI), with the signals a fault
 * schedule needs. A fixture prints `ready` on stdout once it serves (`ready()` waits for it); its output
 * lines and the tail of its stderr are kept in memory. Spawned here from a TsxLaunch, or a child a
 * test spawned itself (stdout and stderr piped) is watched the same way.
 */
export class FixtureProc {
  readonly lines: string[] = [];
  /** The tail of stderr (pino logs go there). */
  stderr = '';
  exited = false;
  exitCode: number | null = null;
  /** True between SIGSTOP and SIGCONT. */
  frozen = false;
  /** When this process was spawned: a host's ledger lines from before are an earlier process's. */
  readonly startedAt = Date.now();
  readonly logFile: string | undefined;
  private readonly exitPromise: Promise<number | null>;
  /** The child itself, for a test that sends it signals by hand (`signal()` keeps `frozen` right). */
  readonly child: ChildProcess;
  /** Set by kill() and stop(), so that exit is not reported as unexpected. */
  private expectedExit = false;

  constructor(readonly name: string, from: TsxLaunch | ChildProcess, opts: FixtureProcOptions = {}) {
    this.logFile = opts.logFile;
    this.child = 'script' in from ? spawnTsx(from) : from;
    const log = opts.logFile === undefined ? null : createWriteStream(opts.logFile, { flags: 'a' });
    let buf = '';
    this.child.stdout?.on('data', (d: Buffer) => {
      log?.write(d);
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      this.lines.push(...parts);
      // Bounded: a controller prints one line per persisted journal.
      if (this.lines.length > 5_000) this.lines.splice(0, 2_500);
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      log?.write(d);
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    this.exitPromise = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        log?.end();
        if (!this.expectedExit) opts.onUnexpectedExit?.(new DaemonExitedError(this.name, code, signal));
        resolve(code);
      }),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async ready(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.includes('ready')) {
      if (this.exited) throw new Error(`${this.name} exited (${this.exitCode}) before it was ready: ${this.stderr.slice(-2_000)}`);
      if (Date.now() > deadline) throw new Error(`${this.name} not ready after ${timeoutMs} ms: ${this.stderr.slice(-2_000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The process stopped itself (a fixture's pause hook): it is frozen until someone sends SIGCONT. */
  markFrozen(): void {
    this.frozen = true;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exited) return;
    this.child.kill(sig);
    if (sig === 'SIGSTOP') this.frozen = true;
    if (sig === 'SIGCONT') this.frozen = false;
  }

  wait(): Promise<number | null> {
    return this.exitPromise;
  }

  /** SIGTERM (after SIGCONT, a stopped process cannot act on it), SIGKILL after `graceMs`. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (this.exited) return;
    this.expectedExit = true;
    this.signal('SIGCONT');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }

  /** The host "dies": no chance to fence, release or revoke anything. */
  async kill(): Promise<void> {
    if (this.exited) return;
    this.expectedExit = true;
    this.child.kill('SIGKILL');
    await this.exitPromise;
  }

  /** The last `lines` lines of the log file (or of stderr without one). */
  async logTail(lines = 15): Promise<string[]> {
    return this.logFile === undefined ? lastLines(this.stderr, lines) : fileTail(this.logFile, lines);
  }
}

/**
 * One long-running `failover <controller|agent>` daemon that can be started again after it stopped, as
 * the same daemon (same arguments, environment and log file). Its output (pino JSON on stderr) goes to
 * `logFile`.
 */
export class Daemon {
  private proc: FixtureProc | null = null;
  onUnexpectedExit: ((err: DaemonExitedError) => void) | null = null;

  constructor(
    readonly name: string,
    private readonly args: readonly string[],
    /** The whole environment of the daemon (not laid over this process's). */
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {}

  get pid(): number | undefined {
    return this.running ? this.proc?.pid : undefined;
  }

  get running(): boolean {
    return this.proc !== null && !this.proc.exited;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.proc = new FixtureProc(this.name, { cwd: REPO_ROOT, script: CLI_SCRIPT, env: this.env, args: this.args, inheritEnv: false }, {
      logFile: this.logFile, onUnexpectedExit: (err) => this.onUnexpectedExit?.(err),
    });
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  /** SIGTERM, then SIGKILL if it does not exit within the grace period. */
  async stop(): Promise<void> {
    await this.proc?.stop(STOP_GRACE_MS);
  }

  logTail(lines = 15): Promise<string[]> {
    return fileTail(this.logFile, lines);
  }
}

const lastLines = (text: string, n: number): string[] => text.trimEnd().split('\n').slice(-n);
/** A log file that does not exist (yet) has no lines. */
const fileTail = async (file: string, n: number): Promise<string[]> => lastLines(await readFile(file, 'utf8').catch(() => ''), n);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one `failover …` command to completion, with `env` as its whole environment. With `onLine`,
 * stdout lines are handed over as they come (a manual failover prints its steps live); a command still
 * running after `timeoutMs` is killed.
 */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv, opts: { timeoutMs: number; onLine?: (line: string) => void }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTsx({ cwd: REPO_ROOT, script: CLI_SCRIPT, env, args, inheritEnv: false });
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
