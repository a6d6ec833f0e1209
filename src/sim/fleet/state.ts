import { METADATA_PATH, type DesiredState, type FleetMachine, type FleetUnitState, type MetadataOp, type UnitOption } from '../../fleet/types.js';

/** One metadata change, as the tests compare its time with other events (mount activation, release). */
export interface MetadataChange {
  at: number;
  machineId: string;
  key: string;
  op: 'add' | 'replace' | 'remove';
  value: string | null;
}

/** A scheduling change made by the tiny scheduler. */
export interface ScheduleChange {
  at: number;
  unit: string;
  /** Where the unit now runs, or null when it was unscheduled. */
  machineId: string | null;
  previous: string | null;
}

export interface SimUnit {
  name: string;
  options: UnitOption[];
  desiredState: DesiredState;
  machineId: string | null;
}

export class PatchError extends Error {
  override readonly name = 'PatchError';
}

/** fleet answers 409 for these unit PUTs (messages as real fleetd v1.0.0's). */
export class UnitConflictError extends Error {
  override readonly name = 'UnitConflictError';
}

/** `postgres@vol-1.service` → `vol-1` (systemd's %i); '' for a non-template unit. */
export function instanceName(unitName: string): string {
  const at = unitName.indexOf('@');
  const dot = unitName.lastIndexOf('.');
  return at < 0 ? '' : unitName.slice(at + 1, dot > at ? dot : undefined);
}

/**
 * In-memory model of fleet's registry: machines, their metadata, units and where the scheduler put
 * them. Metadata may be set for machines that never registered (fleet allows it, and keeps metadata
 * across a machine leaving and rejoining).
 */
export class FleetState {
  readonly machines = new Map<string, { primaryIP: string }>();
  readonly metadata = new Map<string, Map<string, string>>();
  readonly units = new Map<string, SimUnit>();
  readonly changes: MetadataChange[] = [];
  readonly schedule: ScheduleChange[] = [];
  /** Unit states as a host would report them; default: active while scheduled. */
  readonly reported = new Map<string, { active: string; sub: string }>();
  onSchedule?: (change: ScheduleChange) => void;

  /**
   * Real fleetd acts on every change seconds later (engine reconcile, then the host's agent). With
   * `actDelayMs` > 0 the stand-in does too: a change only marks the schedule dirty, and the
   * scheduler runs that long after the last change, so callers that assume a PATCH took effect when
   * it returned fail here as they would against fleet. 0 (default): synchronous, as before.
   */
  actDelayMs = 0;
  private pending: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly now: () => number = Date.now,
    /** A patch for an unknown machine registers it, so tests need not seed machines. */
    private readonly autoRegister = true,
  ) {}

  /** Stops a pending delayed reschedule (server close). */
  dispose(): void {
    if (this.pending) clearTimeout(this.pending);
    this.pending = undefined;
  }

  addMachine(machineId: string, opts: { primaryIP?: string; metadata?: Record<string, string> } = {}): void {
    this.machines.set(machineId, { primaryIP: opts.primaryIP ?? '' });
    const md = this.metadataOf(machineId);
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    this.reschedule();
  }

  removeMachine(machineId: string): void {
    this.machines.delete(machineId);
    this.reschedule();
  }

  listMachines(): FleetMachine[] {
    return [...this.machines.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([machineId, m]) => ({ id: machineId, primaryIP: m.primaryIP, metadata: Object.fromEntries(this.metadataOf(machineId)) }));
  }

  /** Validates every op first (fleet's "processed in-order after validation"), then applies them. */
  applyPatch(ops: MetadataOp[]): void {
    const parsed = ops.map((op) => {
      const m = METADATA_PATH.exec(op.path);
      // Real fleetd: keys are [A-Za-z0-9_.-]+, anything else is "machine metadata path invalid" (400).
      if (!m?.[1] || !m[2] || !/^[A-Za-z0-9_.-]+$/.test(m[2])) throw new PatchError(`machine metadata path invalid: ${op.path}`);
      if (op.op !== 'remove' && op.value.value === '') throw new PatchError(`machine metadata value empty: ${op.path}`);
      return { op, machineId: m[1], key: m[2] };
    });
    for (const { op, machineId, key } of parsed) {
      if (this.autoRegister && !this.machines.has(machineId)) this.machines.set(machineId, { primaryIP: '' });
      const md = this.metadataOf(machineId);
      if (op.op === 'remove') md.delete(key);
      else md.set(key, op.value.value);
      this.changes.push({ at: this.now(), machineId, key, op: op.op, value: op.op === 'remove' ? null : op.value.value });
    }
    this.reschedule();
  }

  /**
   * fleet's PUT /units/NAME: without `desiredState` a new unit is created `inactive` (what
   * `fleetctl submit` sends); an existing unit needs a desiredState. Conflicts throw UnitConflictError (409).
   */
  putUnit(name: string, desiredState: DesiredState | undefined, options: UnitOption[] | undefined): 'created' | 'modified' {
    const existing = this.units.get(name);
    if (existing) {
      if (desiredState === undefined) throw new UnitConflictError('must provide DesiredState to update existing unit');
      existing.desiredState = desiredState;
      this.reschedule();
      return 'modified';
    }
    if (!options?.length) throw new UnitConflictError('unit does not exist and options field empty');
    this.units.set(name, { name, options, desiredState: desiredState ?? 'inactive', machineId: null });
    this.reschedule();
    return 'created';
  }

  deleteUnit(name: string): boolean {
    const unit = this.units.get(name);
    if (!unit) return false;
    unit.desiredState = 'inactive';
    this.reschedule();
    this.units.delete(name);
    return true;
  }

  states(filter: { machineId?: string; unitName?: string }): FleetUnitState[] {
    const out: FleetUnitState[] = [];
    for (const unit of this.units.values()) {
      if (!unit.machineId || unit.desiredState !== 'launched') continue;
      if (filter.machineId && unit.machineId !== filter.machineId) continue;
      if (filter.unitName && unit.name !== filter.unitName) continue;
      const r = this.reported.get(unit.name) ?? { active: 'active', sub: 'running' };
      out.push({ name: unit.name, hash: '', machineID: unit.machineId, systemdLoadState: 'loaded', systemdActiveState: r.active, systemdSubState: r.sub });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  private metadataOf(machineId: string): Map<string, string> {
    let md = this.metadata.get(machineId);
    if (!md) this.metadata.set(machineId, (md = new Map()));
    return md;
  }

  /**
   * The tiny scheduler, as fleet v1.0.0's: a launched unit's `[X-Fleet] MachineMetadata=k=v` lines are
   * grouped by key; lines of one key are OR'ed, keys are AND'ed, `%i` is the unit's instance name. It
   * stays where it is while that machine still matches, is unscheduled as soon as none does, and a
   * new placement goes to the least loaded matching machine, then the lowest machine id.
   */
  private reschedule(): void {
    if (this.actDelayMs <= 0) return this.rescheduleNow();
    if (this.pending) clearTimeout(this.pending);
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.rescheduleNow();
    }, this.actDelayMs);
  }

  private rescheduleNow(): void {
    for (const unit of this.units.values()) {
      const wanted = unit.desiredState === 'launched' ? this.placeFor(unit) : null;
      if (wanted === unit.machineId) continue;
      const change: ScheduleChange = { at: this.now(), unit: unit.name, machineId: wanted, previous: unit.machineId };
      unit.machineId = wanted;
      this.schedule.push(change);
      this.onSchedule?.(change);
    }
  }

  private placeFor(unit: SimUnit): string | null {
    const instance = instanceName(unit.name);
    const required = new Map<string, Set<string>>();
    for (const o of unit.options) {
      if (o.section !== 'X-Fleet' || o.name !== 'MachineMetadata') continue;
      const text = o.value.replaceAll('%i', instance);
      const eq = text.indexOf('=');
      const [k, v] = eq < 0 ? [text, ''] : [text.slice(0, eq), text.slice(eq + 1)];
      let values = required.get(k);
      if (!values) required.set(k, (values = new Set()));
      values.add(v);
    }
    const matches = (machineId: string): boolean => {
      const md = this.metadataOf(machineId);
      return [...required].every(([k, values]) => values.has(md.get(k) ?? '\0absent'));
    };
    if (unit.machineId && this.machines.has(unit.machineId) && matches(unit.machineId)) return unit.machineId;
    const load = (machineId: string): number => [...this.units.values()].filter((u) => u !== unit && u.machineId === machineId).length;
    const candidates = [...this.machines.keys()].filter(matches).sort((a, b) => load(a) - load(b) || a.localeCompare(b));
    return candidates[0] ?? null;
  }
}
