/** Builders of Observed snapshots for the unit tests of the decision core (src/controller, STYLE §6). Not used in production. */
import type { AgentReport, FailoverJournal, HostRecord, ManualRequest, Placement, ServiceRecord } from '../keyspace/records.js';
import type { InstanceInfo, VolumeAttachment, VolumeInfo } from '../ec2/types.js';
import { DEFAULT_DECIDE_CONFIG, reportKey, type DecideConfig, type Observed } from '../controller/observed.js';
import { MemoryStore } from '../controller/memory.js';
import { newJournal } from '../controller/state.js';
import { FakeEc2 } from './fake-ec2-port.js';

export const VOL = 'vol-0abc12345def67890';
export const UNIT = `postgres@${VOL}`;
export const I1 = 'i-00000000000000001';
export const I2 = 'i-00000000000000002';
export const I3 = 'i-00000000000000003';
export const IB = 'i-0000000000000000b';
export const AZ = 'us-east-1a';
export const NOW = 1_000_000;

export function host(instanceId: string, over: Partial<HostRecord> = {}): HostRecord {
  return {
    instanceId, az: AZ, privateIp: '10.0.0.1', machineId: `m-${instanceId}`, agentVersion: '0.1.0', labels: {},
    leaseTtlMs: 2000, fenceMarginMs: 500, registeredAt: 0, ...over,
  };
}

export function service(over: Partial<ServiceRecord> = {}): ServiceRecord {
  return { unit: UNIT, volumeId: VOL, mountUnit: 'data-postgres.mount', mountPoint: '/data/postgres', metadataKey: 'postgres', conflictGroup: 'postgres', requiredLabels: {}, ...over };
}

export function volume(attachment?: Partial<VolumeAttachment> & { instanceId: string }, over: Partial<VolumeInfo> = {}): VolumeInfo {
  const attachments = attachment ? [{ device: '/dev/xvdf', state: 'attached' as const, ...attachment }] : [];
  return { volumeId: VOL, az: AZ, state: attachments.length > 0 ? 'in-use' : 'available', sizeGiB: 10, attachments, tags: {}, ...over };
}

export function placement(instanceId: string | null, generation = 1, over: Partial<Placement> = {}): Placement {
  return { volumeId: VOL, unit: UNIT, instanceId, device: instanceId ? '/dev/xvdf' : null, generation, updatedAt: 0, ...over };
}

export function report(instanceId: string, phase: AgentReport['phase'], generation: number): AgentReport {
  return { instanceId, volumeId: VOL, unit: UNIT, generation, phase, mountActive: phase === 'active', unitActive: phase === 'active', error: phase === 'failed' ? 'mount failed' : null, at: 0 };
}

export function request(over: Partial<ManualRequest> = {}): ManualRequest {
  return { requestId: 'req-1', unit: UNIT, volumeId: VOL, toInstanceId: null, force: false, requestedAt: 0, refusedReason: null, ...over };
}

export function journal(over: Partial<FailoverJournal> = {}): FailoverJournal {
  return { ...newJournal({ volumeId: VOL, unit: UNIT, kind: 'auto', fromInstanceId: I1, cause: 'holder-lost', note: 'test' }, NOW - 1000), ...over };
}

export interface Spec {
  hosts?: HostRecord[];
  known?: HostRecord[];
  services?: ServiceRecord[];
  placements?: Placement[];
  journals?: FailoverJournal[];
  reports?: AgentReport[];
  requests?: ManualRequest[];
  volumes?: VolumeInfo[];
  instances?: InstanceInfo[];
  config?: Partial<DecideConfig>;
  now?: number;
  graceUntil?: number | null;
  pacing?: Observed['pacing'];
}

/** EC2's view of a running instance in `az` with only its root device. */
export function instance(instanceId: string, over: Partial<InstanceInfo> = {}): InstanceInfo {
  return { instanceId, az: AZ, state: 'running', privateIp: null, devices: ['/dev/xvda'], tags: {}, ...over };
}

/**
 * A snapshot: hosts i-1 and i-2 live in us-east-1a, the postgres service, and whatever `spec` adds.
 * Every live host's instance is `running` in EC2 unless `spec.instances` says otherwise for it.
 */
export function observed(spec: Spec = {}): Observed {
  const hosts = spec.hosts ?? [host(I1), host(I2)];
  return {
    now: spec.now ?? NOW,
    config: { ...DEFAULT_DECIDE_CONFIG, ...spec.config },
    hosts: new Map(hosts.map((h) => [h.instanceId, h])),
    knownHosts: new Map([...(spec.known ?? [host(I1)]), ...hosts].map((h) => [h.instanceId, h])),
    services: new Map((spec.services ?? [service()]).map((s) => [s.unit, s])),
    placements: new Map((spec.placements ?? []).map((p) => [p.volumeId, p])),
    journals: new Map((spec.journals ?? []).map((j) => [j.volumeId, j])),
    reports: new Map((spec.reports ?? []).map((r) => [reportKey(r.instanceId, r.volumeId), r])),
    requests: new Map((spec.requests ?? []).map((r) => [r.volumeId, r])),
    volumes: new Map((spec.volumes ?? [volume({ instanceId: I1 })]).map((v) => [v.volumeId, v])),
    instances: new Map([...hosts.map((h) => instance(h.instanceId, { az: h.az })), ...(spec.instances ?? [])].map((i) => [i.instanceId, i])),
    graceUntil: spec.graceUntil ?? null,
    pacing: spec.pacing ?? null,
  };
}

/** Volume and instance ids numbered n (the loop tests' worlds). */
export const volN = (n: number): string => `vol-${n.toString(16).padStart(17, '0')}`;
export const instN = (n: number): string => `i-${n.toString(16).padStart(17, '0')}`;

/**
 * An in-memory store and EC2 port with `hosts` live hosts (instN(1)…) and `volumes` services, volume v
 * placed, attached and reported active on host ((v − 1) mod hosts) + 1: the loop tests' starting point.
 */
export function placedWorld(hosts: number, volumes: number, hostOver: Partial<HostRecord> = {}): { store: MemoryStore; ec2: FakeEc2 } {
  const store = new MemoryStore();
  const ec2 = new FakeEc2();
  for (let h = 1; h <= hosts; h += 1) {
    store.putHost(host(instN(h), hostOver));
    ec2.addInstance(instN(h), AZ);
  }
  for (let v = 1; v <= volumes; v += 1) {
    const holder = instN(((v - 1) % hosts) + 1);
    const s = service({ unit: `postgres@${volN(v)}`, volumeId: volN(v), conflictGroup: undefined });
    store.services.set(s.unit, s);
    ec2.addVolume(volN(v), AZ, holder);
    store.placements.set(volN(v), { ...placement(holder, 1), volumeId: volN(v), unit: s.unit });
    store.putReport({ ...report(holder, 'active', 1), volumeId: volN(v), unit: s.unit });
    ec2.inUse.add(volN(v));
  }
  return { store, ec2 };
}

/** Resolves once `check` holds, polling every 5 ms; throws naming `what` after `ms` (generous: a loaded machine). */
export async function eventually(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not in time: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
