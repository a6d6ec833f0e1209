import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createEc2 } from '../../src/ec2/index.js';
import { decodeRecord, encodeRecord, FailoverJournal, ServiceRecord, type Keyspace, type Placement } from '../../src/keyspace/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { dumpKeys, freshKeyspace, postgresService, registerLiveHost, runFailoverCli, type CliResult } from '../fixtures/cli-harness.js';

// Issue 13: `failover restore` from a snapshot, into the same AZ and into another one (the way out of an
// AZ-wide outage), against the EC2 endpoint through the real SDK.
const HOST_A = 'i-0111111111111111a';
const HOST_B = 'i-0222222222222222b';
const HOST_DEAD = 'i-0999999999999999a';

let etcdServer: EtcdServer;
let ec2: Ec2Endpoint;
let client: Etcd3;
let ks: Keyspace;
const leases: Array<{ revoke(): Promise<void> }> = [];

beforeAll(async () => {
  [etcdServer, ec2] = await Promise.all([startEtcd(), startEc2Endpoint()]);
  client = new Etcd3({ hosts: etcdServer.endpoint });
  ec2.sim.addInstance({ instanceId: HOST_A, az: 'us-east-1a' });
  ec2.sim.addInstance({ instanceId: HOST_B, az: 'us-east-1b' });
  ec2.sim.setLatencies({ snapshotMs: 0 });
});

afterAll(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  client?.close();
  await Promise.all([etcdServer?.stop(), ec2?.close()]);
});

let volumeId: string;
let unit: string;
let snaps: { older: string; newer: string };

/** A service whose holder died and whose failover is blocked (its AZ has no free host), with two snapshots. */
beforeEach(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  ks = freshKeyspace();
  leases.push(await registerLiveHost(client, ks, { instanceId: HOST_A, az: 'us-east-1a' }));
  leases.push(await registerLiveHost(client, ks, { instanceId: HOST_B, az: 'us-east-1b' }));
  volumeId = ec2.sim.addVolume({ az: 'us-east-1a', sizeGiB: 20, tags: { 'ebs-failover:managed': 'true' } }).volumeId;
  const svc = postgresService(volumeId, { fsLabel: 'pgdata', requiredLabels: { role: 'db' } });
  unit = svc.unit;
  const tags = { 'ebs-failover:volume': volumeId, 'ebs-failover:service': unit };
  const older = ec2.sim.createSnapshot(volumeId, 'older', tags).snapshotId;
  await new Promise((r) => setTimeout(r, 20));
  const newer = ec2.sim.createSnapshot(volumeId, 'newer', tags).snapshotId;
  snaps = { older, newer };
  const placement: Placement = { volumeId, unit, instanceId: HOST_DEAD, device: '/dev/xvdf', generation: 2, updatedAt: Date.now() };
  const journal = FailoverJournal.parse({ volumeId, unit, kind: 'auto', step: 'blocked', fromInstanceId: HOST_DEAD, toInstanceId: null, device: null, startedAt: Date.now(), stepStartedAt: Date.now(), blockedReason: 'no live host in us-east-1a with label role=db' });
  await client.put(ks.service(unit)).value(encodeRecord(svc));
  await client.put(ks.placement(volumeId)).value(encodeRecord(placement));
  await client.put(ks.journal(volumeId)).value(encodeRecord(journal));
});

const env = (): Record<string, string> => ({ EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
const cli = (args: string[]): Promise<CliResult> => runFailoverCli(args, env());
const sdk = () => createEc2({ region: 'us-east-1', endpoint: ec2.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });

async function services(): Promise<ServiceRecord[]> {
  const kvs = await client.getAll().prefix(ks.servicesPrefix()).buffers();
  return Object.entries(kvs).map(([k, v]) => decodeRecord(ServiceRecord, k, v)).filter((s): s is ServiceRecord => s !== undefined);
}

describe('failover restore', () => {
  it('--latest into the same AZ: a tagged volume from the newest snapshot, the data-loss window, the registration swapped, the old volume kept', async () => {
    const r = await cli(['restore', unit, '--latest', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`snapshot:   ${snaps.newer}`);
    expect(r.stderr).toMatch(/DATA LOSS: {2}everything written after that: \d+s of writes/);
    const newVolumeId = /restored: postgres@(vol-[0-9a-f]+) \(volume \1 in us-east-1a/.exec(r.stdout)?.[1];
    expect(newVolumeId, r.stdout).toBeDefined();
    const [created] = await sdk().describeVolumes([newVolumeId ?? '']);
    expect(created).toMatchObject({ az: 'us-east-1a', sizeGiB: 20, state: 'available', tags: { 'ebs-failover:managed': 'true', 'ebs-failover:restored-from': snaps.newer, 'ebs-failover:replaces': volumeId } });
    expect(await services()).toEqual([expect.objectContaining({ unit: `postgres@${newVolumeId}`, volumeId: newVolumeId, fsLabel: 'pgdata', requiredLabels: { role: 'db' }, mountUnit: 'data-postgres.mount' })]);
    expect((await sdk().describeVolumes([volumeId]))[0]?.volumeId).toBe(volumeId);
  });

  it('--snapshot into another AZ: EC2 refuses the old volume on a host there and takes the new one', async () => {
    const r = await cli(['restore', unit, '--snapshot', snaps.older, '--az', 'us-east-1b', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`new volume: from ${snaps.older} in us-east-1b (the old one is in us-east-1a)`);
    const newVolumeId = /restored: postgres@(vol-[0-9a-f]+) \(volume \1 in us-east-1b/.exec(r.stdout)?.[1] ?? '';
    const port = sdk();
    await expect(port.attachVolume(volumeId, HOST_B, '/dev/xvdf')).rejects.toThrow(/zone|AZ|availability/i);
    await port.attachVolume(newVolumeId, HOST_B, '/dev/xvdf');
    const attached = await port.waitAttached(newVolumeId, HOST_B, { timeoutMs: 60_000 });
    expect(attached.attachments[0]).toMatchObject({ instanceId: HOST_B, state: 'attached' });
    expect((await services()).map((s) => s.volumeId)).toEqual([newVolumeId]);
  });

  it('--dry-run prints the plan and creates and writes nothing; a running service and bad input are refused', async () => {
    const volumesBefore = ec2.sim.state().volumes.length;
    const before = await dumpKeys(client, ks);
    const dry = await cli(['restore', unit, '--latest', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('dry run: nothing created, nothing written');
    expect(dry.stdout).toContain(`old volume: ${volumeId} kept as it is`);
    expect(ec2.sim.state().volumes.length).toBe(volumesBefore);
    expect(await dumpKeys(client, ks)).toEqual(before);

    expect((await cli(['restore', unit, '--yes'])).code).toBe(2); // neither --snapshot nor --latest
    expect((await cli(['restore', unit, '--snapshot', 'snap-0123456789abcdef0', '--yes'])).stderr).toContain('is not a snapshot of');

    // The same service running on a live host: refused, nothing changed.
    await client.delete().key(ks.journal(volumeId));
    await client.put(ks.placement(volumeId)).value(encodeRecord({ volumeId, unit, instanceId: HOST_A, device: '/dev/xvdf', generation: 3, updatedAt: Date.now() } satisfies Placement));
    await client.put(ks.status(HOST_A, volumeId)).value(encodeRecord({ instanceId: HOST_A, volumeId, unit, generation: 3, phase: 'active', mountActive: true, unitActive: true, error: null, at: Date.now() }));
    const running = await cli(['restore', unit, '--latest', '--yes']);
    expect(running.code).toBe(1);
    expect(running.stderr).toContain(`${unit} is active: restore replaces a service that is down`);
    expect(ec2.sim.state().volumes.length).toBe(volumesBefore);
  });
});
