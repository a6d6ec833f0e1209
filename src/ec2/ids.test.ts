import { describe, expect, it } from 'vitest';
import { Placement } from '../keyspace/records.js';
import { DEVICE_LETTERS, DeviceName } from './ids.js';

describe('DeviceName', () => {
  it.each(['/dev/xvdf', '/dev/sdp', '/dev/xvdq', '/dev/sdz', '/dev/xvdba'])('accepts %s, a name EC2 may attach a volume at', (name) => {
    expect(DeviceName.safeParse(name).success).toBe(true);
  });

  it.each(['/dev/xvda', '/dev/sda', '/dev/nvme1n1', 'xvdf', '/dev/xvdfff'])('refuses %s', (name) => {
    expect(DeviceName.safeParse(name).success).toBe(false);
  });

  it('every name we hand out is valid', () => {
    for (const letter of DEVICE_LETTERS) expect(DeviceName.parse(`/dev/xvd${letter}`)).toBe(`/dev/xvd${letter}`);
  });

  it('a placement adopting a volume attached by hand at /dev/xvdq is a valid record (it was rejected and rewritten forever)', () => {
    const placement = { volumeId: 'vol-0abc12345def67890', unit: 'postgres@vol-0abc12345def67890', instanceId: 'i-0abc12345def67890', device: '/dev/xvdq', generation: 1, updatedAt: 1 };
    expect(Placement.parse(placement)).toEqual(placement);
  });
});
