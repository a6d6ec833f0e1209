import { ClientClosedError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { EtcdUnavailableError } from '../locks/index.js';
import { asEtcdUnreachable, parseEtcdTimeoutSeconds, unreachableReason } from './etcd.js';

describe('unreachableReason', () => {
  it.each<[string, unknown, string | null]>([
    ['refused', new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: '), 'connection refused'],
    ['name not found', new GRPCUnavailableError('14 UNAVAILABLE: Name resolution failed for target dns:nosuch.invalid:2379'), 'host name not found'],
    ['deadline', new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded'), 'no answer within 5 s'],
    ['no leader keeps etcd\'s words only', new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: no leader'), 'etcdserver: no leader'],
    ['wrapped by src/locks', new EtcdUnavailableError(['http://127.0.0.1:2379'], 'get', { cause: new GRPCUnavailableError('14 UNAVAILABLE: read ECONNRESET') }), 'connection reset'],
    ['a closed client', new ClientClosedError('KV'), 'the client was closed before etcd answered'],
    // Our own messages mention "timed out": they must never read as etcd's.
    ['not an etcd error', new Error('timed out after 8s waiting for postgres@vol-0aaa12345def67890'), null],
  ])('%s', (_name, err, reason) => {
    expect(unreachableReason(err, 5_000)).toBe(reason);
  });

  it('names the endpoints as host:port', () => {
    const err = asEtcdUnreachable(new GRPCUnavailableError('14 UNAVAILABLE: connect ECONNREFUSED'), ['http://10.0.0.5:2379', 'https://10.0.0.6:2379/'], 2_500);
    expect(err?.message).toBe('cannot reach etcd at 10.0.0.5:2379, 10.0.0.6:2379 (connection refused)');
  });
});

describe('parseEtcdTimeoutSeconds', () => {
  it.each<[string | undefined, number]>([[undefined, 5_000], ['', 5_000], ['2', 2_000], ['0.5', 500]])('%s → %d ms', (raw, ms) => {
    expect(parseEtcdTimeoutSeconds(raw)).toBe(ms);
  });
  it.each(['0', '-1', 'soon'])('%s is bad usage', (raw) => {
    expect(() => parseEtcdTimeoutSeconds(raw)).toThrow(/bad --etcd-timeout/);
  });
});
