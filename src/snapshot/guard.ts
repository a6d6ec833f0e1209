import type { MutationGuard } from '../ec2/types.js';

/** What the guard needs of src/locks' VolumeLock. */
export interface GuardableLock {
  readonly owner: string;
  /** The lock key's create revision: the lock's fencing value, recorded as the request's term. */
  readonly token: string;
  assertHeld(): void;
  leaseRemainingMs(): number;
}

/**
 * The snapshot job's volume lock as the EC2 gate's guard: CreateSnapshot/DeleteSnapshot are checked
 * against the lock (monotonic deadline) as the last step before they are sent, and cut at its lease
 * deadline, so a job frozen past its lock's lease sends nothing once a failover owns the volume.
 */
export function lockGuard(lock: GuardableLock): MutationGuard {
  return {
    caller: lock.owner,
    term: lock.token,
    assert: () => lock.assertHeld(),
    remainingMs: () => lock.leaseRemainingMs(),
  };
}
