import { describe, expect, it } from 'vitest';
import { FailoverJournal, type AgentReport } from '../keyspace/index.js';
import {
  formatEntry,
  formatMilestones,
  formatOffset,
  formatTimeline,
  fromAttachment,
  fromEvent,
  fromJournal,
  fromMetadataChange,
  fromReport,
  isEchoOfJournal,
  mergeEntries,
  milestones,
  type TimelineEntry,
} from './timeline.js';

const VOL = 'vol-0abc12345def67890';
const UNIT = `postgres@${VOL}`;
const DEAD = 'i-0aaaaaaaaaaaaaaa1';
const NEW = 'i-0bbbbbbbbbbbbbbb2';
const T0 = 1_000_000;
const names = new Map([
  [DEAD, 'host-1'],
  [NEW, 'host-2'],
]);

function journal(): FailoverJournal {
  return FailoverJournal.parse({
    volumeId: VOL,
    unit: UNIT,
    kind: 'auto',
    step: 'done',
    fromInstanceId: DEAD,
    toInstanceId: NEW,
    device: '/dev/xvdf',
    startedAt: T0 + 3000,
    stepStartedAt: T0 + 9000,
    history: [
      { step: 'detected', at: T0 + 3000, note: `lease of ${DEAD} gone` },
      { step: 'fencing', at: T0 + 3100 },
      { step: 'detaching', at: T0 + 3500 },
      { step: 'attaching', at: T0 + 5600, note: `target ${NEW}` },
      { step: 'starting', at: T0 + 7200 },
      { step: 'done', at: T0 + 9000 },
    ],
  });
}

function report(phase: AgentReport['phase'], at: number, instanceId = NEW): AgentReport {
  const active = phase === 'active';
  return { instanceId, volumeId: VOL, unit: UNIT, generation: 2, phase, mountActive: active || phase === 'starting', unitActive: active, error: null, at };
}

describe('sources → entries', () => {
  it('journal steps name the old holder before the move and the target after it', () => {
    const entries = fromJournal(journal());
    expect(entries.map((e) => [e.what, e.instanceId])).toEqual([
      ['detected', DEAD],
      ['fencing', DEAD],
      ['detaching', DEAD],
      ['attaching', NEW],
      ['starting', NEW],
      ['done', NEW],
    ]);
    expect(entries[0]).toEqual({ at: T0 + 3000, source: 'journal', volumeId: VOL, instanceId: DEAD, what: 'detected', detail: `lease of ${DEAD} gone` });
    expect(entries[1]).not.toHaveProperty('detail');
  });

  it('agent reports, events and EC2 attachment changes keep their facts', () => {
    expect(fromReport({ ...report('failed', T0), error: 'mount failed' })).toEqual({
      at: T0,
      source: 'agent',
      volumeId: VOL,
      instanceId: NEW,
      what: 'failed',
      detail: 'generation 2: mount inactive, unit inactive; error: mount failed',
    });
    expect(fromEvent({ at: T0, volumeId: VOL, unit: UNIT, step: 'detaching', message: `detaching from ${DEAD}`, instanceId: DEAD })).toEqual({
      at: T0,
      source: 'ctrl',
      volumeId: VOL,
      instanceId: DEAD,
      what: 'detaching',
      detail: `detaching from ${DEAD}`,
    });
    expect(fromAttachment({ at: T0, volumeId: VOL, instanceId: DEAD, device: '/dev/xvdf', state: 'detached', forced: true }).detail).toBe('/dev/xvdf (forced)');
    expect(fromMetadataChange({ at: T0, machineId: 'm1', key: 'postgres', op: 'remove', value: null }, DEAD, VOL)).toEqual({
      at: T0,
      source: 'fleet',
      volumeId: VOL,
      instanceId: DEAD,
      what: 'metadata drop',
      detail: 'postgres (machine m1)',
    });
    expect(fromMetadataChange({ at: T0, machineId: 'm2', key: 'postgres', op: 'add', value: VOL }, NEW, VOL).detail).toBe(`postgres=${VOL} (machine m2)`);
  });
});

describe('mergeEntries', () => {
  it('sorts by time, drops exact duplicates and controller events that echo a journal step', () => {
    const echo: TimelineEntry = { at: T0 + 3020, source: 'ctrl', volumeId: VOL, instanceId: DEAD, what: 'detected', detail: 'lease gone' };
    const action: TimelineEntry = { at: T0 + 3510, source: 'ctrl', volumeId: VOL, instanceId: DEAD, what: 'detach', detail: 'forced' };
    const ec2: TimelineEntry = { at: T0 + 5500, source: 'ec2', volumeId: VOL, instanceId: DEAD, what: 'detached', detail: '/dev/xvdf' };
    const merged = mergeEntries([ec2, ...fromJournal(journal()), echo, action, ...fromJournal(journal())]);
    expect(merged.map((e) => `${e.source}:${e.what}`)).toEqual([
      'journal:detected',
      'journal:fencing',
      'journal:detaching',
      'ctrl:detach',
      'ec2:detached',
      'journal:attaching',
      'journal:starting',
      'journal:done',
    ]);
  });

  it('keeps an event far away in time from the journal step (a different transition)', () => {
    const event: TimelineEntry = { at: T0 + 60_000, source: 'ctrl', volumeId: VOL, instanceId: DEAD, what: 'detected' };
    expect(mergeEntries([...fromJournal(journal()), event]).filter((e) => e.what === 'detected')).toHaveLength(2);
    expect(isEchoOfJournal(event, fromJournal(journal()))).toBe(false);
    expect(isEchoOfJournal({ ...event, at: T0 + 4_000 }, fromJournal(journal()))).toBe(true);
  });

  it('keeps arrival order for equal times', () => {
    const a: TimelineEntry = { at: T0, source: 'agent', volumeId: VOL, instanceId: NEW, what: 'mounting' };
    const b: TimelineEntry = { at: T0, source: 'agent', volumeId: VOL, instanceId: NEW, what: 'starting' };
    expect(mergeEntries([a, b]).map((e) => e.what)).toEqual(['mounting', 'starting']);
    expect(mergeEntries([b, a]).map((e) => e.what)).toEqual(['starting', 'mounting']);
  });
});

describe('formatting', () => {
  it.each([
    [T0 + 12_345, '+12.345s'],
    [T0, '+0.000s'],
    [T0 - 120, '-0.120s'],
  ])('offset of %d is %s', (at, text) => {
    expect(formatOffset(at, T0)).toBe(text);
  });

  it('aligns offset, source, label, host name and detail', () => {
    const line = formatEntry({ at: T0 + 3020, source: 'ctrl', volumeId: VOL, instanceId: DEAD, what: 'detected', detail: 'lease gone' }, T0, names);
    expect(line).toBe(`   +3.020s  ctrl    detected        host-1 (${DEAD})  lease gone`);
    expect(formatEntry({ at: T0, source: 'demo', volumeId: VOL, instanceId: null, what: 'killed' }, T0)).toBe('   +0.000s  demo    killed          -');
  });

  it('formats a whole failover in time order', () => {
    const lines = formatTimeline([fromReport(report('active', T0 + 9100)), ...fromJournal(journal()), fromReport(report('mounting', T0 + 7300))], T0, names);
    expect(lines).toHaveLength(8);
    expect(lines[0]).toContain('+3.000s  journal detected');
    expect(lines[5]).toBe(`   +7.300s  agent   mounting        host-2 (${NEW})  generation 2: mount inactive, unit inactive`);
    expect(lines[7]).toContain('agent   active          host-2');
  });
});

describe('milestones', () => {
  const entries: TimelineEntry[] = [
    // The dead host's own earlier report must not count as "active on the new host".
    fromReport(report('active', T0 - 5000, DEAD)),
    ...fromJournal(journal()),
    fromAttachment({ at: T0 + 5500, volumeId: VOL, instanceId: DEAD, device: '/dev/xvdf', state: 'detached' }),
    fromAttachment({ at: T0 + 7100, volumeId: VOL, instanceId: NEW, device: '/dev/xvdf', state: 'attached' }),
    fromReport(report('mounting', T0 + 7300)),
    fromReport(report('starting', T0 + 8000)),
    fromReport(report('active', T0 + 9100)),
  ];

  it('measures each step from the kill', () => {
    expect(milestones(entries, T0, DEAD)).toEqual({ detectedMs: 3000, fencedMs: 3100, detachedMs: 5500, attachedMs: 7100, mountedMs: 8000, activeMs: 9100, activeOn: NEW });
    expect(formatMilestones(milestones(entries, T0, DEAD), names)).toBe(
      `detected +3.0s → fenced +3.1s → detached +5.5s → attached +7.1s → mounted +8.0s → active +9.1s on host-2 (${NEW})`,
    );
  });

  it('prints ? for what has not happened', () => {
    const m = milestones(entries.slice(0, 2), T0, DEAD);
    expect(m).toEqual({ detectedMs: 3000, fencedMs: null, detachedMs: null, attachedMs: null, mountedMs: null, activeMs: null, activeOn: null });
    expect(formatMilestones(m)).toBe('detected +3.0s → fenced ? → detached ? → attached ? → mounted ? → active ? on nowhere yet');
  });
});
