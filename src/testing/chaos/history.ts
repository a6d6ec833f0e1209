/**
 * The history of one chaos seed: one JSON object per line, every line with `at` (ms since the epoch,
 * this machine's clock, which every process of the world shares) and `type`. The runner records
 * faults and operator actions as it makes them, a watch on the world's etcd prefix records journals,
 * placements, host liveness, agent reports, requests, services and the election; the agents' ledger
 * gives unit changes and fences; the EC2 simulator gives attachment changes; the controllers' EC2
 * proxies give every EC2 request a controller sent, with the time it reached EC2.
 */
import { readFileSync } from 'node:fs';

export interface WorldEvent {
  at: number;
  type: 'world';
  seed: number;
  leaseTtlMs: number;
  electionTtlMs: number;
  /** The checker's bound on recovery and downtime (TTL + EC2 floor + slack), printed with violations. */
  boundMs: number;
  /** After SIGCONT a frozen agent has this long to notice and stop what it no longer owns. */
  thawGraceMs: number;
  /** How long a unit may run on a host whose volume EC2 no longer shows attached there (re-verify bound). */
  driftGraceMs: number;
  hosts: { id: string; az: string }[];
  controllers: string[];
  services: { unit: string; volumeId: string; az: string; registered: boolean; mountUnit?: string }[];
}

/** What a fault does to its target while injected. */
export type Effect = 'dead' | 'frozen' | 'net' | 'etcd-outage' | 'ec2' | 'oob';

export interface FaultEvent {
  at: number;
  type: 'fault';
  phase: 'inject' | 'heal';
  /** Pairs an inject with its heal. */
  id: number;
  /** The primitive done (e.g. `sigstop`, `proxy-blackhole`, `ec2-stuck-detach`). */
  kind: string;
  /** The schedule step it belongs to (e.g. `freeze-leader-before-detach`). */
  of: string;
  /** Instance ids, controller ids, `etcd<N>`, `etcd` (all members), volume ids, or `*`. */
  targets: string[];
  effect: Effect;
  detail?: Record<string, unknown>;
}

export interface Ec2RequestEvent {
  at: number;
  type: 'ec2-request';
  caller: string;
  action: string;
  volumeId?: string;
  instanceId?: string;
  force?: boolean;
}

export interface Ec2ChangeEvent {
  at: number;
  type: 'ec2-change';
  volumeId: string;
  instanceId: string;
  state: string;
  forced?: boolean;
  /** Present when the simulator records who made the request and in which leadership term. */
  caller?: string;
  term?: string | number;
}

/** A mutating request as the EC2 endpoint logged it (newer simulators): caller and term from the gate's headers. */
export interface Ec2SimRequestEvent {
  at: number;
  type: 'ec2-sim-request';
  action: string;
  volumeId: string | null;
  instanceId: string | null;
  force: boolean;
  caller: string | null;
  term: string | null;
  outcome: string;
}

export interface UnitEvent {
  at: number;
  type: 'unit';
  host: string;
  unit: string;
  active: boolean;
}

/** A mount unit's state change on a host, from the agents' ledger (fixtures that record mounts). */
export interface MountEvent {
  at: number;
  type: 'mount';
  host: string;
  mountUnit: string;
  mounted: boolean;
}

export interface FenceEvent {
  at: number;
  type: 'fence';
  host: string;
  volumeIds: string[];
  /** The agent's reason (the registrar's and its peers' verdict), when the fixture recorded one. */
  reason?: string;
}

export interface JournalEvent {
  at: number;
  type: 'journal';
  volumeId: string;
  unit: string;
  kind: 'auto' | 'manual';
  step: string;
  from: string | null;
  to: string | null;
  requestId: string | null;
  startedAt: number;
  cause?: string;
  blockedReason?: string | null;
  error?: string | null;
}

export interface PlacementEvent {
  at: number;
  type: 'placement';
  volumeId: string;
  instanceId: string | null;
  generation: number;
}

export interface HostEvent {
  at: number;
  type: 'host';
  host: string;
  up: boolean;
}

export interface StatusEvent {
  at: number;
  type: 'status';
  host: string;
  volumeId: string;
  present: boolean;
  phase?: string;
  mountActive?: boolean;
  unitActive?: boolean;
  generation?: number;
}

export interface RequestEvent {
  at: number;
  type: 'request';
  volumeId: string;
  present: boolean;
  requestId?: string;
  requestedAt?: number;
  deadline?: number;
  toInstanceId?: string | null;
  force?: boolean;
  refusedReason?: string | null;
}

export interface ServiceEvent {
  at: number;
  type: 'service';
  unit: string;
  present: boolean;
}

export interface ElectionEvent {
  at: number;
  type: 'election';
  key: string;
  candidate: string;
  createRevision: string;
  present: boolean;
}

export interface OperatorEvent {
  at: number;
  type: 'operator';
  phase: 'start' | 'end';
  id: number;
  action: 'move' | 'cancel' | 'snapshot' | 'service-add' | 'service-remove';
  unit: string;
  args: string[];
  /** Exit code (end only). */
  code?: number | null;
  output?: string;
  /** move: the CLI's --timeout in ms. */
  timeoutMs?: number;
}

export interface PhaseEvent {
  at: number;
  type: 'phase';
  name: 'faults-start' | 'healed' | 'end';
  note?: string;
}

export type HistoryEvent =
  | WorldEvent
  | FaultEvent
  | Ec2RequestEvent
  | Ec2ChangeEvent
  | Ec2SimRequestEvent
  | UnitEvent
  | MountEvent
  | FenceEvent
  | JournalEvent
  | PlacementEvent
  | HostEvent
  | StatusEvent
  | RequestEvent
  | ServiceEvent
  | ElectionEvent
  | OperatorEvent
  | PhaseEvent;

/** Stable order: by time, then by the order recorded (sources are merged, so ties keep their source order). */
export function sortHistory(events: HistoryEvent[]): HistoryEvent[] {
  return events.map((e, i) => ({ e, i })).sort((a, b) => a.e.at - b.e.at || a.i - b.i).map((x) => x.e);
}

export function toJsonl(events: readonly HistoryEvent[]): string {
  return events.map((e) => JSON.stringify(e)).join('\n') + '\n';
}

export function parseHistory(text: string): HistoryEvent[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as HistoryEvent);
}

export function readHistory(path: string): HistoryEvent[] {
  return parseHistory(readFileSync(path, 'utf8'));
}
