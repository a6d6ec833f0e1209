import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import { I1, I2, NOW, host, journal, observed, placement, volume } from '../testing/controller-builders.js';
import type { Observed } from './observed.js';

/** The decision for VOL, placed on I1 whose lease is gone (I2 live), under `extra` (grace, pacing, proof). */
function decideLost(extra: Partial<Observed>): ReturnType<typeof decide> {
  return decide({ ...observed({ hosts: [host(I2)], placements: [placement(I1)], volumes: [volume({ instanceId: I1 })] }), ...extra }, placement(I1).volumeId);
}

const STOPPED = new Map([[I1, 'EC2 reports the instance stopped']]);

describe('decide with EC2 proof of death (Observed.provenDead)', () => {
  it.each<[string, Partial<Observed>, string]>([
    ['grace, no proof: waits for the grace', { graceUntil: NOW + 2_000 }, 'wait'],
    ['grace, holder proven dead: fails over now', { graceUntil: NOW + 2_000, provenDead: STOPPED }, 'startFailover'],
    ['grace, another host proven dead: this one still waits', { graceUntil: NOW + 2_000, provenDead: new Map([['i-0000000000000000f', 'EC2 reports the instance stopped']]) }, 'wait'],
    // The tracker lists proven hosts as admitted (hosts.ts pacing()), so no turn is needed.
    ['paced, no turn left, proven (admitted by the tracker): fails over now', { pacing: { remaining: 0, admitted: [I1], reason: 'suspect' }, provenDead: STOPPED }, 'startFailover'],
    ['paced, no turn left, unproven: waits for its turn', { pacing: { remaining: 0, admitted: [], reason: 'suspect' } }, 'wait'],
  ])('%s', (_name, extra, kind) => {
    expect(decideLost(extra).kind).toBe(kind);
  });

  it('a proof does not make a live host dead', () => {
    const o = { ...observed({ placements: [placement(I1)], volumes: [volume({ instanceId: I1 })] }), provenDead: STOPPED };
    expect(decide(o, placement(I1).volumeId).kind).not.toBe('startFailover');
  });

  it('a manual failover releasing from a source gone within the grace: waits; proven dead: fences it now', () => {
    const j = journal({ kind: 'manual', step: 'releasing', fromInstanceId: I1, toInstanceId: I2 });
    const base = observed({ hosts: [host(I2)], placements: [placement(I1)], volumes: [volume({ instanceId: I1 })], journals: [j] });
    const held = decide({ ...base, graceUntil: NOW + 2_000 }, j.volumeId);
    expect(held).toMatchObject({ kind: 'wait', reason: expect.stringContaining('grace') as unknown as string });
    const proven = decide({ ...base, graceUntil: NOW + 2_000, provenDead: STOPPED }, j.volumeId);
    expect(proven).toMatchObject({ kind: 'advance', reason: `${I1} died while releasing: fencing it` });
  });
});
