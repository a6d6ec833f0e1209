/**
 * DescribeInstanceStatus through the project's EC2 client (createEc2 → the real SDK → the EC2 endpoint):
 * the simulator's status-check hook (in process and over /_sim/status-checks) and what the client maps,
 * which is what the controller takes as EC2's proof of a lost host's death (src/controller/death-proof.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEc2 } from '../../src/ec2/index.js';
import { lookForDeathProof } from '../../src/controller/death-proof.js';
import { silentLogger } from '../../src/log/logger.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';

const AZ = 'us-east-1a';
let endpoint: Ec2Endpoint;

beforeAll(async () => {
  endpoint = await startEc2Endpoint({ latencies: { stopMs: 0, forceStopMs: 0 } });
  process.env.AWS_ACCESS_KEY_ID ??= 'local';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'local';
});
afterAll(async () => {
  await endpoint.close();
});

describe('describeInstanceStatus (client) and the simulator\'s status checks', () => {
  it('running ok, running impaired (in process and over HTTP), stopped: mapped, and proof drawn from them', async () => {
    const { sim } = endpoint;
    const ok = sim.addInstance({ az: AZ }).instanceId;
    const system = sim.addInstance({ az: AZ }).instanceId;
    const inst = sim.addInstance({ az: AZ }).instanceId;
    const stopped = sim.addInstance({ az: AZ }).instanceId;
    sim.setStatusChecks(system, { system: 'impaired', instance: 'ok' });
    const res = await fetch(`${endpoint.url}/_sim/status-checks`, { method: 'POST', body: JSON.stringify({ instanceId: inst, system: 'ok', instance: 'impaired' }) });
    expect(res.status).toBe(200);
    sim.stopInstances([stopped], true);
    await new Promise((r) => setTimeout(r, 50));
    const ec2 = createEc2({ endpoint: endpoint.url, region: 'us-east-1', log: silentLogger() });
    const statuses = await ec2.describeInstanceStatus?.([ok, system, inst, stopped]);
    const byId = new Map((statuses ?? []).map((s) => [s.instanceId, s]));
    expect(byId.get(ok)).toEqual({ instanceId: ok, state: 'running', systemStatus: 'ok', instanceStatus: 'ok' });
    expect(byId.get(system)).toEqual({ instanceId: system, state: 'running', systemStatus: 'impaired', instanceStatus: 'ok' });
    expect(byId.get(inst)).toEqual({ instanceId: inst, state: 'running', systemStatus: 'ok', instanceStatus: 'impaired' });
    expect(byId.get(stopped)).toEqual({ instanceId: stopped, state: 'stopped', systemStatus: 'not-applicable', instanceStatus: 'not-applicable' });

    sim.resetStats();
    const proof = await lookForDeathProof(ec2, [ok, system, inst, stopped]);
    expect(Object.fromEntries(proof)).toEqual({
      [system]: 'EC2 status check(s) impaired: system',
      [inst]: 'EC2 status check(s) impaired: instance',
      [stopped]: 'EC2 reports the instance stopped',
    });
    // One DescribeInstances for the four, one DescribeInstanceStatus for the three running ones.
    expect(sim.stats().byAction).toEqual({ DescribeInstances: 1, DescribeInstanceStatus: 1 });
  });
});
