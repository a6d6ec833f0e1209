/**
 * Exit codes of `failover` (documented in `--help`): 0 ok; 1 failed, refused or timed out; 2 bad
 * usage or input (malformed unit name, bad flag, bad config field).
 */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Bad input: nothing was attempted. Exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = EXIT_USAGE;
}

/** A well-formed request the cluster state does not allow (unknown service, dead/cross-AZ target…). Exit 1. */
export class RefusedError extends Error {
  override readonly name = 'RefusedError';
  readonly exitCode = EXIT_FAILED;
  constructor(
    message: string,
    readonly ids: { unit?: string; volumeId?: string; instanceId?: string; az?: string } = {},
  ) {
    super(message);
  }
}

/** The operation started but did not finish well (controller failed it, timed out). Exit 1. */
export class OperationFailedError extends Error {
  override readonly name = 'OperationFailedError';
  readonly exitCode = EXIT_FAILED;
  constructor(
    message: string,
    readonly ids: { unit?: string; volumeId?: string; instanceId?: string } = {},
  ) {
    super(message);
  }
}
