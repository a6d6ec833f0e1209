import { describe, expect, it } from 'vitest';
import type { FailoverStep } from '../keyspace/records.js';
import { FailoverJournal } from '../keyspace/records.js';
import { IllegalTransitionError, MAX_HISTORY, advance } from './state.js';
import { I1, NOW, VOL, journal } from './test-builders.js';

describe('advance', () => {
  it.each<[FailoverStep, FailoverStep]>([
    ['detected', 'fencing'], ['detected', 'releasing'], ['fencing', 'detaching'], ['releasing', 'detaching'],
    ['detaching', 'attaching'], ['detaching', 'blocked'], ['blocked', 'attaching'], ['attaching', 'starting'], ['starting', 'done'], ['starting', 'failed'],
  ])('%s → %s is allowed and recorded', (from, to) => {
    const j = advance(journal({ step: from }), to, NOW, 'why');
    expect(j).toMatchObject({ step: to, stepStartedAt: NOW });
    expect(j.history.at(-1)).toEqual({ step: to, at: NOW, note: 'why' });
    expect(FailoverJournal.parse(j)).toEqual(j); // still a valid record
  });

  it.each<[FailoverStep, FailoverStep]>([
    ['detected', 'starting'], ['fencing', 'attaching'], ['starting', 'detaching'], ['done', 'detected'], ['failed', 'attaching'], ['attaching', 'detaching'],
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
