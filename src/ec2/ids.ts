import { z } from 'zod';

/** EBS volume id as EC2 prints it: 8 (old) or 17 (current) hex digits. */
export const VolumeId = z.string().regex(/^vol-[0-9a-f]{8,17}$/, 'expected an EBS volume id like vol-0abc12345def67890');
export type VolumeId = z.infer<typeof VolumeId>;

export const InstanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'expected an EC2 instance id like i-0abc12345def67890');
export type InstanceId = z.infer<typeof InstanceId>;

export const SnapshotId = z.string().regex(/^snap-[0-9a-f]{8,17}$/, 'expected a snapshot id like snap-0abc12345def67890');
export type SnapshotId = z.infer<typeof SnapshotId>;

/**
 * Device names we request on attach. AWS recommends /dev/sd[f-p] (or /dev/xvd[f-p]) for EBS data
 * volumes on Linux; the lower letters are reserved for the root and instance-store devices.
 */
export const DeviceName = z.string().regex(/^\/dev\/(sd|xvd)[f-p]$/, 'expected a device name /dev/sd[f-p] or /dev/xvd[f-p]');
export type DeviceName = z.infer<typeof DeviceName>;

/** The device letters a placement may hand out, in the order they are tried. */
export const DEVICE_LETTERS = 'fghijklmnop'.split('');

export const AvailabilityZone = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, 'expected an availability zone like us-east-1a');
