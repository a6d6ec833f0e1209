import { describe, expect, it } from 'vitest';
import type { AgentReport } from '../keyspace/index.js';
import type { HistoryEntry } from '../sim/ec2/index.js';
import { checkAttachmentHistory, HoldTracker } from './safety.js';

const VOL = 'vol-0abc12345def67890';
const A = 'i-0aaaaaaaaaaaaaaa1';
const B = 'i-0bbbbbbbbbbbbbbb2';

function h(at: number, instanceId: string, state: HistoryEntry['state']): HistoryEntry {
  return { at, volumeId: VOL, instanceId, device: '/dev/xvdf', state };
}

function r(instanceId: string, mountActive: boolean, unitActive: boolean): AgentReport {
  return { instanceId, volumeId: VOL, unit: `postgres@${VOL}`, generation: 1, phase: unitActive ? 'active' : 'released', mountActive, unitActive, error: null, at: 1 };
}

describe('checkAttachmentHistory', () => {
  it('accepts a move: attached to A, detached, then attached to B', () => {
    const history = [h(1, A, 'attaching'), h(2, A, 'attached'), h(3, A, 'detaching'), h(4, A, 'busy'), h(5, A, 'detached'), h(6, B, 'attaching'), h(7, B, 'attached')];
    expect(checkAttachmentHistory(history)).toEqual([]);
  });

  it('flags an attachment to B while A still holds the volume', () => {
    const v = checkAttachmentHistory([h(1, A, 'attached'), h(2, A, 'detaching'), h(3, B, 'attaching')]);
    expect(v).toEqual([{ volumeId: VOL, at: 3, holders: [A, B], what: `EC2 attaching on ${B} while attached to ${A}` }]);
  });
});

describe('HoldTracker', () => {
  it('accepts a release on A before B mounts, and a lease expiry before B mounts', () => {
    const t = new HoldTracker();
    expect(t.report(r(A, true, true))).toBeNull();
    expect(t.report(r(A, false, false))).toBeNull();
    expect(t.report(r(B, true, false))).toBeNull();
    t.removed(A, VOL);
    expect(t.holders(VOL)).toEqual([B]);
    t.removed(B, VOL);
    expect(t.report(r(A, true, true))).toBeNull();
    expect(t.violations).toEqual([]);
  });

  it('flags B mounted while A still reports the unit running', () => {
    const t = new HoldTracker();
    t.report(r(A, false, true));
    const v = t.report(r(B, true, false));
    expect(v?.holders).toEqual([A, B]);
    expect(t.violations).toHaveLength(1);
  });
});
