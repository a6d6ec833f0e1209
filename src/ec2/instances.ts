import { DescribeInstanceStatusCommand, DescribeInstancesCommand, StopInstancesCommand, type Filter } from '@aws-sdk/client-ec2';
import type { Ec2Caller } from './call.js';
import { InstanceNotFoundError } from './errors.js';
import { chunks, tagFilters, toInstanceInfo, toInstanceStatusInfo } from './map.js';
import type { InstanceInfo, InstanceStatusInfo, MutationGuard } from './types.js';

/** EC2 takes at most 200 values per filter. */
const ID_CHUNK = 200;
/** DescribeInstances' largest page (MaxResults 5–1000). */
const INSTANCE_PAGE = 1000;

async function describeByFilters(caller: Ec2Caller, filters: Filter[], ids: { instanceId?: string }, signal?: AbortSignal): Promise<InstanceInfo[]> {
  const out: InstanceInfo[] = [];
  let nextToken: string | undefined;
  do {
    const token = nextToken;
    const page = await caller.run('DescribeInstances', 'describe', ids, (abortSignal) =>
      caller.client.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: INSTANCE_PAGE, NextToken: token }), { abortSignal }), signal);
    for (const reservation of page.Reservations ?? []) {
      for (const instance of reservation.Instances ?? []) {
        const info = toInstanceInfo(instance);
        if (info !== undefined) out.push(info);
      }
    }
    nextToken = page.NextToken === '' ? undefined : page.NextToken;
  } while (nextToken !== undefined);
  return out;
}

/**
 * The given instances, in the order asked, 200 ids per call (an `instance-id` filter, so that one
 * missing id does not hide the others); a missing one → `InstanceNotFoundError` naming it.
 */
export async function describeInstances(caller: Ec2Caller, instanceIds: readonly string[], signal?: AbortSignal): Promise<InstanceInfo[]> {
  const unique = [...new Set(instanceIds)];
  const found = new Map<string, InstanceInfo>();
  for (const chunk of chunks(unique, ID_CHUNK)) {
    const ids = chunk.length === 1 ? { instanceId: chunk[0] } : {};
    for (const info of await describeByFilters(caller, [{ Name: 'instance-id', Values: chunk }], ids, signal)) found.set(info.instanceId, info);
  }
  return instanceIds.map((instanceId) => {
    const info = found.get(instanceId);
    if (info === undefined) throw new InstanceNotFoundError(instanceId, { action: 'DescribeInstances' });
    return info;
  });
}

/** Instances in an AZ and/or carrying all the given tags, in any state. */
export function findInstances(caller: Ec2Caller, filter: { az?: string; tags?: Record<string, string> }, signal?: AbortSignal): Promise<InstanceInfo[]> {
  const filters: Filter[] = [...(filter.az === undefined ? [] : [{ Name: 'availability-zone', Values: [filter.az] }]), ...tagFilters(filter.tags)];
  return describeByFilters(caller, filters, {}, signal);
}

/** StopInstances; `force` skips the OS shutdown (used to fence a host that no longer answers). */
export async function stopInstance(caller: Ec2Caller, instanceId: string, force: boolean, signal?: AbortSignal, guard?: MutationGuard): Promise<void> {
  await caller.run('StopInstances', 'mutating', { instanceId }, (abortSignal) =>
    caller.client.send(new StopInstancesCommand({ InstanceIds: [instanceId], Force: force }), { abortSignal }), signal, guard);
}

/** DescribeInstanceStatus takes at most 100 explicit instance ids per call. */
const STATUS_ID_CHUNK = 100;

/**
 * Status checks of the given instances, any state (IncludeAllInstances), 100 ids per call. An id EC2
 * does not know fails the call (InvalidInstanceID.NotFound → InstanceNotFoundError), as DescribeInstances.
 */
export async function describeInstanceStatus(caller: Ec2Caller, instanceIds: readonly string[], signal?: AbortSignal): Promise<InstanceStatusInfo[]> {
  const out: InstanceStatusInfo[] = [];
  for (const chunk of chunks([...new Set(instanceIds)], STATUS_ID_CHUNK)) {
    const ids = chunk.length === 1 ? { instanceId: chunk[0] } : {};
    let nextToken: string | undefined;
    do {
      const token = nextToken;
      const page = await caller.run('DescribeInstanceStatus', 'describe', ids, (abortSignal) =>
        caller.client.send(new DescribeInstanceStatusCommand({ InstanceIds: chunk, IncludeAllInstances: true, NextToken: token }), { abortSignal }), signal);
      for (const s of page.InstanceStatuses ?? []) {
        const info = toInstanceStatusInfo(s);
        if (info !== undefined) out.push(info);
      }
      nextToken = page.NextToken === '' ? undefined : page.NextToken;
    } while (nextToken !== undefined);
  }
  return out;
}
