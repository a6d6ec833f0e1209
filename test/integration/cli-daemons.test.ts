import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Keyspace } from '../../src/keyspace/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { eventually, freshKeyspace, runFailoverCli, startFailoverCli, type RunningCli } from '../fixtures/cli-harness.js';

let etcdServer: EtcdServer;
let ec2: Ec2Endpoint;
let client: Etcd3;
let ks: Keyspace;
const running: RunningCli[] = [];

beforeAll(async () => {
  [etcdServer, ec2] = await Promise.all([startEtcd(), startEc2Endpoint()]);
  client = new Etcd3({ hosts: etcdServer.endpoint });
  ks = freshKeyspace();
});

afterAll(async () => {
  for (const child of running) child.signal('SIGKILL');
  client?.close();
  await Promise.all([etcdServer?.stop(), ec2?.close()]);
});

function env(): Record<string, string> {
  return { EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };
}

/** Election candidates under our prefix (etcd3 Election: the oldest key leads). */
async function candidates(): Promise<string[]> {
  return Object.values(await client.getAll().prefix(ks.electionPrefix()).sort('Create', 'Ascend').strings());
}

describe('failover controller', () => {
  it('campaigns, leads, and on SIGTERM resigns and exits 0', async () => {
    const controller = startFailoverCli(['controller', '--candidate-id', 'ctl-under-test', '--no-fleet', '--metrics-listen', '127.0.0.1:0'], env());
    running.push(controller);
    const leader = await eventually(async () => (await candidates()).find((v) => v.includes('ctl-under-test')), 'the controller to campaign');
    expect(leader).toContain('ctl-under-test');
    const status = await runFailoverCli(['status', '--json'], env());
    expect((JSON.parse(status.stdout) as { leader: string | null }).leader).toBe('ctl-under-test');
    controller.signal('SIGTERM');
    const exit = await controller.exited;
    expect(exit.code, controller.output().stderr).toBe(0);
    // Resigned: its candidate key is gone at once, not after the lease TTL.
    expect(await candidates()).toEqual([]);
  });

  it('refuses a bad config before touching etcd (exit 2)', async () => {
    const controller = startFailoverCli(['controller', '--metrics-listen', 'nowhere'], env());
    running.push(controller);
    const exit = await controller.exited;
    expect(exit.code).toBe(2);
    expect(controller.output().stderr).toContain('config error: controller.metricsListen: expected host:port');
  });
});

describe('failover agent', () => {
  const INSTANCE = 'i-0aaa1111bbbb2222c';

  /** The agent with identity overrides (no IMDS) and systemd's in-memory stand-in (no real bus). */
  function startAgent(stateDir: string): RunningCli {
    const agent = startFailoverCli(['agent', '--instance-id', INSTANCE, '--az', 'us-east-1a', '--private-ip', '10.0.0.7', '--mode', 'systemd', '--device-root', stateDir, '--lease-state-file', join(stateDir, 'lease'), '--label', 'role=db'], {
      ...env(),
      EBS_FAILOVER_MACHINE_ID: 'b'.repeat(32),
      EBS_FAILOVER_SYSTEMD_BUS: 'memory',
      EBS_FAILOVER_LEASE_TTL_MS: '10000',
    });
    running.push(agent);
    return agent;
  }

  async function hostLease(): Promise<string | undefined> {
    const res = await client.getAll().prefix(ks.host(INSTANCE)).exec();
    const kv = res.kvs.find((k) => k.key.toString() === ks.host(INSTANCE));
    return kv ? kv.lease : undefined;
  }

  it('registers, and on SIGTERM exits 0 keeping its lease; a restart resumes the same lease', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'ebs-failover-agent-'));
    const first = startAgent(stateDir);
    const lease = await eventually(hostLease, 'hosts/<instanceId> to be registered');
    const record = JSON.parse((await client.get(ks.host(INSTANCE)).string()) ?? '{}') as { az: string; labels: Record<string, string>; machineId: string };
    expect(record).toMatchObject({ az: 'us-east-1a', labels: { role: 'db' }, machineId: 'b'.repeat(32) });

    first.signal('SIGTERM');
    expect((await first.exited).code, first.output().stderr).toBe(0);
    // Not revoked: the host stays registered (and its units untouched) through a quick restart.
    expect(await hostLease()).toBe(lease);

    const second = startAgent(stateDir);
    await eventually(async () => (second.output().stderr.includes(INSTANCE) ? true : undefined), 'the restarted agent to start');
    expect(await hostLease()).toBe(lease);
    second.signal('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });
});
