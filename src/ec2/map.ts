import type { Instance, InstanceStatus, Snapshot, Tag, Volume, VolumeAttachment as SdkAttachment, Filter } from '@aws-sdk/client-ec2';
import type { AttachmentState, InstanceInfo, InstanceState, InstanceStatusInfo, StatusCheck, SnapshotInfo, SnapshotState, VolumeAttachment, VolumeInfo, VolumeState } from './types.js';

/** SDK shapes → the plain types of types.ts. Unknown enum values are kept out of the core's unions. */

const ATTACHMENT_STATES: readonly AttachmentState[] = ['attaching', 'attached', 'detaching', 'detached', 'busy'];
const VOLUME_STATES: readonly VolumeState[] = ['creating', 'available', 'in-use', 'deleting', 'deleted', 'error'];
const INSTANCE_STATES: readonly InstanceState[] = ['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'];
const SNAPSHOT_STATES: readonly SnapshotState[] = ['pending', 'completed', 'error', 'recoverable', 'recovering'];

function oneOf<T extends string>(allowed: readonly T[], value: string | undefined, fallback: T): T {
  return value !== undefined && (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}

export function tagsOf(tags: Tag[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of tags ?? []) if (tag.Key !== undefined) out[tag.Key] = tag.Value ?? '';
  return out;
}

export function toTags(tags: Record<string, string>): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

/** `tag:<key>` filters: EC2 ANDs filters, so every tag must match. */
export function tagFilters(tags: Record<string, string> | undefined): Filter[] {
  return Object.entries(tags ?? {}).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] }));
}

function toAttachment(a: SdkAttachment): VolumeAttachment | undefined {
  if (a.InstanceId === undefined) return undefined;
  // An unknown state is treated as `attaching`: in transit, never as "free".
  const attachment: VolumeAttachment = { instanceId: a.InstanceId, device: a.Device ?? '', state: oneOf(ATTACHMENT_STATES, a.State, 'attaching') };
  if (a.AttachTime !== undefined) attachment.attachTime = a.AttachTime.getTime();
  return attachment;
}

export function toVolumeInfo(v: Volume): VolumeInfo | undefined {
  if (v.VolumeId === undefined) return undefined;
  return {
    volumeId: v.VolumeId,
    az: v.AvailabilityZone ?? '',
    // Unknown → `error`: the core must not treat a state it does not understand as usable.
    state: oneOf(VOLUME_STATES, v.State, 'error'),
    sizeGiB: v.Size ?? 0,
    attachments: (v.Attachments ?? []).map(toAttachment).filter((a): a is VolumeAttachment => a !== undefined),
    tags: tagsOf(v.Tags),
    // Always set, so the core can refuse Multi-Attach volumes without guessing what "absent" means.
    multiAttachEnabled: v.MultiAttachEnabled === true,
  };
}

export function toInstanceInfo(i: Instance): InstanceInfo | undefined {
  if (i.InstanceId === undefined) return undefined;
  const devices = new Set<string>();
  if (i.RootDeviceName !== undefined) devices.add(i.RootDeviceName);
  for (const m of i.BlockDeviceMappings ?? []) if (m.DeviceName !== undefined) devices.add(m.DeviceName);
  return {
    instanceId: i.InstanceId,
    az: i.Placement?.AvailabilityZone ?? '',
    // Unknown → `pending`: not running, so never picked as a target.
    state: oneOf(INSTANCE_STATES, i.State?.Name, 'pending'),
    privateIp: i.PrivateIpAddress ?? null,
    devices: [...devices],
    tags: tagsOf(i.Tags),
  };
}

const STATUS_CHECKS: readonly StatusCheck[] = ['ok', 'impaired', 'insufficient-data', 'not-applicable', 'initializing'];

export function toInstanceStatusInfo(s: InstanceStatus): InstanceStatusInfo | undefined {
  if (s.InstanceId === undefined) return undefined;
  return {
    instanceId: s.InstanceId,
    // Unknown → `pending` / `insufficient-data`: neither is ever taken as proof of anything.
    state: oneOf(INSTANCE_STATES, s.InstanceState?.Name, 'pending'),
    systemStatus: oneOf(STATUS_CHECKS, s.SystemStatus?.Status, 'insufficient-data'),
    instanceStatus: oneOf(STATUS_CHECKS, s.InstanceStatus?.Status, 'insufficient-data'),
  };
}

export function toSnapshotInfo(s: Snapshot): SnapshotInfo | undefined {
  if (s.SnapshotId === undefined) return undefined;
  return {
    snapshotId: s.SnapshotId,
    volumeId: s.VolumeId ?? '',
    state: oneOf(SNAPSHOT_STATES, s.State, 'error'),
    startTime: s.StartTime?.getTime() ?? 0,
    progress: s.Progress ?? '',
    description: s.Description ?? '',
    tags: tagsOf(s.Tags),
  };
}

/** Splits `items` into chunks of at most `size` (EC2 takes at most 200 values per filter). */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
