import { DeleteSnapshotCommand, DescribeVolumesCommand, DetachVolumeCommand, EC2Client, EC2ServiceException, StopInstancesCommand } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createEc2 } from './client.js';
import { MutationFencedError, monoNow } from './gate.js';
import type { Ec2Port, MutationGuard } from './types.js';

const ec2Client = new EC2Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
const mock = mockClient(ec2Client);
const VOL = 'vol-0123456789abcdef0';
const I1 = 'i-0123456789abcdef1';

class NotLeader extends Error {
  override readonly name = 'NotLeader';
}

/** A guard whose lease the test controls. */
function guard(over: Partial<MutationGuard> & { leading?: () => boolean } = {}): MutationGuard {
  const leading = over.leading ?? (() => true);
  return {
    caller: 'c1',
    term: '42',
    assert: () => {
      if (!leading()) throw new NotLeader('c1 no longer leads');
    },
    // Fractional, as performance.now() arithmetic gives.
    remainingMs: () => 4_999.7,
    ...over,
  };
}

function port(): Ec2Port {
  return createEc2({ client: ec2Client, timing: { retryMinMs: 1, retryMaxMs: 2, pollInitialMs: 1, pollMaxMs: 2 } });
}

beforeEach(() => mock.reset());

describe('mutation gate (SDK client mocked)', () => {
  it('a guard that no longer holds stops the call before anything is sent, with its own error', async () => {
    mock.on(DetachVolumeCommand).resolves({});
    await expect(port().detachVolume(VOL, I1, true, { guard: guard({ leading: () => false }) })).rejects.toBeInstanceOf(NotLeader);
    expect(mock.commandCalls(DetachVolumeCommand)).toHaveLength(0);
  });

  it('too little lease left for a request: MutationFencedError naming caller, term and volume; nothing sent', async () => {
    mock.on(StopInstancesCommand).resolves({});
    mock.on(DetachVolumeCommand).resolves({});
    const nearlyGone = guard({ remainingMs: () => 100 });
    const err = await port().detachVolume(VOL, I1, true, { guard: nearlyGone }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MutationFencedError);
    expect(err).toMatchObject({ action: 'DetachVolume', caller: 'c1', term: '42' });
    expect((err as Error).message).toContain(VOL);
    await expect(port().stopInstance(I1, { force: true, guard: nearlyGone })).rejects.toBeInstanceOf(MutationFencedError);
    expect(mock.commandCalls(DetachVolumeCommand)).toHaveLength(0);
    expect(mock.commandCalls(StopInstancesCommand)).toHaveLength(0);
  });

  it('a new term waits out notBeforeMono before its first mutation; describes do not wait', async () => {
    let sentAt = 0;
    mock.on(DetachVolumeCommand).callsFake(() => {
      sentAt = monoNow();
      return {};
    });
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [] });
    const notBeforeMono = monoNow() + 150;
    const ec2 = port();
    await ec2.describeVolumes([]);
    await ec2.detachVolume(VOL, I1, false, { guard: guard({ notBeforeMono }) });
    expect(sentAt).toBeGreaterThanOrEqual(notBeforeMono);
  });

  it('the quiet applies only where quietApplies says: a volume with no previous call in flight goes at once; others, and calls naming no volume, wait', async () => {
    const OTHER = 'vol-0123456789abcdef9';
    const sent = new Map<string, number>();
    mock.on(DetachVolumeCommand).callsFake((input: { VolumeId: string }) => {
      sent.set(input.VolumeId, monoNow());
      return {};
    });
    mock.on(StopInstancesCommand).callsFake(() => {
      sent.set('stop', monoNow());
      return {};
    });
    const quietApplies = (ids: { volumeId?: string }): boolean => ids.volumeId !== VOL;
    // Ten minutes of quiet: had the call waited for it, the test would time out.
    await port().detachVolume(VOL, I1, true, { guard: guard({ notBeforeMono: monoNow() + 600_000, quietApplies }) });
    expect(sent.has(VOL)).toBe(true);
    const notBeforeMono = monoNow() + 150;
    await port().detachVolume(OTHER, I1, true, { guard: guard({ notBeforeMono, quietApplies }) });
    await port().stopInstance(I1, { force: true, guard: guard({ notBeforeMono, quietApplies }) });
    expect(sent.get(OTHER)).toBeGreaterThanOrEqual(notBeforeMono);
    expect(sent.get('stop')).toBeGreaterThanOrEqual(notBeforeMono);
  });

  it('beforeSend (the journalled intent) runs once, before the first request and not again on a retry; its failure sends nothing', async () => {
    const order: string[] = [];
    let attempts = 0;
    mock.on(DetachVolumeCommand).callsFake(() => {
      attempts += 1;
      order.push(`send ${attempts}`);
      if (attempts === 1) throw new EC2ServiceException({ name: 'InternalError', message: 'boom', $fault: 'server', $metadata: { httpStatusCode: 500 } });
      return {};
    });
    const beforeSend = async (): Promise<void> => {
      order.push('intent');
    };
    await port().detachVolume(VOL, I1, true, { guard: guard(), beforeSend });
    expect(order).toEqual(['intent', 'send 1', 'send 2']);
    const refused = new NotLeader('the intent write was refused');
    await expect(port().detachVolume(VOL, I1, true, { guard: guard(), beforeSend: () => Promise.reject(refused) })).rejects.toBe(refused);
    expect(attempts).toBe(2);
  });

  it('the guard is checked again on every retry: leadership lost between a 5xx and its retry sends nothing more', async () => {
    let leading = true;
    mock.on(DetachVolumeCommand).callsFake(() => {
      leading = false;
      throw new EC2ServiceException({ name: 'InternalError', message: 'boom', $fault: 'server', $metadata: { httpStatusCode: 500 } });
    });
    await expect(port().detachVolume(VOL, I1, true, { guard: guard({ leading: () => leading }) })).rejects.toBeInstanceOf(NotLeader);
    expect(mock.commandCalls(DetachVolumeCommand)).toHaveLength(1);
  });

  it('DeleteSnapshot of a snapshot already gone counts as deleted', async () => {
    mock.on(DeleteSnapshotCommand).rejects(
      new EC2ServiceException({ name: 'InvalidSnapshot.NotFound', message: "The snapshot 'snap-0123456789abcdef0' does not exist.", $fault: 'client', $metadata: { httpStatusCode: 400 } }),
    );
    await expect(port().deleteSnapshot('snap-0123456789abcdef0')).resolves.toBeUndefined();
    expect(mock.commandCalls(DeleteSnapshotCommand)).toHaveLength(1);
  });
});
