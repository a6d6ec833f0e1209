import type { Ec2Port } from '../ec2/types.js';
import type { FailoverJournal } from '../keyspace/records.js';
import type { Logger } from '../log/logger.js';
import type { Decision } from './decision.js';
import type { FleetMetadataPort } from './options.js';
import type { StorePort, StoreWrite } from './ports.js';

/**
 * EC2 error names that mean "the state already moved on" (another call won, or our earlier call is
 * being processed): the next observation shows the real state, so they count as done, not failures.
 */
const EC2_RACES = new Set([
  'IncorrectState', 'IncorrectStateError', 'VolumeInUse', 'VolumeInUseError', 'InvalidAttachment.NotFound',
  'AttachmentNotFoundError', 'IncorrectInstanceState', 'IncorrectInstanceStateError', 'InvalidInstanceID.NotFound', 'InstanceNotFoundError',
]);

/** True for an EC2 error that only says the state already changed (see EC2_RACES). */
export function isEc2Race(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; code?: unknown; awsCode?: unknown };
  return [e.name, e.code, e.awsCode].some((v) => typeof v === 'string' && EC2_RACES.has(v));
}

function hasName(err: unknown, names: ReadonlySet<string>): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; code?: unknown };
  return [e.name, e.code].some((v) => typeof v === 'string' && names.has(v));
}

/** EC2 throttling: the EC2 layer already spaces calls on its token bucket, so the loop only looks again soon. */
const THROTTLES = new Set(['RequestLimitExceeded', 'RequestLimitExceededError', 'Throttling', 'ThrottlingException']);
export function isThrottled(err: unknown): boolean {
  return hasName(err, THROTTLES);
}

/** AttachVolume's InvalidDevice.InUse: the device name is taken on the instance (another name must be chosen). */
const DEVICE_IN_USE = new Set(['InvalidDevice.InUse', 'DeviceInUseError']);
export function isDeviceInUse(err: unknown): boolean {
  return hasName(err, DEVICE_IN_USE);
}

/** Thrown by `act` when AttachVolume found the device name taken; the loop records it and decides again. */
export class DeviceTakenError extends Error {
  override readonly name = 'DeviceTakenError';
  constructor(
    readonly volumeId: string,
    readonly instanceId: string,
    readonly device: string,
    options?: { cause?: unknown },
  ) {
    super(`device ${device} is in use on ${instanceId} (attaching ${volumeId})`, options);
  }
}

export interface ActDeps {
  store: StorePort;
  ec2: Ec2Port;
  fleet?: FleetMetadataPort;
  log: Logger;
  signal: AbortSignal;
  now: () => number;
}

function eventOf(d: Decision, journal: FailoverJournal | null | undefined, unit: string | undefined, at: number): NonNullable<StoreWrite['events']>[number] {
  const instanceId = 'instanceId' in d ? d.instanceId : (journal?.toInstanceId ?? journal?.fromInstanceId ?? null);
  return { at, volumeId: d.volumeId, unit, step: journal?.step ?? d.kind, message: d.reason, instanceId };
}

/** Drop the volume's metadata key from the fenced machine (fleet then cannot schedule the unit back there). */
async function dropMetadata(deps: ActDeps, d: Extract<Decision, { kind: 'fence' }>): Promise<void> {
  if (!deps.fleet) return;
  if (d.machineId !== null) {
    await deps.fleet.removeMetadata(d.machineId, d.metadataKey);
    return;
  }
  // A new leader may never have seen the dead host's record: find the machine by its metadata instead.
  if (!deps.fleet.listMachines) {
    deps.log.warn({ volumeId: d.volumeId, instanceId: d.instanceId }, 'machine id of fenced host unknown and fleet cannot list machines: metadata left');
    return;
  }
  for (const m of await deps.fleet.listMachines()) {
    if (m.metadata[d.metadataKey] === d.volumeId) await deps.fleet.removeMetadata(m.id, d.metadataKey);
  }
}

/**
 * Carry out one decision: its I/O first, then its records in one leader-guarded transaction (with an
 * event). Returns the journal written, if any.
 */
export async function act(deps: ActDeps, d: Decision, unit: string | undefined): Promise<FailoverJournal | null> {
  const now = deps.now();
  const log = deps.log.child({ volumeId: d.volumeId, decision: d.kind });
  switch (d.kind) {
    case 'noop':
    case 'wait':
      return null;
    case 'dropRequest':
      await deps.store.write({ deleteRequestOf: d.volumeId, events: [eventOf(d, null, unit, now)] });
      return null;
    case 'refuseRequest':
      await deps.store.write({ request: d.request, events: [eventOf(d, null, unit, now)] });
      return null;
    case 'startFailover':
      await deps.store.write({ journal: d.journal, deleteRequestOf: d.deleteRequest ? d.volumeId : undefined, events: [eventOf(d, d.journal, unit, now)] });
      return d.journal;
    case 'place':
      await deps.store.write({ placement: d.placement, journal: d.journal ?? undefined, events: [eventOf(d, d.journal, unit, now)] });
      return d.journal;
    case 'release':
      await deps.store.write({ placement: d.placement, journal: d.journal, events: [eventOf(d, d.journal, unit, now)] });
      return d.journal;
    case 'fence':
      await dropMetadata(deps, d);
      if (d.stopInstance) {
        try {
          await deps.ec2.stopInstance(d.instanceId, { force: true, signal: deps.signal });
        } catch (err) {
          // Already stopped or gone: that is what we wanted.
          if (!isEc2Race(err)) throw err;
          log.info({ instanceId: d.instanceId, err: (err as Error).message }, 'StopInstances: instance already stopped or gone');
        }
      }
      await deps.store.write({ journal: d.journal, events: [eventOf(d, d.journal, unit, now)] });
      return d.journal;
    case 'detach':
    case 'attach':
      try {
        if (d.kind === 'detach') await deps.ec2.detachVolume(d.volumeId, d.instanceId, d.force, { signal: deps.signal });
        else await deps.ec2.attachVolume(d.volumeId, d.instanceId, d.device, { signal: deps.signal });
      } catch (err) {
        if (d.kind === 'attach' && isDeviceInUse(err)) throw new DeviceTakenError(d.volumeId, d.instanceId, d.device, { cause: err });
        // The state moved on (e.g. our earlier call is being processed): the next look decides.
        if (!isEc2Race(err)) throw err;
        log.info({ instanceId: d.instanceId, err: (err as Error).message }, `${d.kind}: EC2 state already changed`);
        return null;
      }
      await deps.store.write({ events: [eventOf(d, null, unit, now)] });
      return null;
    case 'advance':
    case 'block':
    case 'complete':
    case 'fail':
      await deps.store.write({ journal: d.journal, events: [eventOf(d, d.journal, unit, now)] });
      return d.journal;
  }
}
