import { requireVolumeId } from '../attachments.js';
import { volumeNotFound } from '../errors.js';
import { checkFilterNames, matchesAll, tagFilterValues } from '../filters.js';
import type { SimAttachment, SimVolume } from '../model.js';
import { paginate } from '../pagination.js';
import { boolParam, filters, indexedList, required } from '../protocol.js';
import { el, list, tagSet, type XmlNode } from '../xml.js';
import type { ActionHandler } from './types.js';

const VOLUME_FILTERS = ['availability-zone', 'attachment.instance-id', 'attachment.status', 'attachment.device', 'status', 'volume-id', 'size'] as const;

function volumeFilterValues(volume: SimVolume, name: string): string[] | undefined {
  const a = volume.attachment;
  switch (name) {
    case 'availability-zone':
      return [volume.az];
    case 'attachment.instance-id':
      return a === null ? [] : [a.instanceId];
    case 'attachment.status':
      return a === null ? [] : [a.state];
    case 'attachment.device':
      return a === null ? [] : [a.device];
    case 'status':
      return [a === null ? 'available' : 'in-use'];
    case 'volume-id':
      return [volume.volumeId];
    case 'size':
      return [String(volume.sizeGiB)];
    default:
      return tagFilterValues(name, volume.tags);
  }
}

function attachmentXml(volumeId: string, a: Omit<SimAttachment, 'cancel'>): XmlNode[] {
  return [
    el('volumeId', volumeId),
    el('instanceId', a.instanceId),
    el('device', a.device),
    el('status', a.state),
    el('attachTime', new Date(a.attachTime)),
    el('deleteOnTermination', false),
  ];
}

function volumeXml(volume: SimVolume): XmlNode[] {
  return [
    el('volumeId', volume.volumeId),
    el('size', volume.sizeGiB),
    el('availabilityZone', volume.az),
    el('status', volume.attachment === null ? 'available' : 'in-use'),
    el('createTime', new Date(volume.createTime)),
    list('attachmentSet', volume.attachment === null ? [] : [volume.attachment], (a) => attachmentXml(volume.volumeId, a)),
    tagSet(volume.tags),
    el('volumeType', 'gp3'),
    el('encrypted', false),
    el('multiAttachEnabled', volume.multiAttachEnabled),
  ];
}

export const describeVolumes: ActionHandler = (sim, params) => {
  const world = sim.internals;
  const volumeIds = indexedList(params, 'VolumeId');
  const wanted = filters(params);
  checkFilterNames(wanted, VOLUME_FILTERS);
  for (const volumeId of volumeIds) {
    requireVolumeId(volumeId);
    if (!world.volumes.has(volumeId)) throw volumeNotFound(volumeId);
  }
  // Repeated ids are answered once, as EC2 does.
  const candidates = volumeIds.length > 0 ? [...new Set(volumeIds)].map((volumeId) => world.volumes.get(volumeId) as SimVolume) : [...world.volumes.values()];
  const matching = candidates.filter((volume) => matchesAll(wanted, (name) => volumeFilterValues(volume, name)));
  const { page, nextToken } = paginate(matching, (v) => v.volumeId, params, { min: 5, max: 500, idsParam: 'VolumeId' });
  return [list('volumeSet', page, volumeXml), el('nextToken', nextToken)];
};

export const attachVolume: ActionHandler = (sim, params) => {
  const volumeId = required(params, 'VolumeId');
  const attachment = sim.attachVolume(volumeId, required(params, 'InstanceId'), required(params, 'Device'));
  return attachmentXml(volumeId, attachment);
};

export const detachVolume: ActionHandler = (sim, params) => {
  const volumeId = required(params, 'VolumeId');
  const instanceId = params.get('InstanceId');
  const device = params.get('Device');
  const attachment = sim.detachVolume({
    volumeId,
    force: boolParam(params, 'Force'),
    ...(instanceId === undefined ? {} : { instanceId }),
    ...(device === undefined ? {} : { device }),
  });
  return attachmentXml(volumeId, attachment);
};
