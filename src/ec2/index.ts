export { createEc2, type CreateEc2Options } from './client.js';
export type { Ec2Send } from './call.js';
export {
  Ec2Error,
  VolumeNotFoundError,
  InstanceNotFoundError,
  ZoneMismatchError,
  VolumeInUseError,
  IncorrectStateError,
  IncorrectInstanceStateError,
  SnapshotNotFoundError,
  DeviceInUseError,
  AttachmentNotFoundError,
  AttachmentLimitExceededError,
  RequestLimitExceededError,
  Ec2ServerError,
  Ec2WaitTimeoutError,
  UnexpectedAttachmentError,
  InvalidInputError,
  type Ec2ErrorIds,
} from './errors.js';
export { EC2_TIMING, type Ec2Timing } from './timing.js';
export { CALLER_HEADER, MUTATING_ACTIONS, MutationFencedError, TERM_HEADER, monoNow, withGuard, type GateHooks, type MutationInfo } from './gate.js';
export { EC2_RATE_DEFAULTS, RateLimiter, TokenBucket, systemClock, type BucketSpec, type Clock, type RateCategory } from './token-bucket.js';
export { AvailabilityZone, DEVICE_LETTERS, DeviceName, InstanceId, SnapshotId, VolumeId } from './ids.js';
export type {
  AttachmentState,
  Ec2Port,
  MutatingOpts,
  MutationGuard,
  InstanceInfo,
  InstanceState,
  InstanceStatusInfo,
  StatusCheck,
  SnapshotInfo,
  SnapshotState,
  VolumeAttachment,
  VolumeInfo,
  VolumeState,
} from './types.js';
export { resolveInstanceIdentity, ImdsError, type ImdsOptions, type InstanceIdentity } from './imds.js';
