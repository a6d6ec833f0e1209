import { monoNow } from '../ec2/gate.js';
import type { Ec2Port } from '../ec2/types.js';
import type { FailoverJournal } from '../keyspace/records.js';
import type { Logger } from '../log/logger.js';
import type { Decision } from './decision.js';
import { isActiveJournal } from './observed.js';
import { RESTORE_TAGS } from './restore-common.js';
import type { FleetMetadataPort } from './options.js';
import type { StorePort, StoreWrite } from './ports.js';

/**
 * EC2 error names that mean "the state already moved on" (another call won, or our earlier call is
 * being processed): the next observation shows the real state, so they count as done, not failures.
 * An instance in the wrong state is NOT one of them for an attach (see TargetNotRunningError); for
 * StopInstances it means "already stopping or gone", which is what fencing wanted.
 */
const EC2_RACES = new Set([
  'IncorrectState', 'IncorrectStateError', 'VolumeInUse', 'VolumeInUseError', 'InvalidAttachment.NotFound',
  'AttachmentNotFoundError', 'InvalidInstanceID.NotFound', 'InstanceNotFoundError',
]);
const INSTANCE_STATE = new Set(['IncorrectInstanceState', 'IncorrectInstanceStateError']);

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

/**
 * AttachVolume's InvalidDevice.InUse: the device name is taken on the instance (another name must be
 * chosen). src/ec2/errors.ts also maps real EC2's `InvalidParameterValue … is already in use` to it.
 */
const DEVICE_IN_USE = new Set(['InvalidDevice.InUse', 'DeviceInUseError']);
export function isDeviceInUse(err: unknown): boolean {
  return hasName(err, DEVICE_IN_USE);
}

/** The instance is in a state that refuses the call (IncorrectInstanceState): retrying the same instance will not help. */
export function isIncorrectInstanceState(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { name?: unknown; code?: unknown };
  // Checked by name first: the EC2 layer reports some of these with the code `IncorrectState`.
  return (typeof e.name === 'string' && INSTANCE_STATE.has(e.name)) || (typeof e.code === 'string' && INSTANCE_STATE.has(e.code));
}

/**
 * Thrown by `act` when AttachVolume's target refuses it because of its state (stopped, terminated,
 * pending…): not a race that the next look resolves, so the loop must choose another target instead
 * of re-issuing the same attach until the attach wait times out.
 */
export class TargetNotRunningError extends Error {
  override readonly name = 'TargetNotRunningError';
  constructor(
    readonly volumeId: string,
    readonly instanceId: string,
    options?: { cause?: unknown },
  ) {
    super(`${instanceId} cannot take ${volumeId}: the instance is not running (${options?.cause instanceof Error ? options.cause.message : 'IncorrectInstanceState'})`, options);
  }
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
 * Persists (leader-guarded) the mutating EC2 call about to be made in the volume's journal, so a new
 * leader can see what the previous term may still have in flight. The term is the gate's (the leader
 * key's revision). A call with no active journal (re-attaching a placed volume to its live holder) has
 * nothing to record it in; it is idempotent and touches no other host.
 */
async function recordIntent(deps: ActDeps, volumeId: string, intent: Omit<NonNullable<FailoverJournal['intent']>, 'term' | 'at'>): Promise<void> {
  const journal = deps.store.snapshot().journals.get(volumeId);
  if (!isActiveJournal(journal)) return;
  const term = deps.ec2.guard?.term ?? 'unguarded';
  await deps.store.write({ journal: { ...journal, intent: { ...intent, term, at: deps.now() } } });
}

/**
 * Carry out one decision: its I/O first, then its records in one leader-guarded transaction (with an
 * event). Every EC2 mutation is preceded by its intent in the journal (leader-guarded) and goes
 * through the EC2 gate of `deps.ec2` (src/ec2/gate.ts). Returns the journal written, if any.
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
      await deps.store.write({
        journal: d.journal, deleteRequestOf: d.deleteRequest ? d.volumeId : undefined, events: [eventOf(d, d.journal, unit, now)],
        hostAbsent: d.journal.cause === 'holder-lost' && d.journal.fromInstanceId !== null ? d.journal.fromInstanceId : undefined,
      });
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
          await recordIntent(deps, d.volumeId, { action: 'stop', instanceId: d.instanceId, force: true, device: null });
          await deps.ec2.stopInstance(d.instanceId, { force: true, signal: deps.signal });
        } catch (err) {
          // Already stopped or gone: that is what we wanted.
          if (!isEc2Race(err) && !isIncorrectInstanceState(err)) throw err;
          log.info({ instanceId: d.instanceId, err: (err as Error).message }, 'StopInstances: instance already stopped or gone');
        }
      }
      await deps.store.write({ journal: d.journal, events: [eventOf(d, d.journal, unit, now)] });
      return d.journal;
    case 'detach':
    case 'attach': {
      // Journalled once the call holds its rate-limit token, right before it is sent (MutatingOpts.beforeSend).
      const beforeSend = (): Promise<void> => recordIntent(deps, d.volumeId, d.kind === 'detach'
        ? { action: 'detach', instanceId: d.instanceId, force: d.force, device: null }
        : { action: 'attach', instanceId: d.instanceId, force: false, device: d.device });
      try {
        if (d.kind === 'detach') await deps.ec2.detachVolume(d.volumeId, d.instanceId, d.force, { signal: deps.signal, beforeSend });
        else await deps.ec2.attachVolume(d.volumeId, d.instanceId, d.device, { signal: deps.signal, beforeSend });
      } catch (err) {
        if (d.kind === 'attach' && isDeviceInUse(err)) throw new DeviceTakenError(d.volumeId, d.instanceId, d.device, { cause: err });
        if (d.kind === 'attach' && isIncorrectInstanceState(err)) throw new TargetNotRunningError(d.volumeId, d.instanceId, { cause: err });
        // The state moved on (e.g. our earlier call is being processed): the next look decides.
        if (!isEc2Race(err)) throw err;
        log.info({ instanceId: d.instanceId, err: (err as Error).message }, `${d.kind}: EC2 state already changed`);
        return null;
      }
      await deps.store.write({ events: [eventOf(d, null, unit, now)] });
      return null;
    }
    case 'noteRestore':
      log.warn({ reason: d.reason }, 'auto-restore');
      await deps.store.write({ journal: d.journal, events: [{ at: now, volumeId: d.volumeId, unit, step: 'auto-restore', message: d.reason, instanceId: null }] });
      return d.journal;
    case 'createRestoreVolume':
      return createRestoreVolume(deps, d, unit, log);
    case 'swapRestored': {
      const newUnit = d.service.unit;
      log.warn({ oldUnit: d.oldUnit, newUnit, newVolumeId: d.service.volumeId }, d.message);
      await deps.store.write({
        journal: d.journal,
        swapService: { oldUnit: d.oldUnit, service: d.service },
        events: [
          eventOf(d, d.journal, unit, now),
          { at: now, volumeId: d.service.volumeId, unit: newUnit, step: 'auto-restored', message: d.message, instanceId: null },
        ],
      });
      return d.journal;
    }
    case 'advance':
    case 'block':
    case 'complete':
    case 'fail':
      await deps.store.write({ journal: d.journal, events: [eventOf(d, d.journal, unit, now)] });
      return d.journal;
  }
}

/** Until the gate's quiet period ends (a new leader's), so a lookup sees whatever the previous term created. */
async function quietPeriod(deps: ActDeps): Promise<void> {
  const notBefore = deps.ec2.guard?.notBeforeMono ?? 0;
  for (let left = notBefore - monoNow(); left > 0 && !deps.signal.aborted; left = notBefore - monoNow()) {
    await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(left))));
  }
}

/**
 * The restore's journal record first (leader-guarded), then its volume: the one already tagged with the
 * restore id (a previous term's CreateVolume, looked up after the quiet period so that call has landed)
 * or a new CreateVolume through the gate, with the restore id as ClientToken too; then its id persisted.
 */
async function createRestoreVolume(deps: ActDeps, d: Extract<Decision, { kind: 'createRestoreVolume' }>, unit: string | undefined, log: Logger): Promise<FailoverJournal> {
  if (!deps.ec2.createVolume || !deps.ec2.findVolumes) throw new Error('auto-restore needs an EC2 port with createVolume and findVolumes');
  const recorded = deps.store.snapshot().journals.get(d.volumeId)?.autoRestore?.restore?.restoreId === d.restoreId;
  if (!recorded) {
    log.warn({ restoreId: d.restoreId, snapshotId: d.snapshotId, az: d.az }, d.reason);
    await deps.store.write({ journal: d.journal, events: [{ at: deps.now(), volumeId: d.volumeId, unit, step: 'auto-restore', message: d.reason, instanceId: null }] });
  }
  await quietPeriod(deps);
  const [existing] = await deps.ec2.findVolumes({ tags: { [RESTORE_TAGS.restoreId]: d.restoreId } }, { signal: deps.signal });
  const volume = existing ?? (await deps.ec2.createVolume({ az: d.az, snapshotId: d.snapshotId, tags: d.tags, clientToken: d.restoreId }, { signal: deps.signal }));
  const tracked = d.journal.autoRestore;
  const restore = tracked?.restore;
  if (!tracked || !restore) throw new Error(`auto-restore ${d.restoreId}: the journal of ${d.volumeId} records no restore`);
  const journal: FailoverJournal = { ...d.journal, autoRestore: { ...tracked, restore: { ...restore, newVolumeId: volume.volumeId } } };
  const message = `auto-restore ${d.restoreId}: ${existing ? 'found' : 'created'} ${volume.volumeId} in ${d.az} from ${d.snapshotId}; waiting for it to be available`;
  log.warn({ restoreId: d.restoreId, newVolumeId: volume.volumeId }, message);
  await deps.store.write({ journal, events: [{ at: deps.now(), volumeId: d.volumeId, unit, step: 'auto-restore', message, instanceId: null }] });
  return journal;
}
