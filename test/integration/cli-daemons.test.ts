import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Keyspace } from '../../src/keyspace/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { eventually, freshKeyspace, startFailoverCli, type RunningCli } from '../fixtures/cli-harness.js';

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
