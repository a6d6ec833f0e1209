import type { z } from 'zod';
import { InvalidInputError } from './errors.js';
import { AvailabilityZone, DeviceName, InstanceId, SnapshotId, VolumeId } from './ids.js';

/** Entry-point validation: a bad id throws `InvalidInputError` naming the field before any call. */
function check<T>(schema: z.ZodType<T>, field: string, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new InvalidInputError(field, value, parsed.error.issues.map((i) => i.message).join('; '));
  return parsed.data;
}

export const checkVolumeId = (value: unknown, field = 'volumeId'): string => check(VolumeId, field, value);
export const checkInstanceId = (value: unknown, field = 'instanceId'): string => check(InstanceId, field, value);
export const checkSnapshotId = (value: unknown, field = 'snapshotId'): string => check(SnapshotId, field, value);
export const checkDevice = (value: unknown, field = 'device'): string => check(DeviceName, field, value);
export const checkAz = (value: unknown, field = 'az'): string => check(AvailabilityZone, field, value);

export function checkList(values: unknown, field: string, each: (value: unknown, field: string) => string): string[] {
  if (!Array.isArray(values)) throw new InvalidInputError(field, values, 'expected an array');
  return values.map((v, i) => each(v, `${field}[${i}]`));
}

export function checkTimeout(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new InvalidInputError(field, value, 'expected a finite number of milliseconds >= 0');
  return value;
}

export function checkTags(tags: unknown, field = 'tags'): Record<string, string> {
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) throw new InvalidInputError(field, tags, 'expected an object of string tags');
  for (const [key, value] of Object.entries(tags)) {
    // AWS: keys 1–128 chars, values ≤ 256, and the aws: prefix is reserved.
    if (key.length === 0 || key.length > 128 || key.startsWith('aws:')) throw new InvalidInputError(`${field}.${key}`, key, 'tag keys are 1–128 characters and may not start with aws:');
    if (typeof value !== 'string' || value.length > 256) throw new InvalidInputError(`${field}.${key}`, value, 'tag values are strings of at most 256 characters');
  }
  return tags as Record<string, string>;
}
