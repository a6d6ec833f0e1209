/** Tags on every snapshot we create; retention only ever deletes snapshots carrying TAG_VOLUME. */
export const TAG_SERVICE = 'ebs-failover:service';
export const TAG_VOLUME = 'ebs-failover:volume';
export const TAG_TIME = 'ebs-failover:time';

export function snapshotTags(unit: string, volumeId: string, now: number): Record<string, string> {
  return { [TAG_SERVICE]: unit, [TAG_VOLUME]: volumeId, [TAG_TIME]: new Date(now).toISOString() };
}

/** Ours means: created by us for this very volume (a copied or foreign snapshot is never pruned). */
export function isManagedSnapshot(tags: Record<string, string>, volumeId: string): boolean {
  return tags[TAG_VOLUME] === volumeId && tags[TAG_SERVICE] !== undefined;
}
