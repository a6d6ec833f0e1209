import { describe, expect, it } from 'vitest';
import { Placement } from './records.js';
import { RecordCache } from './record-cache.js';

const placement = (generation: number): string =>
  JSON.stringify({ volumeId: 'vol-0abc12345', unit: 'pg@vol-0abc12345', instanceId: 'i-0123456789abcdef0', device: '/dev/xvdf', generation, updatedAt: 1 });

function warnings(): { warn: (obj: object, msg: string) => void; seen: string[] } {
  const seen: string[] = [];
  return { seen, warn: (_obj, msg) => void seen.push(msg) };
}

describe('RecordCache', () => {
  it('decodes a value once: the same raw value gives the same record object, a new value a new one', () => {
    const cache = new RecordCache(Placement);
    const a = cache.decode('k', placement(1));
    expect(a?.generation).toBe(1);
    // Equal text, another string object: still a hit (compared by value).
    expect(cache.decode('k', placement(1))).toBe(a);
    const b = cache.decode('k', placement(2));
    expect(b?.generation).toBe(2);
    expect(b).not.toBe(a);
    expect(cache.previous('k')).toBe(b);
  });

  it('logs a malformed value once per value, and a missing value forgets the key', () => {
    const log = warnings();
    const cache = new RecordCache(Placement, log);
    expect(cache.decode('k', '{not json')).toBeUndefined();
    expect(cache.decode('k', '{not json')).toBeUndefined();
    expect(cache.decode('k', JSON.stringify({ volumeId: 'x' }))).toBeUndefined();
    expect(log.seen).toEqual(['skipping etcd value that is not JSON', 'skipping etcd value that does not match its schema']);
    cache.decode('k', placement(3));
    expect(cache.decode('k', undefined)).toBeUndefined();
    expect(cache.previous('k')).toBeUndefined();
  });

  it('matches a view only with exactly its keys and values, and prunes keys the view lost', () => {
    const cache = new RecordCache(Placement);
    const view = new Map([['a', placement(1)], ['b', placement(2)]]);
    for (const [k, v] of view) cache.decode(k, v);
    expect(cache.matches(view)).toBe(true);
    expect(cache.matches(new Map([['a', placement(1)], ['b', placement(3)]]))).toBe(false);
    const smaller = new Map([['a', placement(1)]]);
    expect(cache.matches(smaller)).toBe(false);
    cache.prune(smaller);
    expect(cache.matches(smaller)).toBe(true);
    expect(cache.previous('b')).toBeUndefined();
  });
});
