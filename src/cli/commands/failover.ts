import { randomUUID } from 'node:crypto';
import { InstanceId } from '../../ec2/ids.js';
import { encodeRecord, type FailoverJournal, type ManualRequest } from '../../keyspace/index.js';
import type { GlobalOptions } from '../context.js';
import { openEc2 } from '../ec2.js';
import { OperationFailedError, RefusedError, UsageError } from '../errors.js';
import { etcdBounded, EtcdUnreachableError } from '../etcd.js';
import { checkManualFailover } from '../failover-check.js';
import type { Session } from '../session.js';
import { readClusterState, type ClusterState } from '../state.js';
import { withdrawRequest, type WithdrawOutcome } from '../withdraw.js';
import { parseUnitName } from './service.js';

/** A planned move: stop, unmount, detach, attach, mount, start. 5 min covers EBS's slow tail. */
export const DEFAULT_FAILOVER_TIMEOUT_S = 300;

/** Re-read even without watch events, so a missed event never leaves the CLI waiting forever. */
const FOLLOW_POLL_MS = 1_000;

export interface FailoverOptions extends GlobalOptions {
  to?: string;
  /** Allow a forced detach if the graceful one does not finish. */
  forceDetach?: boolean;
  /** Deprecated alias of `forceDetach` (everywhere else `--force` means "skip the prompt"); warns. */
  force?: boolean;
  timeout: string;
  json?: boolean;
  /** Skip the confirmation prompt. */
  yes?: boolean;
  /** Print the plan, write nothing. */
  dryRun?: boolean;
}

export function parseTimeoutSeconds(raw: string): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`bad --timeout "${raw}": expected seconds > 0`);
  return value;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** Stops waiting on SIGINT/SIGTERM (the request is then withdrawn if not started); a second signal kills as usual. */
function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const ctl = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    dispose();
    ctl.abort(sig);
  };
  const dispose = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { signal: ctl.signal, dispose };
}

export async function requestFailover(session: Session, unit: string, opts: FailoverOptions): Promise<void> {
  const { etcd, ks, io, config } = session;
  const { volumeId } = parseUnitName(unit);
  const toInstanceId = opts.to ?? null;
  if (toInstanceId !== null && !InstanceId.safeParse(toInstanceId).success) throw new UsageError(`bad --to "${toInstanceId}": expected an instance id like i-0abc12345def67890`);
  const timeoutMs = parseTimeoutSeconds(opts.timeout) * 1000;
  const interrupt = interruptSignal();
  try {
    const state = await readClusterState(etcd, ks);
    if (!state.services.has(unit)) throw new RefusedError(`unknown service ${unit} (register it with: failover service add)`, { unit });
    const [volume] = await (await openEc2(config.aws)).describeVolumes([volumeId]).catch((err: unknown) => {
      if ((err as Error).name === 'VolumeNotFoundError') return [];
      throw err;
    });
    if (!volume) throw new RefusedError(`unknown volume ${volumeId} (EC2 does not know it)`, { unit, volumeId });
    const eligible = checkManualFailover(state, { unit, volumeId, toInstanceId, volumeAz: volume.az });
    const forceDetach = opts.forceDetach === true || opts.force === true;
    if (opts.force === true) io.err('warning: --force is deprecated and means --force-detach (a forced detach is allowed); it does not skip the prompt: use --yes for that');
    const plan = movePlan(state, { unit, volumeId, volumeAz: volume.az, device: volume.attachments[0]?.device ?? null, attachedTo: volume.attachments[0]?.instanceId ?? null, toInstanceId, eligible: eligible.map((h) => h.instanceId), forceDetach });
    if (opts.dryRun) {
      io.out([...plan, 'dry run: nothing written, nothing changed'].join('\n'));
      return;
    }
    if (!opts.yes && process.stdin.isTTY && process.stderr.isTTY) {
      // Like patronictl switchover: a person at a terminal confirms; scripts (no TTY) are never asked.
      io.err(plan.join('\n'));
      if (!(await confirm(`Move ${unit} now? [y/N] `))) throw new OperationFailedError('not confirmed; nothing changed', { unit, volumeId });
    }

    const requestedAt = Date.now();
    // The deadline makes the request die with this command: the controller never starts it later,
    // even when this process is killed before it can withdraw it (finding 5 of issue 9).
    const request: ManualRequest = { requestId: randomUUID(), unit, volumeId, toInstanceId, force: forceDetach, requestedAt, refusedReason: null, deadline: requestedAt + timeoutMs };
    if (interrupt.signal.aborted) throw new OperationFailedError(`interrupted (${String(interrupt.signal.reason)}) before the request was written; nothing changed`, { unit, volumeId });
    // Written only if nothing we checked has changed since the read: no pending request (or the same
    // refused one we may replace), same journal and service, and the target still holds its lease.
    let txn = etcd
      .if(ks.request(volumeId), 'Mod', '==', state.requests.get(volumeId)?.modRevision ?? '0')
      .and(ks.journal(volumeId), 'Mod', '==', state.journals.get(volumeId)?.modRevision ?? '0')
      .and(ks.service(unit), 'Mod', '==', state.services.get(unit)?.modRevision ?? '0');
    if (toInstanceId) txn = txn.and(ks.host(toInstanceId), 'Create', '>', 0);
    const put = txn.then(etcd.put(ks.request(volumeId)).value(encodeRecord(request)));
    const res = await etcdBounded(etcd, () => put.commit());
    if (!res.succeeded) throw new RefusedError(`cluster state changed while checking ${unit}; nothing written, try again`, { unit, volumeId });
    io.err(`${clock(Date.now())} requested ${unit} → ${toInstanceId ?? '(controller chooses)'} (request ${request.requestId}, dropped unless started by ${clock(request.deadline ?? 0)})`);
    await followFailover(session, request, timeoutMs, interrupt.signal);
  } finally {
    interrupt.dispose();
  }
}

/** Pure: what a manual move of `unit` will do, in the order the controller does it (for --dry-run and the prompt). */
export function movePlan(
  state: ClusterState,
  p: { unit: string; volumeId: string; volumeAz: string; device: string | null; attachedTo: string | null; toInstanceId: string | null; eligible: string[]; forceDetach: boolean },
): string[] {
  const service = state.services.get(p.unit)?.value;
  const holder = state.placements.get(p.volumeId)?.value.instanceId ?? null;
  const target = p.toInstanceId ?? `the controller chooses among ${p.eligible.join(', ')}`;
  return [
    `plan for ${p.unit} (volume ${p.volumeId} in ${p.volumeAz}):`,
    `  from:    ${holder ?? '(no holder)'}${p.attachedTo ? `, attached there as ${p.device ?? '?'}` : ', not attached'}`,
    `  to:      ${target}`,
    `  1. release: ${holder ?? 'nobody'} stops ${p.unit}, unmounts ${service?.mountUnit ?? 'its mount'}, loses fleet metadata ${service?.metadataKey ?? ''}=${p.volumeId}`,
    `  2. detach from ${p.attachedTo ?? '(nothing attached)'}: graceful${p.forceDetach ? ', then FORCED if it does not finish (--force-detach: risks unflushed writes)' : ' only (add --force-detach to allow a forced detach)'}`,
    `  3. attach to the target at a free device (chosen by the controller), mount, start; placement generation ${(state.placements.get(p.volumeId)?.value.generation ?? 0) + 1}`,
  ];
}

/** Reads one line from the terminal; yes only on y/yes. */
async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/** Why the CLI stopped waiting before the failover finished. */
type GiveUp = { kind: 'timeout'; timeoutMs: number } | { kind: 'interrupted'; signal: string };

/**
 * The CLI stops waiting: withdraw the request if the controller has not started it, and say in one
 * line what became of it. Always throws (exit 1).
 */
async function giveUp(session: Session, request: ManualRequest, why: GiveUp): Promise<never> {
  const { unit, volumeId } = request;
  const head = why.kind === 'timeout' ? `timed out after ${Math.round(why.timeoutMs / 1000)}s waiting for ${unit}` : `interrupted (${why.signal}) while waiting for ${unit}`;
  let outcome: WithdrawOutcome;
  try {
    outcome = await withdrawRequest(session.etcd, session.ks, volumeId, request.requestId);
  } catch (err) {
    // The deadline still holds: a controller that sees the request later drops it instead of starting it.
    throw new OperationFailedError(`${head}; could not withdraw the request (${(err as Error).message}): the controller drops it at ${clock(request.deadline ?? 0)} unless it has started it`, { unit, volumeId });
  }
  switch (outcome.kind) {
    case 'withdrawn':
      throw new OperationFailedError(`${head}; the controller had not started it: request withdrawn, nothing changed`, { unit, volumeId });
    case 'started':
      throw new OperationFailedError(`${head}; the move has started (now at step ${outcome.journal.step}) and continues without this command; follow it with: failover history ${unit}  (or: failover status --watch)`, { unit, volumeId });
    case 'refused':
      throw new RefusedError(`controller refused: ${outcome.request.refusedReason ?? 'no reason given'}`, { unit, volumeId });
    case 'other':
    case 'none':
      throw new OperationFailedError(`${head}; the request is gone (withdrawn or dropped before it started), nothing changed`, { unit, volumeId });
  }
}

/**
 * Follows journal/<volumeId> until the new holder's agent reports `active` for the journal's final
 * generation. One line per step on stderr; the result line on stdout. On timeout or `interrupt`,
 * withdraws the request if it has not started.
 */
export async function followFailover(session: Session, request: ManualRequest, timeoutMs: number, interrupt?: AbortSignal): Promise<void> {
  const { etcd, ks, io } = session;
  const { volumeId, unit } = request;
  const deadline = Date.now() + timeoutMs;
  let printed = 0;
  let wake: () => void = () => undefined;
  const onInterrupt = (): void => wake();
  interrupt?.addEventListener('abort', onInterrupt);
  const watcher = await etcdBounded(etcd, () => etcd.watch().prefix(ks.prefix).create());
  watcher.on('data', () => wake());
  // A broken watch only costs latency (the loop polls); without a listener, 'error' would crash the CLI.
  watcher.on('error', () => undefined);
  let unreachableSaid = false;
  try {
    for (;;) {
      if (interrupt?.aborted) return await giveUp(session, request, { kind: 'interrupted', signal: String(interrupt.reason) });
      let state: ClusterState | null = null;
      try {
        state = await readClusterState(etcd, ks);
      } catch (err) {
        // Keep waiting through an etcd blip; the deadline still bounds the whole wait.
        if (!(err instanceof EtcdUnreachableError)) throw err;
        if (!unreachableSaid) io.err(`${clock(Date.now())} ${err.message}; still waiting`);
        unreachableSaid = true;
      }
      if (state) {
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
        } else if (pending?.requestId !== request.requestId) {
          // Neither our request nor a journal for it (the controller swaps one for the other in one txn).
          throw new OperationFailedError(`the request for ${unit} was withdrawn (failover cancel) or dropped by the controller before it started; nothing changed`, { unit, volumeId });
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) return await giveUp(session, request, { kind: 'timeout', timeoutMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(FOLLOW_POLL_MS, left));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    interrupt?.removeEventListener('abort', onInterrupt);
    await etcdBounded(etcd, () => watcher.cancel()).catch(() => undefined);
  }
}
