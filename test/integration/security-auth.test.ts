/**
 * Issue 14 with etcd's user/password auth (no TLS): root, one role per component, one user per role,
 * each component's password in a file only its owner can read (`etcd.passwordFile`). The real
 * `failover` processes run the whole failover; the passwords never show in logs (debug level),
 * errors or `status --json`.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdPermissionDeniedError, type Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd } from '../../src/locks/index.js';
import { COMPONENTS, type Component } from '../../src/security/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { SecureWorld, enableAuthWithRoles, hex, userOf } from '../fixtures/secure-world.js';

const ROLE_PREFIX = `pw-${hex(4)}-`;
const ROOT_PASSWORD = `root-${hex(20)}`;
/** Distinctive passwords, so that any leak is found by a plain substring search. */
const passwords = new Map<string, string>();
const passwordOf = (user: string): string => {
  let p = passwords.get(user);
  if (p === undefined) {
    p = `pw-${user}-${hex(24)}`;
    passwords.set(user, p);
  }
  return p;
};

let etcd: EtcdServer;
let admin: Etcd3;
let world: SecureWorld;

function passwordFile(name: string, password: string, mode = 0o600): string {
  const file = join(world.dir, `${name}.password`);
  writeFileSync(file, `${password}\n`);
  chmodSync(file, mode);
  return file;
}

function identityOf(component: Component): Record<string, string> {
  const user = userOf(component, ROLE_PREFIX);
  return { username: user, passwordFile: passwordFile(user, passwordOf(user)) };
}

function expectNoPassword(text: string): void {
  for (const p of [ROOT_PASSWORD, ...passwords.values()]) expect(text.includes(p), 'a password leaked').toBe(false);
}

beforeAll(async () => {
  etcd = await startEtcd();
  const setup = connectEtcd({ endpoints: [etcd.endpoint] });
  const prefix = `/sec-pw-${hex(6)}/`;
  world = await SecureWorld.start('password', [etcd.endpoint], setup, prefix);
  await enableAuthWithRoles(setup, world.ks, ROOT_PASSWORD, passwordOf, ROLE_PREFIX);
  setup.close();
  // From here on, reads for assertions go through root.
  admin = connectEtcd({ endpoints: [etcd.endpoint], username: 'root', password: ROOT_PASSWORD });
  world.admin = admin;
  // Debug-level logs: the most a daemon ever writes, so a leak would show.
  world.env.LOG_LEVEL = 'debug';
  for (const c of COMPONENTS) world.writeConfig(c, identityOf(c));
}, 120_000);

afterAll(async () => {
  await world?.stop();
  admin?.close();
  await etcd?.stop();
});

describe('etcd with auth: users, passwords from owner-only files, one role per component', () => {
  it('runs the whole failover (a dead host failed over, a manual move), and no password appears in logs or status --json', async () => {
    const volumeId = world.addVolume();
    const unit = `postgres@${volumeId}`;
    const add = await world.cli('operator', ['service', 'add', unit, '--mount-unit', `data-${volumeId}.mount`, '--mount-point', `/data/${volumeId}`, '--metadata-key', 'pg']);
    expect(add.code, add.stderr).toBe(0);
    for (let i = 0; i < 3; i += 1) world.addAgent('agent');
    world.startController('controller');
    try {
      const first = await world.waitActive(volumeId, () => true);
      await world.hosts.find((h) => h.instanceId === first)?.agent.kill();
      const second = await world.waitActive(volumeId, (h) => h !== first);
      const third = world.hosts.find((h) => h.instanceId !== first && h.instanceId !== second)?.instanceId ?? '';
      const move = await world.cli('operator', [unit, '--to', third, '--timeout', '90']);
      expect(move.code, move.stderr).toBe(0);
      await world.waitActive(volumeId, (h) => h === third);

      const status = await world.cli('operator', ['status', '--json']);
      expect(status.code, status.stderr).toBe(0);
      expect((JSON.parse(status.stdout) as { services: { holder: string }[] }).services[0]?.holder).toBe(third);
      expectNoPassword(status.stdout + status.stderr + move.stdout + move.stderr + add.stdout + add.stderr);
      expectNoPassword(world.logs());
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await world.logTails()}`, { cause: err });
    }
  }, 300_000);

  it('denies the agent user a write to placements/ and journal/ (permission denied, nothing changes)', async () => {
    const user = userOf('agent', ROLE_PREFIX);
    const agentId = connectEtcd({ endpoints: [etcd.endpoint], username: user, password: passwordOf(user) });
    try {
      const before = await admin.getAll().prefix(world.ks.placementsPrefix()).strings();
      const target = Object.keys(before)[0] ?? world.ks.placement('vol-0000000000000000a');
      await expect(agentId.put(target).value('{"forged":true}').exec()).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
      await expect(agentId.put(world.ks.journal('vol-0000000000000000a')).value('{}').exec()).rejects.toBeInstanceOf(EtcdPermissionDeniedError);
      expect(await admin.getAll().prefix(world.ks.placementsPrefix()).strings()).toEqual(before);
    } finally {
      agentId.close();
    }
  }, 60_000);

  it('failover etcd-roles --apply creates the roles through the API (idempotent), with the grants it prints', async () => {
    world.writeConfig('root', { username: 'root', passwordFile: passwordFile('root', ROOT_PASSWORD) });
    const prefix = `apply-${hex(4)}-`;
    for (let run = 0; run < 2; run += 1) {
      const res = await world.cli('root', ['etcd-roles', '--apply', '--role-prefix', prefix]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain(`etcdctl role grant-permission ${prefix}agent --prefix=true readwrite ${world.ks.statusPrefix()}`);
      expect(res.stderr).toContain(`${run === 0 ? 'created' : 'updated'} role ${prefix}controller`);
      expectNoPassword(res.stdout + res.stderr);
    }
    const perms = await admin.role(`${prefix}snapshot`).permissions();
    const granted = perms.map((p) => `${p.permission} ${p.range.start.toString()}`).sort();
    expect(granted).toEqual([`Read ${world.ks.servicesPrefix()}`, `Readwrite ${world.ks.locksPrefix()}`]);
    const roles = (await admin.getRoles()).map((r) => r.name).filter((n) => n.startsWith(prefix)).sort();
    expect(roles).toEqual(['agent', 'controller', 'operator', 'snapshot'].map((c) => `${prefix}${c}`));
  }, 120_000);

  it('a wrong password is refused in words that name the user and the endpoint, never the password', async () => {
    const user = userOf('operator', ROLE_PREFIX);
    const wrong = `wrong-${hex(24)}`;
    world.writeConfig('wrong-password', { username: user, passwordFile: passwordFile('wrong', wrong) });
    const res = await world.cli('wrong-password', ['status', '--json']);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`etcd (${etcd.endpoint}) refuses user "${user}": authentication failed`);
    expect(res.stdout + res.stderr).not.toContain(wrong);
    expectNoPassword(res.stdout + res.stderr);
  }, 60_000);

  it('refuses a password file readable by group/others without printing the password', async () => {
    const user = userOf('operator', ROLE_PREFIX);
    const file = passwordFile('loose', passwordOf(user), 0o640);
    world.writeConfig('loose-password', { username: user, passwordFile: file });
    const res = await world.cli('loose-password', ['status']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`config error: etcd.passwordFile: ${file} is accessible by group/others (mode 0640)`);
    expectNoPassword(res.stdout + res.stderr);
  }, 60_000);
});
