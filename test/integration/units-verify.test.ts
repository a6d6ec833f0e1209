import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const UNITS_DIR = new URL('../../units/', import.meta.url).pathname;
const UNIT_FILES = readdirSync(UNITS_DIR).filter((f) => /\.(service|mount|timer)$/.test(f));

/** fleet's section; systemd would warn about it ("Unknown section"), and fleet is not systemd. */
function stripFleetSections(text: string): string {
  const out: string[] = [];
  let skip = false;
  for (const line of text.split('\n')) {
    if (/^\[.*\]\s*$/.test(line)) skip = line.trim() === '[X-Fleet]';
    if (!skip) out.push(line);
  }
  return out.join('\n');
}

/**
 * A temp copy systemd-analyze can resolve: X-Fleet stripped, the binaries the units run (/usr/bin/failover,
 * /usr/bin/docker, absent on CI) pointed at stub executables, and a stub docker.service for Requires=.
 */
function prepareCopy(): { dir: string; names: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'ebs-failover-units-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const name of ['failover', 'docker']) {
    writeFileSync(join(bin, name), '#!/bin/sh\nexit 0\n');
    chmodSync(join(bin, name), 0o755);
  }
  for (const file of UNIT_FILES) {
    const text = stripFleetSections(readFileSync(join(UNITS_DIR, file), 'utf8')).replaceAll('/usr/bin/failover', join(bin, 'failover')).replaceAll('/opt/bin/failover', join(bin, 'failover')).replaceAll('/usr/bin/docker', join(bin, 'docker'));
    writeFileSync(join(dir, file), text);
  }
  writeFileSync(join(dir, 'docker.service'), '[Unit]\nDescription=stub docker\n[Service]\nExecStart=/bin/true\n');
  // A template is verified through one of its instances.
  const names = UNIT_FILES.map((f) => (f === 'failover-controller@.service' ? 'failover-controller@1.service' : f.endsWith('@.service') ? f.replace('@.service', '@vol-0abc12345def67890.service') : f));
  return { dir, names };
}

const copies: string[] = [];
afterAll(() => copies.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describe('units/', () => {
  it('has every unit the deployment needs', () => {
    expect(UNIT_FILES.sort()).toEqual(
      ['data-postgres.mount', 'failover-agent.service', 'failover-controller@.service', 'failover-snapshot.service', 'failover-snapshot.timer', 'postgres@.service'].sort(),
    );
  });

  it.each(UNIT_FILES)('systemd-analyze verify %s: no errors, no unknown keys', async (file) => {
    const { dir, names } = prepareCopy();
    copies.push(dir);
    const name = names[UNIT_FILES.indexOf(file)] ?? file;
    const result = await run('systemd-analyze', ['verify', '--man=no', name], {
      cwd: dir,
      // Trailing ':' keeps the built-in search path after ours.
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_LOG_LEVEL: 'notice' },
    }).then(
      (r) => ({ code: 0, output: r.stdout + r.stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, output: err.stdout + err.stderr }),
    );
    expect(result.output).not.toMatch(/Unknown (key|section|lvalue)|not found|not executable|Failed/);
    expect(result.code).toBe(0);
  });

  it('keeps the fleet scheduling hints the brief relies on', () => {
    const read = (f: string): string => readFileSync(join(UNITS_DIR, f), 'utf8');
    expect(read('failover-agent.service')).toMatch(/\[X-Fleet\]\nGlobal=true/);
    expect(read('failover-agent.service')).toMatch(/^Restart=always$/m);
    expect(read('postgres@.service')).toMatch(/^MachineMetadata=postgres=%i$/m);
    expect(read('postgres@.service')).toMatch(/^Conflicts=postgres\*$/m);
    expect(read('postgres@.service')).toMatch(/^Requires=data-postgres\.mount/m);
    expect(read('postgres@.service')).toMatch(/^After=data-postgres\.mount/m);
    expect(read('failover-snapshot.timer')).toMatch(/^Persistent=true$/m);
    expect(read('failover-snapshot.timer')).toMatch(/^RandomizedDelaySec=\S+$/m);
  });

  it('iam-policy.json grants mutations only under tag conditions', () => {
    const policy = JSON.parse(readFileSync(join(UNITS_DIR, 'iam-policy.json'), 'utf8')) as {
      Statement: Array<{ Action: string | string[]; Resource: string; Condition?: Record<string, Record<string, unknown>> }>;
    };
    const actions = (s: { Action: string | string[] }): string[] => (Array.isArray(s.Action) ? s.Action : [s.Action]);
    for (const statement of policy.Statement) {
      const mutating = actions(statement).some((a) => !a.startsWith('ec2:Describe'));
      if (mutating) {
        expect(statement.Resource).not.toBe('*');
        expect(statement.Condition).toBeDefined();
      }
    }
    const createTags = policy.Statement.find((s) => actions(s).includes('ec2:CreateTags'));
    expect(createTags?.Condition?.StringEquals?.['ec2:CreateAction']).toBe('CreateSnapshot');
    const granted = new Set(policy.Statement.flatMap(actions));
    for (const a of ['ec2:AttachVolume', 'ec2:DetachVolume', 'ec2:CreateSnapshot', 'ec2:DeleteSnapshot', 'ec2:StopInstances', 'ec2:DescribeSnapshots']) {
      expect(granted.has(a)).toBe(true);
    }
  });
});
