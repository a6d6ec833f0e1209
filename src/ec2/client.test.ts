import { AttachVolumeCommand, DescribeVolumesCommand, DetachVolumeCommand, EC2Client, EC2ServiceException, type Volume } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createEc2 } from './client.js';
import { Ec2ServerError, InvalidInputError, RequestLimitExceededError, UnexpectedAttachmentError, VolumeInUseError, VolumeNotFoundError } from './errors.js';
import type { Ec2Port } from './types.js';

const ec2Client = new EC2Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
const mock = mockClient(ec2Client);
const VOL = 'vol-0123456789abcdef0';
const I1 = 'i-0123456789abcdef1';
const I2 = 'i-0123456789abcdef2';

function volumeId(n: number): string {
  return `vol-${n.toString(16).padStart(17, '0')}`;
}

function sdkError(name: string, status: number): EC2ServiceException {
  return new EC2ServiceException({ name, message: name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
}

function volume(id: string, attachments: { instanceId: string; state: string }[] = []): Volume {
  return {
    VolumeId: id,
    AvailabilityZone: 'us-east-1a',
    State: attachments.length > 0 ? 'in-use' : 'available',
    Size: 10,
    Attachments: attachments.map((a) => ({ VolumeId: id, InstanceId: a.instanceId, Device: '/dev/sdf', State: a.state as 'attached' })),
    Tags: [{ Key: 'service', Value: 'postgres' }],
  };
}

/** Tiny retry/poll delays: these tests check classification and counts, not timing. */
function port(): Ec2Port {
  return createEc2({ client: ec2Client, timing: { retryMinMs: 1, retryMaxMs: 2, pollInitialMs: 1, pollMaxMs: 2 } });
}

beforeEach(() => mock.reset());

describe('describeVolumes', () => {
  it('batches many ids into one call per 200 (volume-id filter) and keeps the order asked', async () => {
    const ids = Array.from({ length: 250 }, (_, i) => volumeId(i + 1));
    mock.on(DescribeVolumesCommand).callsFake((input: { Filters?: { Values?: string[] }[] }) => ({ Volumes: (input.Filters?.[0]?.Values ?? []).map((v) => volume(v)) }));
    const out = await port().describeVolumes([...ids].reverse());
    expect(mock.commandCalls(DescribeVolumesCommand)).toHaveLength(2);
    expect(mock.commandCalls(DescribeVolumesCommand).map((c) => c.args[0].input.Filters?.[0]?.Values?.length)).toEqual([200, 50]);
    expect(out.map((v) => v.volumeId)).toEqual([...ids].reverse());
    expect(out[0]).toEqual({ volumeId: ids[249], az: 'us-east-1a', state: 'available', sizeGiB: 10, attachments: [], tags: { service: 'postgres' }, multiAttachEnabled: false });
  });

  it('follows NextToken', async () => {
    mock
      .on(DescribeVolumesCommand, { NextToken: undefined })
      .resolves({ Volumes: [volume(volumeId(1))], NextToken: 'page2' })
      .on(DescribeVolumesCommand, { NextToken: 'page2' })
      .resolves({ Volumes: [volume(volumeId(2))] });
    const out = await port().describeVolumes([volumeId(1), volumeId(2)]);
    expect(out.map((v) => v.volumeId)).toEqual([volumeId(1), volumeId(2)]);
    expect(mock.commandCalls(DescribeVolumesCommand)).toHaveLength(2);
  });

  it('a missing id → VolumeNotFoundError naming it', async () => {
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume(volumeId(1))] });
    const err = await port().describeVolumes([volumeId(1), volumeId(7)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VolumeNotFoundError);
    expect((err as VolumeNotFoundError).volumeId).toBe(volumeId(7));
  });

  it('a bad id → InvalidInputError naming the field, before any call', async () => {
    const err = await port().describeVolumes([VOL, 'vol-nothex']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).field).toBe('volumeIds[1]');
    expect(mock.calls()).toHaveLength(0);
  });
});

describe('retries', () => {
  it('retries throttling and 5xx to success', async () => {
    mock.on(AttachVolumeCommand).rejectsOnce(sdkError('RequestLimitExceeded', 503)).rejectsOnce(sdkError('InternalError', 500)).resolves({});
    await port().attachVolume(VOL, I1, '/dev/sdf');
    expect(mock.commandCalls(AttachVolumeCommand)).toHaveLength(3);
  });

  it('gives up after the retries with RequestLimitExceededError', async () => {
    mock.on(AttachVolumeCommand).rejects(sdkError('RequestLimitExceeded', 503));
    await expect(port().attachVolume(VOL, I1, '/dev/sdf')).rejects.toBeInstanceOf(RequestLimitExceededError);
    expect(mock.commandCalls(AttachVolumeCommand)).toHaveLength(6);
  });

  it('fails at once on anything else', async () => {
    mock.on(AttachVolumeCommand).rejects(sdkError('VolumeInUse', 400));
    const err = await port().attachVolume(VOL, I1, '/dev/sdf').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VolumeInUseError);
    expect(err).toMatchObject({ volumeId: VOL, instanceId: I1, device: '/dev/sdf', code: 'VolumeInUse' });
    expect(mock.commandCalls(AttachVolumeCommand)).toHaveLength(1);
  });
});

describe('idempotent attach', () => {
  it('a retry after a 5xx that EC2 had acted on finds the volume attached here: success', async () => {
    mock.on(AttachVolumeCommand).rejectsOnce(sdkError('InternalError', 500)).rejects(sdkError('VolumeInUse', 400));
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume(VOL, [{ instanceId: I1, state: 'attaching' }])] });
    await expect(port().attachVolume(VOL, I1, '/dev/sdf')).resolves.toBeUndefined();
    expect(mock.commandCalls(AttachVolumeCommand)).toHaveLength(2);
  });

  it('attached to another instance stays VolumeInUseError', async () => {
    mock.on(AttachVolumeCommand).rejects(sdkError('VolumeInUse', 400));
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume(VOL, [{ instanceId: I2, state: 'attached' }])] });
    await expect(port().attachVolume(VOL, I1, '/dev/sdf')).rejects.toBeInstanceOf(VolumeInUseError);
  });
});

describe('detach', () => {
  it.each(['InvalidAttachment.NotFound', 'InvalidVolume.NotFound'])('%s counts as success (idempotent detach)', async (code) => {
    mock.on(DetachVolumeCommand).rejects(sdkError(code, 400));
    await expect(port().detachVolume(VOL, I1, false)).resolves.toBeUndefined();
  });

  it('detachAndWait forces after the bound when the volume stays busy', async () => {
    let forced = false;
    mock.on(DetachVolumeCommand).callsFake((input: { Force?: boolean }) => {
      if (input.Force === true) forced = true;
      return {};
    });
    mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [forced ? volume(VOL) : volume(VOL, [{ instanceId: I1, state: 'busy' }])] }));
    const ec2 = createEc2({ client: ec2Client, timing: { pollInitialMs: 5, pollMaxMs: 5 } });
    const out = await ec2.detachAndWait(VOL, I1, { forceAfterMs: 30, allowForce: true, timeoutMs: 10_000 });
    expect(out.forced).toBe(true);
    expect(mock.commandCalls(DetachVolumeCommand).map((c) => c.args[0].input.Force)).toEqual([true]);
  });

  it('detachAndWait never touches an attachment to another instance', async () => {
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume(VOL, [{ instanceId: I2, state: 'attached' }])] });
    await expect(port().detachAndWait(VOL, I1, { forceAfterMs: 0, allowForce: true, timeoutMs: 1_000 })).rejects.toBeInstanceOf(UnexpectedAttachmentError);
    expect(mock.commandCalls(DetachVolumeCommand)).toHaveLength(0);
  });
});

describe('waits', () => {
  it('coalesces the polls of concurrent waits into shared DescribeVolumes calls', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => volumeId(i + 1));
    let calls = 0;
    mock.on(DescribeVolumesCommand).callsFake((input: { Filters?: { Values?: string[] }[] }) => {
      calls++;
      // Attached from the 3rd call on: each wait polls at least 3 times.
      const state = calls >= 3 ? 'attached' : 'attaching';
      return { Volumes: (input.Filters?.[0]?.Values ?? []).map((v) => volume(v, [{ instanceId: I1, state }])) };
    });
    const ec2 = port();
    const out = await Promise.all(ids.map((v) => ec2.waitAttached(v, I1, { timeoutMs: 10_000 })));
    expect(out.every((v) => v.attachments[0]?.state === 'attached')).toBe(true);
    // 50 waits × ≥ 3 polls would be ≥ 150 calls one by one.
    expect(calls).toBeLessThan(15);
  });

  it('keeps waiting through a 5xx that outlived the retries, then times out with the last state', async () => {
    mock.on(DescribeVolumesCommand).rejects(sdkError('Unavailable', 503));
    const ec2 = createEc2({ client: ec2Client, timing: { retries: 0, pollInitialMs: 5, pollMaxMs: 5 } });
    const err = await ec2.waitAvailable(VOL, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'Ec2WaitTimeoutError', code: 'WaitTimeout', volumeId: VOL, lastState: 'Unavailable from EC2' });
    expect(mock.commandCalls(DescribeVolumesCommand).length).toBeGreaterThan(1);
  });

  it('honours the signal', async () => {
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume(VOL, [{ instanceId: I1, state: 'attaching' }])] });
    const ac = new AbortController();
    const wait = port().waitAttached(VOL, I1, { timeoutMs: 60_000, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('leadership lost')), 20);
    await expect(wait).rejects.toThrow('leadership lost');
  });

  it('a server error surfaces typed when not waiting', async () => {
    mock.on(DescribeVolumesCommand).rejects(sdkError('InternalError', 500));
    const ec2 = createEc2({ client: ec2Client, timing: { retries: 1, retryMinMs: 1, retryMaxMs: 1 } });
    await expect(ec2.describeVolumes([VOL])).rejects.toBeInstanceOf(Ec2ServerError);
    expect(mock.commandCalls(DescribeVolumesCommand)).toHaveLength(2);
  });
});
