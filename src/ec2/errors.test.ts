import { EC2ServiceException } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import {
  AttachmentLimitExceededError,
  AttachmentNotFoundError,
  DeviceInUseError,
  Ec2Error,
  Ec2ServerError,
  IncorrectInstanceStateError,
  IncorrectStateError,
  InstanceNotFoundError,
  SnapshotNotFoundError,
  RequestLimitExceededError,
  VolumeInUseError,
  VolumeNotFoundError,
  ZoneMismatchError,
  fromSdkError,
  isRetryableSdkError,
} from './errors.js';

function sdkError(name: string, status: number, message = `${name} happened`): EC2ServiceException {
  return new EC2ServiceException({ name, message, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
}

describe('isRetryableSdkError', () => {
  it.each([
    ['RequestLimitExceeded', 503, true],
    ['Throttling', 400, true],
    ['ThrottlingException', 400, true],
    ['InternalError', 500, true],
    ['Unavailable', 503, true],
    ['ServiceUnavailable', 503, true],
    ['SomethingNew', 502, true],
    ['IncorrectState', 400, false],
    ['InvalidVolume.NotFound', 400, false],
    ['UnauthorizedOperation', 403, false],
    ['VolumeInUse', 400, false],
  ])('%s (HTTP %i) → retryable %s', (code, status, retryable) => {
    expect(isRetryableSdkError(sdkError(code, status))).toBe(retryable);
  });

  it('does not retry network or programming errors (only throttling and 5xx)', () => {
    expect(isRetryableSdkError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(false);
    expect(isRetryableSdkError(new TypeError('x is undefined'))).toBe(false);
  });
});

describe('fromSdkError', () => {
  const ids = { volumeId: 'vol-0123456789abcdef0', instanceId: 'i-0123456789abcdef0', device: '/dev/sdf', action: 'AttachVolume' };
  it.each([
    ['InvalidVolume.NotFound', VolumeNotFoundError],
    ['InvalidInstanceID.NotFound', InstanceNotFoundError],
    ['InvalidVolume.ZoneMismatch', ZoneMismatchError],
    ['VolumeInUse', VolumeInUseError],
    ['IncorrectState', IncorrectStateError],
    ['InvalidDevice.InUse', DeviceInUseError],
    ['InvalidAttachment.NotFound', AttachmentNotFoundError],
    ['AttachmentLimitExceeded', AttachmentLimitExceededError],
    ['RequestLimitExceeded', RequestLimitExceededError],
  ])('%s → %s carrying the AWS code and ids', (code, cls) => {
    const err = fromSdkError(sdkError(code, code === 'RequestLimitExceeded' ? 503 : 400), ids);
    expect(err).toBeInstanceOf(cls);
    expect(err).toBeInstanceOf(Ec2Error);
    const typed = err as Ec2Error;
    expect(typed.code).toBe(code);
    expect(typed.volumeId).toBe(ids.volumeId);
    expect(typed.instanceId).toBe(ids.instanceId);
    expect(typed.action).toBe('AttachVolume');
    expect(typed.retryable).toBe(code === 'RequestLimitExceeded');
  });

  it('takes the missing id from the AWS message, which names it', () => {
    const err = fromSdkError(sdkError('InvalidVolume.NotFound', 400, "The volume 'vol-0aaaaaaaaaaaaaaaa' does not exist."), { action: 'DescribeVolumes' });
    expect(err).toBeInstanceOf(VolumeNotFoundError);
    expect((err as VolumeNotFoundError).volumeId).toBe('vol-0aaaaaaaaaaaaaaaa');
    expect(err.message).toContain('vol-0aaaaaaaaaaaaaaaa');
  });

  it('5xx of any code → Ec2ServerError with the status; unknown 4xx → generic Ec2Error', () => {
    const server = fromSdkError(sdkError('InternalError', 500), ids);
    expect(server).toBeInstanceOf(Ec2ServerError);
    expect((server as Ec2ServerError).httpStatus).toBe(500);
    const other = fromSdkError(sdkError('UnauthorizedOperation', 403), ids);
    expect(other.constructor).toBe(Ec2Error);
    expect((other as Ec2Error).code).toBe('UnauthorizedOperation');
    expect(other.message).toContain('UnauthorizedOperation');
  });

  it('the zone-mismatch message names both AZs and says why', () => {
    const err = new ZoneMismatchError({ ...ids, volumeAz: 'us-east-1a', instanceAz: 'us-east-1b' });
    expect(err.message).toBe(
      "volume vol-0123456789abcdef0 is in us-east-1a, instance i-0123456789abcdef0 is in us-east-1b: EBS cannot attach across AZs; pick a target host in the volume's AZ",
    );
    expect(err.az).toBe('us-east-1a');
  });

  it.each([
    // What real EC2 answers for a device name already taken on the instance, besides InvalidDevice.InUse.
    ["Invalid value '/dev/sdf' for unixDevice. Attachment point /dev/sdf is already in use", DeviceInUseError],
    ['Value (/dev/sdf) for parameter device is invalid. /dev/sdf is already in use.', DeviceInUseError],
    // Other InvalidParameterValue errors stay generic: a bad name is not "choose another one".
    ['Value (/dev/hda) for parameter device is invalid. /dev/hda is not a valid EBS device name.', Ec2Error],
  ])('InvalidParameterValue "%s" → %s', (message, cls) => {
    const err = fromSdkError(sdkError('InvalidParameterValue', 400, message), ids);
    expect(err.constructor).toBe(cls);
    expect((err as Ec2Error).device).toBe('/dev/sdf');
  });

  it('IncorrectInstanceState, and IncorrectState about the instance on AttachVolume, → IncorrectInstanceStateError (choose another instance)', () => {
    const direct = fromSdkError(sdkError('IncorrectInstanceState', 400, "The instance 'i-0123456789abcdef0' is not in a valid state for this operation."), ids);
    expect(direct).toBeInstanceOf(IncorrectInstanceStateError);
    expect((direct as Ec2Error).code).toBe('IncorrectInstanceState');
    expect(direct.message).toContain('choose another instance');
    const viaState = fromSdkError(sdkError('IncorrectState', 400, "The instance 'i-0123456789abcdef0' is not 'running'."), ids);
    expect(viaState).toBeInstanceOf(IncorrectInstanceStateError);
    // Still an IncorrectStateError for callers that only know that class.
    expect(viaState).toBeInstanceOf(IncorrectStateError);
    const volumeState = fromSdkError(sdkError('IncorrectState', 400, "Volume 'vol-0123456789abcdef0' is in the 'attaching' state."), { ...ids, action: 'DetachVolume' });
    expect(volumeState).toBeInstanceOf(IncorrectStateError);
    expect(volumeState).not.toBeInstanceOf(IncorrectInstanceStateError);
  });

  it('InvalidSnapshot.NotFound → SnapshotNotFoundError naming the snapshot', () => {
    const err = fromSdkError(sdkError('InvalidSnapshot.NotFound', 400, "The snapshot 'snap-0123456789abcdef0' does not exist."), { action: 'DeleteSnapshot' });
    expect(err).toBeInstanceOf(SnapshotNotFoundError);
    expect((err as SnapshotNotFoundError).snapshotId).toBe('snap-0123456789abcdef0');
  });
});
