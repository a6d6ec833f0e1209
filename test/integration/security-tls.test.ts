/**
 * Issue 14 against a real secured etcd: TLS on the client port, `--client-cert-auth`, auth enabled, and
 * one client certificate per component whose CN is its etcd user (etcd takes the CN as the user), each
 * user holding only its least-privilege role (src/security/roles.ts). Agents, controller and CLI are
 * the real `failover` processes, each with its own config file and certificate.
 */
import { chmodSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdPermissionDeniedError, type Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd } from '../../src/locks/index.js';
import { COMPONENTS, type Component } from '../../src/security/index.js';
import { startEtcd, startEtcdCluster, type EtcdServer } from '../helpers/etcd.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { until } from '../fixtures/controller-harness.js';
import { SecureWorld, enableAuthWithRoles, hex, userOf } from '../fixtures/secure-world.js';

const ROLE_PREFIX = `tls-${hex(4)}-`;

let pki: TestPki;
let etcd: EtcdServer;
let admin: Etcd3;
let world: SecureWorld;

function certOf(component: Component): Record<string, string> {
  return { caFile: pki.caFile, ...pki.client(userOf(component, ROLE_PREFIX)) };
}

beforeAll(async () => {
  pki = makeTestPki();
  etcd = await startEtcd({ tls: { caFile: pki.caFile, ...pki.server, clientCertAuth: true } });
  admin = connectEtcd({ endpoints: [etcd.endpoint], caFile: pki.caFile, ...pki.client('root') });
  world = await SecureWorld.start('tls', [etcd.endpoint], admin, `/sec-tls-${hex(6)}/`);
  await enableAuthWithRoles(admin, world.ks, hex(16), () => hex(16), ROLE_PREFIX);
  for (const c of COMPONENTS) world.writeConfig(c, certOf(c));
}, 120_000);

afterAll(async () => {
  await world?.stop();
  admin?.close();
  await etcd?.stop();
  pki?.remove();
});

describe('etcd with TLS, client certificates and one role per component', () => {
  it('runs the whole failover: service add, placement, a dead host failed over, a manual move, status, a snapshot', async () => {
    const volumeId = world.addVolume();
    const unit = `postgres@${volumeId}`;
    const add = await world.cli('operator', ['service', 'add', unit, '--mount-unit', `data-${volumeId}.mount`, '--mount-point', `/data/${volumeId}`, '--metadata-key', 'pg']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain(`registered ${unit}`);
    for (let i = 0; i < 3; i += 1) world.addAgent('agent');
    world.startController('controller');
    try {
      const first = await world.waitActive(volumeId, () => true);
      const dead = world.hosts.find((h) => h.instanceId === first);
      await dead?.agent.kill();
      const second = await world.waitActive(volumeId, (h) => h !== first);
      const third = world.hosts.find((h) => h.instanceId !== first && h.instanceId !== second)?.instanceId ?? '';
      const move = await world.cli('operator', [unit, '--to', third, '--timeout', '90']);
      expect(move.code, move.stderr).toBe(0);
      await world.waitActive(volumeId, (h) => h === third);

      const status = await world.cli('operator', ['status', '--json']);
      expect(status.code, status.stderr).toBe(0);
      const view = JSON.parse(status.stdout) as { services: { unit: string; holder: string; state: string }[] };
      expect(view.services).toEqual([expect.objectContaining({ unit, holder: third, state: 'active' })]);

      const snap = await world.cli('snapshot', ['snapshot', '--keep-last', '3', '--json']);
      expect(snap.code, snap.stderr).toBe(0);
      const results = JSON.parse(snap.stdout) as { volumeId: string; created: string | null }[];
      expect(results).toEqual([expect.objectContaining({ volumeId, created: expect.stringMatching(/^snap-/) })]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await world.logTails()}`, { cause: err });
    }
  }, 300_000);

  it('denies an agent identity a write to placements/: etcd says permission denied, nothing changes, the agents keep running', async () => {
    // Alone (-t), this test brings its own agent; after the first test, its agents are still running.
    if (!world.hosts.some((h) => h.agent.running)) world.addAgent('agent');
    const alive = world.hosts.filter((h) => h.agent.running);
    await until(async () => (await Promise.all(alive.map((h) => admin.get(world.ks.host(h.instanceId)).string()))).every((v) => v !== null), 60_000, 'agents registered');
    const before = await admin.getAll().prefix(world.ks.placementsPrefix()).strings();
    const agentId = connectEtcd({ endpoints: [etcd.endpoint], ...certOf('agent') });
    try {
      const placementKeys = Object.keys(before);
      const target = placementKeys[0] ?? world.ks.placement('vol-0000000000000000a');
      await expect(agentId.put(target).value(JSON.stringify({ forged: true })).exec()).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
      await expect(agentId.delete().key(target).exec()).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
      await expect(agentId.put(world.ks.journal('vol-0000000000000000a')).value('{}').exec()).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
      // What the role does allow still works with the same identity.
      await expect(agentId.getAll().prefix(world.ks.placementsPrefix()).keys()).resolves.toEqual(placementKeys);
      expect(await admin.getAll().prefix(world.ks.placementsPrefix()).strings()).toEqual(before);
      // The agents keep running and keep their leases renewed (host keys outlive several TTLs).
      await new Promise((r) => setTimeout(r, 5_000));
      for (const h of alive) {
        expect(h.agent.running).toBe(true);
        expect(await admin.get(world.ks.host(h.instanceId)).string()).not.toBeNull();
      }
    } finally {
      agentId.close();
    }
  }, 120_000);

  it('the controller ignores a report one agent writes under another host\'s status/ key (etcd cannot stop that write)', async () => {
    if (!world.hosts.some((h) => h.agent.running)) world.addAgent('agent');
    if (!world.controllerRunning()) world.startController('controller');
    const victim = world.hosts.find((h) => h.agent.running);
    if (!victim) throw new Error('no running agent');
    await until(async () => (await admin.get(world.ks.host(victim.instanceId)).string()) !== null, 60_000, 'victim registered');
    // Another host's agent identity: the agent role may write any status/ key, under its own lease.
    const attacker = connectEtcd({ endpoints: [etcd.endpoint], ...certOf('agent') });
    const lease = attacker.lease(30);
    try {
      const volumeId = `vol-${hex(17)}`;
      const key = world.ks.status(victim.instanceId, volumeId);
      const forged = { instanceId: victim.instanceId, volumeId, unit: `postgres@${volumeId}`, generation: 1, phase: 'released', mountActive: false, unitActive: false, error: null, at: Date.now() };
      await lease.put(key).value(JSON.stringify(forged));
      expect(await admin.get(key).string()).not.toBeNull();
      await until(() => world.logs().includes(`"key":"${key}"`) && world.logs().includes('ignoring an agent report not written by that host'), 60_000, 'the controller logs the forged report as ignored');
      const line = world.logs().split('\n').find((l) => l.includes(`"key":"${key}"`)) ?? '';
      expect(line).toContain(`not ${victim.instanceId}'s host lease`);
    } finally {
      await lease.revoke().catch(() => undefined);
      attacker.close();
    }
  }, 120_000);

  it('refuses to start a component whose identity lacks a key range, naming the range', async () => {
    world.writeConfig('agent-as-snapshot', certOf('snapshot'));
    const agent = await world.cli('agent-as-snapshot', ['agent', '--instance-id', 'i-0123456789abcdef0', '--az', 'us-east-1a', '--private-ip', '10.0.9.9',
      '--device-root', join(world.dir, 'nodev'), '--lease-state-file', join(world.dir, 'nolease')], { EBS_FAILOVER_MACHINE_ID: hex(32) });
    expect(agent.code).toBe(1);
    expect(agent.stderr).toContain(`denies read on ${world.ks.placementsPrefix()} to user "${userOf('snapshot', ROLE_PREFIX)}"`);
    expect(agent.stderr).toContain(etcd.endpoint);
    // Nothing was registered under that instance.
    expect(await admin.get(world.ks.host('i-0123456789abcdef0')).string()).toBeNull();

    // The controller's identity reads everything but may not write hosts/: the write probe (a
    // transaction whose compare is false) is denied, and nothing was written.
    const agentAsController = await world.cli('controller', ['agent', '--instance-id', 'i-0123456789abcdef3', '--az', 'us-east-1a', '--private-ip', '10.0.9.6',
      '--device-root', join(world.dir, 'nodev'), '--lease-state-file', join(world.dir, 'nolease3')], { EBS_FAILOVER_MACHINE_ID: hex(32) });
    expect(agentAsController.code).toBe(1);
    expect(agentAsController.stderr).toContain(`denies write on ${world.ks.hostsPrefix()} to user "${userOf('controller', ROLE_PREFIX)}", which the agent needs`);
    expect(await admin.getAll().prefix(world.ks.hostsPrefix()).keys()).not.toContain(`${world.ks.hostsPrefix()}.permission-probe`);

    const controller = await world.cli('agent', ['controller', '--candidate-id', 'wrong-identity']);
    expect(controller.code).toBe(1);
    expect(controller.stderr).toContain(`denies read on ${world.ks.prefix} to user "${userOf('agent', ROLE_PREFIX)}", which the controller needs`);

    const operator = await world.cli('snapshot', ['service', 'add', 'postgres@vol-0123456789abcdef0', '--mount-unit', 'x.mount', '--mount-point', '/x', '--metadata-key', 'x']);
    expect(operator.code).toBe(1);
    expect(operator.stderr).toContain(`denies read on ${world.ks.prefix} to user "${userOf('snapshot', ROLE_PREFIX)}", which the operator needs`);
  }, 180_000);

  it('gives a clear error naming the endpoint for a wrong CA and for an expired client certificate', async () => {
    world.writeConfig('wrong-ca', { ...certOf('operator'), caFile: pki.otherCaFile });
    const wrongCa = await world.cli('wrong-ca', ['status']);
    expect(wrongCa.code).toBe(1);
    expect(wrongCa.stderr).toContain(`TLS to etcd at ${etcd.endpoint} fails: the server's certificate is not signed by a CA in etcd.caFile ${pki.otherCaFile}`);

    world.writeConfig('expired', { caFile: pki.caFile, ...pki.expiredClient(userOf('operator', ROLE_PREFIX)) });
    const expired = await world.cli('expired', ['status']);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(new RegExp(`TLS to etcd at ${etcd.endpoint} fails: the client certificate etcd.certFile \\S+ \\(CN=${userOf('operator', ROLE_PREFIX)}\\) expired on 2020-01-02`));

    // A daemon does not sit retrying a handshake that can never work: it exits with the same words.
    const agent = await world.cli('wrong-ca', ['agent', '--instance-id', 'i-0123456789abcdef1', '--az', 'us-east-1a', '--private-ip', '10.0.9.8',
      '--device-root', join(world.dir, 'nodev'), '--lease-state-file', join(world.dir, 'nolease2')], { EBS_FAILOVER_MACHINE_ID: hex(32) });
    expect(agent.code).toBe(1);
    expect(agent.stderr).toContain(`TLS to etcd at ${etcd.endpoint} fails: the server's certificate is not signed by a CA`);
  }, 180_000);

  it('refuses a key file readable by group/others, unless told to start anyway (with a warning)', async () => {
    const good = pki.client(userOf('operator', ROLE_PREFIX));
    const loose = join(world.dir, 'loose.key');
    copyFileSync(good.keyFile, loose);
    chmodSync(loose, 0o644);
    world.writeConfig('loose-key', { caFile: pki.caFile, certFile: good.certFile, keyFile: loose });
    const refused = await world.cli('loose-key', ['status']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`config error: etcd.keyFile: ${loose} is accessible by group/others (mode 0644); it must be readable only by its owner: run \`chmod 600 ${loose}\``);

    const agent = await world.cli('loose-key', ['agent', '--instance-id', 'i-0123456789abcdef2', '--az', 'us-east-1a', '--private-ip', '10.0.9.7'], { EBS_FAILOVER_MACHINE_ID: hex(32) });
    expect(agent.code).toBe(2);
    expect(agent.stderr).toContain('is accessible by group/others (mode 0644)');

    const allowed = await world.cli('loose-key', ['status'], { EBS_FAILOVER_ETCD_ALLOW_INSECURE_FILE_MODES: 'true' });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stderr).toContain(`warning: etcd.keyFile ${loose} is accessible by group/others (mode 0644)`);
  }, 180_000);
});

describe('a 3-member etcd cluster with TLS and client certificates', () => {
  it('an agent registers and renews through per-member clients that carry the TLS credentials', async () => {
    const cluster = await startEtcdCluster(3, { tls: { caFile: pki.caFile, ...pki.server, clientCertAuth: true } });
    const client = connectEtcd({ endpoints: cluster.endpoints, ...certOf('operator') });
    const clusterWorld = await SecureWorld.start('tls-cluster', cluster.endpoints, client, `/sec-tls-cluster-${hex(6)}/`);
    try {
      expect(cluster.endpoints.every((e) => e.startsWith('https://'))).toBe(true);
      clusterWorld.writeConfig('agent', certOf('agent'));
      const host = clusterWorld.addAgent('agent');
      const key = clusterWorld.ks.host(host.instanceId);
      await until(async () => (await client.get(key).string()) !== null, 60_000, 'agent registered in the TLS cluster');
      // Renewals go member by member (src/locks/registrar.ts): the record outlives several 2 s TTLs.
      await new Promise((r) => setTimeout(r, 6_000));
      expect(host.agent.running).toBe(true);
      expect(await client.get(key).string()).not.toBeNull();
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await clusterWorld.logTails()}`, { cause: err });
    } finally {
      await clusterWorld.stop();
      client.close();
      await cluster.stop();
    }
  }, 120_000);
});
