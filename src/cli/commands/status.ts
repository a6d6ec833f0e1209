import type { Command } from 'commander';
import type { GlobalOptions } from '../context.js';
import { formatDuration, renderTable } from '../output.js';
import { withSession } from '../session.js';
import { isInProgress, leaseTtlLeftMs, readClusterState, type ClusterState } from '../state.js';

export interface StatusView {
  leader: string | null;
  revision: string;
  hosts: Array<{ instanceId: string; az: string; privateIp: string; leaseAgeMs: number; leaseTtlLeftMs: number | null; volumes: string[] }>;
  services: Array<{
    unit: string;
    volumeId: string;
    holder: string | null;
    generation: number | null;
    state: string;
    lastFailover: { kind: string; step: string; startedAt: number; finishedAt: number | null; error: string | null } | null;
  }>;
  failovers: Array<{ volumeId: string; unit: string; kind: string; step: string; from: string | null; to: string | null; stepAgeMs: number; blockedReason: string | null }>;
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
    .map(({ value }) => {
      const placement = state.placements.get(value.volumeId)?.value;
      const holder = placement?.instanceId ?? null;
      const report = holder ? state.reports.get(`${holder}/${value.volumeId}`)?.value : undefined;
      const journal = state.journals.get(value.volumeId)?.value;
      let serviceState = 'unplaced';
      if (placement && holder === null) serviceState = 'released';
      if (holder) {
        if (!state.hosts.has(holder)) serviceState = 'holder-dead';
        else if (!report || report.generation !== placement?.generation) serviceState = 'pending';
        else serviceState = report.phase;
      }
      return {
        unit: value.unit,
        volumeId: value.volumeId,
        holder,
        generation: placement?.generation ?? null,
        state: serviceState,
        lastFailover: journal ? { kind: journal.kind, step: journal.step, startedAt: journal.startedAt, finishedAt: journal.finishedAt, error: journal.error } : null,
      };
    })
    .sort((a, b) => a.unit.localeCompare(b.unit));
  const failovers = [...state.journals.values()]
    .map((j) => j.value)
    .filter((j) => isInProgress(j))
    .map((j) => ({ volumeId: j.volumeId, unit: j.unit, kind: j.kind, step: j.step, from: j.fromInstanceId, to: j.toInstanceId, stepAgeMs: Math.max(0, now - j.stepStartedAt), blockedReason: j.blockedReason }));
  return { leader: state.leader, revision: state.revision, hosts, services, failovers };
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
        s.state,
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
  return parts.join('\n');
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('hosts (AZ, lease age, TTL left, volumes), services (holder, state, last failover), failovers in progress, leader')
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
