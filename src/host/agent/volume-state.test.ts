import { describe, expect, it } from 'vitest';
import {
  IDLE, IllegalTransitionError, findDrift, generationOf, isActiveFor, isReleasedFor, mayHold, transition,
  type Drift, type VolumeEvent, type VolumeState, type VerifyFacts,
} from './volume-state.js';

const AT = 1_700_000_000_000;
const UNIT_GONE: Drift = { kind: 'unit-inactive', detail: 'postgres@vol-1.service is no longer active' };
const DISK_GONE: Drift = { kind: 'device-missing', detail: 'no device for vol-1' };

// Named states, as the reconciler reaches them.
const adopted: VolumeState = { kind: 'adopted' };
const acquiring = (generation: number): VolumeState => ({ kind: 'acquiring', generation });
const active = (generation: number, verifiedAt = AT): VolumeState => ({ kind: 'active', generation, verifiedAt });
const drifted = (generation: number, drift: Drift = UNIT_GONE): VolumeState => ({ kind: 'drifted', generation, drift });
const releasing = (generation: number): VolumeState => ({ kind: 'releasing', generation });
const released = (generation: number): VolumeState => ({ kind: 'released', generation });
const failed = (generation: number, op: 'acquire' | 'release', error = 'boom'): VolumeState => ({ kind: 'failed', generation, op, error });
const fenced: VolumeState = { kind: 'fenced' };

describe('transition: the paths the reconciler takes', () => {
  it.each<[string, VolumeState, VolumeEvent, VolumeState]>([
    ['adopt at start-up', IDLE, { type: 'adopt' }, adopted],
    ['adopt twice (report and local state)', adopted, { type: 'adopt' }, adopted],
    ['acquire a new placement', IDLE, { type: 'acquire', generation: 1 }, acquiring(1)],
    ['acquire what a previous run held', adopted, { type: 'acquire', generation: 4 }, acquiring(4)],
    ['acquire a newer generation while active', active(1), { type: 'acquire', generation: 2 }, acquiring(2)],
    ['retry a failed acquire', failed(3, 'acquire'), { type: 'acquire', generation: 3 }, acquiring(3)],
    ['acquire again after a fence', fenced, { type: 'acquire', generation: 3 }, acquiring(3)],
    ['re-acquire after an interrupted repair', drifted(3), { type: 'acquire', generation: 3 }, acquiring(3)],
    ['acquired', acquiring(2), { type: 'acquired', generation: 2, at: AT }, active(2)],
    ['re-verified', active(2, AT - 5_000), { type: 'verified', at: AT }, active(2)],
    ['the unit crashed', active(2), { type: 'drift', drift: UNIT_GONE }, drifted(2)],
    ['the disk vanished during a repair', drifted(2, UNIT_GONE), { type: 'drift', drift: DISK_GONE }, drifted(2, DISK_GONE)],
    ['repaired', drifted(2), { type: 'acquired', generation: 2, at: AT }, active(2)],
    ['repair failed', drifted(2), { type: 'acquire-failed', error: 'no device' }, failed(2, 'acquire', 'no device')],
    ['acquire failed', acquiring(2), { type: 'acquire-failed', error: 'boom' }, failed(2, 'acquire')],
    ['placement moved away while active', active(2), { type: 'release', generation: 3 }, releasing(3)],
    ['placement moved away while acquiring', acquiring(2), { type: 'release', generation: 3 }, releasing(3)],
    ['released', releasing(3), { type: 'released' }, released(3)],
    ['release failed', releasing(3), { type: 'release-failed', error: 'boom' }, failed(3, 'release')],
    ['retry a failed release', failed(3, 'release'), { type: 'release', generation: 3 }, releasing(3)],
    ['fenced while active', active(2), { type: 'fence' }, fenced],
    ['fenced while drifted', drifted(2), { type: 'fence' }, fenced],
  ])('%s', (_name, from, event, to) => {
    expect(transition(from, event)).toEqual(to);
  });
});

describe('transition: what the state machine refuses', () => {
  it.each<[string, VolumeState, VolumeEvent]>([
    ['acquiring the active generation again (only drift re-acquires)', active(2), { type: 'acquire', generation: 2 }],
    ['acquired for another generation', acquiring(2), { type: 'acquired', generation: 3, at: AT }],
    ['acquired without an acquire', IDLE, { type: 'acquired', generation: 1, at: AT }],
    ['acquired after a fence', fenced, { type: 'acquired', generation: 1, at: AT }],
    ['verifying what is not active', drifted(2), { type: 'verified', at: AT }],
    ['drift of what was never active', acquiring(2), { type: 'drift', drift: UNIT_GONE }],
    ['drift while releasing', releasing(2), { type: 'drift', drift: UNIT_GONE }],
    ['released without a release', active(2), { type: 'released' }],
    ['release failed without a release', acquiring(2), { type: 'release-failed', error: 'x' }],
    ['acquire failed without an acquire', releasing(2), { type: 'acquire-failed', error: 'x' }],
    ['adopting a volume being worked on', active(2), { type: 'adopt' }],
  ])('%s', (_name, from, event) => {
    expect(() => transition(from, event)).toThrow(IllegalTransitionError);
  });

  it('names the state and the event', () => {
    expect(() => transition(IDLE, { type: 'released' })).toThrow("no transition from 'idle' on 'released': no release in progress");
  });
});

describe('queries on a state', () => {
  it.each<[VolumeState, boolean, number | null]>([
    [IDLE, false, null],
    [adopted, true, null],
    [acquiring(1), true, 1],
    [active(1), true, 1],
    [drifted(1), true, 1],
    [releasing(1), true, 1],
    [released(1), false, 1],
    [failed(1, 'release'), true, 1],
    [fenced, true, null], // everything stopped, but the metadata removal was best effort
  ])('%j: mayHold %s, generation %s', (state, holds, generation) => {
    expect(mayHold(state)).toBe(holds);
    expect(generationOf(state)).toBe(generation);
  });

  it('isActiveFor / isReleasedFor match the generation', () => {
    expect(isActiveFor(active(2), 2)).toBe(true);
    expect(isActiveFor(active(2), 3)).toBe(false);
    expect(isActiveFor(drifted(2), 2)).toBe(false);
    expect(isReleasedFor(released(2), 2)).toBe(true);
    expect(isReleasedFor(released(2), 1)).toBe(false);
  });
});

describe('findDrift: most fundamental fact first', () => {
  const names = { unit: 'postgres@vol-1.service', mountUnit: 'data-vol-1.mount' };
  const ok = { ok: true } as const;
  const missing = { ok: false, kind: 'device-missing', detail: 'no device for vol-1' } as const;
  const wrong = { ok: false, kind: 'device-wrong', detail: 'device /dev/xvdf is not vol-1' } as const;
  it.each<[string, VerifyFacts, Drift | null]>([
    ['all holds', { device: ok, mountUp: true, unitUp: true }, null],
    ['unit crashed', { device: ok, mountUp: true, unitUp: false }, { kind: 'unit-inactive', detail: 'postgres@vol-1.service is no longer active' }],
    ['mount gone (unit with it)', { device: ok, mountUp: false, unitUp: false }, { kind: 'mount-inactive', detail: 'data-vol-1.mount is no longer active' }],
    ['disk detached, mount still up', { device: missing, mountUp: true, unitUp: true }, { kind: 'device-missing', detail: 'no device for vol-1' }],
    ['another volume under the name', { device: wrong, mountUp: true, unitUp: false }, { kind: 'device-wrong', detail: 'device /dev/xvdf is not vol-1' }],
  ])('%s', (_name, facts, drift) => {
    expect(findDrift(facts, names)).toEqual(drift);
  });
});
