import { z } from 'zod';

/** EBS volume id as EC2 prints it: 8 (old) or 17 (current) hex digits. */
export const VolumeId = z.string().regex(/^vol-[0-9a-f]{8,17}$/, 'expected an EBS volume id like vol-0abc12345def67890');
export type VolumeId = z.infer<typeof VolumeId>;

export const InstanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'expected an EC2 instance id like i-0abc12345def67890');
export type InstanceId = z.infer<typeof InstanceId>;

export const SnapshotId = z.string().regex(/^snap-[0-9a-f]{8,17}$/, 'expected a snapshot id like snap-0abc12345def67890');
export type SnapshotId = z.infer<typeof SnapshotId>;

/**
 * Device names of EBS attachments as EC2 accepts them on Linux (/dev/sd[b-z], /dev/xvd[b-z] and the
 * two-letter /dev/xvdb[a-z]-style names). We only hand out /dev/xvd[f-p] (DEVICE_LETTERS, as AWS
 * recommends), but a placement or journal must accept whatever name a volume was attached at by hand:
 * a narrower schema made the controller reject its own adoption record of a volume at /dev/xvdq and
 * write it again forever (found by the steady-state bench).
 */
export const DeviceName = z.string().regex(/^\/dev\/(sd|xvd)[b-z][a-z]?$/, 'expected a device name like /dev/xvdf (/dev/sd[b-z] or /dev/xvd[b-z], optionally a second letter)');
export type DeviceName = z.infer<typeof DeviceName>;

/** The device letters a placement may hand out, in the order they are tried. */
export const DEVICE_LETTERS = 'fghijklmnop'.split('');

export const AvailabilityZone = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, 'expected an availability zone like us-east-1a');
