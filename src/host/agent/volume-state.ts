/**
 * The agent's state for ONE volume, as a typed union with named transitions (the controller's journal
 * works the same way). Everything the reconciler knows about a volume between two runs is here; the
 * execution bookkeeping (running promise, abort controller, retry timer) lives in its runner.
 *
 *   idle ──adopt──▶ adopted ─┐
 *    │                       ├─acquire─▶ acquiring{g} ──acquired──▶ active{g} ──drift──▶ drifted{g}
 *    └───────────────────────┘              │                         ▲  │verified        │  ▲ │
 *                                           └──acquire-failed──▶ failed{g}  └─(same)       │  └─┘drift
 *                                                                  ▲          ◀─acquired──┘
 *   any ──release──▶ releasing{g} ──released──▶ released{g}      │
 *                          └──────release-failed────────────────┘
 *   any ──fence──▶ fenced
 */

/** What a re-verification found wrong with a volume reported `active`. */
export type DriftKind =
  /** The device node is gone (detached behind our back, or never came back after a re-attach). */
  | 'device-missing'
  /** A device node is there, but it is provably another volume, or the mount points at another node. */
  | 'device-wrong'
  /** The mount unit is no longer active (unmounted by hand, or failed). */
  | 'mount-inactive'
  /** The service unit is no longer active (crashed, stopped by hand) while mount and device are fine. */
  | 'unit-inactive';

export interface Drift {
  kind: DriftKind;
  /** Human-readable evidence, reported as the report's `error`. */
  detail: string;
}

export type VolumeState =
  /** Nothing of ours is known to be up here, and our metadata is not published. */
  | { kind: 'idle' }
  /** A previous run of the agent held it (its report, or the unit/mount is up): generation unknown. */
  | { kind: 'adopted' }
  /** An acquire for `generation` started and has not completed (running now, or interrupted). */
  | { kind: 'acquiring'; generation: number }
  /** Device, mount and unit were up for `generation` when last checked, at `verifiedAt` (ms epoch). */
  | { kind: 'active'; generation: number; verifiedAt: number }
  /** Reported `active` for `generation`, then a re-verification found `drift`; being re-acquired. */
  | { kind: 'drifted'; generation: number; drift: Drift }
  /** A release for `generation` (placement elsewhere or nowhere) started and has not completed. */
  | { kind: 'releasing'; generation: number }
  /** Unit and mount stopped and metadata removed for `generation`. */
  | { kind: 'released'; generation: number }
  /** The last acquire or release of `generation` failed; things may still be up. Retried later. */
  | { kind: 'failed'; generation: number; op: 'acquire' | 'release'; error: string }
  /** The host fenced itself: everything was stopped (metadata maybe still published). */
  | { kind: 'fenced' };

export type VolumeEvent =
  | { type: 'adopt' }
  | { type: 'acquire'; generation: number }
  | { type: 'acquired'; generation: number; at: number }
  | { type: 'verified'; at: number }
  | { type: 'drift'; drift: Drift }
  | { type: 'acquire-failed'; error: string }
  | { type: 'release'; generation: number }
  | { type: 'released' }
  | { type: 'release-failed'; error: string }
  | { type: 'fence' };

/** A transition the state machine does not have: a bug in the reconciler, never an operational error. */
export class IllegalTransitionError extends Error {
  override readonly name = 'IllegalTransitionError';
  constructor(
    readonly from: VolumeState['kind'],
    readonly event: VolumeEvent['type'],
    detail = '',
  ) {
    super(`no transition from '${from}' on '${event}'${detail ? `: ${detail}` : ''}`);
  }
}

export const IDLE: VolumeState = { kind: 'idle' };

/** Pure: the state after `event`, or IllegalTransitionError. */
export function transition(state: VolumeState, event: VolumeEvent): VolumeState {
  const illegal = (detail?: string): never => {
    throw new IllegalTransitionError(state.kind, event.type, detail);
  };
  switch (event.type) {
    case 'adopt':
      // Adoption happens at start-up, before anything runs; a held state keeps what it knows.
      if (state.kind === 'idle' || state.kind === 'released' || state.kind === 'fenced' || state.kind === 'adopted') return { kind: 'adopted' };
      return illegal('only a volume the agent is not working on can be adopted');
    case 'acquire':
      // An active volume of the same generation is re-acquired only through `drift`.
      if (state.kind === 'active' && state.generation === event.generation) return illegal(`generation ${event.generation} is already active`);
      return { kind: 'acquiring', generation: event.generation };
    case 'acquired':
      if ((state.kind === 'acquiring' || state.kind === 'drifted') && state.generation === event.generation) {
        return { kind: 'active', generation: event.generation, verifiedAt: event.at };
      }
      return illegal(`not acquiring generation ${event.generation}`);
    case 'verified':
      if (state.kind === 'active') return { ...state, verifiedAt: event.at };
      return illegal('only an active volume is verified');
    case 'drift':
      if (state.kind === 'active' || state.kind === 'drifted') return { kind: 'drifted', generation: state.generation, drift: event.drift };
      return illegal('only an active volume can drift');
    case 'acquire-failed':
      if (state.kind === 'acquiring' || state.kind === 'drifted') return { kind: 'failed', generation: state.generation, op: 'acquire', error: event.error };
      return illegal('no acquire in progress');
    case 'release':
      return { kind: 'releasing', generation: event.generation };
    case 'released':
      if (state.kind === 'releasing') return { kind: 'released', generation: state.generation };
      return illegal('no release in progress');
    case 'release-failed':
      if (state.kind === 'releasing') return { kind: 'failed', generation: state.generation, op: 'release', error: event.error };
      return illegal('no release in progress');
    case 'fence':
      return { kind: 'fenced' };
  }
}

/**
 * Whether a unit, mount or metadata entry of ours may be up for this volume, so that a placement
 * elsewhere must run a release (stops are idempotent, so "maybe" is enough). A fenced host stopped
 * everything, but its metadata removal was best effort.
 */
export function mayHold(state: VolumeState): boolean {
  return state.kind !== 'idle' && state.kind !== 'released';
}

/** The generation the state is about, or null (idle, adopted, fenced). */
export function generationOf(state: VolumeState): number | null {
  return 'generation' in state ? state.generation : null;
}

/** Whether `generation` is fully acquired and needs no work except periodic re-verification. */
export function isActiveFor(state: VolumeState, generation: number): state is Extract<VolumeState, { kind: 'active' }> {
  return state.kind === 'active' && state.generation === generation;
}

/** Whether `generation` is fully released here (nothing of ours left up). */
export function isReleasedFor(state: VolumeState, generation: number): boolean {
  return state.kind === 'released' && state.generation === generation;
}

/** Local facts a re-verification reads (device check, unit and mount "up" as `isUp` counts it). */
export interface VerifyFacts {
  device: { ok: true } | { ok: false; kind: 'device-missing' | 'device-wrong'; detail: string };
  mountUp: boolean;
  unitUp: boolean;
}

/**
 * Pure: what drifted, the most fundamental fact first (no disk → nothing above it can be right; no
 * mount → the unit must not run on an empty directory), or null when everything still holds.
 */
export function findDrift(facts: VerifyFacts, names: { unit: string; mountUnit: string }): Drift | null {
  if (!facts.device.ok) return { kind: facts.device.kind, detail: facts.device.detail };
  if (!facts.mountUp) return { kind: 'mount-inactive', detail: `${names.mountUnit} is no longer active` };
  if (!facts.unitUp) return { kind: 'unit-inactive', detail: `${names.unit} is no longer active` };
  return null;
}
