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

  constructor(
    private readonly now: () => number = Date.now,
    /** A patch for an unknown machine registers it, so tests need not seed machines. */
    private readonly autoRegister = true,
  ) {}

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
      if (!m?.[1] || !m[2]) throw new PatchError(`invalid path ${op.path}`);
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

  putUnit(name: string, desiredState: DesiredState, options: UnitOption[] | undefined): 'created' | 'modified' {
    const existing = this.units.get(name);
    if (existing) {
      existing.desiredState = desiredState;
      if (options?.length) existing.options = options;
      this.reschedule();
      return 'modified';
    }
    if (!options?.length) throw new PatchError('unit has no options');
    this.units.set(name, { name, options, desiredState, machineId: null });
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
   * The tiny scheduler: a launched unit with `[X-Fleet] MachineMetadata=k=v` lines runs on the first
   * registered machine (by id) whose metadata matches every line; it stays where it is while that
   * machine still matches, and is unscheduled as soon as none does (fleet's reconciler does the same).
   */
  private reschedule(): void {
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
    const required = unit.options
      .filter((o) => o.section === 'X-Fleet' && o.name === 'MachineMetadata')
      .map((o) => {
        const eq = o.value.indexOf('=');
        return eq < 0 ? [o.value, ''] : [o.value.slice(0, eq), o.value.slice(eq + 1)];
      });
    const matches = (machineId: string): boolean => {
      const md = this.metadataOf(machineId);
      return required.every(([k, v]) => md.get(k as string) === v);
    };
    if (unit.machineId && this.machines.has(unit.machineId) && matches(unit.machineId)) return unit.machineId;
    for (const machineId of [...this.machines.keys()].sort()) if (matches(machineId)) return machineId;
    return null;
  }
}
