import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFailoverCli } from '../fixtures/cli-harness.js';

// Issue 13, CLI polish: the real binary as a child process. None of these reach etcd (port 1 is closed):
// each is answered before a connection is needed.
const NO_ETCD = { EBS_FAILOVER_ETCD_ENDPOINTS: 'http://127.0.0.1:1', EBS_FAILOVER_ETCD_TIMEOUT: '2' };
const cli = (args: string[], env: Record<string, string> = NO_ETCD) => runFailoverCli(args, env);
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('version, help, did-you-mean', () => {
  it('--version prints the package version', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('failover help <cmd> is that command\'s help; failover help lists commands', async () => {
    const r = await cli(['help', 'history']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: failover history \[options\] \[unit\]/);
    expect(r.stdout).toContain('--since <when>');
    const all = await cli(['help']);
    expect(all.code).toBe(0);
    for (const c of ['status', 'history', 'completion', 'help [command]']) expect(all.stdout).toContain(c);
  });

  it('a mistyped command gets a suggestion, exit 2, no etcd call', async () => {
    const r = await cli(['stauts']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: unknown command "stauts"; did you mean: failover status?');
    expect(r.stderr).not.toMatch(/unreachable|did not answer|bad unit name/);
  });

  it('a bad unit name says which part is wrong and cuts long input', async () => {
    const r = await cli([`postgres@vol-${'a'.repeat(5_000)}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('(5013 characters)');
    expect(r.stderr).toContain('hex digits after "vol-"; expected 8 to 17');
    expect(r.stderr.length).toBeLessThan(400);
    const template = await cli(['cancel', 'post gres@vol-0abc12345def67890']);
    expect(template.code).toBe(2);
    expect(template.stderr).toContain('bad unit name "post gres@vol-0abc12345def67890": the template "post gres" has " "');
  });
});

describe('config errors', () => {
  it('all at once, each with its source (file, env variable, flag)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cli-polish-')), 'config.json');
    writeFileSync(file, JSON.stringify({ etcd: { endpoints: ['http://127.0.0.1:1'] }, prefixx: '/x/', lease: { ttlMs: 'ten' } }));
    const r = await cli(['status', '--config', file, '--aws-endpoint', 'not a url'], { EBS_FAILOVER_PARALLELISM: 'many' });
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe('error: 4 config errors:');
    expect(r.stderr).toContain('controller.parallelism: expected a whole number, got "many" (from env EBS_FAILOVER_PARALLELISM)');
    expect(r.stderr).toContain(`(root): unknown key "prefixx" (from file ${file})`);
    expect(r.stderr).toMatch(new RegExp(`lease\\.ttlMs: .* \\(from file ${file}\\)`));
    expect(r.stderr).toMatch(/aws\.endpoint: .* \(from flags\)/);
  });

  it('no config at all: how to give the etcd endpoints', async () => {
    const r = await runFailoverCli(['status'], { EBS_FAILOVER_ETCD_ENDPOINTS: '', EBS_FAILOVER_CONFIG: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no etcd endpoints configured: pass --etcd .* set EBS_FAILOVER_ETCD_ENDPOINTS/);
    expect(r.stderr).not.toContain('expected object');
  });
});

describe('failover completion bash', () => {
  it('completes commands, subcommands and their options in a real bash', async () => {
    const r = await cli(['completion', 'bash']);
    expect(r.code).toBe(0);
    const script = join(mkdtempSync(join(tmpdir(), 'cli-polish-')), 'failover.bash');
    writeFileSync(script, r.stdout);
    const complete = (words: string[]): string[] => {
      const out = spawnSync('bash', ['-c', `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _failover; echo "\${COMPREPLY[@]}"`], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
      return out.stdout.trim().split(/\s+/);
    };
    expect(complete(['failover', 'sta'])).toEqual(['status']);
    expect(complete(['failover', 'service', 'a'])).toEqual(['add']);
    expect(complete(['failover', 'history', '--s'])).toEqual(['--since']);
    expect(complete(['failover', 'postgres@vol-0abc12345def67890', '--dr'])).toEqual(['--dry-run']);
    const bad = await cli(['completion', 'tcsh']);
    expect(bad.code).toBe(2);
  });
});
