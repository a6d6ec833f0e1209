import { EventEmitter } from 'node:events';
import type { Lease } from 'etcd3';
import { describe, expect, it, vi } from 'vitest';
import { EtcdUnavailableError, NotLeaderError, isEtcdUnavailable, wrapEtcdError } from './errors.js';
import { LeaseClock } from './lease-clock.js';

describe('LeaseClock', () => {
  it('counts a renewal from when its request was sent, answers matching requests in order', () => {
    vi.useFakeTimers({ now: 1_000 });
    try {
      const lease = new EventEmitter();
      const clock = new LeaseClock(3_000, 1_000);
      clock.attach(lease as unknown as Lease);
      expect(clock.expiresAt()).toBe(4_000);
      vi.setSystemTime(2_000);
      lease.emit('keepaliveFired');
      vi.setSystemTime(2_500);
      lease.emit('keepaliveFired');
      vi.setSystemTime(2_900);
      lease.emit('keepaliveSucceeded');
      // The answer to the request sent at 2 000, not the time it arrived.
      expect(clock.renewedAt).toBe(2_000);
      expect(clock.expiresAt()).toBe(5_000);
      // A new stream: the request sent at 2 500 will never be answered.
      lease.emit('keepaliveEstablished');
      vi.setSystemTime(3_000);
      lease.emit('keepaliveFired');
      lease.emit('keepaliveSucceeded');
      expect(clock.renewedAt).toBe(3_000);
      clock.detach();
      lease.emit('keepaliveFired');
      lease.emit('keepaliveSucceeded');
      expect(clock.renewedAt).toBe(3_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it('never moves backwards', () => {
    const clock = new LeaseClock(1_000, 5_000);
    clock.renewed(4_000);
    expect(clock.renewedAt).toBe(5_000);
  });
});

describe('etcd error classification', () => {
  it.each([
    ['14 UNAVAILABLE: No connection established', true],
    ['etcdserver: request timed out', true],
    ['etcdserver: no leader', true],
    ['etcdserver: mvcc: required revision has been compacted', false],
    ['invalid argument', false],
  ])('%s → unavailable: %s', (message, expected) => {
    expect(isEtcdUnavailable(new Error(message))).toBe(expected);
  });

  it('wraps transport errors with the endpoints and keeps typed errors as they are', () => {
    const wrapped = wrapEtcdError(new Error('14 UNAVAILABLE: x'), ['http://127.0.0.1:1'], 'put');
    expect(wrapped).toBeInstanceOf(EtcdUnavailableError);
    expect((wrapped as EtcdUnavailableError).endpoints).toEqual(['http://127.0.0.1:1']);
    const notLeader = new NotLeaderError('c', 'k', 'r');
    expect(wrapEtcdError(notLeader, [], 'put')).toBe(notLeader);
  });
});
