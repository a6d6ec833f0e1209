import { attachmentsOf, requireInstanceId } from '../attachments.js';
import { instanceNotFound } from '../errors.js';
import { checkFilterNames, matchesAll, tagFilterValues } from '../filters.js';
import type { StateChange } from '../instances.js';
import { INSTANCE_STATE_CODES, SIM_ACCOUNT_ID, type SimInstance } from '../model.js';
import { paginate } from '../pagination.js';
import { boolParam, filters, indexedList, type QueryParams } from '../protocol.js';
import type { World } from '../world.js';
import { el, list, tagSet, type XmlNode } from '../xml.js';
import type { InstanceState } from '../../../ec2/types.js';
import type { ActionHandler } from './types.js';

const INSTANCE_FILTERS = ['availability-zone', 'instance-state-name', 'instance-state-code', 'instance-id', 'private-ip-address'] as const;

function instanceFilterValues(instance: SimInstance, name: string): string[] | undefined {
  switch (name) {
    case 'availability-zone':
      return [instance.az];
    case 'instance-state-name':
      return [instance.state];
    case 'instance-state-code':
      return [String(INSTANCE_STATE_CODES[instance.state])];
    case 'instance-id':
      return [instance.instanceId];
    case 'private-ip-address':
      return [instance.privateIp];
    default:
      return tagFilterValues(name, instance.tags);
  }
}

function stateXml(name: string, state: InstanceState): XmlNode {
  return el(name, [el('code', INSTANCE_STATE_CODES[state]), el('name', state)]);
}

function instanceXml(world: World, instance: SimInstance): XmlNode[] {
  // The root volume is not modelled as a volume; its mapping is listed so device names look real.
  const ebs = attachmentsOf(world, instance.instanceId).flatMap((v) => (v.attachment === null ? [] : [{ volumeId: v.volumeId, a: v.attachment }]));
  return [
    el('instanceId', instance.instanceId),
    el('imageId', 'ami-0123456789abcdef0'),
    stateXml('instanceState', instance.state),
    el('privateIpAddress', instance.privateIp),
    el('instanceType', instance.nitro ? 'm5.large' : 'm4.large'),
    el('launchTime', new Date(instance.launchTime)),
    el('placement', [el('availabilityZone', instance.az), el('tenancy', 'default')]),
    el('rootDeviceType', 'ebs'),
    el('rootDeviceName', instance.rootDevice),
    list('blockDeviceMapping', ebs, ({ volumeId, a }) => [
      el('deviceName', a.device),
      el('ebs', [el('volumeId', volumeId), el('status', a.state), el('attachTime', new Date(a.attachTime)), el('deleteOnTermination', false)]),
    ]),
    tagSet(instance.tags),
  ];
}

/** Instances named by `InstanceId.N` (all must exist) or all, narrowed by filters. */
function selectInstances(world: World, params: QueryParams): SimInstance[] {
  const instanceIds = indexedList(params, 'InstanceId');
  const wanted = filters(params);
  checkFilterNames(wanted, INSTANCE_FILTERS);
  for (const instanceId of instanceIds) {
    requireInstanceId(instanceId);
    if (!world.instances.has(instanceId)) throw instanceNotFound(instanceId);
  }
  // Repeated ids are answered once, as EC2 does.
  const candidates = instanceIds.length > 0 ? [...new Set(instanceIds)].map((instanceId) => world.instances.get(instanceId) as SimInstance) : [...world.instances.values()];
  return candidates.filter((instance) => matchesAll(wanted, (name) => instanceFilterValues(instance, name)));
}

export const describeInstances: ActionHandler = (sim, params) => {
  const world = sim.internals;
  const { page, nextToken } = paginate(selectInstances(world, params), (i) => i.instanceId, params, { min: 5, max: 1000, idsParam: 'InstanceId' });
  // One reservation per instance: each simulated instance was launched on its own.
  return [
    list('reservationSet', page, (instance) => [
      el('reservationId', `r-${instance.instanceId.slice(2)}`),
      el('ownerId', SIM_ACCOUNT_ID),
      el('groupSet', []),
      list('instancesSet', [instance], (i) => instanceXml(world, i)),
    ]),
    el('nextToken', nextToken),
  ];
};

function changesXml(changes: StateChange[]): XmlNode[] {
  return [list('instancesSet', changes, (c) => [el('instanceId', c.instanceId), stateXml('currentState', c.current), stateXml('previousState', c.previous)])];
}

export const stopInstances: ActionHandler = (sim, params) => {
  const instanceIds = indexedList(params, 'InstanceId');
  if (instanceIds.length === 0) requireInstanceId(undefined);
  return changesXml(sim.stopInstances(instanceIds, boolParam(params, 'Force')));
};

export const describeInstanceStatus: ActionHandler = (sim, params) => {
  const world = sim.internals;
  // Without IncludeAllInstances EC2 reports running instances only.
  const all = boolParam(params, 'IncludeAllInstances');
  const selected = selectInstances(world, params).filter((instance) => all || instance.state === 'running');
  const { page, nextToken } = paginate(selected, (i) => i.instanceId, params, { min: 5, max: 1000, idsParam: 'InstanceId' });
  // A running instance's checks: `ok`/passed unless a test marked them impaired/failed (setStatusChecks).
  const summary = (instance: SimInstance, kind: 'system' | 'instance'): XmlNode[] => {
    if (instance.state !== 'running') return [el('status', 'not-applicable')];
    const impaired = instance.statusChecks?.[kind] === 'impaired';
    return [el('status', impaired ? 'impaired' : 'ok'), list('details', ['reachability'], (name) => [el('name', name), el('status', impaired ? 'failed' : 'passed')])];
  };
  return [
    list('instanceStatusSet', page, (instance) => [
      el('instanceId', instance.instanceId),
      el('availabilityZone', instance.az),
      stateXml('instanceState', instance.state),
      el('systemStatus', summary(instance, 'system')),
      el('instanceStatus', summary(instance, 'instance')),
    ]),
    el('nextToken', nextToken),
  ];
};
