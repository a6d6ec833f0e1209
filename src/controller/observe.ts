import type { Ec2Port, InstanceInfo, VolumeInfo } from '../ec2/types.js';
import type { HostRecord } from '../keyspace/records.js';
import { isActiveJournal, reportKey, type DecideConfig, type Observed } from './observed.js';
import type { StoreSnapshot } from './ports.js';

/** DescribeVolumes accepts many ids per call; 200 keeps each request and response small. */
const DESCRIBE_BATCH = 200;

/**
 * Volumes whose EC2 state must be read this tick: anything not plainly healthy in etcd alone. A
 * healthy volume (live holder that reported `active` for the current generation) costs no EC2 call;
 * `all` (a periodic resync) includes every registered volume to catch drift.
 */
export function volumesNeedingWork(snap: StoreSnapshot, all: boolean): string[] {
  const out = new Set<string>();
  for (const service of snap.services.values()) {
    const { volumeId } = service;
    const placement = snap.placements.get(volumeId);
    const holder = placement?.instanceId ?? null;
    const report = holder === null ? undefined : snap.reports.get(reportKey(holder, volumeId));
    const healthy = holder !== null && snap.hosts.has(holder) && report?.generation === placement?.generation && report?.phase === 'active';
    if (all || !healthy || isActiveJournal(snap.journals.get(volumeId)) || snap.requests.get(volumeId)?.refusedReason === null) out.add(volumeId);
  }
  for (const journal of snap.journals.values()) if (isActiveJournal(journal)) out.add(journal.volumeId);
  // Refused ones too: they are deleted once the CLI has had time to read the reason.
  for (const request of snap.requests.values()) out.add(request.volumeId);
  return [...out].sort();
}

/** One DescribeVolumes per 200 volumes; a volume EC2 no longer knows is simply absent from the map. */
export async function describeVolumes(ec2: Ec2Port, volumeIds: string[], signal?: AbortSignal): Promise<Map<string, VolumeInfo>> {
  const out = new Map<string, VolumeInfo>();
  for (let i = 0; i < volumeIds.length; i += DESCRIBE_BATCH) {
    let batch = volumeIds.slice(i, i + DESCRIBE_BATCH);
    // EC2 fails the whole call on one unknown id (InvalidVolume.NotFound): drop that id and ask again.
    while (batch.length > 0) {
      try {
        for (const v of await ec2.describeVolumes(batch, { signal })) out.set(v.volumeId, v);
        break;
      } catch (err) {
        const missing = notFoundVolume(err);
        if (missing === null || !batch.includes(missing)) throw err;
        batch = batch.filter((v) => v !== missing);
      }
    }
  }
  return out;
}

function notFoundVolume(err: unknown): string | null {
  if (typeof err !== 'object' || err === null || (err as Error).name !== 'VolumeNotFoundError') return null;
  const volumeId = (err as { volumeId?: unknown }).volumeId;
  return typeof volumeId === 'string' ? volumeId : null;
}

/** One DescribeInstances per 200 ids; an instance EC2 does not know is absent (and so never a target). */
export async function describeInstances(ec2: Ec2Port, instanceIds: string[], signal?: AbortSignal): Promise<Map<string, InstanceInfo>> {
  const out = new Map<string, InstanceInfo>();
  for (let i = 0; i < instanceIds.length; i += DESCRIBE_BATCH) {
    let batch = instanceIds.slice(i, i + DESCRIBE_BATCH);
    // As for volumes, one unknown id (InvalidInstanceID.NotFound) fails the whole call: drop it and ask again.
    while (batch.length > 0) {
      try {
        for (const inst of await ec2.describeInstances(batch, { signal })) out.set(inst.instanceId, inst);
        break;
      } catch (err) {
        const missing = notFoundId(err, 'InstanceNotFoundError', 'instanceId');
        if (missing === null || !batch.includes(missing)) throw err;
        batch = batch.filter((id) => id !== missing);
      }
    }
  }
  return out;
}

function notFoundId(err: unknown, name: string, field: 'instanceId' | 'volumeId'): string | null {
  if (typeof err !== 'object' || err === null || (err as Error).name !== name) return null;
  const id = (err as Partial<Record<typeof field, unknown>>)[field];
  return typeof id === 'string' ? id : null;
}

export interface ObserveInput {
  now: number;
  config: DecideConfig;
  snap: StoreSnapshot;
  knownHosts: ReadonlyMap<string, HostRecord>;
  volumes: ReadonlyMap<string, VolumeInfo>;
  instances: ReadonlyMap<string, InstanceInfo>;
  /** See `Observed.graceUntil`; default none. */
  graceUntil?: number | null;
  /** See `Observed.pacing`; default none. */
  pacing?: Observed['pacing'];
  /** See `Observed.autoRestore`; default none. */
  autoRestore?: Observed['autoRestore'];
  /** See `Observed.provenDead`; default none. */
  provenDead?: Observed['provenDead'];
}

export function buildObserved(input: ObserveInput): Observed {
  const { snap } = input;
  return {
    now: input.now,
    config: input.config,
    hosts: snap.hosts,
    knownHosts: input.knownHosts,
    services: snap.services,
    placements: snap.placements,
    journals: snap.journals,
    reports: snap.reports,
    requests: snap.requests,
    volumes: input.volumes,
    instances: input.instances,
    graceUntil: input.graceUntil ?? null,
    pacing: input.pacing ?? null,
    ...(input.autoRestore === undefined ? {} : { autoRestore: input.autoRestore }),
    ...(input.provenDead === undefined || input.provenDead.size === 0 ? {} : { provenDead: input.provenDead }),
  };
}
