import type { AgentReport, EventRecord, FailoverJournal } from '../keyspace/index.js';
import type { HistoryEntry } from '../sim/ec2/index.js';
import type { MetadataChange } from '../sim/fleet/index.js';

/**
 * The demo's timeline: what the controller journaled and announced (journal/, events/), what the
 * agents reported (status/), what EC2 did to the attachment (the simulator's history) and fleet metadata
 * changes (the fleet stand-in's change log), merged into
 * one list and formatted relative to the moment the host was killed. Everything here is pure so the
 * formatting is unit-tested; `follow.ts` feeds it from etcd.
 */
export type TimelineSource = 'demo' | 'journal' | 'ctrl' | 'agent' | 'ec2' | 'fleet';

export interface TimelineEntry {
  at: number;
  source: TimelineSource;
  volumeId: string;
  /** The host the line is about (the old holder, the target, the reporting agent). */
  instanceId: string | null;
  /** Short label: `detected`, `detaching`, `agent active`, `ec2 attached`, … */
  what: string;
  detail?: string;
}

/** A controller event and a journal step this close together describe the same transition. */
const SAME_TRANSITION_MS = 2_000;

const STEP_HOST: Record<string, 'from' | 'to'> = {
  detected: 'from',
  fencing: 'from',
  releasing: 'from',
  detaching: 'from',
  attaching: 'to',
  starting: 'to',
  done: 'to',
  blocked: 'to',
  failed: 'to',
};

export function fromJournal(journal: FailoverJournal): TimelineEntry[] {
  return journal.history.map((h) => ({
    at: h.at,
    source: 'journal',
    volumeId: journal.volumeId,
    instanceId: STEP_HOST[h.step] === 'from' ? journal.fromInstanceId : journal.toInstanceId,
    what: h.step,
    ...(h.note !== undefined ? { detail: h.note } : {}),
  }));
}

export function fromEvent(event: EventRecord): TimelineEntry {
  return { at: event.at, source: 'ctrl', volumeId: event.volumeId, instanceId: event.instanceId, what: event.step, detail: event.message };
}

export function fromReport(report: AgentReport): TimelineEntry {
  const flags = `mount ${report.mountActive ? 'active' : 'inactive'}, unit ${report.unitActive ? 'active' : 'inactive'}`;
  return {
    at: report.at,
    source: 'agent',
    volumeId: report.volumeId,
    instanceId: report.instanceId,
    what: report.phase,
    detail: `generation ${report.generation}: ${flags}${report.error ? `; error: ${report.error}` : ''}`,
  };
}

export function fromAttachment(entry: HistoryEntry): TimelineEntry {
  return {
    at: entry.at,
    source: 'ec2',
    volumeId: entry.volumeId,
    instanceId: entry.instanceId,
    what: entry.state,
    detail: `${entry.device}${entry.forced ? ' (forced)' : ''}`,
  };
}

/**
 * A fleet metadata change. `instanceId` is the host of that machine id (the caller knows the mapping);
 * `volumeId` is the value set, or the one the key held before a removal when known.
 */
export function fromMetadataChange(change: MetadataChange, instanceId: string | null, volumeId: string): TimelineEntry {
  const what = change.op === 'remove' ? 'metadata drop' : 'metadata set';
  const detail = change.op === 'remove' ? `${change.key} (machine ${change.machineId})` : `${change.key}=${change.value ?? ''} (machine ${change.machineId})`;
  return { at: change.at, source: 'fleet', volumeId, instanceId, what, detail };
}

/** Identity of an entry, so a follower that re-reads a whole journal prints each step once. */
export function entryKey(e: TimelineEntry): string {
  return `${e.source}|${e.volumeId}|${e.instanceId ?? '-'}|${e.what}|${e.at}`;
}

/**
 * Whether `e` is a controller event that only echoes a journal step among `others`: every journal
 * write comes with an event for the step it entered, and printing both says the same thing twice.
 * Events for actions that are not steps (`attach`, `detach`, …) are never echoes.
 */
export function isEchoOfJournal(e: TimelineEntry, others: readonly TimelineEntry[]): boolean {
  return e.source === 'ctrl' && others.some((j) => j.source === 'journal' && j.volumeId === e.volumeId && j.what === e.what && Math.abs(j.at - e.at) <= SAME_TRANSITION_MS);
}

/** Sorted by time, duplicates removed, and controller events that echo a journal step dropped. */
export function mergeEntries(entries: readonly TimelineEntry[]): TimelineEntry[] {
  const unique = new Map<string, TimelineEntry>();
  for (const e of entries) unique.set(entryKey(e), e);
  const all = [...unique.values()];
  const kept = all.filter((e) => !isEchoOfJournal(e, all));
  // Stable for equal times: the input order (arrival order) breaks ties.
  return kept.map((e, i) => ({ e, i })).sort((a, b) => a.e.at - b.e.at || a.i - b.i).map(({ e }) => e);
}

/** `+12.345s`, `-0.120s` (before the reference), always with a sign so columns line up. */
export function formatOffset(at: number, t0: number): string {
  const ms = at - t0;
  const sign = ms < 0 ? '-' : '+';
  return `${sign}${(Math.abs(ms) / 1000).toFixed(3)}s`;
}

/** `host-b (i-0abc…)`, or the bare id when the host has no demo name. */
export function hostLabel(instanceId: string | null, names: ReadonlyMap<string, string>): string {
  if (instanceId === null) return '-';
  const name = names.get(instanceId);
  return name === undefined ? instanceId : `${name} (${instanceId})`;
}

/** One aligned line: offset, source, label, host, detail. */
export function formatEntry(e: TimelineEntry, t0: number, names: ReadonlyMap<string, string> = new Map()): string {
  const offset = formatOffset(e.at, t0).padStart(10);
  const detail = e.detail ? `  ${e.detail}` : '';
  return `${offset}  ${e.source.padEnd(7)} ${e.what.padEnd(15)} ${hostLabel(e.instanceId, names)}${detail}`;
}

export function formatTimeline(entries: readonly TimelineEntry[], t0: number, names: ReadonlyMap<string, string> = new Map()): string[] {
  return mergeEntries(entries).map((e) => formatEntry(e, t0, names));
}

export interface FailoverMilestones {
  detectedMs: number | null;
  /** The controller's fencing step (the dead host's self-fence deadline passed, metadata dropped). */
  fencedMs: number | null;
  detachedMs: number | null;
  attachedMs: number | null;
  mountedMs: number | null;
  activeMs: number | null;
  activeOn: string | null;
}

/**
 * Offsets from `t0` (the kill) of the first time each milestone was seen after it: detection and
 * fencing from the controller, detach/attach from EC2, mounted (the agent moved past `mounting`) and
 * active from the new holder's report. `newHolder` excludes the dead host's stale reports.
 */
export function milestones(entries: readonly TimelineEntry[], t0: number, deadHost: string): FailoverMilestones {
  const after = mergeEntries(entries).filter((e) => e.at >= t0);
  const first = (pred: (e: TimelineEntry) => boolean): TimelineEntry | undefined => after.find(pred);
  const off = (e: TimelineEntry | undefined): number | null => (e === undefined ? null : e.at - t0);
  const detected = first((e) => (e.source === 'ctrl' || e.source === 'journal') && e.what === 'detected');
  const fenced = first((e) => (e.source === 'ctrl' || e.source === 'journal') && e.what === 'fencing');
  const detached = first((e) => e.source === 'ec2' && e.what === 'detached' && e.instanceId === deadHost);
  const attached = first((e) => e.source === 'ec2' && e.what === 'attached' && e.instanceId !== deadHost);
  const onNew = (phase: string) => (e: TimelineEntry) => e.source === 'agent' && e.instanceId !== deadHost && e.what === phase;
  const mounted = first((e) => onNew('starting')(e) || onNew('active')(e));
  const active = first(onNew('active'));
  return {
    detectedMs: off(detected),
    fencedMs: off(fenced),
    detachedMs: off(detached),
    attachedMs: off(attached),
    mountedMs: off(mounted),
    activeMs: off(active),
    activeOn: active?.instanceId ?? null,
  };
}

/** `detected +3.2s → fenced +3.3s → …`; missing milestones print as `?`. */
export function formatMilestones(m: FailoverMilestones, names: ReadonlyMap<string, string> = new Map()): string {
  const s = (ms: number | null): string => (ms === null ? '?' : `+${(ms / 1000).toFixed(1)}s`);
  const where = m.activeOn === null ? 'nowhere yet' : hostLabel(m.activeOn, names);
  return `detected ${s(m.detectedMs)} → fenced ${s(m.fencedMs)} → detached ${s(m.detachedMs)} → attached ${s(m.attachedMs)} → mounted ${s(m.mountedMs)} → active ${s(m.activeMs)} on ${where}`;
}
