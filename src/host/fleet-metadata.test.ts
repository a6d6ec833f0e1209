import { describe, expect, it } from 'vitest';
import { apiMetadata, formatFleetMetadata, MetadataValueError, parseFleetMetadata, readDropinValue, renderDropin } from './fleet-metadata.js';

describe('fleet metadata syntax', () => {
  it.each([
    ['role=db,az=us-east-1a', [['role', 'db'], ['az', 'us-east-1a']]],
    [' role = db , ,postgres=vol-0abc12345def67890 ', [['role', 'db'], ['postgres', 'vol-0abc12345def67890']]],
    ['', []],
    ['=x,novalue,k=', [['k', '']]],
  ])('parses %j', (text, entries) => {
    expect([...parseFleetMetadata(text)]).toEqual(entries);
  });

  it('round-trips through the drop-in text', () => {
    const value = formatFleetMetadata(new Map([['role', 'db'], ['postgres', 'vol-0abc12345def67890']]));
    expect(value).toBe('role=db,postgres=vol-0abc12345def67890');
    expect(readDropinValue(renderDropin(value))).toBe(value);
    expect(readDropinValue('[Service]\nEnvironment="FLEET_METADATA=a=b"\n')).toBe('a=b');
    expect(readDropinValue('[Service]\nEnvironment=OTHER=1\n')).toBeUndefined();
  });

  it('refuses values the a=b,c=d syntax cannot carry, before calling fleet', async () => {
    const calls: string[] = [];
    const port = apiMetadata(
      { setMetadata: async (m, k, v) => void calls.push(`${m}:${k}=${v}`), removeMetadata: async () => undefined },
      'machine1',
    );
    await expect(port.set('postgres', 'a,b')).rejects.toBeInstanceOf(MetadataValueError);
    await expect(port.set('bad key', 'x')).rejects.toBeInstanceOf(MetadataValueError);
    await port.set('postgres', 'vol-0abc12345def67890');
    expect(calls).toEqual(['machine1:postgres=vol-0abc12345def67890']);
  });
});
