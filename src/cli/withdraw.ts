import type { Etcd3 } from 'etcd3';
import type { FailoverJournal, Keyspace, ManualRequest } from '../keyspace/index.js';
import { etcdBounded } from './etcd.js';
import { isInProgress, readClusterState, type ClusterState, type Stored } from './state.js';

/**
 * Where a manual request stands, as far as withdrawing it goes. The controller deletes
 * `requests/<volumeId>` in the same transaction that writes the journal starting the failover, so in
 * one consistent read "the key exists and refusedReason is null" means "not started".
 */
export type RequestStanding =
  | { kind: 'pending'; stored: Stored<ManualRequest> } // not started: may be withdrawn
  | { kind: 'refused'; request: ManualRequest } // the controller refused it and drops it itself
  | { kind: 'started'; journal: FailoverJournal } // the controller took it: it carries on
  | { kind: 'other'; request: ManualRequest } // a different request than the one asked about
  | { kind: 'none'; lastJournal: FailoverJournal | null }; // nothing pending (withdrawn, dropped, or never made)

/**
 * Pure. `requestId` names the request the caller made (`failover <unit>` withdrawing its own); null
 * means "whatever request is pending for this volume" (`failover cancel`).
 */
export function requestStanding(state: ClusterState, volumeId: string, requestId: string | null): RequestStanding {
  const stored = state.requests.get(volumeId);
  const journal = state.journals.get(volumeId)?.value;
  if (stored) {
    if (requestId !== null && stored.value.requestId !== requestId) return { kind: 'other', request: stored.value };
    if (stored.value.refusedReason !== null) return { kind: 'refused', request: stored.value };
    return { kind: 'pending', stored };
  }
  if (journal) {
    const ours = requestId !== null ? journal.requestId === requestId : journal.kind === 'manual' && isInProgress(journal);
    if (ours) return { kind: 'started', journal };
  }
  return { kind: 'none', lastJournal: journal ?? null };
}

export type WithdrawOutcome = { kind: 'withdrawn'; request: ManualRequest } | Exclude<RequestStanding, { kind: 'pending' }>;

/** Retries when the request changed between the read and the delete; more means something keeps rewriting it. */
const WITHDRAW_ATTEMPTS = 3;

/**
 * Deletes the request if, and only if, it has not started: one transaction comparing the key's mod
 * revision with the one read, so it never deletes a request the controller has since refused or
 * replaced, nor (the key being gone then) one it has started. Each etcd call is bounded.
 */
export async function withdrawRequest(etcd: Etcd3, ks: Keyspace, volumeId: string, requestId: string | null): Promise<WithdrawOutcome> {
  for (let attempt = 1; ; attempt += 1) {
    const standing = requestStanding(await readClusterState(etcd, ks), volumeId, requestId);
    if (standing.kind !== 'pending') return standing;
    const key = ks.request(volumeId);
    const res = await etcdBounded(etcd, () => etcd.if(key, 'Mod', '==', standing.stored.modRevision).then(etcd.delete().key(key)).commit());
    if (res.succeeded) return { kind: 'withdrawn', request: standing.stored.value };
    if (attempt >= WITHDRAW_ATTEMPTS) {
      const again = requestStanding(await readClusterState(etcd, ks), volumeId, requestId);
      if (again.kind !== 'pending') return again;
      throw new Error(`requests/${volumeId} kept changing while withdrawing it; try again`);
    }
  }
}
