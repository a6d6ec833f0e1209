import type { Placement, ServiceRecord } from '../../keyspace/index.js';
import type { Logger } from '../../log/logger.js';
import type { MetadataPort } from '../fleet-metadata.js';
import type { ServiceControl } from '../service.js';
import type { SystemdPort } from '../systemd/port.js';
import type { AgentTimeouts, HeldVolume } from './options.js';
import type { VolumeOps } from './ports.js';
import type { Reporter } from './reporter.js';
import { isUp, systemdServiceName } from './unit-state.js';

/** What the reconciler reads: the mirrored placements and service records (level-based input). */
export interface DesiredView {
  placement(volumeId: string): Placement | undefined;
  /** The service record of a volume (by its placement's unit, else by searching the records). */
  service(volumeId: string, unit?: string): ServiceRecord | undefined;
  /** Every volume with a placement or a service record. */
  volumeIds(): string[];
}

export interface ReconcilerDeps {
  instanceId: string;
  mode: 'fleet' | 'systemd';
  systemd: SystemdPort;
  service: ServiceControl;
  volumes: VolumeOps;
  metadata: MetadataPort;
  reporter: Reporter;
  timeouts: AgentTimeouts;
  log: Logger;
}

/** An attempt was overtaken: the placement changed, the host fenced itself, or the agent stops. */
class SupersededError extends Error {
  override readonly name = 'SupersededError';
}

/** Per-volume bookkeeping. One operation per volume at a time; volumes run in parallel. */
interface Slot {
  volumeId: string;
  /** We may have the mount or unit up here (set before the first acquire step, cleared on release). */
  held: boolean;
  /** Our fleet metadata entry may still be published. */
  metadataSet: boolean;
  /** The generation whose work is complete, and how it ended. */
  doneGeneration: number | null;
  donePhase: 'active' | 'released' | null;
  unit: string | null;
  running: Promise<void> | null;
  again: boolean;
  abort: AbortController | null;
  /** The placement generation the running attempt works for (to abort it when the placement moves). */
  runningFor: number | null;
  retryTimer: NodeJS.Timeout | null;
}

/**
 * Drives each volume towards what its placement says (controller-runtime style: it acts on the state it
 * reads when it runs, not on the event that woke it). A placement naming this host → device, mount,
 * metadata, unit, report `active`. A placement naming another host or nobody → stop unit, stop mount,
 * drop metadata, report `released`. A volume with no placement at all is left as it is: only the
 * controller decides that a running service must stop.
 */
export class Reconciler {
  private readonly slots = new Map<string, Slot>();
  private paused = false;

  constructor(
    private readonly deps: ReconcilerDeps,
    private readonly view: DesiredView,
  ) {}

  slot(volumeId: string): Slot {
    let s = this.slots.get(volumeId);
    if (!s) {
      s = { volumeId, held: false, metadataSet: false, doneGeneration: null, donePhase: null, unit: null, running: null, again: false, abort: null, runningFor: null, retryTimer: null };
      this.slots.set(volumeId, s);
    }
    return s;
  }

  /** Marks a volume as possibly held (adoption from a previous run's report or local state). */
  markHeld(volumeId: string, unit: string): void {
    const s = this.slot(volumeId);
    s.held = true;
    s.metadataSet = true;
    s.unit = unit;
  }

  held(): Map<string, HeldVolume> {
    const out = new Map<string, HeldVolume>();
    for (const s of this.slots.values()) {
      if (!s.held || !s.unit) continue;
      out.set(s.volumeId, { volumeId: s.volumeId, unit: s.unit, generation: s.doneGeneration ?? -1, phase: this.deps.reporter.lastPhase(s.volumeId) ?? 'active' });
    }
    return out;
  }

  /** Volumes whose unit or mount may be up here, or whose metadata may be published. */
  heldVolumeIds(): string[] {
    return [...this.slots.values()].filter((s) => s.held || s.metadataSet).map((s) => s.volumeId);
  }

  kickAll(): void {
    const ids = new Set([...this.view.volumeIds(), ...this.slots.keys()]);
    for (const volumeId of ids) this.kick(volumeId);
  }

  kick(volumeId: string): void {
    if (this.paused) return;
    const s = this.slot(volumeId);
    if (s.retryTimer) {
      clearTimeout(s.retryTimer);
      s.retryTimer = null;
    }
    if (s.running) {
      s.again = true;
      // A long wait (device, fleet) for a generation that is no longer current must not block the next one.
      const p = this.view.placement(volumeId);
      if (s.runningFor !== null && p && (p.generation !== s.runningFor || p.instanceId !== this.deps.instanceId)) {
        s.abort?.abort(new SupersededError(`placement of ${volumeId} changed to generation ${p.generation}`));
      }
      return;
    }
    s.running = this.loop(s).finally(() => {
      s.running = null;
    });
  }

  /** Stops starting anything (fence, shutdown) and aborts every attempt in flight. */
  pause(reason: string): void {
    this.paused = true;
    for (const s of this.slots.values()) {
      s.abort?.abort(new SupersededError(reason));
      if (s.retryTimer) clearTimeout(s.retryTimer);
      s.retryTimer = null;
    }
  }

  resume(): void {
    this.paused = false;
  }

  /** After a fence everything here is stopped: forget completions so placements are acted on afresh. */
  forgetAfterFence(volumeIds: readonly string[]): void {
    for (const volumeId of volumeIds) {
      const s = this.slot(volumeId);
      s.held = false;
      s.doneGeneration = null;
      s.donePhase = null;
    }
  }

  /** Resolves when no volume has an attempt running (retries scheduled for later do not count). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.slots.values()].map((s) => s.running).filter((p): p is Promise<void> => p !== null);
      if (running.length === 0) return;
      await Promise.allSettled(running);
    }
  }

  private async loop(s: Slot): Promise<void> {
    do {
      s.again = false;
      if (this.paused) return;
      const abort = new AbortController();
      s.abort = abort;
      try {
        await this.step(s, abort.signal);
      } catch (err) {
        if (!(err instanceof SupersededError) && !(abort.signal.reason instanceof SupersededError)) {
          this.deps.log.error({ err, volumeId: s.volumeId }, 'reconcile failed; will retry');
          this.scheduleRetry(s);
        }
      } finally {
        s.abort = null;
        s.runningFor = null;
      }
    } while (s.again && !this.paused);
  }

  private scheduleRetry(s: Slot): void {
    if (this.paused) return;
    s.retryTimer = setTimeout(() => {
      s.retryTimer = null;
      this.kick(s.volumeId);
    }, this.deps.timeouts.retryMs);
    s.retryTimer.unref?.();
  }

  private async step(s: Slot, signal: AbortSignal): Promise<void> {
    const placement = this.view.placement(s.volumeId);
    if (!placement) return; // no placement: only the controller decides that a running service must stop
    const service = this.view.service(s.volumeId, placement.unit);
    if (!service) {
      this.deps.log.warn({ volumeId: s.volumeId, unit: placement.unit }, 'placement without a service record; nothing to manage');
      return;
    }
    s.unit = service.unit;
    if (placement.instanceId === this.deps.instanceId) {
      if (s.doneGeneration === placement.generation && s.donePhase === 'active') return;
      s.runningFor = placement.generation;
      await this.acquire(s, placement, service, signal);
    } else {
      const up = await this.localState(service);
      if (!s.held && !s.metadataSet && !up.unitActive && !up.mountActive) return;
      if (s.doneGeneration === placement.generation && s.donePhase === 'released' && !up.unitActive && !up.mountActive) return;
      s.runningFor = placement.generation;
      await this.release(s, placement, service, signal, up);
    }
  }

  private async localState(service: ServiceRecord): Promise<{ unitActive: boolean; mountActive: boolean }> {
    const [unit, mount] = await Promise.all([this.deps.systemd.unitState(systemdServiceName(service.unit)), this.deps.systemd.unitState(service.mountUnit)]);
    return { unitActive: isUp(unit.activeState), mountActive: isUp(mount.activeState) };
  }

  private async acquire(s: Slot, placement: Placement, service: ServiceRecord, signal: AbortSignal): Promise<void> {
    const { reporter, volumes, metadata, timeouts, log } = this.deps;
    const volumeId = s.volumeId;
    const generation = placement.generation;
    const base = { volumeId, unit: service.unit, generation };
    const current = (): void => {
      const p = this.view.placement(volumeId);
      if (signal.aborted || this.paused || !p || p.instanceId !== this.deps.instanceId || p.generation !== generation) {
        throw new SupersededError(`placement of ${volumeId} generation ${generation} superseded`);
      }
    };
    const vlog = log.child({ volumeId, unit: service.unit, generation });
    try {
      const up = await this.localState(service);
      s.held = true;
      if (up.unitActive && up.mountActive) {
        // Adoption (agent restart): both are up, so nothing is stopped or restarted; only the
        // metadata is re-asserted (idempotent, and without a fleet restart when unchanged).
        s.metadataSet = true;
        await metadata.set(service.metadataKey, volumeId);
        vlog.info('adopted running volume');
      } else {
        await reporter.report({ ...base, phase: 'waiting-device', mountActive: up.mountActive, unitActive: false });
        const device = await volumes.waitForDevice(volumeId, placement.device, { timeoutMs: timeouts.deviceMs, signal });
        current();
        await reporter.report({ ...base, phase: 'mounting', mountActive: up.mountActive, unitActive: false });
        await volumes.mount(service, device, { timeoutMs: timeouts.mountMs, signal });
        current();
        vlog.info({ device: device.path, via: device.via }, 'mount active');
        // Only now may fleet schedule the unit here: the data is mounted.
        s.metadataSet = true;
        await metadata.set(service.metadataKey, volumeId);
        current();
        await reporter.report({ ...base, phase: 'starting', mountActive: true, unitActive: false });
        await this.deps.service.start(systemdServiceName(service.unit), service.mountUnit, { timeoutMs: timeouts.unitMs, signal });
        current();
      }
      s.doneGeneration = generation;
      s.donePhase = 'active';
      await reporter.report({ ...base, phase: 'active', mountActive: true, unitActive: true });
      vlog.info('volume active');
    } catch (err) {
      if (err instanceof SupersededError || signal.aborted) throw new SupersededError(String(err));
      const after = await this.localState(service).catch(() => ({ unitActive: false, mountActive: false }));
      await reporter.report({ ...base, phase: 'failed', ...after, error: describe(err) });
      throw err;
    }
  }

  private async release(s: Slot, placement: Placement, service: ServiceRecord, signal: AbortSignal, up: { unitActive: boolean; mountActive: boolean }): Promise<void> {
    const { reporter, volumes, metadata, timeouts, mode, log } = this.deps;
    const base = { volumeId: s.volumeId, unit: service.unit, generation: placement.generation };
    const vlog = log.child({ volumeId: s.volumeId, unit: service.unit, generation: placement.generation, to: placement.instanceId });
    const opts = { timeoutMs: timeouts.stopMs, signal };
    let metadataError: unknown;
    const dropMetadata = async (): Promise<void> => {
      try {
        await metadata.remove(service.metadataKey);
        s.metadataSet = false;
      } catch (err) {
        metadataError = err;
      }
    };
    try {
      await reporter.report({ ...base, phase: 'releasing', ...up });
      // fleet mode: unschedule first, or fleet's agent would start the unit again (pulling the mount
      // back in) between our stop and the metadata removal. A failure does not stop the local stop.
      if (mode === 'fleet') await dropMetadata();
      await this.deps.service.stop(systemdServiceName(service.unit), opts);
      await volumes.unmount(service, opts);
      s.held = false;
      if (mode !== 'fleet' || s.metadataSet) await dropMetadata();
      if (metadataError) throw metadataError;
      s.doneGeneration = placement.generation;
      s.donePhase = 'released';
      await reporter.report({ ...base, phase: 'released', mountActive: false, unitActive: false });
      vlog.info('volume released');
    } catch (err) {
      if (err instanceof SupersededError || signal.aborted) throw new SupersededError(String(err));
      const after = await this.localState(service).catch(() => ({ unitActive: true, mountActive: true }));
      await reporter.report({ ...base, phase: 'failed', ...after, error: describe(err) });
      throw err;
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
