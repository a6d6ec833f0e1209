import type { FailoverJournal, FailoverStep } from '../keyspace/records.js';

/** Only this many history entries are kept per journal, so a flapping volume cannot grow its key without bound. */
export const MAX_HISTORY = 50;

/** Which step may follow which. `blocked` ↔ `attaching` loops while no host can take the volume. */
const NEXT: Record<FailoverStep, readonly FailoverStep[]> = {
  detected: ['fencing', 'releasing', 'detaching', 'failed'],
  fencing: ['detaching', 'failed'],
  releasing: ['fencing', 'detaching', 'failed'],
  detaching: ['attaching', 'blocked', 'failed'],
  attaching: ['attaching', 'blocked', 'starting', 'failed'],
  blocked: ['attaching', 'blocked', 'failed'],
  starting: ['done', 'failed'],
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
  note: string;
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
  };
}

/** Fields a transition may set besides the step itself. */
export type JournalPatch = Partial<Pick<FailoverJournal, 'toInstanceId' | 'device' | 'generation' | 'blockedReason' | 'error'>>;

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
