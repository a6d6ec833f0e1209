import { Ec2SimError, instanceNotFound, invalidParameter, snapshotNotFound, volumeNotFound } from './errors.js';
import { MAX_TAGS_PER_RESOURCE } from './model.js';
import type { World } from './world.js';
import { InstanceId, SnapshotId, VolumeId } from '../../ec2/ids.js';

/** The tag map of a volume, instance or snapshot, by its id (typed NotFound errors otherwise). */
function tagsOf(world: World, resourceId: string): Record<string, string> {
  if (VolumeId.safeParse(resourceId).success) {
    const volume = world.volumes.get(resourceId);
    if (volume === undefined) throw volumeNotFound(resourceId);
    return volume.tags;
  }
  if (InstanceId.safeParse(resourceId).success) {
    const instance = world.instances.get(resourceId);
    if (instance === undefined) throw instanceNotFound(resourceId);
    return instance.tags;
  }
  if (SnapshotId.safeParse(resourceId).success) {
    const snapshot = world.snapshots.get(resourceId);
    if (snapshot === undefined) throw snapshotNotFound(resourceId);
    return snapshot.tags;
  }
  throw new Ec2SimError('InvalidID', `The ID '${resourceId}' is not valid`);
}

function checkKey(key: string): void {
  if (key === '' || key.length > 128) throw invalidParameter(`Tag key '${key}' must be 1-128 characters`);
  if (key.toLowerCase().startsWith('aws:')) throw invalidParameter(`Tag keys starting with 'aws:' are reserved for internal use`);
}

/** CreateTags: all resources are checked first, so a bad id changes nothing (EC2 is all-or-nothing). */
export function createTags(world: World, resourceIds: string[], tags: Record<string, string>): void {
  if (resourceIds.length === 0) throw new Ec2SimError('MissingParameter', 'The request must contain the parameter ResourceId');
  for (const key of Object.keys(tags)) checkKey(key);
  const targets = resourceIds.map((resourceId) => ({ resourceId, tags: tagsOf(world, resourceId) }));
  for (const target of targets) {
    const keys = new Set([...Object.keys(target.tags), ...Object.keys(tags)]);
    if (keys.size > MAX_TAGS_PER_RESOURCE) {
      throw new Ec2SimError('TagLimitExceeded', `The maximum number of tags for resource '${target.resourceId}' has been reached`);
    }
  }
  for (const target of targets) Object.assign(target.tags, tags);
}

/**
 * DeleteTags: a tag given with a value is deleted only when the value matches; with no value, the
 * key is deleted whatever its value; with no tags at all, every tag of the resources goes.
 */
export function deleteTags(world: World, resourceIds: string[], tags: { key: string; value?: string }[]): void {
  if (resourceIds.length === 0) throw new Ec2SimError('MissingParameter', 'The request must contain the parameter ResourceId');
  const targets = resourceIds.map((resourceId) => tagsOf(world, resourceId));
  for (const target of targets) {
    if (tags.length === 0) {
      for (const key of Object.keys(target)) delete target[key];
      continue;
    }
    for (const tag of tags) {
      if (tag.key in target && (tag.value === undefined || target[tag.key] === tag.value)) delete target[tag.key];
    }
  }
}
