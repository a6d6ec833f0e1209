import type { InstanceState } from '../../ec2/types.js';
import { dropAttachments, getInstance, requireInstanceId } from './attachments.js';
import { incorrectState } from './errors.js';
import type { World } from './world.js';

export interface StateChange {
  instanceId: string;
  previous: InstanceState;
  current: InstanceState;
}

/**
 * StopInstances: running → stopping → stopped after `stopMs` (`forceStopMs` when forced). EBS
 * attachments are kept, as on AWS; stopping an already stopping/stopped instance changes nothing.
 */
export function stopInstances(world: World, instanceIds: string[], force: boolean): StateChange[] {
  const instances = instanceIds.map((instanceId) => getInstance(world, requireInstanceId(instanceId)));
  for (const instance of instances) {
    if (instance.state === 'terminated' || instance.state === 'shutting-down') {
      throw incorrectState(`This instance '${instance.instanceId}' is not in a state from which it can be stopped.`, { instanceId: instance.instanceId });
    }
  }
  return instances.map((instance) => {
    const previous = instance.state;
    if (previous === 'running' || previous === 'pending' || (previous === 'stopping' && force)) {
      instance.cancel?.();
      instance.state = 'stopping';
      instance.cancel = world.clock.schedule(world.delay(force ? world.latencies.forceStopMs : world.latencies.stopMs), () => {
        instance.cancel = undefined;
        if (instance.state === 'stopping') instance.state = 'stopped';
      });
    }
    return { instanceId: instance.instanceId, previous, current: instance.state };
  });
}

/**
 * Terminates an instance (control API only: the controller never terminates). Its volumes are
 * detached (after `detachMs`) regardless of busy/stuck state, and it becomes `terminated`.
 */
export function terminateInstance(world: World, instanceId: string): StateChange {
  const instance = getInstance(world, instanceId);
  const previous = instance.state;
  if (previous === 'terminated' || previous === 'shutting-down') return { instanceId, previous, current: previous };
  instance.cancel?.();
  instance.state = 'shutting-down';
  dropAttachments(world, instanceId);
  instance.cancel = world.clock.schedule(world.delay(world.latencies.terminateMs), () => {
    instance.cancel = undefined;
    instance.state = 'terminated';
  });
  return { instanceId, previous, current: instance.state };
}

/** Starts a stopped instance at once (control API: a host coming back after a stop). */
export function startInstance(world: World, instanceId: string): StateChange {
  const instance = getInstance(world, instanceId);
  const previous = instance.state;
  if (previous === 'terminated' || previous === 'shutting-down') {
    throw incorrectState(`The instance '${instanceId}' is not in a state from which it can be started.`, { instanceId });
  }
  instance.cancel?.();
  instance.cancel = undefined;
  instance.state = 'running';
  return { instanceId, previous, current: 'running' };
}
