import { describe, expect, it } from 'vitest';
import { FailoverJournal, type EventRecord } from '../../keyspace/index.js';
import { mergeHistory, parseSince, renderHistory } from './history.js';

const VOL = 'vol-0aaa12345def67890';
const VOL2 = 'vol-0bbb12345def67890';
const UNIT = `postgres@${VOL}`;
const H1 = 'i-0111111111111111a';
const H2 = 'i-0222222222222222a';
const T = Date.parse('2026-12-01T00:00:00Z');

const ev = (at: number, step: string, volumeId = VOL, instanceId: string | null = H1): EventRecord => ({ at, volumeId, unit: `postgres@${volumeId}`, step, message: `${step} msg`, instanceId });

describe('parseSince', () => {
  it.each([['90s', T - 90_000], ['30m', T - 1_800_000], ['1h', T - 3_600_000], ['2d', T - 172_800_000], ['2026-11-30T23:00:00Z', T - 3_600_000]])('%s', (raw, at) => {
    expect(parseSince(raw, T)).toBe(at);
  });
  it('refuses nonsense, naming it (truncated)', () => {
    expect(() => parseSince('yesterday-ish'.repeat(10), T)).toThrow(/bad --since "yesterday-ish.{27}": expected a duration/);
  });
});

describe('mergeHistory', () => {
  const journal = FailoverJournal.parse({
    volumeId: VOL, unit: UNIT, kind: 'auto', step: 'done', fromInstanceId: H1, toInstanceId: H2, device: '/dev/xvdf', startedAt: T, stepStartedAt: T + 9_000,
    history: [{ step: 'detected', at: T + 500 }, { step: 'detaching', at: T + 3_000, note: 'forced after 30s' }, { step: 'done', at: T + 9_000 }],
  });

  it('events and journal steps, oldest first; a journal step an event already tells is not repeated', () => {
    const entries = mergeHistory([ev(T, 'detected'), ev(T + 9_000, 'done', VOL, H2)], [journal], { since: 0 });
    expect(entries.map((e) => [e.step, e.source, e.instanceId])).toEqual([['detected', 'event', H1], ['detaching', 'journal', H1], ['done', 'event', H2]]);
    expect(entries[1]?.message).toBe('forced after 30s');
  });

  it('filters by volume and time', () => {
    const entries = mergeHistory([ev(T, 'detected'), ev(T + 1_000, 'refuse-request', VOL2), ev(T + 20_000, 'blocked')], [], { volumeId: VOL, since: T + 1 });
    expect(entries.map((e) => e.step)).toEqual(['blocked']);
  });

  it('renders a table with times in UTC', () => {
    const text = renderHistory(mergeHistory([ev(T, 'detected')], [], { since: 0 }));
    expect(text).toMatch(new RegExp(`2026-12-01 00:00:00\\s+${UNIT}\\s+detected\\s+${H1}\\s+detected msg`));
    expect(renderHistory([])).toBe('no events in this window');
  });
});
