import { EventEmitter } from 'node:events';
import type { Lease } from 'etcd3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EtcdUnavailableError, NotLeaderError, isEtcdUnavailable, wrapEtcdError } from './errors.js';
import { LeaseClock, wallOf } from './lease-clock.js';

describe('LeaseClock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Drives the monotonic clock (performance.now) by hand. */
  function monotonicAt(start: number): (t: number) => void {
    let now = start;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    return (t) => {
      now = t;
    };
  }

  it('counts a renewal from when its request was sent, answers matching requests in order', () => {
    const setMono = monotonicAt(1_000);
    const lease = new EventEmitter();
    const clock = new LeaseClock(3_000);
    clock.attach(lease as unknown as Lease);
    expect(clock.expiresAt()).toBe(4_000);
    setMono(2_000);
    lease.emit('keepaliveFired');
    setMono(2_500);
    lease.emit('keepaliveFired');
    setMono(2_900);
    lease.emit('keepaliveSucceeded');
    // The answer to the request sent at 2 000, not the time it arrived.
    expect(clock.renewedAt).toBe(2_000);
    expect(clock.expiresAt()).toBe(5_000);
    expect(clock.remainingMs(500)).toBe(5_000 - 500 - 2_900);
    // A new stream: the request sent at 2 500 will never be answered.
    lease.emit('keepaliveEstablished');
    setMono(3_000);
    lease.emit('keepaliveFired');
    lease.emit('keepaliveSucceeded');
    expect(clock.renewedAt).toBe(3_000);
    clock.detach();
    lease.emit('keepaliveFired');
    lease.emit('keepaliveSucceeded');
    expect(clock.renewedAt).toBe(3_000);
  });

  it('a wall-clock step (Date.now jumping either way) moves neither the renewal time nor the deadline', () => {
    const setMono = monotonicAt(10_000);
    const wall = vi.spyOn(Date, 'now').mockReturnValue(1_700_000_000_000);
    const lease = new EventEmitter();
    const clock = new LeaseClock(3_000);
    clock.attach(lease as unknown as Lease);
    setMono(11_000);
    lease.emit('keepaliveFired');
    // NTP steps the wall clock an hour ahead while the request is in flight.
    wall.mockReturnValue(1_700_000_000_000 + 3_600_000);
    lease.emit('keepaliveSucceeded');
    expect(clock.renewedAt).toBe(11_000);
    expect(clock.expiresAt()).toBe(14_000);
    expect(clock.remainingMs(1_000)).toBe(2_000);
    // And an hour back: still the same deadline, still the same time left.
    wall.mockReturnValue(1_700_000_000_000 - 3_600_000);
    expect(clock.expiresAt()).toBe(14_000);
    expect(clock.remainingMs(1_000)).toBe(2_000);
    setMono(12_500);
    expect(clock.remainingMs(1_000)).toBe(500);
    // Display times follow the wall clock; deadlines never read it.
    expect(wallOf(12_500)).toBe(1_700_000_000_000 - 3_600_000);
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
