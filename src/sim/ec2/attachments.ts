import { Ec2SimError, incorrectState, instanceNotFound, invalidParameter, volumeNotFound } from './errors.js';
import { NITRO_ATTACHMENT_SLOTS, XEN_VOLUME_LIMIT, type SimAttachment, type SimInstance, type SimVolume } from './model.js';
import type { World } from './world.js';
import { InstanceId, VolumeId } from '../../ec2/ids.js';

/**
 * How often a `busy` attachment re-checks whether the host stopped using the device. Real EC2
 * notices within seconds; 20 ms (not scaled) keeps tests quick without spinning.
 */
const BUSY_POLL_MS = 20;

/** Device names EC2 accepts for EBS attachments on Linux (sd*, xvd*, with one or two letters). */
const DEVICE_NAME = /^\/dev\/(sd|xvd)[a-z]{1,2}$/;

export function requireVolumeId(volumeId: string | undefined): string {
  if (volumeId === undefined || volumeId === '') throw new Ec2SimError('MissingParameter', 'The request must contain the parameter VolumeId');
  if (!VolumeId.safeParse(volumeId).success) throw invalidParameter(`Invalid id: "${volumeId}" (expecting "vol-...")`);
  return volumeId;
}

export function requireInstanceId(instanceId: string | undefined): string {
  if (instanceId === undefined || instanceId === '') throw new Ec2SimError('MissingParameter', 'The request must contain the parameter InstanceId');
  if (!InstanceId.safeParse(instanceId).success) throw invalidParameter(`Invalid id: "${instanceId}" (expecting "i-...")`);
  return instanceId;
}

export function getVolume(world: World, volumeId: string): SimVolume {
  const volume = world.volumes.get(volumeId);
  if (volume === undefined) throw volumeNotFound(volumeId);
  return volume;
}

export function getInstance(world: World, instanceId: string): SimInstance {
  const instance = world.instances.get(instanceId);
  if (instance === undefined) throw instanceNotFound(instanceId);
  return instance;
}

/** Attachments (in any state) currently on an instance. */
export function attachmentsOf(world: World, instanceId: string): SimVolume[] {
  return [...world.volumes.values()].filter((v) => v.attachment?.instanceId === instanceId);
}

function setState(world: World, volume: SimVolume, attachment: SimAttachment, state: SimAttachment['state'], forced?: boolean): void {
  attachment.state = state;
  world.history.push({
    at: world.clock.now(),
    volumeId: volume.volumeId,
    instanceId: attachment.instanceId,
    device: attachment.device,
    state,
    ...(forced === undefined ? {} : { forced }),
  });
}

/** AttachVolume: validates like EC2, then attaching → attached after `attachMs`. */
export function attachVolume(world: World, volumeId: string, instanceId: string, device: string): SimAttachment {
  requireVolumeId(volumeId);
  requireInstanceId(instanceId);
  if (!DEVICE_NAME.test(device)) throw invalidParameter(`Value (${device}) for parameter device is invalid. ${device} is not a valid EBS device name.`);
  const volume = getVolume(world, volumeId);
  const instance = getInstance(world, instanceId);
  if (instance.state === 'stopped') {
    throw incorrectState(`The instance '${instanceId}' is not 'running'.`, { volumeId, instanceId });
  }
  if (instance.state !== 'running') {
    // What EC2 answers for an instance in transition or gone (pending, stopping, shutting-down, terminated).
    throw new Ec2SimError('IncorrectInstanceState', `The instance '${instanceId}' is not in a valid state for this operation (${instance.state}).`, 400, { volumeId, instanceId });
  }
  if (volume.az !== instance.az) {
    throw new Ec2SimError(
      'InvalidVolume.ZoneMismatch',
      `The volume '${volumeId}' is not in the same availability zone as instance '${instanceId}'`,
      400,
      { volumeId, instanceId },
    );
  }
  if (volume.attachment !== null) {
    throw new Ec2SimError('VolumeInUse', `${volumeId} is already attached to an instance`, 400, { volumeId, instanceId: volume.attachment.instanceId });
  }
  const onInstance = attachmentsOf(world, instanceId);
  if (world.faults.isDeviceBusy(instanceId, device)) {
    // Real EC2 also reports a taken device name this way (e.g. one the OS still holds after a detach).
    throw invalidParameter(`Invalid value '${device}' for unixDevice. Attachment point ${device} is already in use`);
  }
  if (device === instance.rootDevice || onInstance.some((v) => v.attachment?.device === device)) {
    throw new Ec2SimError('InvalidDevice.InUse', `Invalid value '${device}' for unixDevice. Attachment point ${device} is already in use`, 400, { volumeId, instanceId });
  }
  const limit = instance.nitro ? NITRO_ATTACHMENT_SLOTS - instance.eniCount - 1 : XEN_VOLUME_LIMIT - 1;
  if (onInstance.length >= limit) {
    throw new Ec2SimError('AttachmentLimitExceeded', `Instance '${instanceId}' cannot attach more than ${limit} volumes`, 400, { volumeId, instanceId });
  }
  const attachment: SimAttachment = { instanceId, device, state: 'attaching', attachTime: world.clock.now() };
  volume.attachment = attachment;
  setState(world, volume, attachment, 'attaching');
  if (!world.faults.isAttachStuck(volumeId)) {
    attachment.cancel = world.clock.schedule(world.delay(world.faults.slowAttachMs(volumeId) ?? world.latencies.attachMs), () => completeAttach(world, volume, attachment, instance));
  }
  return { ...attachment };
}

function completeAttach(world: World, volume: SimVolume, attachment: SimAttachment, instance: SimInstance): void {
  if (volume.attachment !== attachment || attachment.state !== 'attaching') return;
  attachment.cancel = undefined;
  attachment.devicePath = world.devices.create(instance.instanceId, volume.volumeId, attachment.device, instance.nitro);
  setState(world, volume, attachment, 'attached');
}

export interface DetachRequest {
  volumeId: string;
  instanceId?: string;
  device?: string;
  force: boolean;
}

/** DetachVolume: graceful (may go `busy`, or hang when stuck) or forced. Returns the attachment as answered. */
export function detachVolume(world: World, req: DetachRequest): SimAttachment {
  requireVolumeId(req.volumeId);
  if (req.instanceId !== undefined) requireInstanceId(req.instanceId);
  const volume = getVolume(world, req.volumeId);
  const attachment = volume.attachment;
  if (
    attachment === null ||
    (req.instanceId !== undefined && attachment.instanceId !== req.instanceId) ||
    (req.device !== undefined && attachment.device !== req.device)
  ) {
    throw new Ec2SimError(
      'InvalidAttachment.NotFound',
      `The volume ${req.volumeId} is not attached to ${req.instanceId ?? 'any instance'}`,
      400,
      { volumeId: req.volumeId, ...(req.instanceId === undefined ? {} : { instanceId: req.instanceId }) },
    );
  }
  if (req.force) {
    forceDetach(world, volume, attachment);
    return { ...attachment };
  }
  switch (attachment.state) {
    case 'attaching':
      throw incorrectState(`Volume '${req.volumeId}' is in the 'attaching' state.`, { volumeId: req.volumeId, instanceId: attachment.instanceId });
    case 'detaching':
    case 'busy':
      // Already on its way out (or waiting for the host): a repeated graceful detach changes nothing.
      return { ...attachment };
    default:
      break;
  }
  if (isInUse(world, volume, attachment)) {
    setState(world, volume, attachment, 'busy');
    pollBusy(world, volume, attachment);
  } else {
    startDetaching(world, volume, attachment);
  }
  return { ...attachment };
}

/**
 * Whether the host still uses the device. Only an instance whose OS runs can hold a device: once it
 * is stopped or terminated, a marker it left behind no longer blocks a graceful detach.
 */
function isInUse(world: World, volume: SimVolume, attachment: SimAttachment): boolean {
  const instanceState = world.instances.get(attachment.instanceId)?.state;
  if (instanceState !== 'running' && instanceState !== 'stopping' && instanceState !== 'pending') return false;
  return world.inUse.has(volume.volumeId) || world.devices.isMarkedInUse(attachment.devicePath);
}

function pollBusy(world: World, volume: SimVolume, attachment: SimAttachment): void {
  // The clock scales delays by timeScale; the poll is real time, so undo the scale.
  attachment.cancel = world.clock.schedule(BUSY_POLL_MS / world.timeScale(), () => {
    if (volume.attachment !== attachment || attachment.state !== 'busy') return;
    if (isInUse(world, volume, attachment)) pollBusy(world, volume, attachment);
    else startDetaching(world, volume, attachment);
  });
}

/** Called when `setInUse(volumeId, false)` lets a busy attachment proceed at once. */
export function releaseBusy(world: World, volumeId: string): void {
  const volume = world.volumes.get(volumeId);
  const attachment = volume?.attachment;
  if (volume === undefined || attachment === null || attachment === undefined || attachment.state !== 'busy') return;
  if (isInUse(world, volume, attachment)) return;
  attachment.cancel?.();
  startDetaching(world, volume, attachment);
}

function startDetaching(world: World, volume: SimVolume, attachment: SimAttachment): void {
  attachment.cancel?.();
  attachment.cancel = undefined;
  setState(world, volume, attachment, 'detaching');
  // A stuck volume stays `detaching` until someone forces the detach.
  if (world.faults.isDetachStuck(volume.volumeId)) return;
  attachment.cancel = world.clock.schedule(world.delay(world.latencies.detachMs), () => completeDetach(world, volume, attachment, false));
}

function forceDetach(world: World, volume: SimVolume, attachment: SimAttachment): void {
  attachment.cancel?.();
  attachment.cancel = undefined;
  world.faults.clearStuck(volume.volumeId);
  setState(world, volume, attachment, 'detaching', true);
  attachment.cancel = world.clock.schedule(world.delay(world.latencies.detachMs), () => completeDetach(world, volume, attachment, true));
}

function completeDetach(world: World, volume: SimVolume, attachment: SimAttachment, forced: boolean): void {
  if (volume.attachment !== attachment) return;
  attachment.cancel = undefined;
  world.devices.remove(attachment.instanceId, volume.volumeId, attachment.devicePath);
  volume.attachment = null;
  setState(world, volume, attachment, 'detached', forced);
}

/** A terminated instance loses its volumes: every attachment detaches (ignoring busy/stuck). */
export function dropAttachments(world: World, instanceId: string): void {
  for (const volume of attachmentsOf(world, instanceId)) {
    const attachment = volume.attachment;
    if (attachment === null) continue;
    attachment.cancel?.();
    attachment.cancel = undefined;
    setState(world, volume, attachment, 'detaching', true);
    attachment.cancel = world.clock.schedule(world.delay(world.latencies.detachMs), () => completeDetach(world, volume, attachment, true));
  }
}
