import { describe, expect, it } from 'vitest';
import { FailoverJournal, ManualRequest } from '../keyspace/index.js';
import type { ClusterState, Stored } from './state.js';
import { requestStanding } from './withdraw.js';

const VOL = 'vol-0aaa12345def67890';
const UNIT = `postgres@${VOL}`;
const s = <T>(value: T): Stored<T> => ({ key: 'k', value, modRevision: '12', lease: '0' });
const request = (over: Partial<ManualRequest> = {}): ManualRequest => ManualRequest.parse({ requestId: 'mine', unit: UNIT, volumeId: VOL, requestedAt: 1, deadline: 9, ...over });
const journal = (over: Partial<FailoverJournal> = {}): FailoverJournal =>
  FailoverJournal.parse({ volumeId: VOL, unit: UNIT, kind: 'manual', step: 'releasing', fromInstanceId: null, toInstanceId: null, device: null, startedAt: 1, stepStartedAt: 1, requestId: 'mine', ...over });

function state(req?: ManualRequest, j?: FailoverJournal): ClusterState {
  return { revision: '20', hosts: new Map(), services: new Map(), placements: new Map(), journals: new Map(j ? [[VOL, s(j)]] : []), reports: new Map(), requests: new Map(req ? [[VOL, s(req)]] : []), leader: null };
}

describe('requestStanding', () => {
  it.each<[string, ClusterState, string | null, string]>([
    ['own request, not refused: pending', state(request()), 'mine', 'pending'],
    ['any request for cancel: pending', state(request({ requestId: 'theirs' })), null, 'pending'],
    ['an expired request that has not started is still withdrawable', state(request({ deadline: 0 })), null, 'pending'],
    ['refused by the controller', state(request({ refusedReason: 'draining' })), 'mine', 'refused'],
    ["someone else's request", state(request({ requestId: 'theirs' })), 'mine', 'other'],
    ['gone, and a journal carries it: started', state(undefined, journal()), 'mine', 'started'],
    ['cancel: a manual failover in progress has started', state(undefined, journal({ requestId: 'theirs' })), null, 'started'],
    ['cancel: a finished manual failover is nothing pending', state(undefined, journal({ step: 'done' })), null, 'none'],
    ['cancel: an auto failover in progress is not a request', state(undefined, journal({ kind: 'auto', requestId: null })), null, 'none'],
    ['gone, the journal is another one: dropped or withdrawn', state(undefined, journal({ requestId: 'older' })), 'mine', 'none'],
    ['nothing at all', state(), 'mine', 'none'],
  ])('%s', (_name, st, requestId, kind) => {
    expect(requestStanding(st, VOL, requestId).kind).toBe(kind);
  });

  it('pending carries the mod revision the withdrawing txn compares', () => {
    const standing = requestStanding(state(request()), VOL, 'mine');
    expect(standing).toEqual({ kind: 'pending', stored: s(request()) });
  });
});
