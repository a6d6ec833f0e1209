import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The demo promises to finish within a minute; allow twice that on a loaded 2-core machine. */
const DEMO_DEADLINE_MS = 120_000;

function runDemo(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/demo/main.ts'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGINT'), DEMO_DEADLINE_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run demo', () => {
  it('fails over, moves back, snapshots, checks safety, exits 0 and leaves no process behind', async () => {
    const { code, stdout, stderr } = await runDemo();
    expect({ code, tail: stdout.split('\n').slice(-30).join('\n'), stderr: stderr.slice(-2000) }).toMatchObject({ code: 0 });
    expect(stdout).toMatch(/failover done: detected \+[\d.]+s → fenced \+[\d.]+s → detached \+[\d.]+s → attached \+[\d.]+s → mounted \+[\d.]+s → active \+[\d.]+s on host-\d/);
    expect(stdout).toMatch(/safety: vol-[0-9a-f]+ never held by two hosts \(\d+ EC2 attachment changes, \d+ agent reports checked\)/);
    expect(stdout).toContain('$ failover snapshot list');
    expect(stdout).toMatch(/demo OK in [\d.]+ s/);
    const pids = [...stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
    // 4 agents, the controller, and the restarted agent.
    expect(pids).toHaveLength(6);
    expect(pids.filter(alive)).toEqual([]);
  }, DEMO_DEADLINE_MS + 30_000);
});
