import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeRecord, FailoverJournal, type Keyspace, type Placement } from '../../src/keyspace/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { dumpKeys, freshKeyspace, postgresService, registerLiveHost, runFailoverCli, type CliResult } from '../fixtures/cli-harness.js';

// Issue 13: `service add` checks the volume with EC2 (AZ, managed tag, fs label), `service show`,
// `service remove --force` for a stuck one.
const VOL_OK = 'vol-0aaa12345def67890'; // tagged managed, fs label tag "pgdata", in 1a
const VOL_BARE = 'vol-0bbb12345def67890'; // no tags, in 1b where no host lives
const VOL_STUCK = 'vol-0ccc12345def67890';
const HOST_1 = 'i-0111111111111111a';
const HOST_DEAD = 'i-0999999999999999a';
const ADD = ['--mount-unit', 'data-postgres.mount', '--mount-point', '/data/postgres', '--metadata-key', 'postgres'];

let etcdServer: EtcdServer;
let ec2: Ec2Endpoint;
let client: Etcd3;
let ks: Keyspace;
const leases: Array<{ revoke(): Promise<void> }> = [];

beforeAll(async () => {
  [etcdServer, ec2] = await Promise.all([startEtcd(), startEc2Endpoint()]);
  client = new Etcd3({ hosts: etcdServer.endpoint });
  ec2.sim.addInstance({ instanceId: HOST_1, az: 'us-east-1a' });
  ec2.sim.addVolume({ volumeId: VOL_OK, az: 'us-east-1a', tags: { 'ebs-failover:managed': 'true', 'ebs-failover:fs-label': 'pgdata' } });
  ec2.sim.addVolume({ volumeId: VOL_BARE, az: 'us-east-1b' });
  ec2.sim.addVolume({ volumeId: VOL_STUCK, az: 'us-east-1a', tags: { 'ebs-failover:managed': 'true' } });
});

afterAll(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  client?.close();
  await Promise.all([etcdServer?.stop(), ec2?.close()]);
});

beforeEach(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  ks = freshKeyspace();
  leases.push(await registerLiveHost(client, ks, { instanceId: HOST_1, az: 'us-east-1a' }));
});

const cli = (args: string[]): Promise<CliResult> =>
  runFailoverCli(args, { EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });

describe('service add checks the volume with EC2', () => {
  it('a tagged volume in an AZ with a live host, with its fs label: registered, no warning', async () => {
    const r = await cli(['service', 'add', `postgres@${VOL_OK}`, ...ADD, '--fs-label', 'pgdata']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`registered postgres@${VOL_OK} (volume ${VOL_OK} in us-east-1a)`);
  });

  it('an fs label that contradicts the volume\'s tag is refused, nothing written', async () => {
    const before = await dumpKeys(client, ks);
    const r = await cli(['service', 'add', `postgres@${VOL_OK}`, ...ADD, '--fs-label', 'other']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--fs-label other does not match the volume\'s tag ebs-failover:fs-label=pgdata');
    expect(await dumpKeys(client, ks)).toEqual(before);
  });

  it('untagged, in an AZ without hosts, no fs label: registered with one warning for each', async () => {
    const r = await cli(['service', 'add', `postgres@${VOL_BARE}`, ...ADD]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning: no live host in us-east-1b (the volume\'s AZ) yet');
    expect(r.stderr).toContain(`warning: ${VOL_BARE} lacks the tag ebs-failover:managed=true`);
    expect(r.stderr).toContain('warning: no --fs-label');
  });
});

describe('service show', () => {
  it('record, state with reason, placement, the volume as EC2 sees it, the failover and its events', async () => {
    const svc = postgresService(VOL_STUCK);
    const t0 = Date.now() - 30_000;
    const placement: Placement = { volumeId: VOL_STUCK, unit: svc.unit, instanceId: HOST_DEAD, device: '/dev/xvdf', generation: 3, updatedAt: t0 - 60_000 };
    const journal = FailoverJournal.parse({ volumeId: VOL_STUCK, unit: svc.unit, kind: 'auto', step: 'blocked', fromInstanceId: HOST_DEAD, toInstanceId: null, device: null, startedAt: t0, stepStartedAt: t0, blockedReason: 'no live host in us-east-1a with a free device', history: [{ step: 'detected', at: t0 }, { step: 'blocked', at: t0 + 1 }] });
    await client.put(ks.service(svc.unit)).value(encodeRecord(svc));
    await client.put(ks.placement(VOL_STUCK)).value(encodeRecord(placement));
    await client.put(ks.journal(VOL_STUCK)).value(encodeRecord(journal));
    const r = await cli(['service', 'show', svc.unit]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('state:       blocked (no live host in us-east-1a with a free device)');
    expect(r.stdout).toContain(`holder:      ${HOST_DEAD} (generation 3, device /dev/xvdf`);
    expect(r.stdout).toMatch(new RegExp(`volume:      ${VOL_STUCK} in us-east-1a, available, 8 GiB, not attached; tags ebs-failover:managed=true`));
    expect(r.stdout).toContain(`failover:    auto blocked (no live host in us-east-1a with a free device), ${HOST_DEAD} → -`);
    expect(r.stdout).toMatch(new RegExp(`${svc.unit}\\s+detected\\s+${HOST_DEAD}`));
    const json = JSON.parse((await cli(['service', 'show', svc.unit, '--json'])).stdout) as { state: string; volume: { az: string } };
    expect(json).toMatchObject({ state: 'blocked', volume: { az: 'us-east-1a' } });
    const unknown = await cli(['service', 'show', `postgres@${VOL_OK}`]);
    expect(unknown.code).toBe(1);
  });
});

describe('service remove --force', () => {
  it('a blocked service: refused without --force (saying so), removed with it and a warning', async () => {
    const svc = postgresService(VOL_STUCK);
    const journal = FailoverJournal.parse({ volumeId: VOL_STUCK, unit: svc.unit, kind: 'auto', step: 'blocked', fromInstanceId: HOST_DEAD, toInstanceId: null, device: null, startedAt: Date.now(), stepStartedAt: Date.now(), blockedReason: 'no live host in us-east-1a' });
    await client.put(ks.service(svc.unit)).value(encodeRecord(svc));
    await client.put(ks.journal(VOL_STUCK)).value(encodeRecord(journal));
    const before = await dumpKeys(client, ks);
    const refused = await cli(['service', 'remove', svc.unit]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`a failover of ${VOL_STUCK} is at step blocked (no live host in us-east-1a); remove ${svc.unit} after it finishes, or with --force`);
    expect(await dumpKeys(client, ks)).toEqual(before);
    const forced = await cli(['service', 'remove', svc.unit, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toContain('warning: --force: the auto failover');
    expect(forced.stdout).toContain(`removed ${svc.unit}`);
    expect(await client.get(ks.service(svc.unit)).string()).toBeNull();
  });
});
