import { Option, type Command } from 'commander';
import type { AgentReport, EventRecord } from '../../keyspace/index.js';
import type { GlobalOptions } from '../context.js';
import { UsageError } from '../errors.js';
import { formatDuration, renderTable } from '../output.js';
import { withSession } from '../session.js';
import { isInProgress, leaseTtlLeftMs, readClusterState, type ClusterState } from '../state.js';
import { autoRestoreStatus } from '../../controller/auto-restore.js';
import { renderOverview, type SnapshotOverview } from '../../snapshot/index.js';
import { lookupSnapshotOverviews } from './snapshot.js';

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
  | 'blocked' // a failover waits for a host that can take the volume: the reason says why
  | 'degraded' // the report says active but its mount or unit is not
  | `failover ${string}` // a failover of the volume is running: its step
  | Exclude<AgentReport['phase'], 'active'>; // drift, failed, fenced, starting… as the holder reports it

/** Events newer than this may name an offline host (older ones are history, not status). */
const OFFLINE_EVENT_WINDOW_MS = 24 * 3_600_000;

export interface ServiceView {
  unit: string;
  volumeId: string;
  holder: string | null;
  generation: number | null;
  state: ServiceState;
  /** Why, when the state is not fine: the report's error, the blocked reason, … */
  detail: string | null;
  lastFailover: { kind: string; step: string; startedAt: number; finishedAt: number | null; error: string | null } | null;
  /** While a failover runs: how long it has been at its current step (`failover detaching for 4s`). */
  inStepMs?: number;
  /** `-o wide|json` only (it asks EC2): the snapshot schedule, last completed snapshot, next due. */
  snapshot?: SnapshotOverview;  /** controller.autoRestore: a restored service's origin, or a tracked one's wait and time left. */
  autoRestore?: string;
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
  /** Hosts that were seen (a placement, a journal or a recent event names them) and have no lease now. */
  offline: OfflineHost[];
}

export interface OfflineHost {
  instanceId: string;
  /** When the controller found it gone (its failover's `detected`), null when nothing recorded it. */
  since: number | null;
  /** What still names it: `holds vol-…`, `source of a failover of vol-…`, `named by events`. */
  why: string;
}

/**
 * Pure: hosts seen and gone. etcd keeps no record of a host once its lease expires (by design: the lease
 * IS the liveness), so a host is known from what still names it. Like fleetctl/crm_mon, show it `offline`
 * instead of letting it vanish.
 */
export function offlineHosts(state: ClusterState, events: EventRecord[]): OfflineHost[] {
  const seen = new Map<string, { since: number | null; why: Set<string> }>();
  const note = (id: string | null, why: string, since: number | null = null): void => {
    if (id === null || state.hosts.has(id)) return;
    const entry = seen.get(id) ?? { since: null, why: new Set<string>() };
    entry.why.add(why);
    if (since !== null && (entry.since === null || since > entry.since)) entry.since = since;
    seen.set(id, entry);
  };
  for (const { value: p } of state.placements.values()) note(p.instanceId, `holds ${p.volumeId}`);
  for (const { value: j } of state.journals.values()) {
    // An auto failover starts when the holder's lease is gone: its start is when the host went offline.
    note(j.fromInstanceId, `source of a failover of ${j.volumeId}`, j.kind === 'auto' ? j.startedAt : null);
  }
  for (const e of events) note(e.instanceId, 'named by events', e.step === 'detected' ? e.at : null);
  return [...seen.entries()]
    .map(([instanceId, { since, why }]) => ({ instanceId, since, why: [...why].join(', ') }))
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
}

/** Pure: a service's state and its reason, from one snapshot (see ServiceState). */
export function serviceState(state: ClusterState, volumeId: string): { state: ServiceState; detail: string | null } {
  const journal = state.journals.get(volumeId)?.value;
  if (journal?.step === 'blocked') return { state: 'blocked', detail: journal.blockedReason ?? 'no eligible host (no reason recorded)' };
  if (journal && isInProgress(journal)) return { state: `failover ${journal.step}`, detail: journal.blockedReason ?? journal.error };
  const placement = state.placements.get(volumeId)?.value;
  if (!placement) {
    // Never a bare `unplaced`: say what it waits for (a leader, or the controller's next look).
    return { state: 'unplaced', detail: state.leader === null ? 'no controller is leading, so nothing places it' : 'the controller has not placed it yet' };
  }
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
export function buildStatus(state: ClusterState, ttlLeft: Map<string, number | null>, now: number, events: EventRecord[] = []): StatusView {
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
        ...(journal && isInProgress(journal) ? { inStepMs: Math.max(0, now - journal.stepStartedAt) } : {}),
        ...autoRestoreField(state, value.volumeId, now),
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
  return { leader: state.leader, revision: state.revision, hosts, services, failovers, requests, offline: offlineHosts(state, events) };
}

function autoRestoreField(state: ClusterState, volumeId: string, now: number): { autoRestore?: string } {
  const note = autoRestoreStatus([...state.journals.values()].map((j) => j.value), volumeId, now);
  return note === null ? {} : { autoRestore: note };
}

/** `active`, `blocked (reason)`, `failover detaching for 4s`, `drift (device gone)`. */
function stateText(s: ServiceView): string {
  const state = s.inStepMs !== undefined && s.state !== 'blocked' ? `${s.state} for ${formatDuration(s.inStepMs)}` : s.state;
  return s.detail ? `${state} (${s.detail})` : state;
}

export function renderStatus(view: StatusView, now: number, opts: { wide?: boolean } = {}): string {
  const parts = [`leader: ${view.leader ?? '(none: no controller is leading)'}`, ''];
  parts.push(
    renderTable(
      ['HOST', 'AZ', 'IP', 'LEASE AGE', 'TTL LEFT', 'VOLUMES'],
      view.hosts.map((h) => [h.instanceId, h.az, h.privateIp, formatDuration(h.leaseAgeMs), h.leaseTtlLeftMs === null ? '-' : formatDuration(h.leaseTtlLeftMs), h.volumes.join(',') || '-']),
    ),
    '',
  );
  if (view.offline.length) {
    parts.push(
      renderTable(
        ['OFFLINE HOST', 'SINCE', 'STILL NAMED BY'],
        view.offline.map((h) => [h.instanceId, h.since === null ? 'offline (since unknown)' : `offline ${formatDuration(now - h.since)} (since ${new Date(h.since).toISOString().slice(0, 19)}Z)`, h.why]),
      ),
      '',
    );
  }
  const lastFailover = (s: ServiceView): string =>
    s.lastFailover ? `${s.lastFailover.kind} ${s.lastFailover.step} ${formatDuration(now - (s.lastFailover.finishedAt ?? s.lastFailover.startedAt))} ago${opts.wide && s.lastFailover.error ? ` (${s.lastFailover.error})` : ''}` : '-';
  parts.push(
    opts.wide
      ? renderTable(
          ['SERVICE', 'VOLUME', 'HOLDER', 'GEN', 'STATE', 'LAST FAILOVER', 'SNAPSHOTS'],
          view.services.map((s) => [s.unit, s.volumeId, s.holder ?? '-', s.generation === null ? '-' : String(s.generation), stateText(s), lastFailover(s), s.snapshot ? renderOverview(s.snapshot, now, formatDuration) : '-']),
        )
      : renderTable(
          ['SERVICE', 'VOLUME', 'HOLDER', 'STATE', 'LAST FAILOVER'],
          view.services.map((s) => [s.unit, s.volumeId, s.holder ?? '-', stateText(s), lastFailover(s)]),
        ),
  );
  const restores = view.services.filter((s) => s.autoRestore !== undefined);
  if (restores.length) parts.push('', renderTable(['SERVICE', 'AUTO-RESTORE'], restores.map((s) => [s.unit, s.autoRestore ?? ''])));
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

type StatusFormat = 'table' | 'wide' | 'json';

function parseFormat(opts: { json?: boolean; output?: string }): StatusFormat {
  if (opts.json) return 'json';
  const o = opts.output ?? 'table';
  if (o === 'table' || o === 'wide' || o === 'json') return o;
  throw new UsageError(`bad -o "${o.slice(0, 20)}": expected json or wide`);
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('hosts (AZ, lease age, TTL left, volumes; offline ones and since when), services (holder, state with its reason, last failover), failovers in progress, pending requests, leader')
    .option('--json', 'print JSON (for scripts; same as -o json)')
    .option('-o, --output <format>', 'json or wide (more columns)')
    .option('-w, --watch [seconds]', 'refresh every few seconds (default 2) until Ctrl-C')
    .addOption(new Option('--count <n>', 'stop after n refreshes (with --watch)').hideHelp())
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { json?: boolean; output?: string; watch?: string | boolean; count?: string }>();
      const format = parseFormat(opts);
      const everyMs = opts.watch === undefined ? null : opts.watch === true ? 2_000 : Number(opts.watch) * 1000;
      if (everyMs !== null && (!Number.isFinite(everyMs) || everyMs < 200)) throw new UsageError(`bad --watch "${String(opts.watch)}": expected seconds >= 0.2`);
      const count = opts.count === undefined ? Infinity : Number(opts.count);
      await withSession(opts, async ({ etcd, ks, io, config }) => {
        let stop = false;
        const onSigint = (): void => void (stop = true);
        if (everyMs !== null) process.once('SIGINT', onSigint);
        try {
          for (let i = 0; ; i++) {
            const state = await readClusterState(etcd, ks);
            const ttlLeft = new Map<string, number | null>();
            await Promise.all([...state.hosts.values()].map(async (h) => ttlLeft.set(h.value.instanceId, await leaseTtlLeftMs(etcd, h.lease))));
            const now = Date.now();
            const recent = (state.events ?? []).filter((e) => now - e.at < OFFLINE_EVENT_WINDOW_MS);
            const view = buildStatus(state, ttlLeft, now, recent);
            if (format !== 'table') {
              // Snapshots live in EC2, not etcd: asked (bounded, never failing status) only for wide and json.
              const overviews = await lookupSnapshotOverviews(config.aws, [...state.services.values()].map((s) => s.value), now);
              for (const s of view.services) {
                const o = overviews.get(s.unit);
                if (o) s.snapshot = o;
              }
            }
            const text = format === 'json' ? JSON.stringify(view, null, 2) : renderStatus(view, now, { wide: format === 'wide' });
            if (everyMs === null) {
              io.out(text);
              return;
            }
            // Like `watch`: clear a terminal; append with a time header when piped (logs, tests).
            if (process.stdout.isTTY && format !== 'json') io.out('\x1b[2J\x1b[H' + `every ${everyMs / 1000}s  ${new Date(now).toISOString()}\n\n${text}`);
            else io.out(format === 'json' ? JSON.stringify({ at: now, ...view }) : `--- ${new Date(now).toISOString()}\n${text}`);
            if (stop || i + 1 >= count) return;
            const until = Date.now() + everyMs;
            while (!stop && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(200, until - Date.now())));
            if (stop) return;
          }
        } finally {
          process.removeListener('SIGINT', onSigint);
        }
      });
    });
}
