import type { Etcd3, IOperation } from 'etcd3';
import { etcdCall } from './etcd.js';
import { NotLeaderError, TxnConflictError } from './errors.js';

/** One extra condition of a guarded transaction (etcd Compare). */
export interface TxnCompare {
  key: string;
  target: 'Value' | 'Version' | 'Create' | 'Mod' | 'Lease';
  op: '==' | '!=' | '<' | '>';
  value: string | number;
}

export interface GuardedOps {
  compares?: TxnCompare[];
  puts?: { key: string; value: string; lease?: string }[];
  deletes?: string[];
}

/** Who must still lead for a guarded write to apply. */
export interface LeaderGuard {
  candidateId: string;
  leaderKey: string;
  /** The leader key's create revision: a re-created key (new term) has another one. */
  revision: string;
}

/**
 * ONE etcd transaction: applies `ops` only if the leader key still exists with the create revision
 * of our term (and the caller's compares hold). A deposed leader — its lease expired while it was
 * paused, say — fails here on the etcd side whatever its local clock believes.
 */
export async function guardedTxn(client: Etcd3, guard: LeaderGuard, ops: GuardedOps): Promise<void> {
  const compares = ops.compares ?? [];
  let txn = client.if(guard.leaderKey, 'Create', '==', guard.revision);
  for (const c of compares) txn = txn.and(c.key, c.target, c.op, c.value);
  const clauses: IOperation[] = [];
  for (const p of ops.puts ?? []) {
    const put = client.put(p.key).value(p.value);
    clauses.push(p.lease !== undefined ? put.lease(p.lease) : put);
  }
  for (const key of ops.deletes ?? []) clauses.push(client.delete().key(key));
  const result = await etcdCall(client, 'guarded transaction', () => txn.then(...clauses).else(client.get(guard.leaderKey)).commit());
  if (result.succeeded) return;
  const kv = result.responses[0]?.response_range?.kvs[0];
  if (kv === undefined || kv.create_revision !== guard.revision) {
    throw new NotLeaderError(guard.candidateId, guard.leaderKey, kv === undefined ? 'leader key is gone' : 'another term holds the leader key');
  }
  throw new TxnConflictError(compares.map((c) => c.key));
}
