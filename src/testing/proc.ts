/**
 * A child process running a TypeScript fixture through tsx (agents and controllers of a test world),
 * with the signals a fault schedule needs. Kept here, not in test/fixtures, so the chaos runner (and
 * later demo and bench) can use it without importing from the test tree.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** 60 s: tsx compiles on start, and two worlds side by side on two cores are slow, never this slow. */
export const READY_TIMEOUT_MS = 60_000;

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
  private readonly exitPromise: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(readonly name: string, cwd: string, script: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, ['--import', 'tsx', script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      this.lines.push(...parts);
      // Bounded: a controller prints one line per persisted journal.
      if (this.lines.length > 5_000) this.lines.splice(0, 2_500);
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
    this.exitPromise = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        this.exited = true;
        this.exitCode = code;
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
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    this.signal('SIGCONT');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGKILL');
    await this.exitPromise;
  }
}
