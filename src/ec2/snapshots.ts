import { CreateSnapshotCommand, CreateTagsCommand, DeleteSnapshotCommand, DeleteTagsCommand, DescribeSnapshotsCommand, type Filter } from '@aws-sdk/client-ec2';
import type { Ec2Caller } from './call.js';
import { Ec2Error, SnapshotNotFoundError } from './errors.js';
import { chunks, tagFilters, toSnapshotInfo, toTags } from './map.js';
import type { MutationGuard, SnapshotInfo } from './types.js';

/** EC2 takes at most 200 values per filter. */
const ID_CHUNK = 200;
/** DescribeSnapshots' largest page (MaxResults 5–1000). */
const SNAPSHOT_PAGE = 1000;

export async function createSnapshot(caller: Ec2Caller, volumeId: string, description: string, tags: Record<string, string>, signal?: AbortSignal, guard?: MutationGuard): Promise<SnapshotInfo> {
  const hasTags = Object.keys(tags).length > 0;
  const out = await caller.run('CreateSnapshot', 'snapshot', { volumeId }, (abortSignal) =>
    caller.client.send(
      new CreateSnapshotCommand({
        VolumeId: volumeId,
        Description: description,
        // Tagged at creation: a snapshot is never visible untagged (retention pruning keys on tags).
        TagSpecifications: hasTags ? [{ ResourceType: 'snapshot', Tags: toTags(tags) }] : undefined,
      }),
      { abortSignal },
    ), signal, guard);
  const info = toSnapshotInfo(out);
  if (info === undefined) throw new Ec2Error('InvalidResponse', `CreateSnapshot of ${volumeId} returned no snapshot id`, { volumeId, action: 'CreateSnapshot' });
  return info;
}

async function describePages(caller: Ec2Caller, filters: Filter[], ownerSelf: boolean, signal?: AbortSignal): Promise<SnapshotInfo[]> {
  const out: SnapshotInfo[] = [];
  let nextToken: string | undefined;
  do {
    const token = nextToken;
    const page = await caller.run('DescribeSnapshots', 'describe', {}, (abortSignal) =>
      caller.client.send(
        new DescribeSnapshotsCommand({ OwnerIds: ownerSelf ? ['self'] : undefined, Filters: filters.length > 0 ? filters : undefined, MaxResults: SNAPSHOT_PAGE, NextToken: token }),
        { abortSignal },
      ), signal);
    for (const snapshot of page.Snapshots ?? []) {
      const info = toSnapshotInfo(snapshot);
      if (info !== undefined) out.push(info);
    }
    nextToken = page.NextToken === '' ? undefined : page.NextToken;
  } while (nextToken !== undefined);
  return out;
}

/**
 * Snapshots by volume and/or tags. `ownerSelf` defaults to true: without it DescribeSnapshots
 * lists every public snapshot in the region too.
 */
export async function listSnapshots(caller: Ec2Caller, filter: { volumeIds?: string[]; tags?: Record<string, string>; ownerSelf?: boolean }, signal?: AbortSignal): Promise<SnapshotInfo[]> {
  const ownerSelf = filter.ownerSelf ?? true;
  const tags = tagFilters(filter.tags);
  if (filter.volumeIds === undefined) return describePages(caller, tags, ownerSelf, signal);
  const out: SnapshotInfo[] = [];
  for (const chunk of chunks([...new Set(filter.volumeIds)], ID_CHUNK)) {
    out.push(...(await describePages(caller, [{ Name: 'volume-id', Values: chunk }, ...tags], ownerSelf, signal)));
  }
  return out;
}

/**
 * DeleteSnapshot. One that is already gone (deleted by an earlier run that failed afterwards, or by
 * hand) counts as deleted: pruning is idempotent and must not fail a run over it.
 */
export async function deleteSnapshot(caller: Ec2Caller, snapshotId: string, signal?: AbortSignal, guard?: MutationGuard): Promise<void> {
  try {
    await caller.run('DeleteSnapshot', 'snapshot', { snapshotId }, (abortSignal) =>
      caller.client.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }), { abortSignal }), signal, guard);
  } catch (err) {
    if (err instanceof SnapshotNotFoundError) return;
    throw err;
  }
}

export async function tagResources(caller: Ec2Caller, resourceIds: string[], tags: Record<string, string>, signal?: AbortSignal): Promise<void> {
  if (resourceIds.length === 0 || Object.keys(tags).length === 0) return;
  await caller.run('CreateTags', 'tags', {}, (abortSignal) =>
    caller.client.send(new CreateTagsCommand({ Resources: resourceIds, Tags: toTags(tags) }), { abortSignal }), signal);
}

export async function untagResources(caller: Ec2Caller, resourceIds: string[], tagKeys: string[], signal?: AbortSignal): Promise<void> {
  if (resourceIds.length === 0 || tagKeys.length === 0) return;
  await caller.run('DeleteTags', 'tags', {}, (abortSignal) =>
    caller.client.send(new DeleteTagsCommand({ Resources: resourceIds, Tags: tagKeys.map((Key) => ({ Key })) }), { abortSignal }), signal);
}
