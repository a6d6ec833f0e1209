import { AttachVolumeCommand, CreateVolumeCommand, DescribeVolumesCommand, DetachVolumeCommand, type Volume } from '@aws-sdk/client-ec2';
import type { Ec2Caller } from './call.js';
import { AttachmentNotFoundError, Ec2Error, VolumeInUseError, VolumeNotFoundError, ZoneMismatchError } from './errors.js';
import { chunks, tagFilters, toTags, toVolumeInfo } from './map.js';
import type { CreateVolumeInput, MutationGuard, VolumeInfo } from './types.js';

/** EC2 takes at most 200 values per filter; one DescribeVolumes call per 200 ids. */
export const DESCRIBE_CHUNK = 200;
/** The largest page DescribeVolumes returns (its MaxResults range is 5–500). */
const DESCRIBE_PAGE = 500;

/**
 * Describes the given volumes, `DESCRIBE_CHUNK` ids per call, following NextToken. Ids go in a
 * `volume-id` filter rather than `VolumeIds`: then a missing id does not fail the whole batch (the
 * caller learns which ones are missing), and pagination is allowed. Returns a map id → info|null.
 */
export async function describeVolumeMap(caller: Ec2Caller, volumeIds: readonly string[], signal?: AbortSignal): Promise<Map<string, VolumeInfo | null>> {
  const unique = [...new Set(volumeIds)];
  const found = new Map<string, VolumeInfo | null>(unique.map((volumeId) => [volumeId, null]));
  for (const chunk of chunks(unique, DESCRIBE_CHUNK)) {
    let nextToken: string | undefined;
    do {
      const token = nextToken;
      const out = await caller.run(
        'DescribeVolumes',
        'describe',
        chunk.length === 1 ? { volumeId: chunk[0] } : {},
        (abortSignal) =>
          caller.client.send(
            new DescribeVolumesCommand({ Filters: [{ Name: 'volume-id', Values: chunk }], MaxResults: DESCRIBE_PAGE, NextToken: token }),
            { abortSignal },
          ),
        signal,
      );
      for (const volume of out.Volumes ?? ([] as Volume[])) {
        const info = toVolumeInfo(volume);
        if (info !== undefined && found.has(info.volumeId)) found.set(info.volumeId, info);
      }
      nextToken = out.NextToken === '' ? undefined : out.NextToken;
    } while (nextToken !== undefined);
  }
  return found;
}

/** All of `volumeIds`, in the order asked; a missing one → `VolumeNotFoundError` naming it. */
export async function describeVolumes(caller: Ec2Caller, volumeIds: readonly string[], signal?: AbortSignal): Promise<VolumeInfo[]> {
  if (volumeIds.length === 0) return [];
  const found = await describeVolumeMap(caller, volumeIds, signal);
  const out: VolumeInfo[] = [];
  for (const volumeId of volumeIds) {
    const info = found.get(volumeId);
    if (info === null || info === undefined) throw new VolumeNotFoundError(volumeId, { action: 'DescribeVolumes' });
    out.push(info);
  }
  return out;
}

export async function attachVolume(
  caller: Ec2Caller, volumeId: string, instanceId: string, device: string, signal?: AbortSignal, azOf?: AzLookup, guard?: MutationGuard, beforeSend?: () => Promise<void>,
): Promise<void> {
  try {
    await caller.run('AttachVolume', 'mutating', { volumeId, instanceId, device }, (abortSignal) =>
      caller.client.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }), { abortSignal }), signal, guard, beforeSend);
  } catch (err) {
    // Idempotent attach: a retried call whose first attempt landed (a 5xx after EC2 acted), or a
    // repeated failover step, finds the volume already going to this very instance and device.
    if (err instanceof VolumeInUseError && (await alreadyAttachedHere(caller, volumeId, instanceId, device, signal))) return;
    // EC2's ZoneMismatch message names no AZs; look them up so the error says what to do.
    if (err instanceof ZoneMismatchError && azOf !== undefined) {
      const azs = await azOf(volumeId, instanceId).catch(() => undefined);
      if (azs !== undefined) throw new ZoneMismatchError({ volumeId, instanceId, device, action: 'AttachVolume', ...azs }, { cause: err });
    }
    throw err;
  }
}

async function alreadyAttachedHere(caller: Ec2Caller, volumeId: string, instanceId: string, device: string, signal?: AbortSignal): Promise<boolean> {
  const [volume] = await describeVolumes(caller, [volumeId], signal).catch(() => [] as VolumeInfo[]);
  const attachments = volume?.attachments ?? [];
  const only = attachments[0];
  return attachments.length === 1 && only?.instanceId === instanceId && only.device === device && (only.state === 'attaching' || only.state === 'attached');
}

export type AzLookup = (volumeId: string, instanceId: string) => Promise<{ volumeAz: string; instanceAz: string }>;

/**
 * One DetachVolume call. An attachment (or volume) that is already gone counts as success: detach
 * is idempotent, as in the EBS CSI driver, so a retried failover step does not fail on its own
 * earlier success.
 */
export async function detachVolume(
  caller: Ec2Caller, volumeId: string, instanceId: string, force: boolean, signal?: AbortSignal, guard?: MutationGuard, beforeSend?: () => Promise<void>,
): Promise<void> {
  try {
    await caller.run('DetachVolume', 'mutating', { volumeId, instanceId }, (abortSignal) =>
      caller.client.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Force: force }), { abortSignal }), signal, guard, beforeSend);
  } catch (err) {
    if (err instanceof AttachmentNotFoundError || err instanceof VolumeNotFoundError) return;
    throw err;
  }
}

/**
 * CreateVolume from a snapshot, tagged at creation (a restored volume is never visible untagged: the
 * IAM policy allows CreateVolume only with the managed tag). A mutating call: with a `guard` it passes
 * the mutation gate like Attach/Detach. `clientToken` makes a retry after a lost answer idempotent.
 */
export async function createVolume(caller: Ec2Caller, p: CreateVolumeInput, signal?: AbortSignal, guard?: MutationGuard): Promise<VolumeInfo> {
  const out = await caller.run('CreateVolume', 'mutating', { snapshotId: p.snapshotId }, (abortSignal) =>
    caller.client.send(
      new CreateVolumeCommand({
        AvailabilityZone: p.az,
        SnapshotId: p.snapshotId,
        VolumeType: (p.volumeType ?? 'gp3') as 'gp3',
        ClientToken: p.clientToken,
        TagSpecifications: [{ ResourceType: 'volume', Tags: toTags(p.tags) }],
      }),
      { abortSignal },
    ), signal, guard);
  const info = toVolumeInfo(out);
  if (info === undefined) throw new Ec2Error('InvalidResponse', `CreateVolume from ${p.snapshotId} returned no volume id`, { snapshotId: p.snapshotId, action: 'CreateVolume' });
  return info;
}

/** Volumes carrying every one of `tags`, following NextToken (a restore looks up its own volume by its restore id). */
export async function findVolumes(caller: Ec2Caller, tags: Record<string, string>, signal?: AbortSignal): Promise<VolumeInfo[]> {
  const out: VolumeInfo[] = [];
  let nextToken: string | undefined;
  do {
    const token = nextToken;
    const page = await caller.run('DescribeVolumes', 'describe', {}, (abortSignal) =>
      caller.client.send(new DescribeVolumesCommand({ Filters: tagFilters(tags), MaxResults: DESCRIBE_PAGE, NextToken: token }), { abortSignal }), signal);
    for (const volume of page.Volumes ?? ([] as Volume[])) {
      const info = toVolumeInfo(volume);
      if (info !== undefined) out.push(info);
    }
    nextToken = page.NextToken === '' ? undefined : page.NextToken;
  } while (nextToken !== undefined);
  return out;
}
