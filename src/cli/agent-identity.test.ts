import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Config } from '../config/index.js';
import { readMachineId, resolveAgentIdentity } from './agent-identity.js';

function file(content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'ebs-failover-mid-')), 'machine-id');
  writeFileSync(path, content);
  return path;
}

const agentConfig = (agent: Record<string, unknown>) => Config.parse({ etcd: { endpoints: ['http://127.0.0.1:2379'] }, agent }).agent;

describe('agent identity', () => {
  it('uses config overrides without asking IMDS, and reads /etc/machine-id', async () => {
    const identity = await resolveAgentIdentity(
      agentConfig({ instanceId: 'i-0abc12345def67890', az: 'us-east-1a', privateIp: '10.0.0.5', machineIdFile: file('0123456789abcdef0123456789abcdef\n') }),
      // An endpoint nothing listens on: proves IMDS is not asked.
      { endpoint: 'http://127.0.0.1:1', timeoutMs: 200 },
    );
    expect(identity).toEqual({ instanceId: 'i-0abc12345def67890', az: 'us-east-1a', privateIp: '10.0.0.5', machineId: '0123456789abcdef0123456789abcdef' });
  });

  it('rejects a malformed machine id file, naming the field', async () => {
    await expect(readMachineId(file('not-an-id\n'))).rejects.toThrow('config error: agent.machineIdFile:');
    await expect(readMachineId('/nonexistent/machine-id')).rejects.toThrow(/cannot read \/nonexistent\/machine-id: ENOENT/);
  });

  it('fails clearly when IMDS is unreachable and config lacks a value', async () => {
    await expect(resolveAgentIdentity(agentConfig({ az: 'us-east-1a', machineId: 'f'.repeat(32) }), { endpoint: 'http://127.0.0.1:1', timeoutMs: 500 })).rejects.toThrow(
      /instance metadata \/latest\/api\/token from http:\/\/127.0.0.1:1/,
    );
  });
});
