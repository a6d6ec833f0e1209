import { requireVolumeId } from '../attachments.js';
import { snapshotNotFound } from '../errors.js';
import { checkFilterNames, matchesAll, tagFilterValues } from '../filters.js';
import { SIM_ACCOUNT_ID, type SimSnapshot } from '../model.js';
import { paginate } from '../pagination.js';
import { filters, indexedList, required, tagSpecifications } from '../protocol.js';
import type { SnapshotView } from '../sim.js';
import { requireSnapshotId } from '../snapshots.js';
import { el, tagSet, list, type XmlNode } from '../xml.js';
import type { ActionHandler } from './types.js';

const SNAPSHOT_FILTERS = ['volume-id', 'status', 'snapshot-id', 'owner-id', 'description', 'progress'] as const;

function snapshotXml(s: SnapshotView): XmlNode[] {
  return [
    el('snapshotId', s.snapshotId),
    el('volumeId', s.volumeId),
    el('status', s.state),
    el('startTime', new Date(s.startTime)),
    el('progress', s.progress),
    el('ownerId', SIM_ACCOUNT_ID),
    el('volumeSize', s.volumeSize),
    el('description', s.description),
    el('encrypted', false),
    el('storageTier', 'standard'),
    tagSet(s.tags),
  ];
}

export const createSnapshot: ActionHandler = (sim, params) => {
  const volumeId = requireVolumeId(required(params, 'VolumeId'));
  const tags = tagSpecifications(params, 'snapshot');
  return snapshotXml(sim.createSnapshot(volumeId, params.get('Description') ?? '', tags));
};

export const describeSnapshots: ActionHandler = (sim, params) => {
  const world = sim.internals;
  const snapshotIds = indexedList(params, 'SnapshotId');
  const owners = indexedList(params, 'Owner');
  const wanted = filters(params);
  checkFilterNames(wanted, SNAPSHOT_FILTERS);
  for (const snapshotId of snapshotIds) {
    requireSnapshotId(snapshotId);
    if (!world.snapshots.has(snapshotId)) throw snapshotNotFound(snapshotId);
  }
  // Every simulated snapshot belongs to the simulated account: `self` or its id select them all,
  // other owners (e.g. `amazon`) none.
  const ownedByUs = owners.length === 0 || owners.some((o) => o === 'self' || o === SIM_ACCOUNT_ID);
  // Repeated ids are answered once, as EC2 does.
  const candidates = snapshotIds.length > 0 ? [...new Set(snapshotIds)].map((snapshotId) => world.snapshots.get(snapshotId) as SimSnapshot) : [...world.snapshots.values()];
  const views = (ownedByUs ? candidates : []).map((s) => sim.snapshotView(s));
  const matching = views.filter((s) =>
    matchesAll(wanted, (name) => {
      switch (name) {
        case 'volume-id':
          return [s.volumeId];
        case 'status':
          return [s.state];
        case 'snapshot-id':
          return [s.snapshotId];
        case 'owner-id':
          return [SIM_ACCOUNT_ID];
        case 'description':
          return [s.description];
        case 'progress':
          return [s.progress];
        default:
          return tagFilterValues(name, s.tags);
      }
    }),
  );
  const { page, nextToken } = paginate(matching, (s) => s.snapshotId, params, { min: 5, max: 1000, idsParam: 'SnapshotId' });
  return [list('snapshotSet', page, snapshotXml), el('nextToken', nextToken)];
};

export const deleteSnapshot: ActionHandler = (sim, params) => {
  sim.deleteSnapshot(required(params, 'SnapshotId'));
  return [el('return', true)];
};
