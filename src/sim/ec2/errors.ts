/**
 * Errors the endpoint answers with. Each carries the AWS error code the real EC2 would send, the
 * HTTP status, and the ids involved, so the XML error body and the logs say the same thing.
 */
export class Ec2SimError extends Error {
  override readonly name = 'Ec2SimError';
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus: number = 400,
    readonly ids: { volumeId?: string; instanceId?: string; snapshotId?: string; action?: string } = {},
  ) {
    super(message);
  }
}

export const volumeNotFound = (volumeId: string): Ec2SimError =>
  new Ec2SimError('InvalidVolume.NotFound', `The volume '${volumeId}' does not exist.`, 400, { volumeId });

export const instanceNotFound = (instanceId: string): Ec2SimError =>
  new Ec2SimError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`, 400, { instanceId });

export const snapshotNotFound = (snapshotId: string): Ec2SimError =>
  new Ec2SimError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`, 400, { snapshotId });

export const invalidParameter = (message: string): Ec2SimError => new Ec2SimError('InvalidParameterValue', message);

export const incorrectState = (message: string, ids: { volumeId?: string; instanceId?: string } = {}): Ec2SimError =>
  new Ec2SimError('IncorrectState', message, 400, ids);
