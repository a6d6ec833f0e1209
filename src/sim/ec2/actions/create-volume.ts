import { invalidParameter, incorrectState, snapshotNotFound } from '../errors.js';
import { required, tagSpecifications } from '../protocol.js';
import { requireSnapshotId } from '../snapshots.js';
import { el, tagSet, type XmlNode } from '../xml.js';
import type { ActionHandler } from './types.js';

/**
 * CreateVolume (additive, issue 13's `failover restore`): a new volume in any AZ, optionally from a
 * completed snapshot (at least the snapshot's size), tagged from TagSpecification. EC2 answers
 * `creating` and turns `available` seconds later; here the volume is `available` at once (the restore
 * path waits for `available` either way).
 */
export const createVolume: ActionHandler = (sim, params) => {
  const az = required(params, 'AvailabilityZone');
  const snapshotId = params.get('SnapshotId');
  const sizeParam = params.get('Size');
  let size = sizeParam === undefined ? undefined : Number(sizeParam);
  if (size !== undefined && (!Number.isInteger(size) || size < 1)) throw invalidParameter(`Invalid Size: ${sizeParam ?? ''}`);
  if (snapshotId !== undefined) {
    const snapshot = sim.internals.snapshots.get(requireSnapshotId(snapshotId));
    if (!snapshot) throw snapshotNotFound(snapshotId);
    if (snapshot.state !== 'completed') throw incorrectState(`Snapshot '${snapshotId}' is not 'completed'.`);
    if (size !== undefined && size < snapshot.volumeSize) throw invalidParameter(`Volume of ${size}GiB is too small; minimum is ${snapshot.volumeSize}GiB.`);
    size = size ?? snapshot.volumeSize;
  }
  if (size === undefined) throw invalidParameter('The request must contain the parameter size or snapshotId');
  const tags = tagSpecifications(params, 'volume');
  const volume = sim.addVolume({ az, sizeGiB: size, tags });
  const body: XmlNode[] = [
    el('volumeId', volume.volumeId),
    el('size', size),
    el('snapshotId', snapshotId ?? ''),
    el('availabilityZone', az),
    el('status', 'available'),
    el('createTime', new Date()),
    el('volumeType', 'gp3'),
    el('encrypted', false),
    el('multiAttachEnabled', false),
    tagSet(tags),
  ];
  return body;
};
