import type { Command } from 'commander';
import type { EventRecord, FailoverJournal } from '../../keyspace/index.js';
import type { GlobalOptions } from '../context.js';
import { UsageError } from '../errors.js';
import { renderTable } from '../output.js';
import { withSession } from '../session.js';
import { readClusterState } from '../state.js';
import { parseUnitName } from './service.js';

/** One line of `failover history`: what happened to which volume, when, where and why. */
export interface HistoryEntry {
  at: number;
  unit: string | null;
  volumeId: string;
  /** The failover step or decision kind (detected, fencing, detaching, attaching, done, blocked, failed, refuse-request, …). */
  step: string;
  instanceId: string | null;
  message: string;
  /** `event` from events/ (bounded: the controller keeps the newest few hundred); `journal` from a failover's own history. */
  source: 'event' | 'journal';
}

const UNITS_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `1h`, `2d`, or an ISO date → epoch ms (a lower bound on event times). */
export function parseSince(raw: string, now: number): number {
  const rel = /^(\d+(?:\.\d+)?)([smhd])$/.exec(raw.trim());
  if (rel) return now - Number(rel[1]) * (UNITS_MS[rel[2] ?? 's'] ?? 1_000);
  const abs = Date.parse(raw);
  if (Number.isFinite(abs)) return abs;
  throw new UsageError(`bad --since "${raw.slice(0, 40)}": expected a duration like 90s, 30m, 1h, 2d or an ISO date`);
}

/**
 * Pure: events plus the journals' own step history, oldest first. A journal step that an event already
 * records (same volume and step within 2 s) is not repeated; journals matter when events were pruned.
 */
export function mergeHistory(events: EventRecord[], journals: FailoverJournal[], filter: { volumeId?: string; since: number }): HistoryEntry[] {
  const out: HistoryEntry[] = events.map((e) => ({ at: e.at, unit: e.unit ?? null, volumeId: e.volumeId, step: e.step, instanceId: e.instanceId, message: e.message, source: 'event' }));
  for (const j of journals) {
    for (const h of j.history) {
      const dup = events.some((e) => e.volumeId === j.volumeId && e.step === h.step && Math.abs(e.at - h.at) <= 2_000);
      if (dup) continue;
      const instanceId = h.step === 'attaching' || h.step === 'starting' || h.step === 'done' ? j.toInstanceId : j.fromInstanceId;
      out.push({ at: h.at, unit: j.unit, volumeId: j.volumeId, step: h.step, instanceId, message: h.note ?? `${j.kind} failover ${h.step}`, source: 'journal' });
    }
  }
  return out
    .filter((e) => e.at >= filter.since && (filter.volumeId === undefined || e.volumeId === filter.volumeId))
    .sort((a, b) => a.at - b.at || a.volumeId.localeCompare(b.volumeId));
}

export function renderHistory(entries: HistoryEntry[]): string {
  if (entries.length === 0) return 'no events in this window';
  return renderTable(
    ['TIME', 'UNIT', 'STEP', 'HOST', 'WHAT'],
    entries.map((e) => [new Date(e.at).toISOString().replace('T', ' ').slice(0, 19), e.unit ?? e.volumeId, e.step, e.instanceId ?? '-', e.message]),
  );
}

export function registerHistoryCommand(program: Command): void {
  program
    .command('history [unit]')
    .description('what happened: failovers and their steps (detected, fenced, detached, attached, active, refused, failed) with times, hosts and reasons, from events/ and the failover journals')
    .option('--since <when>', 'only events after this: 90s, 30m, 1h, 2d or an ISO date', '24h')
    .option('--json', 'print JSON (for scripts)')
    .action(async (unit: string | undefined, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { since: string; json?: boolean }>();
      const volumeId = unit === undefined ? undefined : parseUnitName(unit).volumeId;
      const since = parseSince(opts.since, Date.now());
      await withSession(opts, async ({ etcd, ks, io }) => {
        // One read at one revision: the journals and events never disagree about a step in between.
        const state = await readClusterState(etcd, ks);
        const events = state.events ?? [];
        const entries = mergeHistory(events, [...state.journals.values()].map((j) => j.value), { volumeId, since });
        io.out(opts.json ? JSON.stringify(entries, null, 2) : renderHistory(entries));
      });
    });
}
