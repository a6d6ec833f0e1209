/**
 * The chaos checker: pure functions over one seed's parsed history (history.ts). Each invariant of
 * issue 10 is one function returning its violations, each with the seed, the invariant, a message and
 * the slice of history around it. Where the history lacks what an invariant needs, the invariant is
 * reported as not checkable instead of passing silently.
 *
 * Timeline conventions (one clock: every process runs on this machine):
 * - A unit runs on a host from the ledger's `active: true` to its `active: false`, or to the moment
 *   the host's agent process was killed (a dead host runs nothing).
 * - A frozen (SIGSTOPped) host runs nothing while frozen: it cannot write. After SIGCONT its agent has
 *   `thawGraceMs` to notice and stop what it no longer owns; a unit still running after that counts.
 * - EC2 shows a volume attached to an instance while its attachment is `attached` or `busy`.
 */
import type {
  Ec2ChangeEvent, Ec2RequestEvent, Ec2SimRequestEvent, ElectionEvent, FaultEvent, HistoryEvent, JournalEvent, OperatorEvent, PhaseEvent, RequestEvent, UnitEvent, WorldEvent,
} from './history.js';

export const INVARIANTS = {
  1: 'exclusive: no volume attached to two instances, mounted on two hosts, or a service active on two hosts at once',
  2: 'no unit active on a host while EC2 does not show its volume attached there',
  3: 'no mutating EC2 call by a controller that was not the leader when EC2 received it',
  4: 'after healing, every service active on a live host of its AZ within the bound (or blocked for a true reason)',
  5: 'no failover of a host whose agent stayed connected and alive (false failover)',
  6: 'no manual request acted on after its deadline or after cancel',
  7: 'an etcd outage every host shares stops no unit and moves no volume',
  8: 'no service down longer than the bound while a live host of its AZ could take it',
} as const;
export type InvariantId = keyof typeof INVARIANTS;

export interface Violation {
  invariant: InvariantId;
  seed: number;
  at: number;
  message: string;
  slice: HistoryEvent[];
}

export interface NotCheckable {
  invariant: InvariantId;
  reason: string;
}

export interface CheckResult {
  seed: number;
  boundMs: number;
  violations: Violation[];
  notCheckable: NotCheckable[];
  /** Time from the heal to every service active again (null: never, or not checkable). */
  recoveryMs: number | null;
  /** Every down interval of every service during the run, in ms (its end is when it was active again). */
  downtimesMs: number[];
  falseFailovers: number;
}

export interface Interval {
  from: number;
  to: number;
}

/** Mutating EC2 actions: the ones a deposed controller must never get through. */
export const MUTATING_ACTIONS: ReadonlySet<string> = new Set(['AttachVolume', 'DetachVolume', 'StopInstances', 'TerminateInstances', 'CreateSnapshot', 'DeleteSnapshot', 'CreateVolume']);
/** A new leader's first call can reach EC2 a moment before our watch delivers its election key. */
const ELECTION_WATCH_LAG_MS = 300;
/** A lower term counts as sitting only if it outlived the call by this much (its delete may be seen late). */
const SITTING_LEADER_MARGIN_MS = 2_000;
/** A failover counts as caused by a fault on its host if the fault touched that host this long (plus the TTL) before. */
const EXCUSE_SLACK_MS = 2_000;
/** Changes this close before an outage belong to work begun before it. */
const OUTAGE_LEAD_MS = 3_000;
/** Slice: events this far around a violation. */
const SLICE_PAD_MS = 4_000;
const SLICE_MAX = 60;
/** Inv. 8 samples the timeline this often. */
const SAMPLE_MS = 100;
/** A controller checks a request's deadline on its own clock read; allow that read's lag. */
const DEADLINE_TOLERANCE_MS = 1_000;

const TERMINAL_STEPS = new Set(['done', 'failed', 'blocked']);
const ATTACHED_STATES = new Set(['attached', 'busy']);

/** Everything the invariant functions share, derived once from the history. Open intervals end just after `end`. */
export class Timeline {
  readonly world: WorldEvent;
  readonly end: number;
  readonly faultsStart: number;
  readonly healed: number | null;
  readonly faults: { inject: FaultEvent; heal: number }[] = [];
  private readonly unitIntervalsCache = new Map<string, Map<string, Interval[]>>();

  constructor(readonly seed: number, readonly events: readonly HistoryEvent[]) {
    const world = events.find((e): e is WorldEvent => e.type === 'world');
    if (world === undefined) throw new Error('history has no world event');
    this.world = world;
    const phase = (name: PhaseEvent['name']): number | null => events.find((e): e is PhaseEvent => e.type === 'phase' && e.name === name)?.at ?? null;
    this.end = phase('end') ?? events.reduce((m, e) => Math.max(m, e.at), 0);
    this.faultsStart = phase('faults-start') ?? world.at;
    this.healed = phase('healed');
    const heals = new Map<number, number>();
    for (const e of events) if (e.type === 'fault' && e.phase === 'heal') heals.set(e.id, e.at);
    for (const e of events) if (e.type === 'fault' && e.phase === 'inject') this.faults.push({ inject: e, heal: heals.get(e.id) ?? this.end });
  }

  private readonly byType = new Map<string, HistoryEvent[]>();
  private readonly upCache = new Map<string, Interval[]>();

  of<T extends HistoryEvent['type']>(type: T): Extract<HistoryEvent, { type: T }>[] {
    let list = this.byType.get(type);
    if (list === undefined) {
      list = this.events.filter((e) => e.type === type);
      this.byType.set(type, list);
    }
    return list as Extract<HistoryEvent, { type: T }>[];
  }

  /** Cuts `i` at the first kill of `host` inside it (a dead host holds nothing). */
  cutAtDeath(host: string, i: Interval): Interval {
    const death = this.faultIntervals(host, ['dead']).map((d) => d.from).filter((d) => d >= i.from && d < i.to).sort((a, b) => a - b)[0];
    return { from: i.from, to: death ?? i.to };
  }

  /** Fault intervals on `target` with one of `effects`. */
  faultIntervals(target: string, effects: readonly string[]): Interval[] {
    return this.faults.filter((f) => f.inject.targets.includes(target) && effects.includes(f.inject.effect)).map((f) => ({ from: f.inject.at, to: f.heal }));
  }

  /** Host or controller disturbed: dead, frozen or its own network path faulted. */
  disturbed(target: string): Interval[] {
    return this.faultIntervals(target, ['dead', 'frozen', 'net']);
  }

  /** Frozen windows stretched by the thaw grace: the host's stale state does not count in them. */
  frozenWindows(host: string): Interval[] {
    return this.faultIntervals(host, ['frozen']).map((i) => ({ from: i.from, to: i.to + this.world.thawGraceMs }));
  }

  /**
   * On/off changes per host → "on" intervals per host: ended by an off, or by a kill of the host's
   * agent (the new process starts from nothing), minus frozen windows.
   */
  onIntervals(changes: readonly { at: number; host: string; on: boolean }[]): Map<string, Interval[]> {
    const raw = new Map<string, Interval[]>();
    const open = new Map<string, number>();
    const close = (host: string, from: number, to: number): void => push(raw, host, this.cutAtDeath(host, { from, to }));
    for (const e of changes) {
      const was = open.get(e.host);
      if (was !== undefined && this.cutAtDeath(e.host, { from: was, to: e.at }).to < e.at) {
        close(e.host, was, e.at);
        open.delete(e.host);
      }
      const from = open.get(e.host);
      if (e.on && from === undefined) open.set(e.host, e.at);
      if (!e.on && from !== undefined) {
        close(e.host, from, e.at);
        open.delete(e.host);
      }
    }
    for (const [host, from] of open) close(host, from, this.end + 1);
    const out = new Map<string, Interval[]>();
    for (const [host, list] of raw) out.set(host, subtract(list, this.frozenWindows(host)).filter((i) => i.to > i.from));
    return out;
  }

  /** Unit-active intervals per host for one unit, as defined in the header. */
  unitIntervals(unit: string): Map<string, Interval[]> {
    const cached = this.unitIntervalsCache.get(unit);
    if (cached) return cached;
    const out = this.onIntervals(this.of('unit').filter((e) => e.unit === unit).map((e) => ({ at: e.at, host: e.host, on: e.active })));
    this.unitIntervalsCache.set(unit, out);
    return out;
  }

  /** Per instance, when EC2 showed the volume attached there. */
  attachedIntervals(volumeId: string): Map<string, Interval[]> {
    const out = new Map<string, Interval[]>();
    const since = new Map<string, number>();
    for (const e of this.of('ec2-change')) {
      if (e.volumeId !== volumeId) continue;
      const attached = ATTACHED_STATES.has(e.state);
      const from = since.get(e.instanceId);
      if (attached && from === undefined) since.set(e.instanceId, e.at);
      if (!attached && from !== undefined) {
        push(out, e.instanceId, { from, to: e.at });
        since.delete(e.instanceId);
      }
    }
    for (const [i, from] of since) push(out, i, { from, to: this.end + 1 });
    return out;
  }

  /** Whether the host's liveness key existed at t and its agent was not dead. */
  hostUp(host: string, t: number): boolean {
    let up = this.upCache.get(host);
    if (up === undefined) {
      const raw: Interval[] = [];
      let since: number | null = null;
      for (const e of this.of('host')) {
        if (e.host !== host) continue;
        if (e.up && since === null) since = e.at;
        if (!e.up && since !== null) {
          raw.push({ from: since, to: e.at });
          since = null;
        }
      }
      if (since !== null) raw.push({ from: since, to: Infinity });
      up = subtract(raw, this.faultIntervals(host, ['dead']));
      this.upCache.set(host, up);
    }
    return within(up, t);
  }

  slice(from: number, to: number, related: readonly string[]): HistoryEvent[] {
    const inRange = this.events.filter((e) => e.at >= from - SLICE_PAD_MS && e.at <= to + SLICE_PAD_MS && e.type !== 'world');
    const relevant = inRange.filter((e) => e.type === 'fault' || e.type === 'phase' || e.type === 'operator' || related.some((r) => JSON.stringify(e).includes(r)));
    if (relevant.length <= SLICE_MAX) return relevant;
    const mid = (from + to) / 2;
    return relevant.map((e, i) => ({ e, i, d: Math.abs(e.at - mid) })).sort((a, b) => a.d - b.d).slice(0, SLICE_MAX).sort((a, b) => a.i - b.i).map((x) => x.e);
  }

  serviceOfVolume(volumeId: string): WorldEvent['services'][number] | undefined {
    return this.world.services.find((s) => s.volumeId === volumeId);
  }

  azOf(host: string): string | undefined {
    return this.world.hosts.find((h) => h.id === host)?.az;
  }
}

function push(map: Map<string, Interval[]>, key: string, i: Interval): void {
  const list = map.get(key) ?? [];
  list.push(i);
  map.set(key, list);
}

export function within(intervals: readonly Interval[], t: number): boolean {
  return intervals.some((i) => t >= i.from && t < i.to);
}

function intersects(a: Interval, b: Interval): boolean {
  return a.from < b.to && b.from < a.to;
}

/** `a` minus the union of `b`. */
export function subtract(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  let out = [...a];
  for (const cut of b) {
    out = out.flatMap((i) => {
      if (!intersects(i, cut)) return [i];
      const parts: Interval[] = [];
      if (i.from < cut.from) parts.push({ from: i.from, to: cut.from });
      if (cut.to < i.to) parts.push({ from: cut.to, to: i.to });
      return parts;
    });
  }
  return out;
}

function mk(tl: Timeline, invariant: InvariantId, at: number, message: string, range: Interval, related: string[]): Violation {
  return { invariant, seed: tl.seed, at, message, slice: tl.slice(range.from, range.to, related) };
}

/** 1. Exclusive: EC2 attachments, mounts (agents' reports), services (agents' ledgers). */
export function checkExclusive(tl: Timeline): Violation[] {
  const out: Violation[] = [];
  // EC2: replay each volume's attachments; report the first moment of each double attachment.
  const holders = new Map<string, Map<string, string>>();
  const reported = new Set<string>();
  for (const e of tl.of('ec2-change')) {
    const h = holders.get(e.volumeId) ?? new Map<string, string>();
    holders.set(e.volumeId, h);
    if (e.state === 'detached') h.delete(e.instanceId);
    else h.set(e.instanceId, e.state);
    const key = `${e.volumeId}:${[...h.keys()].sort().join(',')}`;
    if (h.size > 1 && !reported.has(key)) {
      reported.add(key);
      out.push(mk(tl, 1, e.at, `${e.volumeId} attached to ${h.size} instances at once: ${[...h].map(([i, s]) => `${i} (${s})`).join(', ')}`, { from: e.at, to: e.at }, [e.volumeId]));
    }
  }
  // Services: overlapping unit intervals on two hosts.
  for (const s of tl.world.services) {
    const byHost = [...tl.unitIntervals(s.unit)];
    for (const [i, [ha, ia]] of byHost.entries()) {
      for (const [hb, ib] of byHost.slice(i + 1)) {
        for (const a of ia) for (const b of ib) {
          if (!intersects(a, b)) continue;
          const at = Math.max(a.from, b.from);
          out.push(mk(tl, 1, at, `${s.unit} active on ${ha} and ${hb} at once from ${iso(at)} for ${Math.min(a.to, b.to) - at} ms`, { from: at, to: Math.min(a.to, b.to) }, [s.unit, s.volumeId, ha, hb]));
        }
      }
    }
  }
  // Mounts, from the agents' ledger where it records them, else from their reports (a report's mount
  // state holds until the next report, its key's deletion, or the host's death); frozen windows do not count.
  const ledgerMounts = tl.of('mount');
  for (const s of tl.world.services) {
    const changes = ledgerMounts.length > 0
      ? ledgerMounts.filter((m) => m.mountUnit === s.mountUnit).map((m) => ({ at: m.at, host: m.host, on: m.mounted }))
      : tl.of('status').filter((e) => e.volumeId === s.volumeId).map((e) => ({ at: e.at, host: e.host, on: e.present && e.mountActive === true }));
    const list = [...tl.onIntervals(changes)];
    for (const [i, [ha, ia]] of list.entries()) {
      for (const [hb, ib] of list.slice(i + 1)) {
        for (const a of ia) for (const b of ib) {
          if (!intersects(a, b)) continue;
          const at = Math.max(a.from, b.from);
          out.push(mk(tl, 1, at, `${s.volumeId} reported mounted on ${ha} and ${hb} at once from ${iso(at)}`, { from: at, to: Math.min(a.to, b.to) }, [s.volumeId, ha, hb]));
        }
      }
    }
  }
  return out;
}

/** 2. A unit runs only where EC2 shows its volume attached (beyond the agent's re-verify grace). */
export function checkUnitNeedsAttachment(tl: Timeline): Violation[] {
  const out: Violation[] = [];
  const grace = tl.world.driftGraceMs;
  for (const s of tl.world.services) {
    const attached = tl.attachedIntervals(s.volumeId);
    for (const [host, intervals] of tl.unitIntervals(s.unit)) {
      const bare = subtract(intervals, attached.get(host) ?? []);
      for (const b of bare) {
        if (b.to - b.from <= grace) continue;
        out.push(mk(tl, 2, b.from + grace, `${s.unit} active on ${host} for ${b.to - b.from} ms (from ${iso(b.from)}) while EC2 did not show ${s.volumeId} attached there (grace ${grace} ms)`, b, [s.unit, s.volumeId, host]));
      }
    }
  }
  return out;
}

/** Who led at each moment: the live election key with the lowest create revision. */
export function leaderTimeline(elections: readonly ElectionEvent[]): { at: number; leader: string | null; term: string | null }[] {
  const keys = new Map<string, { candidate: string; rev: bigint }>();
  const out: { at: number; leader: string | null; term: string | null }[] = [];
  for (const e of elections) {
    if (e.present) keys.set(e.key, { candidate: e.candidate, rev: BigInt(e.createRevision) });
    else keys.delete(e.key);
    let best: { candidate: string; rev: bigint } | null = null;
    for (const k of keys.values()) if (best === null || k.rev < best.rev) best = k;
    out.push({ at: e.at, leader: best?.candidate ?? null, term: best === null ? null : String(best.rev) });
  }
  return out;
}

function leaderAt(timeline: ReturnType<typeof leaderTimeline>, t: number): { leader: string | null; term: string | null } {
  let cur: { leader: string | null; term: string | null } = { leader: null, term: null };
  for (const x of timeline) {
    if (x.at > t) break;
    cur = x;
  }
  return cur;
}

/** Election keys as intervals (put seen → delete seen) with their candidate and term (create revision). */
export function electionTerms(elections: readonly ElectionEvent[], end: number): { candidate: string; term: string; from: number; to: number }[] {
  const open = new Map<string, { candidate: string; term: string; from: number }>();
  const out: { candidate: string; term: string; from: number; to: number }[] = [];
  for (const e of elections) {
    const cur = open.get(e.key);
    if (e.present && cur === undefined) open.set(e.key, { candidate: e.candidate, term: e.createRevision, from: e.at });
    if (!e.present && cur !== undefined) {
      out.push({ ...cur, to: e.at });
      open.delete(e.key);
    }
  }
  for (const cur of open.values()) out.push({ ...cur, to: end + 1 });
  return out;
}

/**
 * 3. Mutating EC2 calls only by the leader of the current term. Our view of the election comes from a
 * watch, which lags (seconds, while an etcd member it used is down), so the check is built to never
 * blame a lag: a call is a violation when the caller's term had already ENDED (its key deleted, as
 * seen) before EC2 received the call and no newer term of the caller had begun (a late delete only
 * hides a violation); or when, at receipt, a term with a lower revision than the caller's (a sitting
 * leader) was still live and stayed live well past the call.
 */
export function checkLeaderOnlyMutations(tl: Timeline): { violations: Violation[]; notCheckable: NotCheckable[] } {
  const requests = tl.of('ec2-request').filter((r) => MUTATING_ACTIONS.has(r.action));
  const elections = tl.of('election');
  const changesWithTerm = tl.of('ec2-change').filter((c) => c.caller !== undefined && c.term !== undefined);
  // The endpoint's own log: requests the gate tagged with a controller's term (the snapshot job's carry none).
  const simRequests = tl.of('ec2-sim-request').filter((r) => MUTATING_ACTIONS.has(r.action) && r.caller !== null && r.term !== null && tl.world.controllers.includes(r.caller));
  if (tl.of('ec2-request').length === 0 && changesWithTerm.length === 0 && simRequests.length === 0) return { violations: [], notCheckable: [{ invariant: 3, reason: 'no EC2 request recorded with its caller (no controller proxy, no caller/term in the simulator history)' }] };
  if (elections.length === 0) return { violations: [], notCheckable: [{ invariant: 3, reason: 'no election key recorded: the leader at each moment is unknown' }] };
  const terms = electionTerms(elections, tl.end);
  const out: Violation[] = [];
  const checkOne = (e: Ec2RequestEvent | Ec2ChangeEvent | Ec2SimRequestEvent, caller: string, term: string | undefined, what: string): void => {
    const t = e.at;
    const mine = terms.filter((x) => x.candidate === caller && (term === undefined || x.term === term));
    const liveMine = mine.filter((x) => x.from <= t + ELECTION_WATCH_LAG_MS && x.to > t);
    let why: string | null = null;
    const ended = mine.filter((x) => x.to <= t).sort((a, b) => b.to - a.to)[0];
    if (liveMine.length === 0 && ended !== undefined) why = `its term ${ended.term} ended at ${iso(ended.to)}`;
    for (const m of liveMine) {
      const sitting = terms.find((x) => BigInt(x.term) < BigInt(m.term) && x.from <= t && x.to > t + SITTING_LEADER_MARGIN_MS);
      if (sitting) why = `${sitting.candidate} (term ${sitting.term}) still led until ${iso(sitting.to)}`;
    }
    if (why === null) return;
    const leaders = leaderAt(leaderTimeline(elections), t);
    out.push(mk(tl, 3, t, `${what} by ${caller}${term === undefined ? '' : ` (term ${term})`} reached EC2 at ${iso(t)}: ${why}; leader then: ${leaders.leader ?? 'nobody'}${leaders.term === null ? '' : ` (term ${leaders.term})`}`, { from: t, to: t }, [caller, ...('volumeId' in e && e.volumeId ? [e.volumeId] : [])]));
  };
  for (const r of requests) checkOne(r, r.caller, undefined, `${r.action}${r.force ? '(force)' : ''} ${r.volumeId ?? ''} ${r.instanceId ?? ''}`.replace(/ +/g, ' ').trim());
  for (const q of simRequests) checkOne(q, q.caller as string, q.term as string, `${q.action}${q.force ? '(force)' : ''} ${q.volumeId ?? ''} ${q.instanceId ?? ''} (endpoint log, ${q.outcome})`.replace(/ +/g, ' '));
  for (const c of changesWithTerm) checkOne(c, c.caller as string, String(c.term), `attachment change ${c.volumeId} ${c.instanceId} → ${c.state}`);
  return { violations: out, notCheckable: [] };
}

interface ServiceState {
  unit: string;
  volumeId: string;
  az: string;
}

/** Hosts running the unit at t (effective intervals). */
function runningOn(tl: Timeline, unit: string, t: number): string[] {
  return [...tl.unitIntervals(unit)].filter(([, is]) => within(is, t)).map(([h]) => h);
}

function registeredAt(tl: Timeline, unit: string, t: number): boolean {
  let present = tl.world.services.find((s) => s.unit === unit)?.registered ?? false;
  for (const e of tl.of('service')) {
    if (e.at > t) break;
    if (e.unit === unit) present = e.present;
  }
  return present;
}

/** A volume's last event among `events` (time-ordered) at or before `t`: its placement or journal as it stood then. */
function lastAt<E extends { at: number; volumeId: string }>(events: readonly E[], volumeId: string, t: number): E | undefined {
  let last: E | undefined;
  for (const e of events) {
    if (e.at > t) break;
    if (e.volumeId === volumeId) last = e;
  }
  return last;
}

/** 4. After the heal, every registered service is active on a live host of its AZ within the bound. */
export function checkRecovery(tl: Timeline): { violations: Violation[]; notCheckable: NotCheckable[]; recoveryMs: number | null } {
  const healed = tl.healed;
  if (healed === null) return { violations: [], notCheckable: [{ invariant: 4, reason: 'the run recorded no heal' }], recoveryMs: null };
  const bound = tl.world.boundMs;
  const okAt = (t: number): { ok: boolean; why: string; related: string[] } => {
    for (const s of tl.world.services as ServiceState[]) {
      if (!registeredAt(tl, s.unit, t)) continue;
      const live = tl.world.hosts.filter((h) => h.az === s.az && tl.hostUp(h.id, t)).map((h) => h.id);
      const on = runningOn(tl, s.unit, t);
      const good = on.filter((h) => live.includes(h));
      if (on.length === 1 && good.length === 1) continue;
      const j = lastAt(tl.of('journal'), s.volumeId, t);
      if (on.length === 0 && j?.step === 'blocked' && live.length === 0) continue; // blocked for a true reason
      const why = on.length === 0
        ? `${s.unit} active nowhere${j ? ` (journal ${j.kind} ${j.step}${j.blockedReason ? `: ${j.blockedReason}` : ''}${j.error ? `: ${j.error}` : ''})` : ''}; live hosts in ${s.az}: ${live.join(', ') || 'none'}`
        : `${s.unit} active on ${on.join(', ')} (live in ${s.az}: ${live.join(', ') || 'none'})`;
      return { ok: false, why, related: [s.unit, s.volumeId] };
    }
    return { ok: true, why: '', related: [] };
  };
  const times = [healed, ...tl.events.filter((e) => e.at > healed && e.at <= tl.end).map((e) => e.at), tl.end];
  let okSince: number | null = null;
  let last = { ok: true, why: '', related: [] as string[] };
  for (const t of times) {
    last = okAt(t);
    if (last.ok && okSince === null) okSince = t;
    if (!last.ok) okSince = null;
  }
  if (okSince === null) {
    return { violations: [mk(tl, 4, tl.end, `not recovered ${tl.end - healed} ms after the heal (bound ${bound} ms): ${last.why}`, { from: Math.max(healed, tl.end - bound), to: tl.end }, last.related)], notCheckable: [], recoveryMs: null };
  }
  const recoveryMs = okSince - healed;
  if (recoveryMs > bound) return { violations: [mk(tl, 4, okSince, `recovered ${recoveryMs} ms after the heal, over the bound ${bound} ms`, { from: healed, to: okSince }, [])], notCheckable: [], recoveryMs };
  return { violations: [], notCheckable: [], recoveryMs };
}

/** 5. Auto failovers only of hosts that a fault touched (dead, frozen, or their own path cut). */
export function checkFalseFailovers(tl: Timeline): Violation[] {
  const out: Violation[] = [];
  const seen = new Set<string>();
  for (const j of tl.of('journal')) {
    const key = `${j.volumeId}:${j.startedAt}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (j.kind !== 'auto' || j.from === null) continue;
    if (j.cause !== undefined && j.cause !== 'holder-lost') continue; // re-acquire, placement: not a host declared dead
    const window = { from: j.startedAt - tl.world.leaseTtlMs - EXCUSE_SLACK_MS, to: j.startedAt + 1 };
    if (tl.disturbed(j.from).some((i) => intersects(i, window))) continue;
    // A volume yanked behind our back may be failed over by code that predates re-acquire.
    if (tl.faultIntervals(j.volumeId, ['oob']).some((i) => intersects({ from: i.from, to: i.to + tl.world.boundMs }, window))) continue;
    out.push(mk(tl, 5, j.startedAt, `auto failover of ${j.volumeId} away from ${j.from} at ${iso(j.startedAt)}, whose agent no fault touched (step ${j.step})`, { from: j.startedAt - tl.world.leaseTtlMs, to: j.startedAt }, [j.volumeId, j.from]));
  }
  return out;
}

/** 6. A manual request is never started after its deadline (or the CLI's give-up) or after a cancel. */
export function checkManualRequests(tl: Timeline): Violation[] {
  const out: Violation[] = [];
  const requests = new Map<string, RequestEvent>();
  for (const r of tl.of('request')) if (r.present && r.requestId !== undefined && !requests.has(r.requestId)) requests.set(r.requestId, r);
  const ops = tl.of('operator');
  const endOf = (start: OperatorEvent): OperatorEvent | undefined => ops.find((o) => o.phase === 'end' && o.id === start.id);
  const started = new Map<string, JournalEvent>();
  for (const j of tl.of('journal')) if (j.requestId !== null && !started.has(j.requestId)) started.set(j.requestId, j);
  for (const [requestId, r] of requests) {
    const j = started.get(requestId);
    if (j === undefined) continue;
    const unit = tl.serviceOfVolume(r.volumeId)?.unit ?? r.volumeId;
    // The CLI run that made it: the last `move` of this unit started before the request appeared.
    const move = ops.filter((o) => o.phase === 'start' && o.action === 'move' && o.unit === unit && o.at <= r.at).at(-1);
    const moveEnd = move ? endOf(move) : undefined;
    const gaveUp = moveEnd !== undefined && moveEnd.code !== 0 ? moveEnd.at : undefined;
    const deadline = r.deadline ?? gaveUp;
    if (deadline !== undefined && j.startedAt > deadline + DEADLINE_TOLERANCE_MS) {
      out.push(mk(tl, 6, j.startedAt, `request ${requestId} (${unit}) started at ${iso(j.startedAt)}, ${j.startedAt - deadline} ms after its ${r.deadline !== undefined ? 'deadline' : 'CLI gave up'} (${iso(deadline)})`, { from: deadline, to: j.startedAt }, [r.volumeId, unit, requestId]));
      continue;
    }
    const cancel = ops.find((o) => o.phase === 'start' && o.action === 'cancel' && o.unit === unit && o.at >= r.at && endOf(o)?.code === 0);
    const cancelEnd = cancel ? endOf(cancel) : undefined;
    if (cancelEnd !== undefined && j.startedAt > cancelEnd.at) {
      out.push(mk(tl, 6, j.startedAt, `request ${requestId} (${unit}) started at ${iso(j.startedAt)}, after a successful cancel at ${iso(cancelEnd.at)}`, { from: cancelEnd.at, to: j.startedAt }, [r.volumeId, unit, requestId]));
    }
  }
  return out;
}

/** 7. During an outage of etcd for everyone, and for a while after: no unit stops, no volume moves. */
export function checkOutage(tl: Timeline): Violation[] {
  const out: Violation[] = [];
  for (const f of tl.faults.filter((x) => x.inject.effect === 'etcd-outage')) {
    const quiet = Number(f.inject.detail?.quietAfterMs ?? 0);
    const w = { from: f.inject.at, to: f.heal + quiet };
    // Work begun before the outage may finish during it.
    const busy = new Set<string>();
    for (const s of tl.world.services) {
      const j = lastAt(tl.of('journal'), s.volumeId, w.from);
      if (j && !TERMINAL_STEPS.has(j.step)) busy.add(s.volumeId);
    }
    for (const c of tl.of('ec2-change')) if (c.at >= w.from - OUTAGE_LEAD_MS && c.at < w.from) busy.add(c.volumeId);
    // An operator's move started within the window is a reason to stop and move that volume: its events
    // from the manual journal's start on are the move, not the outage's doing (chaos seed 13).
    const movedFrom = new Map<string, number>();
    for (const j of tl.of('journal')) {
      if (j.kind === 'manual' && j.startedAt >= w.from && j.startedAt <= w.to) movedFrom.set(j.volumeId, Math.min(movedFrom.get(j.volumeId) ?? Infinity, j.startedAt));
    }
    // Likewise a volume detached or attached behind the controller's back by the schedule itself (seed 73).
    for (const f of tl.faults) {
      const volumeId = f.inject.targets[0];
      if (f.inject.effect === 'oob' && volumeId !== undefined && f.inject.at >= w.from && f.inject.at <= w.to) {
        movedFrom.set(volumeId, Math.min(movedFrom.get(volumeId) ?? Infinity, f.inject.at));
      }
    }
    // And a host the schedule killed, restarted or froze in the window: its volumes move because it died
    // (chaos seed 116: an agent restart 0.2 s before the window ended, the etcd restart having healed the
    // outage later than the schedule planned, so the schedule's own exclusive window had already closed).
    for (const f of tl.faults) {
      if ((f.inject.effect !== 'dead' && f.inject.effect !== 'frozen') || f.inject.at < w.from || f.inject.at > w.to) continue;
      for (const host of f.inject.targets) {
        for (const s of tl.world.services) {
          // Held there just before it (the intervals are cut at the death itself).
          const placedThere = lastAt(tl.of('placement'), s.volumeId, f.inject.at)?.instanceId === host;
          if (placedThere || within(tl.unitIntervals(s.unit).get(host) ?? [], f.inject.at - 1)) movedFrom.set(s.volumeId, Math.min(movedFrom.get(s.volumeId) ?? Infinity, f.inject.at));
        }
      }
    }
    const byOperator = (volumeId: string, at: number): boolean => at >= (movedFrom.get(volumeId) ?? Infinity);
    const volumeOf = (unit: string): string => tl.world.services.find((s) => s.unit === unit)?.volumeId ?? '';
    const stops = tl.of('unit').filter((u) => !u.active && u.at >= w.from && u.at <= w.to).filter((u) => !busy.has(volumeOf(u.unit)) && !byOperator(volumeOf(u.unit), u.at));
    if (stops.length > 0) {
      const first = stops[0] as UnitEvent;
      out.push(mk(tl, 7, first.at, `etcd outage (${String(f.inject.detail?.mode ?? '')}, ${f.heal - f.inject.at} ms): ${stops.length} unit stop(s), first ${first.unit} on ${first.host} at +${first.at - w.from} ms`, { from: w.from, to: first.at }, [first.unit, first.host]));
    }
    const moves = tl.of('ec2-change').filter((c) => c.at >= w.from && c.at <= w.to && !busy.has(c.volumeId) && !byOperator(c.volumeId, c.at));
    if (moves.length > 0) {
      const first = moves[0] as Ec2ChangeEvent;
      out.push(mk(tl, 7, first.at, `etcd outage (${String(f.inject.detail?.mode ?? '')}, ${f.heal - f.inject.at} ms): ${moves.length} EC2 attachment change(s), first ${first.volumeId} ${first.instanceId} → ${first.state} at +${first.at - w.from} ms`, { from: w.from, to: first.at }, [first.volumeId]));
    }
  }
  return out;
}

/** 8. No service down longer than the bound while it could run: etcd up, a controller up, a healthy host in its AZ. */
export function checkDowntime(tl: Timeline): { violations: Violation[]; downtimesMs: number[] } {
  const out: Violation[] = [];
  const downtimes: number[] = [];
  const bound = tl.world.boundMs;
  const members = ['etcd0', 'etcd1', 'etcd2'];
  const outages = tl.faults.filter((f) => f.inject.effect === 'etcd-outage').map((f) => ({ from: f.inject.at, to: f.heal }));
  const memberDown = members.map((m) => tl.disturbed(m));
  const ctlDown = tl.world.controllers.map((c) => tl.disturbed(c));
  const hostDown = new Map(tl.world.hosts.map((h) => [h.id, tl.disturbed(h.id)]));
  const etcdUp = (t: number): boolean => !within(outages, t) && memberDown.filter((m) => within(m, t)).length < 2;
  const controllerUp = (t: number): boolean => ctlDown.some((c) => !within(c, t));
  for (const s of tl.world.services) {
    const intervals = tl.unitIntervals(s.unit);
    const up = (t: number): boolean => [...intervals.values()].some((is) => within(is, t));
    let downSince: number | null = null;
    let capable = 0;
    let reported = false;
    for (let t = tl.faultsStart; t <= tl.end; t += SAMPLE_MS) {
      const registered = registeredAt(tl, s.unit, t);
      if (!registered || up(t)) {
        if (downSince !== null && registered) downtimes.push(t - downSince);
        downSince = null;
        capable = 0;
        reported = false;
        continue;
      }
      downSince ??= t;
      const could = etcdUp(t) && controllerUp(t) && tl.world.hosts.some((h) => h.az === s.az && tl.hostUp(h.id, t) && !within(hostDown.get(h.id) ?? [], t));
      if (could) capable += SAMPLE_MS;
      if (capable > bound && !reported) {
        reported = true;
        out.push(mk(tl, 8, t, `${s.unit} down since ${iso(downSince)} (${t - downSince} ms, ${capable} ms of it while a healthy host of ${s.az}, etcd and a controller were up; bound ${bound} ms)`, { from: Math.max(downSince, t - bound), to: t }, [s.unit, s.volumeId]));
      }
    }
  }
  return { violations: out, downtimesMs: downtimes };
}

export function check(seed: number, events: readonly HistoryEvent[]): CheckResult {
  const tl = new Timeline(seed, events);
  const inv3 = checkLeaderOnlyMutations(tl);
  const inv4 = checkRecovery(tl);
  const inv5 = checkFalseFailovers(tl);
  const inv8 = checkDowntime(tl);
  const notCheckable: NotCheckable[] = [...inv3.notCheckable, ...inv4.notCheckable];
  if (tl.of('unit').length === 0) notCheckable.push({ invariant: 1, reason: 'no unit change recorded (no agent ledger)' });
  if (tl.of('status').length === 0 && tl.of('mount').length === 0) notCheckable.push({ invariant: 1, reason: 'no mount recorded (ledger or agent reports): mounts unchecked' });
  if (tl.of('journal').length === 0) notCheckable.push({ invariant: 5, reason: 'no journal recorded' });
  const violations = [
    ...checkExclusive(tl), ...checkUnitNeedsAttachment(tl), ...inv3.violations, ...inv4.violations, ...inv5,
    ...checkManualRequests(tl), ...checkOutage(tl), ...inv8.violations,
  ].sort((a, b) => a.invariant - b.invariant || a.at - b.at);
  return { seed, boundMs: tl.world.boundMs, violations, notCheckable, recoveryMs: inv4.recoveryMs, downtimesMs: inv8.downtimesMs, falseFailovers: inv5.length };
}

function iso(t: number): string {
  return Number.isFinite(t) ? new Date(t).toISOString().slice(11, 23) : String(t);
}

/** A violation for a terminal: seed, invariant, message, then the slice one event a line. */
export function formatViolation(v: Violation, t0?: number): string {
  const base = t0 ?? v.slice[0]?.at ?? v.at;
  const lines = v.slice.map((e) => {
    const { at, type, ...rest } = e;
    return `    ${iso(at)} (+${((at - base) / 1000).toFixed(3)}s) ${type} ${JSON.stringify(rest)}`;
  });
  return [`VIOLATION seed ${v.seed} invariant ${v.invariant} (${INVARIANTS[v.invariant]})`, `  ${v.message}`, '  history slice:', ...lines].join('\n');
}

