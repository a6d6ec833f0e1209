/**
 * Typed EC2 errors. This is the ONLY file that reads SDK error names: everything else switches on
 * these classes (or their readonly `code`), so a renamed or new AWS code is handled here once.
 */

/** The ids an error may carry; each is what an operator greps the logs for. */
export interface Ec2ErrorIds {
  volumeId?: string;
  instanceId?: string;
  az?: string;
  device?: string;
  snapshotId?: string;
  /** The EC2 action that failed, e.g. `AttachVolume`. */
  action?: string;
}

export class Ec2Error extends Error {
  override readonly name: string = 'Ec2Error';
  readonly volumeId: string | undefined;
  readonly instanceId: string | undefined;
  readonly az: string | undefined;
  readonly device: string | undefined;
  readonly snapshotId: string | undefined;
  readonly action: string | undefined;

  constructor(
    /** AWS error code (`InvalidVolume.NotFound`, …) or one of ours (`WaitTimeout`, `InvalidInput`). */
    readonly code: string,
    message: string,
    ids: Ec2ErrorIds = {},
    /** True when the same call may succeed later (throttling, 5xx): callers may re-run their step. */
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.volumeId = ids.volumeId;
    this.instanceId = ids.instanceId;
    this.az = ids.az;
    this.device = ids.device;
    this.snapshotId = ids.snapshotId;
    this.action = ids.action;
  }
}

type Opts = { cause?: unknown };

export class VolumeNotFoundError extends Ec2Error {
  override readonly name = 'VolumeNotFoundError';
  constructor(volumeId: string, ids: Ec2ErrorIds = {}, options?: Opts) {
    super('InvalidVolume.NotFound', `volume ${volumeId} not found: check the id and the region (volumes are regional)`, { ...ids, volumeId }, false, options);
  }
}

export class InstanceNotFoundError extends Ec2Error {
  override readonly name = 'InstanceNotFoundError';
  constructor(instanceId: string, ids: Ec2ErrorIds = {}, options?: Opts) {
    super('InvalidInstanceID.NotFound', `instance ${instanceId} not found: check the id and the region, or it was terminated long ago`, { ...ids, instanceId }, false, options);
  }
}

export class ZoneMismatchError extends Ec2Error {
  override readonly name = 'ZoneMismatchError';
  constructor(ids: Ec2ErrorIds & { volumeAz?: string; instanceAz?: string }, options?: Opts) {
    const where =
      ids.volumeAz !== undefined && ids.instanceAz !== undefined
        ? `volume ${ids.volumeId ?? '?'} is in ${ids.volumeAz}, instance ${ids.instanceId ?? '?'} is in ${ids.instanceAz}`
        : `volume ${ids.volumeId ?? '?'} and instance ${ids.instanceId ?? '?'} are in different availability zones`;
    super('InvalidVolume.ZoneMismatch', `${where}: EBS cannot attach across AZs; pick a target host in the volume's AZ`, { ...ids, az: ids.volumeAz ?? ids.az }, false, options);
  }
}

export class VolumeInUseError extends Ec2Error {
  override readonly name = 'VolumeInUseError';
  constructor(ids: Ec2ErrorIds, options?: Opts) {
    super('VolumeInUse', `volume ${ids.volumeId ?? '?'} is already attached to an instance: detach it first (failover detaches, forcing only a fenced host)`, ids, false, options);
  }
}

export class IncorrectStateError extends Ec2Error {
  override readonly name: string = 'IncorrectStateError';
  constructor(ids: Ec2ErrorIds, detail: string, options?: Opts, awsCode = 'IncorrectState') {
    super(awsCode, `volume ${ids.volumeId ?? '?'} / instance ${ids.instanceId ?? '?'} is in the wrong state for ${ids.action ?? 'this call'} (${detail}): wait for the transition to finish and retry`, ids, false, options);
  }
}

/**
 * The instance is not in a state that takes the call (AttachVolume to a terminated, shutting-down,
 * pending or stopping instance). Unlike a volume's IncorrectState this is no race that the next look
 * resolves: the same instance will keep refusing, so the caller must choose another one.
 * A subclass of IncorrectStateError because EC2 also reports some of these as `IncorrectState`.
 */
export class IncorrectInstanceStateError extends IncorrectStateError {
  override readonly name: string = 'IncorrectInstanceStateError';
  constructor(ids: Ec2ErrorIds, detail: string, options?: Opts, awsCode = 'IncorrectInstanceState') {
    super(ids, detail, options, awsCode);
    this.message = `instance ${ids.instanceId ?? '?'} cannot take ${ids.action ?? 'this call'} in its current state (${detail}): choose another instance`;
  }
}

/** DeleteSnapshot/DescribeSnapshots of a snapshot that does not exist (already deleted, or a typo). */
export class SnapshotNotFoundError extends Ec2Error {
  override readonly name = 'SnapshotNotFoundError';
  constructor(snapshotId: string, ids: Ec2ErrorIds = {}, options?: Opts) {
    super('InvalidSnapshot.NotFound', `snapshot ${snapshotId} not found: already deleted, or another region`, { ...ids, snapshotId }, false, options);
  }
}

export class DeviceInUseError extends Ec2Error {
  override readonly name = 'DeviceInUseError';
  constructor(ids: Ec2ErrorIds, options?: Opts) {
    super('InvalidDevice.InUse', `device ${ids.device ?? '?'} is already in use on instance ${ids.instanceId ?? '?'}: choose another /dev/sd[f-p] letter`, ids, false, options);
  }
}

export class AttachmentNotFoundError extends Ec2Error {
  override readonly name = 'AttachmentNotFoundError';
  constructor(ids: Ec2ErrorIds, options?: Opts) {
    super('InvalidAttachment.NotFound', `volume ${ids.volumeId ?? '?'} is not attached to instance ${ids.instanceId ?? '?'}`, ids, false, options);
  }
}

export class AttachmentLimitExceededError extends Ec2Error {
  override readonly name = 'AttachmentLimitExceededError';
  constructor(ids: Ec2ErrorIds, options?: Opts) {
    super('AttachmentLimitExceeded', `instance ${ids.instanceId ?? '?'} cannot take more volumes: detach one or pick another host`, ids, false, options);
  }
}

/** Throttled, and still throttled after our retries: lower the concurrency or the client-side rates. */
export class RequestLimitExceededError extends Ec2Error {
  override readonly name = 'RequestLimitExceededError';
  constructor(ids: Ec2ErrorIds, awsCode = 'RequestLimitExceeded', options?: Opts) {
    super(awsCode, `EC2 throttled ${ids.action ?? 'the call'} even after retries: too many calls for the account's limits; lower the client-side rates or retry later`, ids, true, options);
  }
}

/** EC2 answered 5xx (InternalError, Unavailable, …), still after our retries. */
export class Ec2ServerError extends Ec2Error {
  override readonly name = 'Ec2ServerError';
  constructor(
    ids: Ec2ErrorIds,
    awsCode: string,
    readonly httpStatus: number | undefined,
    options?: Opts,
  ) {
    super(awsCode, `EC2 failed on ${ids.action ?? 'the call'} with ${awsCode}${httpStatus === undefined ? '' : ` (HTTP ${httpStatus})`}: an AWS-side problem, retry later or check the AWS Health Dashboard`, ids, true, options);
  }
}

/** A wait did not see the wanted state in time; `lastState` is what it saw last. */
export class Ec2WaitTimeoutError extends Ec2Error {
  override readonly name = 'Ec2WaitTimeoutError';
  constructor(
    ids: Ec2ErrorIds,
    readonly wanted: string,
    readonly lastState: string,
    readonly timeoutMs: number,
    options?: Opts,
  ) {
    super('WaitTimeout', `volume ${ids.volumeId ?? '?'} not ${wanted} within ${timeoutMs} ms (last seen: ${lastState}); EC2 may be slow or the attachment stuck: retry, or force-detach if the host is fenced`, ids, false, options);
  }
}

/** A wait saw an attachment it must not touch: several attachments, or one to an unexpected instance. */
export class UnexpectedAttachmentError extends Ec2Error {
  override readonly name = 'UnexpectedAttachmentError';
  constructor(
    ids: Ec2ErrorIds,
    readonly attachedTo: string[],
    options?: Opts,
  ) {
    super('UnexpectedAttachment', `volume ${ids.volumeId ?? '?'} is attached to ${attachedTo.join(', ') || 'nothing'}${ids.instanceId === undefined ? '' : `, expected ${ids.instanceId}`}: another actor changed it; refusing to act, inspect it by hand`, ids, false, options);
  }
}

/** Bad input caught before any call is made. */
export class InvalidInputError extends Ec2Error {
  override readonly name = 'InvalidInputError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    super('InvalidInput', `invalid ${field} ${JSON.stringify(value)}: ${reason}`);
  }
}

/** Codes AWS uses for throttling (EC2's own, and the generic ones of the SDK's retry classification). */
const THROTTLING_CODES = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'ThrottledException', 'RequestThrottled', 'RequestThrottledException', 'TooManyRequestsException']);
/** Codes of server-side faults, whatever HTTP status they came with. */
const SERVER_CODES = new Set(['InternalError', 'InternalFailure', 'Unavailable', 'ServiceUnavailable']);

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

function sdkShape(err: unknown): { code: string; message: string; status: number | undefined } | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as SdkErrorShape;
  if (e.$metadata === undefined || typeof e.name !== 'string') return undefined;
  const status = typeof e.$metadata.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  return { code: e.name, message: typeof e.message === 'string' ? e.message : '', status };
}

/** True for errors worth retrying: throttling and 5xx only. Everything else fails at once. */
export function isRetryableSdkError(err: unknown): boolean {
  const sdk = sdkShape(err);
  if (sdk === undefined) return false;
  return isThrottling(sdk.code) || SERVER_CODES.has(sdk.code) || (sdk.status !== undefined && sdk.status >= 500);
}

function isThrottling(code: string): boolean {
  return THROTTLING_CODES.has(code) || code.startsWith('Throttling');
}

/**
 * Real EC2 reports a device name taken on the instance as `InvalidParameterValue` with "… is already
 * in use" (e.g. "Invalid value '/dev/sdf' for unixDevice. Attachment point /dev/sdf is already in
 * use") as often as with `InvalidDevice.InUse`; both mean "choose another device name".
 */
function isDeviceInUseMessage(code: string, message: string): boolean {
  return code === 'InvalidParameterValue' && /already in use/i.test(message) && /(unixDevice|attachment point|device)/i.test(message);
}

/** EC2's IncorrectState on AttachVolume about the INSTANCE (not the volume): "instance 'i-…' is not 'running'". */
function isInstanceStateMessage(message: string): boolean {
  return /\binstance\b/i.test(message) && /(is not 'running'|not in a valid state|not in a state)/i.test(message);
}

/** First `vol-…` / `i-…` named in an AWS message: DescribeVolumes names the missing id there. */
function idInMessage(message: string, prefix: 'vol' | 'i' | 'snap'): string | undefined {
  return new RegExp(`\\b${prefix}-[0-9a-f]{8,17}\\b`).exec(message)?.[0];
}

/** Maps any error thrown by the SDK's `send` to our typed errors, filling in the ids we know. */
export function fromSdkError(err: unknown, ids: Ec2ErrorIds): Error {
  if (err instanceof Ec2Error) return err;
  const sdk = sdkShape(err);
  if (sdk === undefined) {
    // Network failures, SDK-side validation, aborts: not EC2's answer, keep the original.
    return err instanceof Error ? err : new Error(String(err));
  }
  const cause = { cause: err };
  switch (sdk.code) {
    case 'InvalidVolume.NotFound':
      return new VolumeNotFoundError(idInMessage(sdk.message, 'vol') ?? ids.volumeId ?? '?', ids, cause);
    case 'InvalidInstanceID.NotFound':
    case 'InvalidInstanceID.Malformed':
      return new InstanceNotFoundError(idInMessage(sdk.message, 'i') ?? ids.instanceId ?? '?', ids, cause);
    case 'InvalidVolume.ZoneMismatch':
      return new ZoneMismatchError(ids, cause);
    case 'VolumeInUse':
      return new VolumeInUseError(ids, cause);
    case 'IncorrectInstanceState':
      return new IncorrectInstanceStateError(ids, sdk.message, cause);
    case 'IncorrectState':
      if (ids.action === 'AttachVolume' && isInstanceStateMessage(sdk.message)) return new IncorrectInstanceStateError(ids, sdk.message, cause, 'IncorrectState');
      return new IncorrectStateError(ids, sdk.message, cause);
    case 'InvalidSnapshot.NotFound':
      return new SnapshotNotFoundError(idInMessage(sdk.message, 'snap') ?? ids.snapshotId ?? '?', ids, cause);
    case 'InvalidDevice.InUse':
      return new DeviceInUseError(ids, cause);
    case 'InvalidAttachment.NotFound':
      return new AttachmentNotFoundError(ids, cause);
    case 'AttachmentLimitExceeded':
      return new AttachmentLimitExceededError(ids, cause);
    default:
      break;
  }
  if (isDeviceInUseMessage(sdk.code, sdk.message)) return new DeviceInUseError(ids, cause);
  if (isThrottling(sdk.code)) return new RequestLimitExceededError(ids, sdk.code, cause);
  if (SERVER_CODES.has(sdk.code) || (sdk.status !== undefined && sdk.status >= 500)) return new Ec2ServerError(ids, sdk.code, sdk.status, cause);
  return new Ec2Error(sdk.code, `EC2 ${ids.action ?? 'call'} failed with ${sdk.code}: ${sdk.message}`, ids, false, cause);
}
