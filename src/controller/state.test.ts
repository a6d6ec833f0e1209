import { describe, expect, it } from 'vitest';
import type { FailoverStep } from '../keyspace/records.js';
import type { FailoverJournal as Journal } from '../keyspace/records.js';
import { FailoverJournal } from '../keyspace/records.js';
import { IllegalTransitionError, MAX_HISTORY, advance, causeOf, retarget, type RetargetWhy } from './state.js';
import { I1, I2, I3, NOW, VOL, journal } from '../testing/controller-builders.js';

describe('advance', () => {
  it.each<[FailoverStep, FailoverStep]>([
    ['detected', 'fencing'], ['detected', 'releasing'], ['fencing', 'detaching'], ['releasing', 'detaching'],
    ['detaching', 'attaching'], ['detaching', 'blocked'], ['blocked', 'attaching'], ['attaching', 'starting'], ['starting', 'done'], ['starting', 'failed'],
    ['attaching', 'detaching'], ['starting', 'fencing'],
  ])('%s → %s is allowed and recorded', (from, to) => {
    const j = advance(journal({ step: from }), to, NOW, 'why');
    expect(j).toMatchObject({ step: to, stepStartedAt: NOW });
    expect(j.history.at(-1)).toEqual({ step: to, at: NOW, note: 'why' });
    expect(FailoverJournal.parse(j)).toEqual(j); // still a valid record
  });

  it.each<[FailoverStep, FailoverStep]>([
    ['detected', 'starting'], ['fencing', 'attaching'], ['starting', 'detaching'], ['done', 'detected'], ['failed', 'attaching'], ['blocked', 'detaching'],
  ])('%s → %s throws', (from, to) => {
    expect(() => advance(journal({ step: from }), to, NOW, 'x')).toThrow(new IllegalTransitionError(VOL, from, to));
  });

  it('sets detachStartedAt once, finishedAt at the end, and clears blockedReason when leaving blocked', () => {
    const detaching = advance(journal({ step: 'fencing' }), 'detaching', NOW, 'd');
    expect(detaching.detachStartedAt).toBe(NOW);
    const blocked = advance(detaching, 'blocked', NOW + 1, 'no host', { blockedReason: 'no host' });
    expect(blocked.blockedReason).toBe('no host');
    const attaching = advance(blocked, 'attaching', NOW + 2, 'host joined', { toInstanceId: I1, device: '/dev/xvdf' });
    expect(attaching).toMatchObject({ blockedReason: null, toInstanceId: I1, detachStartedAt: NOW, finishedAt: null });
    expect(advance(advance(attaching, 'starting', NOW + 3, 's'), 'done', NOW + 4, 'ok').finishedAt).toBe(NOW + 4);
  });

  it('keeps the history bounded', () => {
    let j = journal({ step: 'blocked' });
    for (let i = 0; i < MAX_HISTORY + 10; i += 1) j = advance(j, 'blocked', NOW + i, `try ${i}`);
    expect(j.history).toHaveLength(MAX_HISTORY);
    expect(j.history.at(-1)?.note).toBe(`try ${MAX_HISTORY + 9}`);
    expect(j.stepStartedAt).toBe(NOW - 1000); // staying in a step keeps its start
  });
});

describe('retarget', () => {
  it.each<[string, Journal, RetargetWhy, Partial<Journal>]>([
    [
      'starting, target lost: fencing from the target, excluded',
      journal({ step: 'starting', toInstanceId: I2, device: '/dev/xvdf', generation: 6, detachStartedAt: NOW - 9 }), 'target-lost',
      { step: 'fencing', fromInstanceId: I2, toInstanceId: null, device: null, generation: null, detachStartedAt: null, excludedInstanceIds: [I2] },
    ],
    [
      'attaching, stuck: detaching from the target at once (the force bound restarts)',
      journal({ step: 'attaching', toInstanceId: I2, device: '/dev/xvdf', detachStartedAt: NOW - 9, excludedInstanceIds: [I3] }), 'attach-stuck',
      { step: 'detaching', fromInstanceId: I2, toInstanceId: null, device: null, detachStartedAt: NOW, excludedInstanceIds: [I2, I3] },
    ],
    [
      'manual: the source is excluded too',
      journal({ kind: 'manual', step: 'starting', toInstanceId: I2, device: '/dev/xvdf', generation: 6 }), 'target-lost',
      { step: 'fencing', fromInstanceId: I2, excludedInstanceIds: [I1, I2] },
    ],
  ])('%s', (_name, j, why, expected) => {
    const next = retarget(j, why, NOW, 'why');
    expect(next).toMatchObject({ ...expected, stepStartedAt: NOW });
    expect(next.history.at(-1)).toEqual({ step: expected.step, at: NOW, note: 'why' });
    expect(FailoverJournal.parse(next)).toEqual(next);
  });

  it.each<[string, Journal, RetargetWhy]>([
    ['no target to give up', journal({ step: 'attaching', toInstanceId: null }), 'target-lost'],
    ['a stuck attach is only given up while attaching', journal({ step: 'starting', toInstanceId: I2 }), 'attach-stuck'],
    ['not from detaching', journal({ step: 'detaching', toInstanceId: I2 }), 'target-lost'],
  ])('throws: %s', (_name, j, why) => {
    expect(() => retarget(j, why, NOW, 'x')).toThrow(IllegalTransitionError);
  });

  it.each<[string, Partial<Journal>, string]>([
    ['stored cause wins', { cause: 'reacquire' }, 'reacquire'],
    ['old manual journal', { kind: 'manual', cause: undefined }, 'manual'],
    ['old auto journal with a holder', { cause: undefined }, 'holder-lost'],
    ['old auto journal without a holder', { cause: undefined, fromInstanceId: null }, 'placement'],
  ])('causeOf: %s', (_name, over, cause) => {
    expect(causeOf(journal(over))).toBe(cause);
  });
});
