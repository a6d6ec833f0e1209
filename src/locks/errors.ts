import {
  ClientClosedError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  isRecoverableError,
} from 'etcd3';

/** etcd cannot be reached (no quorum, all endpoints down, or a deadline passed). Retryable. */
export class EtcdUnavailableError extends Error {
  override readonly name = 'EtcdUnavailableError';
  readonly retryable = true;
  constructor(
    readonly endpoints: readonly string[],
    readonly operation: string,
    options?: { cause?: unknown },
  ) {
    super(`etcd unavailable (${endpoints.join(',')}) during ${operation}: ${describe(options?.cause)}`, options);
  }
}

/** A write guarded by leadership was refused: this process does not (or no longer) lead. */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError';
  constructor(
    readonly candidateId: string,
    readonly leaderKey: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${candidateId} is not the leader (${leaderKey}): ${reason}`, options);
  }
}

/** A per-volume lock stayed held by someone else for the whole wait. */
export class LockTimeoutError extends Error {
  override readonly name = 'LockTimeoutError';
  constructor(
    readonly volumeId: string,
    readonly holder: string | null,
    readonly waitedMs: number,
  ) {
    super(`lock on ${volumeId} is held by ${holder ?? 'unknown'} (waited ${waitedMs} ms)`);
  }
}

/**
 * A per-volume lock this process took may no longer be ours: it was released, its lease was lost, or
 * its renewals are stale past TTL − margin (a successor could take it as soon as the lease expires).
 */
export class LockLostError extends Error {
  override readonly name = 'LockLostError';
  constructor(
    readonly volumeId: string,
    readonly owner: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`lock on ${volumeId} (held by ${owner}) may be lost: ${reason}`, options);
  }
}

/** A lease this process relied on is gone on the etcd side (expired or revoked). */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(
    readonly leaseId: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`lease ${leaseId} lost: ${reason}`, options);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Transport-level failures: retrying later (or on another member) may succeed. */
export function isEtcdUnavailable(err: unknown): boolean {
  if (err instanceof EtcdUnavailableError) return true;
  if (!(err instanceof Error)) return false;
  return (
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCCancelledError ||
    isRecoverableError(err) ||
    /ECONNREFUSED|No connection established|deadline|UNAVAILABLE|ETIMEDOUT|timed out|no leader|leader changed|too many requests/i.test(err.message)
  );
}

/** Rethrows etcd transport failures as EtcdUnavailableError (with the endpoints); other errors as they are. */
export function wrapEtcdError(err: unknown, endpoints: readonly string[], operation: string): Error {
  if (err instanceof EtcdUnavailableError || err instanceof NotLeaderError || err instanceof LockTimeoutError || err instanceof LockLostError) return err;
  if (err instanceof ClientClosedError) return new EtcdUnavailableError(endpoints, operation, { cause: err });
  if (isEtcdUnavailable(err)) return new EtcdUnavailableError(endpoints, operation, { cause: err });
  return err instanceof Error ? err : new Error(String(err));
}

/** A guarded transaction's own compares failed (we still lead; the data changed under us). */
export class TxnConflictError extends Error {
  override readonly name = 'TxnConflictError';
  constructor(readonly keys: readonly string[]) {
    super(`transaction compares failed on ${keys.join(', ')}`);
  }
}
