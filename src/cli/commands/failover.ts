import { randomUUID } from 'node:crypto';
import { InstanceId } from '../../ec2/ids.js';
import { encodeRecord, type FailoverJournal, type ManualRequest } from '../../keyspace/index.js';
import type { GlobalOptions } from '../context.js';
import { openEc2 } from '../ec2.js';
import { OperationFailedError, RefusedError, UsageError } from '../errors.js';
import { checkManualFailover } from '../failover-check.js';
import type { Session } from '../session.js';
import { readClusterState } from '../state.js';
import { parseUnitName } from './service.js';

/** A planned move: stop, unmount, detach, attach, mount, start. 5 min covers EBS's slow tail. */
export const DEFAULT_FAILOVER_TIMEOUT_S = 300;

/** Re-read even without watch events, so a missed event never leaves the CLI waiting forever. */
const FOLLOW_POLL_MS = 1_000;

interface FailoverOptions extends GlobalOptions {
  to?: string;
  force?: boolean;
  timeout: string;
  json?: boolean;
}

export function parseTimeoutSeconds(raw: string): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`bad --timeout "${raw}": expected seconds > 0`);
  return value;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

export async function requestFailover(session: Session, unit: string, opts: FailoverOptions): Promise<void> {
  const { etcd, ks, io, config } = session;
  const { volumeId } = parseUnitName(unit);
  const toInstanceId = opts.to ?? null;
  if (toInstanceId !== null && !InstanceId.safeParse(toInstanceId).success) throw new UsageError(`bad --to "${toInstanceId}": expected an instance id like i-0abc12345def67890`);
  const timeoutMs = parseTimeoutSeconds(opts.timeout) * 1000;

  const state = await readClusterState(etcd, ks);
  if (!state.services.has(unit)) throw new RefusedError(`unknown service ${unit} (register it with: failover service add)`, { unit });
  const [volume] = await (await openEc2(config.aws)).describeVolumes([volumeId]).catch((err: unknown) => {
    if ((err as Error).name === 'VolumeNotFoundError') return [];
    throw err;
  });
  if (!volume) throw new RefusedError(`unknown volume ${volumeId} (EC2 does not know it)`, { unit, volumeId });
  checkManualFailover(state, { unit, volumeId, toInstanceId, volumeAz: volume.az });

  const request: ManualRequest = { requestId: randomUUID(), unit, volumeId, toInstanceId, force: opts.force ?? false, requestedAt: Date.now(), refusedReason: null };
  // Written only if nothing we checked has changed since the read: no pending request (or the same
  // refused one we may replace), same journal and
  // service, and the target still holds its lease.
  let txn = etcd
    .if(ks.request(volumeId), 'Mod', '==', state.requests.get(volumeId)?.modRevision ?? '0')
    .and(ks.journal(volumeId), 'Mod', '==', state.journals.get(volumeId)?.modRevision ?? '0')
    .and(ks.service(unit), 'Mod', '==', state.services.get(unit)?.modRevision ?? '0');
  if (toInstanceId) txn = txn.and(ks.host(toInstanceId), 'Create', '>', 0);
  const res = await txn.then(etcd.put(ks.request(volumeId)).value(encodeRecord(request))).commit();
  if (!res.succeeded) throw new RefusedError(`cluster state changed while checking ${unit}; nothing written, try again`, { unit, volumeId });
  io.err(`${clock(Date.now())} requested ${unit} → ${toInstanceId ?? '(controller chooses)'} (request ${request.requestId})`);
  await followFailover(session, request, timeoutMs);
}

/**
 * Follows journal/<volumeId> until the new holder's agent reports `active` for the journal's final
 * generation. One line per step on stderr; the result line on stdout.
 */
export async function followFailover(session: Session, request: ManualRequest, timeoutMs: number): Promise<void> {
  const { etcd, ks, io } = session;
  const { volumeId, unit } = request;
  const deadline = Date.now() + timeoutMs;
  let printed = 0;
  let wake: () => void = () => undefined;
  const watcher = await etcd.watch().prefix(ks.prefix).create();
  watcher.on('data', () => wake());
  try {
    for (;;) {
      const state = await readClusterState(etcd, ks);
      const pending = state.requests.get(volumeId)?.value;
      if (pending?.requestId === request.requestId && pending.refusedReason) {
        throw new RefusedError(`controller refused: ${pending.refusedReason}`, { unit, volumeId });
      }
      const journal: FailoverJournal | undefined = state.journals.get(volumeId)?.value;
      if (journal?.requestId === request.requestId) {
        for (const entry of journal.history.slice(printed)) io.err(`${clock(entry.at)} ${entry.step}${entry.note ? `: ${entry.note}` : ''}`);
        printed = journal.history.length;
        if (journal.step === 'failed') throw new OperationFailedError(`failover of ${unit} failed: ${journal.error ?? 'no reason given'}`, { unit, volumeId });
        const target = journal.toInstanceId;
        const report = target ? state.reports.get(`${target}/${volumeId}`)?.value : undefined;
        // `starting`/`done`: the placement on the target carries the final generation.
        const final = journal.step === 'starting' || journal.step === 'done';
        if (final && report && report.generation === journal.generation && report.phase === 'active') {
          io.out(`${unit} is active on ${target} (generation ${report.generation})`);
          return;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new OperationFailedError(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${unit}; the controller carries on (see: failover status)`, { unit, volumeId });
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(FOLLOW_POLL_MS, left));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    await watcher.cancel();
  }
}

