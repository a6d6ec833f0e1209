import type { HostRecord } from '../keyspace/index.js';
import { RefusedError } from './errors.js';
import { isInProgress, type ClusterState } from './state.js';

export interface ManualFailoverAsk {
  unit: string;
  volumeId: string;
  toInstanceId: string | null;
  /** The volume's AZ as EC2 reports it (EBS never crosses AZs). */
  volumeAz: string;
}

/** Why `host` cannot take the volume, or null when it can. Same rules the controller applies. */
export function targetProblem(state: ClusterState, ask: ManualFailoverAsk, host: HostRecord): string | null {
  const service = state.services.get(ask.unit)?.value;
  const holder = state.placements.get(ask.volumeId)?.value.instanceId ?? null;
  if (host.instanceId === holder) return `${ask.unit} already runs on ${host.instanceId}`;
  if (host.az !== ask.volumeAz) return `target ${host.instanceId} is in ${host.az}, but volume ${ask.volumeId} is in ${ask.volumeAz} (EBS volumes cannot leave their AZ)`;
  for (const [key, value] of Object.entries(service?.requiredLabels ?? {})) {
    if (host.labels[key] !== value) return `target ${host.instanceId} lacks label ${key}=${value} that ${ask.unit} requires`;
  }
  const group = service?.conflictGroup;
  if (group !== undefined) {
    for (const other of state.services.values()) {
      if (other.value.unit === ask.unit || other.value.conflictGroup !== group) continue;
      const otherHolder = state.placements.get(other.value.volumeId)?.value.instanceId;
      const otherTarget = state.journals.get(other.value.volumeId)?.value;
      const incoming = isInProgress(otherTarget) ? otherTarget?.toInstanceId : null;
      if (otherHolder === host.instanceId || incoming === host.instanceId) {
        return `target ${host.instanceId} already holds ${other.value.unit} of conflict group ${group}`;
      }
    }
  }
  return null;
}

/**
 * Everything `failover <unit>` refuses before writing anything (exit 1). Throws RefusedError;
 * returns the hosts that could take the volume (the chosen target only, with `--to`).
 */
export function checkManualFailover(state: ClusterState, ask: ManualFailoverAsk): HostRecord[] {
  const { unit, volumeId } = ask;
  if (!state.services.has(unit)) throw new RefusedError(`unknown service ${unit} (register it with: failover service add)`, { unit });
  const journal = state.journals.get(volumeId)?.value;
  if (isInProgress(journal)) {
    throw new RefusedError(`a ${journal?.kind} failover of ${volumeId} is already at step ${journal?.step}`, { unit, volumeId });
  }
  // A refused request is history (the controller drops it a little later): it must not block a new one.
  const pending = state.requests.get(volumeId)?.value;
  if (pending && pending.refusedReason === null) throw new RefusedError(`a failover of ${volumeId} was already requested and is not picked up yet`, { unit, volumeId });

  if (ask.toInstanceId !== null) {
    const target = state.hosts.get(ask.toInstanceId)?.value;
    if (!target) throw new RefusedError(`target ${ask.toInstanceId} is not live (no agent lease in etcd)`, { unit, volumeId, instanceId: ask.toInstanceId });
    const problem = targetProblem(state, ask, target);
    if (problem) throw new RefusedError(problem, { unit, volumeId, instanceId: ask.toInstanceId, az: target.az });
    return [target];
  }
  const eligible = [...state.hosts.values()].map((h) => h.value).filter((h) => targetProblem(state, ask, h) === null);
  if (eligible.length === 0) throw new RefusedError(`no live host in ${ask.volumeAz} can take ${unit}`, { unit, volumeId, az: ask.volumeAz });
  return eligible;
}
