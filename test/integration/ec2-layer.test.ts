import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AttachmentLimitExceededError,
  createEc2,
  DeviceInUseError,
  Ec2ServerError,
  Ec2WaitTimeoutError,
  IncorrectStateError,
  InstanceNotFoundError,
  InvalidInputError,
  RequestLimitExceededError,
  UnexpectedAttachmentError,
  VolumeInUseError,
  VolumeNotFoundError,
  ZoneMismatchError,
  type Ec2Port,
} from '../../src/ec2/index.js';
import { AWS_THROTTLE_DEFAULTS, startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';

const AZ = 'us-east-1a';
const OTHER_AZ = 'us-east-1b';
// Short simulated latencies keep the file fast; every wait below still has a generous deadline.
const LATENCIES = { attachMs: 40, detachMs: 40, snapshotMs: 200 };
const DEADLINE_MS = 20_000;

let endpoint: Ec2Endpoint;
let ec2: Ec2Port;
let hexCounter = 0x100;

/** Fresh ids per test: tests share one simulator. */
function nextHex(): string {
  return (hexCounter++).toString(16).padStart(17, '0');
}
function newInstance(az = AZ, extra: { eniCount?: number; state?: 'running' | 'stopped' } = {}): string {
  return endpoint.sim.addInstance({ instanceId: `i-${nextHex()}`, az, tags: { role: 'db', cluster: 'c1' }, ...extra }).instanceId;
}
function newVolume(az = AZ): string {
  return endpoint.sim.addVolume({ volumeId: `vol-${nextHex()}`, az, tags: { service: 'postgres' } }).volumeId;
}
async function attached(volumeId: string, instanceId: string, device = '/dev/sdf'): Promise<void> {
  await ec2.attachVolume(volumeId, instanceId, device);
  await ec2.waitAttached(volumeId, instanceId, { timeoutMs: DEADLINE_MS });
}
/** Tiny retry delays for the tests that exhaust retries on purpose. */
function quickRetries(): Ec2Port {
  return createEc2({ endpoint: endpoint.url, region: 'us-east-1', timing: { retries: 2, retryMinMs: 5, retryMaxMs: 10 } });
}

beforeAll(async () => {
  endpoint = await startEc2Endpoint({ latencies: LATENCIES });
  ec2 = createEc2({ endpoint: endpoint.url, region: 'us-east-1' });
});

afterAll(async () => {
  await endpoint.close();
});

afterEach(() => {
  endpoint.sim.clearFaults();
  endpoint.sim.setThrottle({ enabled: true, scale: 1, buckets: AWS_THROTTLE_DEFAULTS });
});

describe('attach / detach round trips', () => {
  it('attach, wait, graceful detach and wait, through the real SDK', async () => {
    const instanceId = newInstance();
    const volumeId = newVolume();
    await ec2.attachVolume(volumeId, instanceId, '/dev/sdf');
    const v = await ec2.waitAttached(volumeId, instanceId, { timeoutMs: DEADLINE_MS });
    expect(v).toMatchObject({ volumeId, az: AZ, state: 'in-use', attachments: [{ instanceId, device: '/dev/sdf', state: 'attached' }], tags: { service: 'postgres' } });
    const out = await ec2.detachAndWait(volumeId, instanceId, { forceAfterMs: DEADLINE_MS, allowForce: true, timeoutMs: DEADLINE_MS });
    expect(out.forced).toBe(false);
    expect(out.volume).toMatchObject({ state: 'available', attachments: [] });
    const states = endpoint.sim.history.filter((h) => h.volumeId === volumeId).map((h) => h.state);
    expect(states).toEqual(['attaching', 'attached', 'detaching', 'detached']);
    // Detaching again is a no-op, not an error (idempotent), though EC2 said InvalidAttachment.NotFound.
    const before = endpoint.sim.stats().errorsByCode['InvalidAttachment.NotFound'] ?? 0;
    await ec2.detachVolume(volumeId, instanceId, false);
    expect(endpoint.sim.stats().errorsByCode['InvalidAttachment.NotFound']).toBe(before + 1);
  });

  it('detachAndWait on an available volume returns at once without a call', async () => {
    const volumeId = newVolume();
    endpoint.sim.resetStats();
    const out = await ec2.detachAndWait(volumeId, newInstance(), { forceAfterMs: 0, allowForce: true, timeoutMs: DEADLINE_MS });
    expect(out.forced).toBe(false);
    expect(endpoint.sim.stats().byAction.DetachVolume).toBeUndefined();
  });

  it('a volume stuck in detaching is freed by force after the bound', async () => {
    const instanceId = newInstance();
    const volumeId = newVolume();
    await attached(volumeId, instanceId);
    endpoint.sim.injectFault({ kind: 'stuck-detach', volumeId });
    const out = await ec2.detachAndWait(volumeId, instanceId, { forceAfterMs: 300, allowForce: true, timeoutMs: DEADLINE_MS });
    expect(out.forced).toBe(true);
    expect(out.volume.attachments).toEqual([]);
    const entries = endpoint.sim.history.filter((h) => h.volumeId === volumeId).map((h) => `${h.state}${h.forced ? '!' : ''}`);
    expect(entries).toEqual(['attaching', 'attached', 'detaching', 'detaching!', 'detached!']);
  });

  it('without allowForce a stuck detach times out (never forced), and a later call forces at once', async () => {
    const instanceId = newInstance();
    const volumeId = newVolume();
    await attached(volumeId, instanceId);
    endpoint.sim.injectFault({ kind: 'stuck-detach', volumeId });
    const err = await ec2.detachAndWait(volumeId, instanceId, { forceAfterMs: 50, allowForce: false, timeoutMs: 600 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Ec2WaitTimeoutError);
    expect((err as Ec2WaitTimeoutError).lastState).toBe(`detaching to ${instanceId}`);
    expect(endpoint.sim.volume(volumeId)?.attachment?.state).toBe('detaching');
    // Already seen stuck for longer than the bound: the next call forces on its first look.
    endpoint.sim.resetStats();
    const out = await ec2.detachAndWait(volumeId, instanceId, { forceAfterMs: 50, allowForce: true, timeoutMs: DEADLINE_MS });
    expect(out.forced).toBe(true);
    expect(endpoint.sim.stats().byAction.DetachVolume).toBe(1);
  });

  it('a busy volume (host still using it) is freed by force; one released in time is not forced', async () => {
    const instanceId = newInstance();
    const busy = newVolume();
    await attached(busy, instanceId, '/dev/sdf');
    endpoint.sim.setInUse(busy, true);
    const out = await ec2.detachAndWait(busy, instanceId, { forceAfterMs: 300, allowForce: true, timeoutMs: DEADLINE_MS });
    expect(out.forced).toBe(true);
    expect(endpoint.sim.history.some((h) => h.volumeId === busy && h.state === 'busy')).toBe(true);

    const released = newVolume();
    await attached(released, instanceId, '/dev/sdg');
    endpoint.sim.setInUse(released, true);
    setTimeout(() => endpoint.sim.setInUse(released, false), 150);
    const graceful = await ec2.detachAndWait(released, instanceId, { forceAfterMs: DEADLINE_MS, allowForce: true, timeoutMs: DEADLINE_MS });
    expect(graceful.forced).toBe(false);
  });
});

describe('every EC2 error surfaces as its typed error', () => {
  it('InvalidVolume.NotFound / InvalidInstanceID.NotFound', async () => {
    const instanceId = newInstance();
    const missingVolume = `vol-${nextHex()}`;
    await expect(ec2.attachVolume(missingVolume, instanceId, '/dev/sdf')).rejects.toMatchObject({ name: 'VolumeNotFoundError', volumeId: missingVolume });
    await expect(ec2.describeVolumes([newVolume(), missingVolume])).rejects.toBeInstanceOf(VolumeNotFoundError);
    const missingInstance = `i-${nextHex()}`;
    const err = await ec2.attachVolume(newVolume(), missingInstance, '/dev/sdf').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InstanceNotFoundError);
    expect((err as InstanceNotFoundError).instanceId).toBe(missingInstance);
    await expect(ec2.describeInstances([missingInstance])).rejects.toBeInstanceOf(InstanceNotFoundError);
  });

  it('InvalidVolume.ZoneMismatch names both AZs', async () => {
    const volumeId = newVolume(AZ);
    const instanceId = newInstance(OTHER_AZ);
    const err = await ec2.attachVolume(volumeId, instanceId, '/dev/sdf').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZoneMismatchError);
    expect((err as Error).message).toContain(`volume ${volumeId} is in ${AZ}, instance ${instanceId} is in ${OTHER_AZ}: EBS cannot attach across AZs`);
  });

  it('VolumeInUse, InvalidDevice.InUse, IncorrectState, AttachmentLimitExceeded', async () => {
    const a = newInstance();
    const b = newInstance();
    const volumeId = newVolume();
    await attached(volumeId, a);
    await expect(ec2.attachVolume(volumeId, b, '/dev/sdg')).rejects.toBeInstanceOf(VolumeInUseError);
    // The same attach again (a retried step) is not an error: it is already where it should be.
    await expect(ec2.attachVolume(volumeId, a, '/dev/sdf')).resolves.toBeUndefined();
    const deviceErr = await ec2.attachVolume(newVolume(), a, '/dev/sdf').catch((e: unknown) => e);
    expect(deviceErr).toBeInstanceOf(DeviceInUseError);
    expect(deviceErr).toMatchObject({ code: 'InvalidDevice.InUse', device: '/dev/sdf', instanceId: a });
    await expect(ec2.attachVolume(newVolume(), newInstance(AZ, { state: 'stopped' }), '/dev/sdf')).rejects.toBeInstanceOf(IncorrectStateError);
    // Nitro: 28 slots shared with 27 ENIs and the root volume leave none for data volumes.
    await expect(ec2.attachVolume(newVolume(), newInstance(AZ, { eniCount: 27 }), '/dev/sdf')).rejects.toBeInstanceOf(AttachmentLimitExceededError);
  });

  it('RequestLimitExceeded after retries, and server errors after retries', async () => {
    const client = quickRetries();
    endpoint.sim.injectFault({ kind: 'throttle', action: 'DescribeInstances', count: 10 });
    await expect(client.describeInstances([newInstance()])).rejects.toBeInstanceOf(RequestLimitExceededError);
    endpoint.sim.clearFaults();
    endpoint.sim.injectFault({ kind: 'server-error', action: 'StopInstances', count: 10, status: 503 });
    const err = await client.stopInstance(newInstance()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Ec2ServerError);
    expect(err).toMatchObject({ code: 'Unavailable', httpStatus: 503, retryable: true });
    expect(endpoint.sim.stats().errorsByCode.Unavailable).toBeGreaterThanOrEqual(3);
  });

  it('waits: timeout on a stuck attach, and an attachment to another instance', async () => {
    const a = newInstance();
    const stuck = newVolume();
    endpoint.sim.injectFault({ kind: 'stuck-attach', volumeId: stuck });
    await ec2.attachVolume(stuck, a, '/dev/sdf');
    await expect(ec2.waitAttached(stuck, a, { timeoutMs: 400 })).rejects.toMatchObject({ name: 'Ec2WaitTimeoutError', lastState: `attaching to ${a}` });
    // A stuck attach can only be undone by force, which detachAndWait does once allowed.
    expect((await ec2.detachAndWait(stuck, a, { forceAfterMs: 100, allowForce: true, timeoutMs: DEADLINE_MS })).forced).toBe(true);

    const volumeId = newVolume();
    await attached(volumeId, a);
    await expect(ec2.waitAttached(volumeId, newInstance(), { timeoutMs: DEADLINE_MS })).rejects.toBeInstanceOf(UnexpectedAttachmentError);
  });

  it('bad input is refused before any call', async () => {
    endpoint.sim.resetStats();
    await expect(ec2.attachVolume(newVolume(), newInstance(), '/dev/sda1')).rejects.toMatchObject({ name: 'InvalidInputError', field: 'device' });
    await expect(ec2.detachVolume('vol-xyz', newInstance(), false)).rejects.toBeInstanceOf(InvalidInputError);
    expect(endpoint.sim.stats().total).toBe(0);
  });
});

describe('throttling', () => {
  it('EC2 throttling is retried to success', async () => {
    const instanceId = newInstance();
    const volumes = Array.from({ length: 4 }, () => newVolume());
    // A tiny mutating bucket on the simulator: 1 call, then 4 per second.
    endpoint.sim.setThrottle({ buckets: { mutating: { burst: 1, perSecond: 4 } } });
    endpoint.sim.resetStats();
    await Promise.all(volumes.map((volumeId, i) => ec2.attachVolume(volumeId, instanceId, `/dev/sd${'fghi'[i] ?? 'j'}`)));
    expect(endpoint.sim.stats().errorsByCode.RequestLimitExceeded).toBeGreaterThan(0);
    await Promise.all(volumes.map((volumeId) => ec2.waitAttached(volumeId, instanceId, { timeoutMs: DEADLINE_MS })));
  });

  it('a client-side bucket matching the account limit keeps EC2 from throttling at all', async () => {
    const instanceId = newInstance();
    const volumes = Array.from({ length: 4 }, () => newVolume());
    endpoint.sim.setThrottle({ buckets: { mutating: { burst: 1, perSecond: 4 } } });
    endpoint.sim.resetStats();
    const paced = createEc2({ endpoint: endpoint.url, region: 'us-east-1', bucket: { mutating: { burst: 1, perSecond: 3 } } });
    await Promise.all(volumes.map((volumeId, i) => paced.attachVolume(volumeId, instanceId, `/dev/sd${'fghi'[i] ?? 'j'}`)));
    expect(endpoint.sim.stats().errorsByCode.RequestLimitExceeded).toBeUndefined();
    expect(endpoint.sim.stats().byAction.AttachVolume).toBe(4);
  });
});

describe('instances, snapshots, tags', () => {
  it('findInstances by AZ and tags; describeInstances maps the SDK shapes', async () => {
    const instanceId = newInstance(OTHER_AZ);
    const found = await ec2.findInstances({ az: OTHER_AZ, tags: { role: 'db' } });
    expect(found.map((i) => i.instanceId)).toContain(instanceId);
    expect(found.every((i) => i.az === OTHER_AZ)).toBe(true);
    expect(await ec2.findInstances({ az: OTHER_AZ, tags: { role: 'web' } })).toEqual([]);
    const [info] = await ec2.describeInstances([instanceId]);
    expect(info).toMatchObject({ instanceId, az: OTHER_AZ, state: 'running', tags: { role: 'db', cluster: 'c1' } });
    expect(info?.devices).toContain('/dev/xvda');
    expect(info?.privateIp).toMatch(/^10\./);
    await ec2.stopInstance(instanceId, { force: true });
    expect(['stopping', 'stopped']).toContain(endpoint.sim.instance(instanceId)?.state);
  });

  it('snapshot lifecycle: create tagged, list by volume and tags, complete, delete', async () => {
    const volumeId = newVolume();
    const snap = await ec2.createSnapshot(volumeId, 'nightly', { 'ebs-failover/policy': 'nightly' });
    expect(snap).toMatchObject({ volumeId, state: 'pending', description: 'nightly', tags: { 'ebs-failover/policy': 'nightly' } });
    const byVolume = await ec2.listSnapshots({ volumeIds: [volumeId] });
    expect(byVolume.map((s) => s.snapshotId)).toEqual([snap.snapshotId]);
    const byTag = await ec2.listSnapshots({ tags: { 'ebs-failover/policy': 'nightly' } });
    expect(byTag.map((s) => s.snapshotId)).toContain(snap.snapshotId);
    const deadline = Date.now() + DEADLINE_MS;
    while ((await ec2.listSnapshots({ volumeIds: [volumeId] }))[0]?.state !== 'completed') {
      if (Date.now() > deadline) throw new Error('snapshot never completed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await ec2.tagResources([snap.snapshotId, volumeId], { keep: 'yes' });
    expect((await ec2.describeVolumes([volumeId]))[0]?.tags).toEqual({ service: 'postgres', keep: 'yes' });
    await ec2.untagResources([volumeId], ['keep']);
    expect((await ec2.describeVolumes([volumeId]))[0]?.tags).toEqual({ service: 'postgres' });
    await ec2.deleteSnapshot(snap.snapshotId);
    expect(await ec2.listSnapshots({ volumeIds: [volumeId] })).toEqual([]);
  });
});
