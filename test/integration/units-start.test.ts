import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { bootRealHost, PROJECT_IN_HOST, realHostsAvailable, type RealHost } from '../helpers/realhost.js';
import { eventually } from '../fixtures/cli-harness.js';

/**
 * Issue 13: the shipped agent, controller (template, two instances) and snapshot units start under a
 * real systemd (PID 1 of a test host), with the config and env files root-owned and owner-only (0600)
 * as cloud-config.example.yaml writes them. Only ExecStart is replaced (a drop-in runs the project from
 * source with the unit's own arguments); every sandboxing line of the shipped units stays in force.
 */
const UNITS = new URL('../../units/', import.meta.url).pathname;
const SHIPPED = ['failover-agent.service', 'failover-controller@.service', 'failover-snapshot.service', 'failover-snapshot.timer'];
const INSTANCE = 'i-0777777777777777a';
const IP_INDEX = 181;
const IP = `127.0.0.${IP_INDEX}`;
const why = realHostsAvailable();

/** The unit's own ExecStart with /opt/bin/failover replaced by node + tsx on the project bound in the host. */
function dropIn(unitText: string, extra: string[] = []): string {
  const exec = /^ExecStart=(\/opt\/bin\/failover .*)$/m.exec(unitText)?.[1];
  if (!exec) throw new Error('shipped unit has no ExecStart=/opt/bin/failover …');
  return ['[Service]', 'ExecStart=', `ExecStart=${process.execPath} --import tsx ${exec.replace('/opt/bin/failover', `${PROJECT_IN_HOST}/src/cli/main.ts`)}`, `WorkingDirectory=${PROJECT_IN_HOST}`, ...extra, ''].join('\n');
}

describe.skipIf(why !== undefined)('shipped units start under a real systemd', () => {
  let etcd: EtcdServer;
  let ec2: Ec2Endpoint;
  let host: RealHost | undefined;
  let client: Etcd3;
  const ks = keyspace(`/units-start-${Date.now().toString(16)}/`);

  beforeAll(async () => {
    [etcd, ec2] = await Promise.all([startEtcd(), startEc2Endpoint()]);
    ec2.sim.addInstance({ instanceId: INSTANCE, az: 'us-east-1a' });
    client = new Etcd3({ hosts: etcd.endpoint });
    const config = {
      etcd: { endpoints: [etcd.endpoint] },
      prefix: ks.prefix,
      aws: { region: 'us-east-1', endpoint: ec2.url },
      agent: { instanceId: INSTANCE, az: 'us-east-1a', privateIp: IP, mode: 'systemd', peerListen: `${IP}:9643` },
    };
    const files: Record<string, string> = {
      '/etc/ebs-failover/config.json': `${JSON.stringify(config, null, 2)}\n`,
      '/etc/ebs-failover/env': 'AWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\nLOG_LEVEL=info\n',
    };
    for (const unit of SHIPPED) files[`/etc/systemd/system/${unit}`] = readFileSync(join(UNITS, unit), 'utf8');
    const text = (u: string): string => readFileSync(join(UNITS, u), 'utf8');
    files['/etc/systemd/system/failover-agent.service.d/50-test.conf'] = dropIn(text('failover-agent.service'));
    // Two controllers in one network namespace: each its own metrics port (%i is the instance).
    files['/etc/systemd/system/failover-controller@.service.d/50-test.conf'] = dropIn(text('failover-controller@.service'), [`Environment=EBS_FAILOVER_METRICS_LISTEN=${IP}:1964%i`]);
    files['/etc/systemd/system/failover-snapshot.service.d/50-test.conf'] = dropIn(text('failover-snapshot.service'));
    // Instance 9 only: the units as they were (DynamicUser=yes), to show why they are not any more.
    files['/etc/systemd/system/failover-controller@9.service.d/60-dynamic-user.conf'] = '[Service]\nUser=\nDynamicUser=yes\nRestart=no\n';
    host = await bootRealHost({ name: 'units-start', ipIndex: IP_INDEX, files });
    // The shipped permissions: root-owned, owner-only.
    await host.exec(['sh', '-c', 'chown root:root /etc/ebs-failover/config.json /etc/ebs-failover/env && chmod 0600 /etc/ebs-failover/config.json /etc/ebs-failover/env']);
  }, 180_000);

  afterAll(async () => {
    await host?.stop().catch(() => undefined);
    client?.close();
    await Promise.all([etcd?.stop(), ec2?.close()]);
  });

  it('agent and two controller instances run; the agent registers and both controllers campaign', async () => {
    if (!host) throw new Error('no host');
    const mode = (await host.exec(['stat', '-c', '%a %U', '/etc/ebs-failover/config.json'])).stdout.trim();
    expect(mode).toBe('600 root');
    await host.systemctl('start', 'failover-agent.service', 'failover-controller@1.service', 'failover-controller@2.service');
    await eventually(async () => ((await client.get(ks.host(INSTANCE)).string()) !== null ? true : undefined), 'the agent to register', 120_000);
    await eventually(async () => ((await client.getAll().prefix(ks.electionPrefix()).keys()).length >= 2 ? true : undefined), 'both controllers to campaign', 120_000);
    for (const unit of ['failover-agent.service', 'failover-controller@1.service', 'failover-controller@2.service']) {
      expect((await host.systemctl('is-active', unit)).trim(), (await host.journal(unit, 30)).join('\n')).toBe('active');
    }
    // The sandbox of the shipped controller unit is what ran.
    const shown = await host.systemctl('show', '-p', 'User', '-p', 'CapabilityBoundingSet', '-p', 'ProtectSystem', 'failover-controller@1.service');
    expect(shown).toContain('ProtectSystem=strict');
    expect(shown).toMatch(/CapabilityBoundingSet=\n|CapabilityBoundingSet=$/m);
  }, 300_000);

  it('the snapshot job runs to success from its timer\'s service; the timer loads', async () => {
    if (!host) throw new Error('no host');
    await host.systemctl('start', 'failover-snapshot.service').catch(() => undefined);
    const result = await host.systemctl('show', '-p', 'Result', '-p', 'ExecMainStatus', 'failover-snapshot.service');
    expect(result, (await host.journal('failover-snapshot.service', 30)).join('\n')).toContain('Result=success');
    expect(result).toContain('ExecMainStatus=0');
    await host.systemctl('start', 'failover-snapshot.timer');
    expect((await host.systemctl('is-active', 'failover-snapshot.timer')).trim()).toBe('active');
  }, 300_000);

  it('with DynamicUser=yes (the units before issue 13) the controller cannot read the owner-only config', async () => {
    if (!host) throw new Error('no host');
    await host.systemctl('start', 'failover-controller@9.service').catch(() => undefined);
    const log = await eventually(async () => {
      const lines = (await host?.journal('failover-controller@9.service', 50)) ?? [];
      return lines.some((l) => l.includes('EACCES')) ? lines.join('\n') : undefined;
    }, 'instance 9 to fail on the config file', 60_000);
    expect(log).toMatch(/cannot read \/etc\/ebs-failover\/config\.json: EACCES/);
    // The error line is written before the process exits (instance 9 has Restart=no): wait for
    // systemd to see the exit rather than reading is-active at once.
    const shown = await eventually(async () => {
      const out = (await host?.systemctl('show', '-p', 'ActiveState', '-p', 'Result', 'failover-controller@9.service')) ?? '';
      return /ActiveState=(failed|inactive)/.test(out) ? out : undefined;
    }, 'instance 9 to exit', 60_000);
    expect(shown).toMatch(/Result=exit-code/);
  }, 300_000);
});
