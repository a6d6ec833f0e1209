import { DEVICE_LETTERS } from '../ec2/ids.js';
import type { HostRecord, ServiceRecord } from '../keyspace/records.js';
import { isActiveJournal, type Observed } from './observed.js';

export type TargetChoice =
  | { ok: true; instanceId: string; device: string; reason: string }
  | { ok: false; reason: string };

/** `/dev/sdf` and `/dev/xvdf` name the same slot: a letter is taken when either is. */
function letterOf(device: string): string | null {
  const m = /^\/dev\/(?:sd|xvd)([a-z])\d*$/.exec(device);
  return m?.[1] ?? null;
}

/** Device names on an instance: its block device mappings plus every attachment EC2 showed us. */
function devicesOn(observed: Observed, instanceId: string): Set<string> {
  const used = new Set(observed.instances.get(instanceId)?.devices ?? []);
  for (const volume of observed.volumes.values()) {
    for (const a of volume.attachments) if (a.instanceId === instanceId) used.add(a.device);
  }
  // Our own placements: DescribeInstances may be cached and not yet show a volume we just placed.
  for (const p of observed.placements.values()) if (p.instanceId === instanceId && p.device !== null) used.add(p.device);
  // Devices promised to failovers on their way to this instance, so two volumes never get the same name.
  for (const journal of observed.journals.values()) {
    if (isActiveJournal(journal) && journal.toInstanceId === instanceId && journal.device !== null) used.add(journal.device);
  }
  return used;
}

/**
 * Whether EC2 shows `device` (or its sd/xvd twin) taken on `instanceId` by anything but `volumeId`:
 * the instance's block device mappings, or another volume's attachment. Our own journals and
 * placements are not counted, since the journal asking the question has promised itself that name.
 */
export function deviceTakenOnInstance(observed: Observed, instanceId: string, device: string, volumeId: string): boolean {
  const letter = letterOf(device);
  const same = (d: string): boolean => d === device || (letter !== null && letterOf(d) === letter);
  if ((observed.instances.get(instanceId)?.devices ?? []).some(same)) return true;
  for (const volume of observed.volumes.values()) {
    if (volume.volumeId === volumeId) continue;
    if (volume.attachments.some((a) => a.instanceId === instanceId && same(a.device))) return true;
  }
  return false;
}

export function freeDevice(observed: Observed, instanceId: string): string | null {
  const letters = new Set([...devicesOn(observed, instanceId)].map(letterOf).filter((l): l is string => l !== null));
  const letter = DEVICE_LETTERS.find((l) => !letters.has(l));
  return letter === undefined ? null : `/dev/xvd${letter}`;
}

/** Volumes placed on (or on their way to) a host: the load we balance, and conflict-group members. */
function unitsOn(observed: Observed, instanceId: string): ServiceRecord[] {
  const units: ServiceRecord[] = [];
  for (const service of observed.services.values()) {
    const placed = observed.placements.get(service.volumeId)?.instanceId;
    const journal = observed.journals.get(service.volumeId);
    const incoming = isActiveJournal(journal) ? journal.toInstanceId : null;
    if (placed === instanceId || incoming === instanceId) units.push(service);
  }
  return units;
}

/** Why `host` cannot take `service`'s volume (in `az`), or null when it can. */
export function hostProblem(observed: Observed, service: ServiceRecord, az: string, host: HostRecord): string | null {
  if (host.az !== az) return `in ${host.az}, not the volume's ${az}`;
  // A live agent on a stopping/stopped instance (or one EC2 does not describe) would take the attach
  // and leave it `attaching` or fail with IncorrectInstanceState until the timeout: never choose it.
  const instance = observed.instances.get(host.instanceId);
  if (instance === undefined) return 'is not described by EC2 (instance state unknown)';
  if (instance.state !== 'running') return `is ${instance.state} in EC2`;
  for (const [key, value] of Object.entries(service.requiredLabels)) {
    if (host.labels[key] !== value) return `lacks label ${key}=${value}`;
  }
  const others = unitsOn(observed, host.instanceId).filter((s) => s.unit !== service.unit);
  if (service.conflictGroup !== undefined) {
    const clash = others.find((s) => s.conflictGroup === service.conflictGroup);
    if (clash) return `already holds ${clash.unit} of conflict group ${service.conflictGroup}`;
  }
  if (devicesOn(observed, host.instanceId).size >= observed.config.maxAttachmentsPerInstance) {
    return `at its limit of ${observed.config.maxAttachmentsPerInstance} attachments`;
  }
  if (freeDevice(observed, host.instanceId) === null) return 'has no free device name in /dev/xvd[f-p]';
  return null;
}

/**
 * Choose where `service`'s volume goes: a LIVE host in the volume's AZ only (EBS never crosses AZs),
 * whose instance EC2 shows `running`, never one in `exclude` (the previous holder, and hosts this
 * failover gave up), honouring labels, the conflict group, free device names and the attachment limit; least loaded
 * first, ties broken by instance id so every controller makes the same choice.
 */
export function chooseTarget(observed: Observed, service: ServiceRecord, az: string, exclude: ReadonlySet<string>): TargetChoice {
  const rejected: string[] = [];
  const eligible: { host: HostRecord; load: number }[] = [];
  for (const host of observed.hosts.values()) {
    if (exclude.has(host.instanceId)) continue;
    const problem = hostProblem(observed, service, az, host);
    if (problem === null) eligible.push({ host, load: unitsOn(observed, host.instanceId).length });
    else if (host.az === az) rejected.push(`${host.instanceId} ${problem}`);
  }
  eligible.sort((a, b) => a.load - b.load || (a.host.instanceId < b.host.instanceId ? -1 : 1));
  const best = eligible[0];
  if (best === undefined) {
    const why = rejected.length > 0 ? `: ${rejected.sort().join('; ')}` : '';
    return { ok: false, reason: `no live host in ${az} can take ${service.unit}${why}` };
  }
  const device = freeDevice(observed, best.host.instanceId) as string; // hostProblem checked a device is free
  return { ok: true, instanceId: best.host.instanceId, device, reason: `least loaded live host in ${az} (${best.load} volumes)` };
}
