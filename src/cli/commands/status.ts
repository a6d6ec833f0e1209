import type { Command } from 'commander';
import type { AgentReport } from '../../keyspace/index.js';
import type { GlobalOptions } from '../context.js';
import { formatDuration, renderTable } from '../output.js';
import { withSession } from '../session.js';
import { isInProgress, leaseTtlLeftMs, readClusterState, type ClusterState } from '../state.js';

/**
 * What a service is doing, from the current holder's report on the current placement generation:
 * `status` never says `active` unless that report says so (and that its mount and unit are up).
 */
export type ServiceState =
  | 'unplaced' // no placement yet: the controller has not placed it
  | 'released' // placed on nobody (a planned move let go of it) and no failover running
  | 'holder lost' // the holder's lease is gone: the controller fails it over
  | 'pending' // the holder has not reported on this generation yet
  | 'active'
  | 'degraded' // the report says active but its mount or unit is not
  | `failover ${string}` // a failover of the volume is running: its step
  | Exclude<AgentReport['phase'], 'active'>; // drift, failed, fenced, starting… as the holder reports it

export interface ServiceView {
  unit: string;
  volumeId: string;
  holder: string | null;
  generation: number | null;
  state: ServiceState;
  /** Why, when the state is not fine: the report's error, the blocked reason, … */
  detail: string | null;
  lastFailover: { kind: string; step: string; startedAt: number; finishedAt: number | null; error: string | null } | null;
}

/** A manual request that the controller has not started (it deletes the request when it does). */
export interface RequestView {
  unit: string;
  volumeId: string;
  requestId: string;
  target: string | null;
  force: boolean;
  ageMs: number;
  /** Wall-clock ms after which the controller drops it; null for requests written before deadlines. */
  deadline: number | null;
  state: 'pending' | 'expired' | 'refused';
  refusedReason: string | null;
}

export interface StatusView {
  leader: string | null;
  revision: string;
  hosts: Array<{ instanceId: string; az: string; privateIp: string; leaseAgeMs: number; leaseTtlLeftMs: number | null; volumes: string[] }>;
  services: ServiceView[];
  failovers: Array<{ volumeId: string; unit: string; kind: string; step: string; from: string | null; to: string | null; stepAgeMs: number; blockedReason: string | null }>;
  requests: RequestView[];
}

/** Pure: a service's state and its reason, from one snapshot (see ServiceState). */
export function serviceState(state: ClusterState, volumeId: string): { state: ServiceState; detail: string | null } {
  const journal = state.journals.get(volumeId)?.value;
  if (journal && isInProgress(journal)) return { state: `failover ${journal.step}`, detail: journal.blockedReason ?? journal.error };
  const placement = state.placements.get(volumeId)?.value;
  if (!placement) return { state: 'unplaced', detail: null };
  const holder = placement.instanceId;
  if (holder === null) return { state: 'released', detail: null };
  if (!state.hosts.has(holder)) return { state: 'holder lost', detail: `${holder} has no agent lease in etcd` };
  const report = state.reports.get(`${holder}/${volumeId}`)?.value;
  if (!report || report.generation !== placement.generation) {
    return { state: 'pending', detail: `waiting for ${holder} to report on generation ${placement.generation}` };
  }
  if (report.phase !== 'active') return { state: report.phase, detail: report.error };
  if (!report.mountActive || !report.unitActive) {
    const down = [report.mountActive ? null : 'mount', report.unitActive ? null : 'unit'].filter((x) => x !== null);
    return { state: 'degraded', detail: report.error ?? `reported active, but its ${down.join(' and ')} ${down.length > 1 ? 'are' : 'is'} not` };
  }
  return { state: 'active', detail: null };
}

/** Pure: one snapshot of etcd (plus lease TTLs) → what `status` prints. */
export function buildStatus(state: ClusterState, ttlLeft: Map<string, number | null>, now: number): StatusView {
  const placements = [...state.placements.values()].map((p) => p.value);
  const hosts = [...state.hosts.values()]
    .map(({ value }) => ({
      instanceId: value.instanceId,
      az: value.az,
      privateIp: value.privateIp,
      leaseAgeMs: Math.max(0, now - value.registeredAt),
      leaseTtlLeftMs: ttlLeft.get(value.instanceId) ?? null,
      volumes: placements.filter((p) => p.instanceId === value.instanceId).map((p) => p.volumeId).sort(),
    }))
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  const services = [...state.services.values()]
    .map(({ value }): ServiceView => {
      const placement = state.placements.get(value.volumeId)?.value;
      const journal = state.journals.get(value.volumeId)?.value;
      return {
        unit: value.unit,
        volumeId: value.volumeId,
        holder: placement?.instanceId ?? null,
        generation: placement?.generation ?? null,
        ...serviceState(state, value.volumeId),
        lastFailover: journal ? { kind: journal.kind, step: journal.step, startedAt: journal.startedAt, finishedAt: journal.finishedAt, error: journal.error } : null,
      };
    })
    .sort((a, b) => a.unit.localeCompare(b.unit));
  const failovers = [...state.journals.values()]
    .map((j) => j.value)
    .filter((j) => isInProgress(j))
    .map((j) => ({ volumeId: j.volumeId, unit: j.unit, kind: j.kind, step: j.step, from: j.fromInstanceId, to: j.toInstanceId, stepAgeMs: Math.max(0, now - j.stepStartedAt), blockedReason: j.blockedReason }));
  const requests = [...state.requests.values()]
    .map(({ value: r }): RequestView => {
      const deadline = r.deadline ?? null;
      const requestState = r.refusedReason !== null ? 'refused' : deadline !== null && now > deadline ? 'expired' : 'pending';
      return { unit: r.unit, volumeId: r.volumeId, requestId: r.requestId, target: r.toInstanceId, force: r.force, ageMs: Math.max(0, now - r.requestedAt), deadline, state: requestState, refusedReason: r.refusedReason };
    })
    .sort((a, b) => a.unit.localeCompare(b.unit));
  return { leader: state.leader, revision: state.revision, hosts, services, failovers, requests };
}

export function renderStatus(view: StatusView, now: number): string {
  const parts = [`leader: ${view.leader ?? '(none: no controller is leading)'}`, ''];
  parts.push(
    renderTable(
      ['HOST', 'AZ', 'IP', 'LEASE AGE', 'TTL LEFT', 'VOLUMES'],
      view.hosts.map((h) => [h.instanceId, h.az, h.privateIp, formatDuration(h.leaseAgeMs), h.leaseTtlLeftMs === null ? '-' : formatDuration(h.leaseTtlLeftMs), h.volumes.join(',') || '-']),
    ),
    '',
  );
  parts.push(
    renderTable(
      ['SERVICE', 'VOLUME', 'HOLDER', 'STATE', 'LAST FAILOVER'],
      view.services.map((s) => [
        s.unit,
        s.volumeId,
        s.holder ?? '-',
        s.detail ? `${s.state} (${s.detail})` : s.state,
        s.lastFailover ? `${s.lastFailover.kind} ${s.lastFailover.step} ${formatDuration(now - (s.lastFailover.finishedAt ?? s.lastFailover.startedAt))} ago` : '-',
      ]),
    ),
  );
  if (view.failovers.length) {
    parts.push(
      '',
      renderTable(
        ['FAILOVER', 'UNIT', 'KIND', 'STEP', 'FROM', 'TO', 'IN STEP'],
        view.failovers.map((f) => [f.volumeId, f.unit, f.kind, f.blockedReason ? `${f.step} (${f.blockedReason})` : f.step, f.from ?? '-', f.to ?? '-', formatDuration(f.stepAgeMs)]),
      ),
    );
  } else {
    parts.push('', 'no failovers in progress');
  }
  if (view.requests.length) {
    parts.push(
      '',
      renderTable(
        ['REQUEST', 'UNIT', 'TARGET', 'AGE', 'DEADLINE', 'STATE'],
        view.requests.map((r) => [
          r.requestId,
          r.unit,
          r.target ?? '(controller chooses)',
          formatDuration(r.ageMs),
          r.deadline === null ? '-' : r.deadline >= now ? `in ${formatDuration(r.deadline - now)}` : `passed ${formatDuration(now - r.deadline)} ago`,
          r.state === 'refused' ? `refused: ${r.refusedReason ?? ''}` : r.state === 'expired' ? 'expired (the controller drops it)' : 'pending (not started)',
        ]),
      ),
    );
  } else {
    parts.push('no pending requests');
  }
  return parts.join('\n');
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('hosts (AZ, lease age, TTL left, volumes), services (holder, state, last failover), failovers in progress, pending requests, leader')
    .option('--json', 'print JSON (for scripts)')
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { json?: boolean }>();
      await withSession(opts, async ({ etcd, ks, io }) => {
        const state = await readClusterState(etcd, ks);
        const ttlLeft = new Map<string, number | null>();
        await Promise.all([...state.hosts.values()].map(async (h) => ttlLeft.set(h.value.instanceId, await leaseTtlLeftMs(etcd, h.lease))));
        const now = Date.now();
        const view = buildStatus(state, ttlLeft, now);
        io.out(opts.json ? JSON.stringify(view, null, 2) : renderStatus(view, now));
      });
    });
}
