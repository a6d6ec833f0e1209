import type { FailoverJournal, FailoverStep } from '../keyspace/records.js';

/** Only this many history entries are kept per journal, so a flapping volume cannot grow its key without bound. */
export const MAX_HISTORY = 50;

/**
 * Which step may follow which. `blocked` ↔ `attaching` loops while no host can take the volume.
 * `attaching → detaching` and `starting → fencing` are the re-target transitions (see `retarget`): the
 * chosen target died or its attach stuck, so the failover goes again from that target, excluding it.
 */
const NEXT: Record<FailoverStep, readonly FailoverStep[]> = {
  detected: ['fencing', 'releasing', 'detaching', 'failed'],
  fencing: ['detaching', 'failed'],
  releasing: ['fencing', 'detaching', 'failed'],
  detaching: ['attaching', 'blocked', 'failed'],
  attaching: ['attaching', 'blocked', 'starting', 'detaching', 'failed'],
  blocked: ['attaching', 'blocked', 'failed'],
  starting: ['done', 'fencing', 'failed'],
  done: [],
  failed: [],
};

export class IllegalTransitionError extends Error {
  override readonly name = 'IllegalTransitionError';
  constructor(
    readonly volumeId: string,
    readonly from: FailoverStep,
    readonly to: FailoverStep,
  ) {
    super(`failover of ${volumeId}: step ${from} cannot be followed by ${to}`);
  }
}

export function isTerminal(step: FailoverStep): boolean {
  return step === 'done' || step === 'failed';
}

export interface NewJournal {
  volumeId: string;
  unit: string;
  kind: 'auto' | 'manual';
  fromInstanceId: string | null;
  toInstanceId?: string | null;
  force?: boolean;
  requestId?: string | null;
  /** Why it began; stored so a back-off left by a failure applies only to failovers of the same cause. */
  cause: FailoverCause;
  note: string;
}

export type FailoverCause = NonNullable<FailoverJournal['cause']>;

/** A journal's cause; journals written before `cause` existed are classified by their kind and holder. */
export function causeOf(journal: FailoverJournal): FailoverCause {
  if (journal.cause !== undefined) return journal.cause;
  if (journal.kind === 'manual') return 'manual';
  return journal.fromInstanceId === null ? 'placement' : 'holder-lost';
}

/** A fresh journal at step `detected`. */
export function newJournal(input: NewJournal, now: number): FailoverJournal {
  return {
    volumeId: input.volumeId,
    unit: input.unit,
    kind: input.kind,
    step: 'detected',
    fromInstanceId: input.fromInstanceId,
    toInstanceId: input.toInstanceId ?? null,
    device: null,
    force: input.force ?? false,
    startedAt: now,
    stepStartedAt: now,
    detachStartedAt: null,
    generation: null,
    history: [{ step: 'detected', at: now, note: input.note }],
    blockedReason: null,
    error: null,
    requestId: input.requestId ?? null,
    finishedAt: null,
    excludedInstanceIds: [],
    intent: null,
    cause: input.cause,
  };
}

/** Fields a transition may set besides the step itself. */
export type JournalPatch = Partial<Pick<FailoverJournal, 'toInstanceId' | 'device' | 'generation' | 'blockedReason' | 'error'>>;

/** Why a chosen target is given up: it died before reporting `active`, or its attach stuck in `attaching`. */
export type RetargetWhy = 'target-lost' | 'attach-stuck';

/**
 * The journal after moving to `step` at `now`. Pure; throws IllegalTransitionError for a move the
 * state machine does not allow.
 */
export function advance(journal: FailoverJournal, step: FailoverStep, now: number, note: string, patch: JournalPatch = {}): FailoverJournal {
  if (!NEXT[journal.step].includes(step)) throw new IllegalTransitionError(journal.volumeId, journal.step, step);
  const history = [...journal.history, { step, at: now, note }].slice(-MAX_HISTORY);
  const next: FailoverJournal = {
    ...journal,
    ...patch,
    step,
    stepStartedAt: journal.step === step ? journal.stepStartedAt : now,
    history,
  };
  if (step === 'detaching' && journal.detachStartedAt === null) next.detachStartedAt = now;
  if (step !== 'blocked') next.blockedReason = patch.blockedReason ?? null;
  if (isTerminal(step)) next.finishedAt = now;
  return next;
}

/**
 * The re-target transition: the chosen target `toInstanceId` died before reporting `active`
 * (`starting → fencing`, or `attaching → detaching` when the attachment never completed) or its attach
 * stuck (`attaching → detaching`). The failover goes on AT ONCE from that target: it becomes
 * `fromInstanceId` (to be fenced and force-detached) and joins `excludedInstanceIds`, so it is never
 * chosen again by this failover. A manual move also excludes its source (the operator moved away from it).
 */
export function retarget(journal: FailoverJournal, why: RetargetWhy, now: number, note: string): FailoverJournal {
  const target = journal.toInstanceId;
  if (target === null) throw new IllegalTransitionError(journal.volumeId, journal.step, journal.step === 'starting' ? 'fencing' : 'detaching');
  const step: FailoverStep = journal.step === 'starting' ? 'fencing' : 'detaching';
  if (why === 'attach-stuck' && journal.step !== 'attaching') throw new IllegalTransitionError(journal.volumeId, journal.step, step);
  const excluded = new Set(journal.excludedInstanceIds);
  excluded.add(target);
  if (journal.kind === 'manual' && journal.fromInstanceId !== null) excluded.add(journal.fromInstanceId);
  const next = advance(journal, step, now, note, { toInstanceId: null, device: null, generation: null });
  // A new detach begins: its force bound counts from now, not from the first holder's detach.
  return { ...next, fromInstanceId: target, excludedInstanceIds: [...excluded].sort(), detachStartedAt: step === 'detaching' ? now : null };
}
