import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeleteTagsCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  StopInstancesCommand,
  paginateDescribeVolumes,
  type Volume,
} from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AWS_THROTTLE_DEFAULTS, startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';

const AZ = 'us-east-1a';
// Short simulated latencies: enough to observe the intermediate states, small enough to keep the file fast.
const LATENCIES = { attachMs: 40, detachMs: 40, snapshotMs: 300, stopMs: 60, forceStopMs: 20, terminateMs: 60 };
// Generous deadline for every wait: tests must not depend on machine speed.
const DEADLINE_MS = 20_000;

let endpoint: Ec2Endpoint;
let ec2: EC2Client;
const tempDirs: string[] = [];

beforeAll(async () => {
  endpoint = await startEc2Endpoint({ latencies: LATENCIES });
  // maxAttempts 1: injected 5xx and throttling must surface instead of being retried away.
  ec2 = new EC2Client({ endpoint: endpoint.url, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
});

afterAll(async () => {
  ec2.destroy();
  await endpoint.close();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  endpoint.sim.clearFaults();
  endpoint.sim.setThrottle({ enabled: true, scale: 1, buckets: AWS_THROTTLE_DEFAULTS });
});

async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function volume(volumeId: string): Promise<Volume> {
  const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  const found = out.Volumes?.[0];
  if (found === undefined) throw new Error(`volume ${volumeId} missing`);
  return found;
}

async function attachmentState(volumeId: string): Promise<string> {
  return (await volume(volumeId)).Attachments?.[0]?.State ?? 'none';
}

function waitState(volumeId: string, state: string): Promise<true> {
  return waitFor(async () => ((await attachmentState(volumeId)) === state ? true : undefined), `${volumeId} ${state}`);
}

async function expectCode(promise: Promise<unknown>, code: string, status = 400): Promise<void> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toMatchObject({ name: code, $metadata: { httpStatusCode: status } });
}

function world(opts: { nitro?: boolean; eniCount?: number; az?: string } = {}) {
  const instanceId = endpoint.sim.addInstance({ az: opts.az ?? AZ, nitro: opts.nitro ?? true, eniCount: opts.eniCount ?? 1 }).instanceId;
  const volumeId = endpoint.sim.addVolume({ az: AZ, sizeGiB: 20 }).volumeId;
  return { instanceId, volumeId };
}

async function attached(volumeId: string, instanceId: string, device = '/dev/xvdf'): Promise<void> {
  await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
  await waitState(volumeId, 'attached');
}

describe('volumes and attachments', () => {
  it('attaches and detaches through the states EC2 reports', async () => {
    const { instanceId, volumeId } = world();
    const out = await ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/xvdf' }));
    expect(out).toMatchObject({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/xvdf', State: 'attaching' });
    expect((await volume(volumeId)).State).toBe('in-use');
    await waitState(volumeId, 'attached');
    const described = await volume(volumeId);
    expect(described).toMatchObject({ AvailabilityZone: AZ, Size: 20, State: 'in-use' });
    expect(described.Attachments?.[0]?.AttachTime).toBeInstanceOf(Date);
    const inst = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    expect(inst.Reservations?.[0]?.Instances?.[0]?.BlockDeviceMappings).toEqual([
      expect.objectContaining({ DeviceName: '/dev/xvdf', Ebs: expect.objectContaining({ VolumeId: volumeId, Status: 'attached' }) }),
    ]);
    const detach = await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId }));
    expect(detach.State).toBe('detaching');
    await waitFor(async () => ((await volume(volumeId)).State === 'available' ? true : undefined), 'available');
    expect((await volume(volumeId)).Attachments).toEqual([]);
    expect(endpoint.sim.history.filter((h) => h.volumeId === volumeId).map((h) => h.state)).toEqual(['attaching', 'attached', 'detaching', 'detached']);
  });

  it('answers attach/detach misuse with the AWS error codes', async () => {
    const { instanceId, volumeId } = world();
    const otherAz = endpoint.sim.addInstance({ az: 'us-east-1b' }).instanceId;
    const stopped = endpoint.sim.addInstance({ az: AZ, state: 'stopped' }).instanceId;
    const second = endpoint.sim.addVolume({ az: AZ }).volumeId;
    const send = (v: string, i: string, d = '/dev/xvdf') => ec2.send(new AttachVolumeCommand({ VolumeId: v, InstanceId: i, Device: d }));
    await expectCode(send('vol-0000000000000dead', instanceId), 'InvalidVolume.NotFound');
    await expectCode(send(volumeId, 'i-0000000000000dead'), 'InvalidInstanceID.NotFound');
    await expectCode(send('volume-1', instanceId), 'InvalidParameterValue');
    await expectCode(send(volumeId, instanceId, '/dev/hda'), 'InvalidParameterValue');
    await expectCode(send(volumeId, otherAz), 'InvalidVolume.ZoneMismatch');
    await expectCode(send(volumeId, stopped), 'IncorrectState');
    await expectCode(ec2.send(new DetachVolumeCommand({ VolumeId: volumeId })), 'InvalidAttachment.NotFound');
    await send(volumeId, instanceId);
    await expectCode(ec2.send(new DetachVolumeCommand({ VolumeId: volumeId })), 'IncorrectState'); // still attaching
    await expectCode(send(volumeId, instanceId, '/dev/xvdg'), 'VolumeInUse');
    await expectCode(send(second, instanceId, '/dev/xvdf'), 'InvalidDevice.InUse');
    await expectCode(send(second, instanceId, '/dev/xvda'), 'InvalidDevice.InUse'); // the root device
    await waitState(volumeId, 'attached');
    await expectCode(ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: otherAz })), 'InvalidAttachment.NotFound');
  });

  it('limits Nitro attachments to 28 slots minus ENIs and the root volume', async () => {
    const { instanceId } = world({ eniCount: 24 }); // 28 − 24 − 1 = 3 volumes
    const volumeIds = ['f', 'g', 'h', 'i'].map(() => endpoint.sim.addVolume({ az: AZ }).volumeId);
    for (const [n, letter] of ['f', 'g', 'h'].entries()) {
      await ec2.send(new AttachVolumeCommand({ VolumeId: volumeIds[n], InstanceId: instanceId, Device: `/dev/xvd${letter}` }));
    }
    await expectCode(ec2.send(new AttachVolumeCommand({ VolumeId: volumeIds[3], InstanceId: instanceId, Device: '/dev/xvdi' })), 'AttachmentLimitExceeded');
  });

  it('goes busy while the host uses the device, then detaches once released', async () => {
    const { instanceId, volumeId } = world();
    await attached(volumeId, instanceId);
    endpoint.sim.setInUse(volumeId, true);
    expect((await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId }))).State).toBe('busy');
    await new Promise((resolve) => setTimeout(resolve, 200)); // several detach latencies
    expect(await attachmentState(volumeId)).toBe('busy');
    await fetch(`${endpoint.url}/_sim/in-use`, { method: 'POST', body: JSON.stringify({ volumeId, inUse: false }) });
    await waitState(volumeId, 'none');
  });

  it('forces a busy detach', async () => {
    const { instanceId, volumeId } = world();
    await attached(volumeId, instanceId);
    endpoint.sim.setInUse(volumeId, true);
    await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    expect(await attachmentState(volumeId)).toBe('busy');
    await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, Force: true }));
    await waitState(volumeId, 'none');
    endpoint.sim.setInUse(volumeId, false);
  });

  it('hangs a stuck detach in detaching until a forced detach', async () => {
    const { instanceId, volumeId } = world();
    await attached(volumeId, instanceId);
    await fetch(`${endpoint.url}/_sim/faults`, { method: 'POST', body: JSON.stringify({ kind: 'stuck-detach', volumeId }) });
    await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await attachmentState(volumeId)).toBe('detaching');
    await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Force: true }));
    await waitState(volumeId, 'none');
    expect(endpoint.sim.history.filter((h) => h.volumeId === volumeId).at(-1)).toMatchObject({ state: 'detached', forced: true });
  });

  it('filters and paginates DescribeVolumes', async () => {
    const tag = `page-${Date.now()}`;
    const volumeIds = Array.from({ length: 12 }, () => endpoint.sim.addVolume({ az: 'us-east-1c', tags: { suite: tag } }).volumeId);
    const seen: string[] = [];
    for await (const page of paginateDescribeVolumes({ client: ec2, pageSize: 5 }, { Filters: [{ Name: 'tag:suite', Values: [tag] }] })) {
      expect((page.Volumes ?? []).length).toBeLessThanOrEqual(5);
      seen.push(...(page.Volumes ?? []).map((v) => v.VolumeId ?? ''));
    }
    expect(seen.sort()).toEqual([...volumeIds].sort());
    const byAz = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'availability-zone', Values: ['us-east-1c'] }, { Name: 'status', Values: ['available'] }] }));
    expect(byAz.Volumes?.length).toBeGreaterThanOrEqual(12);
    const { instanceId, volumeId } = world();
    await attached(volumeId, instanceId);
    const mine = await ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [instanceId] }, { Name: 'attachment.status', Values: ['attached'] }] }),
    );
    expect(mine.Volumes?.map((v) => v.VolumeId)).toEqual([volumeId]);
    expect((await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'volume-id', Values: [volumeId] }] }))).Volumes).toHaveLength(1);
    await expectCode(ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'colour', Values: ['red'] }] })), 'InvalidParameterValue');
    await expectCode(ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId, 'vol-0000000000000dead'] })), 'InvalidVolume.NotFound');
  });
});

describe('instances', () => {
  it('describes with filters and pagination', async () => {
    const team = `team-${Date.now()}`;
    const instanceIds = Array.from({ length: 7 }, (_, n) => endpoint.sim.addInstance({ az: 'us-east-1d', tags: { team, n: String(n) } }).instanceId);
    endpoint.sim.addInstance({ az: 'us-east-1d', state: 'stopped', tags: { team } });
    const running = { Filters: [{ Name: 'tag:team', Values: [team] }, { Name: 'instance-state-name', Values: ['running'] }] };
    const first = await ec2.send(new DescribeInstancesCommand({ ...running, MaxResults: 5 }));
    expect(first.Reservations).toHaveLength(5);
    expect(first.NextToken).toBeDefined();
    const second = await ec2.send(new DescribeInstancesCommand({ ...running, MaxResults: 5, NextToken: first.NextToken }));
    expect(second.NextToken).toBeUndefined();
    const ids = [...(first.Reservations ?? []), ...(second.Reservations ?? [])].map((r) => r.Instances?.[0]?.InstanceId);
    expect(ids.sort()).toEqual([...instanceIds].sort());
    const inst = first.Reservations?.[0]?.Instances?.[0];
    expect(inst).toMatchObject({ State: { Code: 16, Name: 'running' }, Placement: { AvailabilityZone: 'us-east-1d' } });
    expect(inst?.PrivateIpAddress).toMatch(/^10\./);
    const withKey = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag-key', Values: ['n'] }, { Name: 'availability-zone', Values: ['us-east-1d'] }] }));
    expect(withKey.Reservations?.length).toBeGreaterThanOrEqual(7);
    await expectCode(ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0000000000000dead'] })), 'InvalidInstanceID.NotFound');
  });

  it('keeps attachments across a stop; a terminated instance loses them', async () => {
    const { instanceId, volumeId } = world();
    await attached(volumeId, instanceId);
    const stop = await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId], Force: true }));
    expect(stop.StoppingInstances?.[0]).toMatchObject({ InstanceId: instanceId, PreviousState: { Name: 'running' }, CurrentState: { Name: 'stopping', Code: 64 } });
    await waitFor(() => (endpoint.sim.instance(instanceId)?.state === 'stopped' ? true : undefined), 'stopped');
    expect(await attachmentState(volumeId)).toBe('attached');
    const status = await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [instanceId], IncludeAllInstances: true }));
    expect(status.InstanceStatuses?.[0]).toMatchObject({ InstanceState: { Name: 'stopped' }, SystemStatus: { Status: 'not-applicable' } });
    expect((await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [instanceId] }))).InstanceStatuses).toEqual([]);
    await expectCode(ec2.send(new AttachVolumeCommand({ VolumeId: endpoint.sim.addVolume({ az: AZ }).volumeId, InstanceId: instanceId, Device: '/dev/xvdg' })), 'IncorrectState');
    await fetch(`${endpoint.url}/_sim/terminate`, { method: 'POST', body: JSON.stringify({ instanceId }) });
    await waitFor(async () => ((await volume(volumeId)).State === 'available' ? true : undefined), 'available after terminate');
    await waitFor(() => (endpoint.sim.instance(instanceId)?.state === 'terminated' ? true : undefined), 'terminated');
    await expectCode(ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] })), 'IncorrectState');
  });

  it('reports status ok for running instances', async () => {
    const { instanceId } = world();
    const status = await ec2.send(new DescribeInstanceStatusCommand({ InstanceIds: [instanceId] }));
    expect(status.InstanceStatuses?.[0]).toMatchObject({
      InstanceId: instanceId,
      AvailabilityZone: AZ,
      InstanceState: { Name: 'running', Code: 16 },
      InstanceStatus: { Status: 'ok' },
      SystemStatus: { Status: 'ok', Details: [{ Name: 'reachability', Status: 'passed' }] },
    });
  });
});

describe('snapshots and tags', () => {
  it('runs a snapshot from pending to completed, lists it by owner and filters, deletes it', async () => {
    const { volumeId } = world();
    const created = await ec2.send(
      new CreateSnapshotCommand({ VolumeId: volumeId, Description: 'nightly', TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'volume', Value: volumeId }] }] }),
    );
    expect(created).toMatchObject({ VolumeId: volumeId, State: 'pending', VolumeSize: 20, OwnerId: '123456789012', Description: 'nightly', Tags: [{ Key: 'volume', Value: volumeId }] });
    expect(created.StartTime).toBeInstanceOf(Date);
    const snapshotId = created.SnapshotId ?? '';
    const completed = await waitFor(async () => {
      const out = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: 'volume-id', Values: [volumeId] }, { Name: 'status', Values: ['completed'] }] }));
      return out.Snapshots?.[0];
    }, 'snapshot completed');
    expect(completed).toMatchObject({ SnapshotId: snapshotId, Progress: '100%' });
    expect((await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['amazon'], SnapshotIds: [snapshotId] }))).Snapshots).toEqual([]);
    expect((await ec2.send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'tag:volume', Values: [volumeId] }] }))).Snapshots).toHaveLength(1);
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    await expectCode(ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] })), 'InvalidSnapshot.NotFound');
    await expectCode(ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })), 'InvalidSnapshot.NotFound');
    await expectCode(ec2.send(new CreateSnapshotCommand({ VolumeId: 'vol-0000000000000dead' })), 'InvalidVolume.NotFound');
  });

  it('paginates DescribeSnapshots', async () => {
    const { volumeId } = world();
    for (let n = 0; n < 6; n++) endpoint.sim.createSnapshot(volumeId);
    const filter = { OwnerIds: ['self'], Filters: [{ Name: 'volume-id', Values: [volumeId] }] };
    const first = await ec2.send(new DescribeSnapshotsCommand({ ...filter, MaxResults: 5 }));
    const second = await ec2.send(new DescribeSnapshotsCommand({ ...filter, MaxResults: 5, NextToken: first.NextToken }));
    expect([first.Snapshots?.length, second.Snapshots?.length, second.NextToken]).toEqual([5, 1, undefined]);
  });

  it('creates and deletes tags on volumes and instances', async () => {
    const { instanceId, volumeId } = world();
    await ec2.send(new CreateTagsCommand({ Resources: [volumeId, instanceId], Tags: [{ Key: 'service', Value: 'postgres' }, { Key: 'tier', Value: 'db' }] }));
    expect((await volume(volumeId)).Tags).toEqual(expect.arrayContaining([{ Key: 'service', Value: 'postgres' }, { Key: 'tier', Value: 'db' }]));
    await ec2.send(new DeleteTagsCommand({ Resources: [volumeId], Tags: [{ Key: 'service', Value: 'other' }, { Key: 'tier' }] }));
    expect((await volume(volumeId)).Tags).toEqual([{ Key: 'service', Value: 'postgres' }]);
    expect(endpoint.sim.instance(instanceId)?.tags).toEqual({ service: 'postgres', tier: 'db' });
    await expectCode(ec2.send(new CreateTagsCommand({ Resources: ['vol-0000000000000dead'], Tags: [{ Key: 'a', Value: 'b' }] })), 'InvalidVolume.NotFound');
  });
});

describe('faults, throttling, protocol', () => {
  it('fails the next N calls of an action with injected 500/503', async () => {
    endpoint.sim.injectFault({ kind: 'server-error', action: 'DescribeVolumes', count: 2, status: 500 });
    await expectCode(ec2.send(new DescribeVolumesCommand({})), 'InternalError', 500);
    await expectCode(ec2.send(new DescribeVolumesCommand({})), 'InternalError', 500);
    await ec2.send(new DescribeVolumesCommand({}));
    endpoint.sim.injectFault({ kind: 'server-error', action: 'AttachVolume', status: 503 });
    const { instanceId, volumeId } = world();
    await expectCode(ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/xvdf' })), 'Unavailable', 503);
    expect((await volume(volumeId)).State).toBe('available'); // a 5xx changed nothing
  });

  it('throttles per category with RequestLimitExceeded', async () => {
    // A tiny unfiltered-Describe bucket that barely refills, so the outcome does not depend on machine speed.
    endpoint.sim.setThrottle({ buckets: { describeUnfiltered: { burst: 5, perSecond: 0.001 } } });
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => ec2.send(new DescribeVolumesCommand({}))));
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected).toHaveLength(3);
    expect(rejected[0]?.reason).toMatchObject({ name: 'RequestLimitExceeded', $metadata: { httpStatusCode: 503 } });
    // Calls narrowed by ids draw from another bucket.
    const { volumeId } = world();
    await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    expect(endpoint.sim.stats().errorsByCode.RequestLimitExceeded).toBeGreaterThan(0);
  });

  it('counts calls per action', async () => {
    endpoint.sim.resetStats();
    await ec2.send(new DescribeInstancesCommand({}));
    await ec2.send(new DescribeInstancesCommand({}));
    await ec2.send(new DescribeVolumesCommand({}));
    expect(endpoint.sim.stats()).toMatchObject({ total: 3, byAction: { DescribeInstances: 2, DescribeVolumes: 1 } });
  });

  it('answers an unknown action with InvalidAction', async () => {
    const res = await fetch(endpoint.url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'Action=RunInstances&Version=2016-11-15' });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('<Code>InvalidAction</Code>');
  });
});

describe('device files and control API', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ec2sim-dev-'));
    tempDirs.push(dir);
  });

  it('creates the nvme device and by-id link on attach, honours the in-use marker, removes them on detach', async () => {
    const { instanceId, volumeId } = world({ nitro: true });
    const res = await fetch(`${endpoint.url}/_sim/device-dir`, { method: 'POST', body: JSON.stringify({ instanceId, dir }) });
    expect(res.status).toBe(200);
    await attached(volumeId, instanceId);
    const link = join(dir, 'disk', 'by-id', `nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`);
    expect(readlinkSync(link)).toBe('../../nvme1n1');
    writeFileSync(join(dir, 'nvme1n1.in-use'), 'mounted');
    await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
    expect(await attachmentState(volumeId)).toBe('busy');
    rmSync(join(dir, 'nvme1n1.in-use'));
    await waitState(volumeId, 'none');
    expect(existsSync(join(dir, 'nvme1n1')) || existsSync(link)).toBe(false);
  });

  it('names Xen devices after the request', async () => {
    const { instanceId, volumeId } = world({ nitro: false });
    endpoint.sim.setDeviceDir(instanceId, dir);
    await attached(volumeId, instanceId, '/dev/xvdg');
    expect(existsSync(join(dir, 'xvdg'))).toBe(true);
  });

  it('seeds and reports over HTTP', async () => {
    const post = (path: string, body: unknown) => fetch(`${endpoint.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    const instance = (await (await post('/_sim/instances', { az: AZ, instanceId: 'i-00000000000c0ffee' })).json()) as { instanceId: string };
    expect(instance.instanceId).toBe('i-00000000000c0ffee');
    expect((await post('/_sim/volumes', { az: 'nowhere' })).status).toBe(400);
    expect((await post('/_sim/latencies', { attachMs: 40 })).status).toBe(200);
    const state = (await (await fetch(`${endpoint.url}/_sim/state`)).json()) as { instances: { instanceId: string }[] };
    expect(state.instances.map((i) => i.instanceId)).toContain('i-00000000000c0ffee');
    const history = (await (await fetch(`${endpoint.url}/_sim/history`)).json()) as unknown[];
    expect(history.length).toBe(endpoint.sim.history.length);
    expect((await fetch(`${endpoint.url}/_sim/nope`)).status).toBe(404);
  });
});

describe('main.ts', () => {
  it('runs as a process with a seed file and prints its URL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ec2sim-main-'));
    tempDirs.push(dir);
    const seed = join(dir, 'seed.json');
    writeFileSync(seed, JSON.stringify({ instances: [{ instanceId: 'i-0000000000000beef', az: AZ }], volumes: [{ volumeId: 'vol-0000000000000beef', az: AZ }] }));
    const child = spawn(join(process.cwd(), 'node_modules/.bin/tsx'), ['src/sim/ec2/main.ts', '--port', '0', '--seed', seed], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`exited ${String(code)}`)));
      });
      const { url } = JSON.parse(line) as { url: string };
      const client = new EC2Client({ endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
      const out = await client.send(new DescribeVolumesCommand({ VolumeIds: ['vol-0000000000000beef'] }));
      expect(out.Volumes?.[0]?.AvailabilityZone).toBe(AZ);
      client.destroy();
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
