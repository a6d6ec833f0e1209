import type { Placement, ServiceRecord } from '../../keyspace/index.js';
import type { Logger } from '../../log/logger.js';
import type { MetadataPort } from '../fleet-metadata.js';
import type { ServiceControl } from '../service.js';
import type { SystemdPort } from '../systemd/port.js';
import type { AgentTimeouts, HeldVolume } from './options.js';
import type { DeviceCheck, VolumeOps } from './ports.js';
import type { Reporter } from './reporter.js';
import { isUp, systemdServiceName } from './unit-state.js';
import { IDLE, findDrift, generationOf, isActiveFor, mayHold, transition, type VolumeEvent, type VolumeState } from './volume-state.js';

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

/** A verify timer may fire a little early by Date.now(); within this much it counts as due. */
const VERIFY_SLACK_MS = 50;

/** Execution bookkeeping of one volume: one operation at a time; volumes run in parallel. */
interface Runner {
  running: Promise<void> | null;
  /** Another pass was asked for while one was running. */
  again: boolean;
  abort: AbortController | null;
  /** The placement generation the running attempt works for (to abort it when the placement moves). */
  runningFor: number | null;
  retryTimer: NodeJS.Timeout | null;
  /** Next re-verification of an `active` volume. */
  verifyTimer: NodeJS.Timeout | null;
}

/** One volume: its state (src/host/agent/volume-state.ts, the only place it changes) and its runner. */
interface Slot {
  readonly volumeId: string;
  /** The service unit last seen for this volume (for `held()`). */
  unit: string | null;
  /**
   * The service record last acted on: if an operator removes the record while the unit runs here, the
   * agent still knows which unit and mount to stop when the volume moves or the host fences (chaos seed 95).
   */
  service: ServiceRecord | null;
  state: VolumeState;
  readonly run: Runner;
}

type LocalState = { unitActive: boolean; mountActive: boolean };

/**
 * Drives each volume towards what its placement says (controller-runtime style: it acts on the state it
 * reads when it runs, not on the event that woke it). A placement naming this host → device, mount,
 * metadata, unit, report `active`, then re-verify every `verifyEveryMs` and repair a drift. A placement
 * naming another host or nobody → stop unit, stop mount, drop metadata, report `released`. A volume with
 * no placement at all is left as it is: only the controller decides that a running service must stop.
 */
export class Reconciler {
  private readonly slots = new Map<string, Slot>();
  private paused = false;

  constructor(
    private readonly deps: ReconcilerDeps,
    private readonly view: DesiredView,
  ) {}

  private slot(volumeId: string): Slot {
    let s = this.slots.get(volumeId);
    if (!s) {
      s = { volumeId, unit: null, service: null, state: IDLE, run: { running: null, again: false, abort: null, runningFor: null, retryTimer: null, verifyTimer: null } };
      this.slots.set(volumeId, s);
    }
    return s;
  }

  /** The state of one volume (tests, logs). */
  stateOf(volumeId: string): VolumeState {
    return this.slots.get(volumeId)?.state ?? IDLE;
  }

  private move(s: Slot, event: VolumeEvent): void {
    const from = s.state;
    s.state = transition(from, event);
    this.deps.log.debug({ volumeId: s.volumeId, from: from.kind, event: event.type, to: s.state.kind }, 'volume state');
  }

  /** Marks a volume as possibly held (adoption from a previous run's report or local state). */
  markHeld(volumeId: string, unit: string): void {
    const s = this.slot(volumeId);
    this.move(s, { type: 'adopt' });
    s.unit = unit;
  }

  held(): Map<string, HeldVolume> {
    const out = new Map<string, HeldVolume>();
    for (const s of this.slots.values()) {
      if (!mayHold(s.state) || s.state.kind === 'fenced' || !s.unit) continue;
      out.set(s.volumeId, { volumeId: s.volumeId, unit: s.unit, generation: generationOf(s.state) ?? -1, phase: this.deps.reporter.lastPhase(s.volumeId) ?? 'active' });
    }
    return out;
  }

  /** Volumes whose unit or mount may be up here, or whose metadata may be published. */
  heldVolumeIds(): string[] {
    return [...this.slots.values()].filter((s) => mayHold(s.state)).map((s) => s.volumeId);
  }

  /** The last service record of every volume that may be up here (whether or not etcd still has it). */
  heldServices(): ServiceRecord[] {
    return [...this.slots.values()].filter((s) => mayHold(s.state) && s.service !== null).map((s) => s.service as ServiceRecord);
  }

  kickAll(): void {
    const ids = new Set([...this.view.volumeIds(), ...this.slots.keys()]);
    for (const volumeId of ids) this.kick(volumeId);
  }

  kick(volumeId: string): void {
    if (this.paused) return;
    const s = this.slot(volumeId);
    const run = s.run;
    if (run.retryTimer) {
      clearTimeout(run.retryTimer);
      run.retryTimer = null;
    }
    if (run.running) {
      run.again = true;
      // A long wait (device, fleet) for a generation that is no longer current must not block the next one.
      const p = this.view.placement(volumeId);
      if (run.runningFor !== null && p && (p.generation !== run.runningFor || p.instanceId !== this.deps.instanceId)) {
        run.abort?.abort(new SupersededError(`placement of ${volumeId} changed to generation ${p.generation}`));
      }
      return;
    }
    run.running = this.loop(s).finally(() => {
      run.running = null;
    });
  }

  /** Stops starting anything (fence, shutdown) and aborts every attempt in flight. */
  pause(reason: string): void {
    this.paused = true;
    for (const s of this.slots.values()) {
      s.run.abort?.abort(new SupersededError(reason));
      clearTimers(s.run);
    }
  }

  resume(): void {
    this.paused = false;
  }

  /** After a fence everything here is stopped: placements are acted on afresh. */
  forgetAfterFence(volumeIds: readonly string[]): void {
    for (const volumeId of volumeIds) this.move(this.slot(volumeId), { type: 'fence' });
  }

  /** Resolves when no volume has an attempt running (retries and verifications scheduled for later do not count). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.slots.values()].map((s) => s.run.running).filter((p): p is Promise<void> => p !== null);
      if (running.length === 0) return;
      await Promise.allSettled(running);
    }
  }

  private async loop(s: Slot): Promise<void> {
    const run = s.run;
    do {
      run.again = false;
      if (this.paused) return;
      const abort = new AbortController();
      run.abort = abort;
      try {
        await this.step(s, abort.signal);
      } catch (err) {
        if (!(err instanceof SupersededError) && !(abort.signal.reason instanceof SupersededError)) {
          this.deps.log.error({ err, volumeId: s.volumeId, state: s.state.kind }, 'reconcile failed; will retry');
          this.scheduleRetry(s);
        }
      } finally {
        run.abort = null;
        run.runningFor = null;
      }
    } while (run.again && !this.paused);
  }

  private scheduleRetry(s: Slot): void {
    if (this.paused) return;
    s.run.retryTimer = setTimeout(() => {
      s.run.retryTimer = null;
      this.kick(s.volumeId);
    }, this.deps.timeouts.retryMs);
    s.run.retryTimer.unref?.();
  }

  /** (Re)arms the next re-verification of an active volume. */
  private armVerify(s: Slot, inMs: number): void {
    if (s.run.verifyTimer) clearTimeout(s.run.verifyTimer);
    s.run.verifyTimer = null;
    if (this.paused) return;
    s.run.verifyTimer = setTimeout(() => {
      s.run.verifyTimer = null;
      this.kick(s.volumeId);
    }, Math.max(0, inMs));
    s.run.verifyTimer.unref?.();
  }

  private async step(s: Slot, signal: AbortSignal): Promise<void> {
    const placement = this.view.placement(s.volumeId);
    if (!placement) return; // no placement: only the controller decides that a running service must stop
    const service = this.view.service(s.volumeId, placement.unit) ?? (mayHold(s.state) ? s.service : null);
    if (!service) {
      this.deps.log.warn({ volumeId: s.volumeId, unit: placement.unit }, 'placement without a service record; nothing to manage');
      return;
    }
    s.unit = service.unit;
    s.service = service;
    const generation = placement.generation;
    if (placement.instanceId === this.deps.instanceId) {
      const state = s.state;
      if (isActiveFor(state, generation)) {
        const dueInMs = state.verifiedAt + this.deps.timeouts.verifyEveryMs - Date.now();
        if (dueInMs > VERIFY_SLACK_MS) {
          this.armVerify(s, dueInMs); // level-based: whatever woke us, an active volume keeps a verify timer
          return;
        }
        s.run.runningFor = generation;
        await this.verify(s, placement, service, signal);
        return;
      }
      s.run.runningFor = generation;
      this.move(s, { type: 'acquire', generation });
      await this.acquire(s, placement, service, signal);
    } else {
      const up = await this.localState(service);
      if (!mayHold(s.state) && !up.unitActive && !up.mountActive) return;
      s.run.runningFor = generation;
      this.move(s, { type: 'release', generation });
      await this.release(s, placement, service, signal, up);
    }
  }

  private async localState(service: ServiceRecord): Promise<LocalState> {
    const [unit, mount] = await Promise.all([this.deps.systemd.unitState(systemdServiceName(service.unit)), this.deps.systemd.unitState(service.mountUnit)]);
    return { unitActive: isUp(unit.activeState), mountActive: isUp(mount.activeState) };
  }

  /** Throws SupersededError unless the placement still names this host with `generation`. */
  private ensureCurrent(volumeId: string, generation: number, signal: AbortSignal): void {
    const p = this.view.placement(volumeId);
    if (signal.aborted || this.paused || !p || p.instanceId !== this.deps.instanceId || p.generation !== generation) {
      throw new SupersededError(`placement of ${volumeId} generation ${generation} superseded`);
    }
  }

  /** The device facts of a re-verification; a placement without a device name cannot be checked. */
  private async deviceFacts(service: ServiceRecord, placement: Placement): Promise<DeviceCheck | { ok: true }> {
    if (placement.device === null) return { ok: true }; // adopted from a record without one: nothing to compare
    return this.deps.volumes.checkDevice(service, placement.device);
  }

  private async acquire(s: Slot, placement: Placement, service: ServiceRecord, signal: AbortSignal): Promise<void> {
    const { reporter, metadata, log } = this.deps;
    const volumeId = s.volumeId;
    const generation = placement.generation;
    const base = { volumeId, unit: service.unit, generation };
    const vlog = log.child({ volumeId, unit: service.unit, generation });
    try {
      const up = await this.localState(service);
      if (up.unitActive && up.mountActive) {
        // Adoption (agent restart): both are up. Adopt only if the disk under them is still this volume;
        // then nothing is stopped or restarted and only the metadata is re-asserted (idempotent).
        const device = await this.deviceFacts(service, placement);
        if (device.ok) {
          await metadata.set(service.metadataKey, volumeId);
          vlog.info('adopted running volume');
        } else {
          vlog.warn({ drift: device.kind, detail: device.detail }, 'not adopting: the running unit is not on this volume; stopping it and acquiring afresh');
          await stopWhileReporting(this.stopAll(service, signal), reporter.report({ ...base, phase: 'drift', ...up, error: `${device.kind}: ${device.detail}` }));
          await this.bringUp(placement, service, signal, { unitActive: false, mountActive: false });
        }
      } else {
        await this.bringUp(placement, service, signal, up);
      }
      this.becameActive(s, generation);
      await reporter.report({ ...base, phase: 'active', mountActive: true, unitActive: true });
      vlog.info('volume active');
    } catch (err) {
      await this.acquireFailed(s, service, base, signal, err);
    }
  }

  /** Device → mount → metadata → unit, checking after each wait that the placement still says so. */
  private async bringUp(placement: Placement, service: ServiceRecord, signal: AbortSignal, up: LocalState): Promise<void> {
    const { reporter, volumes, metadata, timeouts, log } = this.deps;
    const { volumeId, generation } = placement;
    const base = { volumeId, unit: service.unit, generation };
    await reporter.report({ ...base, phase: 'waiting-device', mountActive: up.mountActive, unitActive: false });
    const device = await volumes.waitForDevice(volumeId, placement.device, { timeoutMs: timeouts.deviceMs, signal });
    this.ensureCurrent(volumeId, generation, signal);
    await reporter.report({ ...base, phase: 'mounting', mountActive: up.mountActive, unitActive: false });
    await volumes.mount(service, device, { timeoutMs: timeouts.mountMs, signal });
    this.ensureCurrent(volumeId, generation, signal);
    log.info({ volumeId, generation, device: device.path, via: device.via }, 'mount active');
    // Only now may fleet schedule the unit here: the data is mounted.
    await metadata.set(service.metadataKey, volumeId);
    this.ensureCurrent(volumeId, generation, signal);
    await reporter.report({ ...base, phase: 'starting', mountActive: true, unitActive: false });
    await this.deps.service.start(systemdServiceName(service.unit), service.mountUnit, { timeoutMs: timeouts.unitMs, signal });
    this.ensureCurrent(volumeId, generation, signal);
  }

  /**
   * Stops unit and mount because the disk under them is gone or not this volume (nothing running on it
   * can be right). fleet mode: unschedule first, or fleet would start the unit again on a dead disk.
   */
  private async stopAll(service: ServiceRecord, signal: AbortSignal): Promise<void> {
    const opts = { timeoutMs: this.deps.timeouts.stopMs, signal };
    if (this.deps.mode === 'fleet') await this.deps.metadata.remove(service.metadataKey);
    await this.deps.service.stop(systemdServiceName(service.unit), opts);
    await this.deps.volumes.unmount(service, opts);
  }

  /**
   * Re-verification of an active volume: what was reported `active` must still hold. On drift, report it
   * (so neither the controller nor `status` sees `active`), then re-acquire the same generation.
   * The unit's state is read from the local systemd in both modes: in fleet mode fleet runs the unit
   * under this host's systemd too, so the local unit state is the truth (fleet's `/state` only echoes it,
   * later, and not at all while fleet's own etcd is unreachable).
   */
  private async verify(s: Slot, placement: Placement, service: ServiceRecord, signal: AbortSignal): Promise<void> {
    const generation = placement.generation;
    const [device, up] = await Promise.all([this.deviceFacts(service, placement), this.localState(service)]);
    this.ensureCurrent(s.volumeId, generation, signal);
    const drift = findDrift({ device, mountUp: up.mountActive, unitUp: up.unitActive }, { unit: systemdServiceName(service.unit), mountUnit: service.mountUnit });
    if (!drift) {
      this.move(s, { type: 'verified', at: Date.now() });
      this.armVerify(s, this.deps.timeouts.verifyEveryMs);
      return;
    }
    this.move(s, { type: 'drift', drift });
    const base = { volumeId: s.volumeId, unit: service.unit, generation };
    const vlog = this.deps.log.child(base);
    vlog.warn({ drift: drift.kind, detail: drift.detail }, 'volume drifted from its active report; re-acquiring');
    const reportDrift = (): Promise<unknown> => this.deps.reporter.report({ ...base, phase: 'drift', ...up, error: `${drift.kind}: ${drift.detail}` });
    try {
      if (drift.kind === 'unit-inactive') {
        await reportDrift();
        // Device and mount are fine: only the unit needs starting again.
        await this.deps.reporter.report({ ...base, phase: 'starting', mountActive: true, unitActive: false });
        await this.deps.service.startAgain(systemdServiceName(service.unit), service.mountUnit, { timeoutMs: this.deps.timeouts.unitMs, signal });
        this.ensureCurrent(s.volumeId, generation, signal);
      } else {
        // The disk is gone, not ours, or unmounted: stop what runs on it, then wait for the device again
        // (the controller re-attaches it, usually under a new generation, which supersedes this attempt).
        await stopWhileReporting(this.stopAll(service, signal), reportDrift());
        await this.bringUp(placement, service, signal, { unitActive: false, mountActive: false });
      }
      this.becameActive(s, generation);
      await this.deps.reporter.report({ ...base, phase: 'active', mountActive: true, unitActive: true });
      vlog.info({ drift: drift.kind }, 'volume active again after drift');
    } catch (err) {
      await this.acquireFailed(s, service, base, signal, err);
    }
  }

  private becameActive(s: Slot, generation: number): void {
    this.move(s, { type: 'acquired', generation, at: Date.now() });
    this.armVerify(s, this.deps.timeouts.verifyEveryMs);
  }

  private async acquireFailed(s: Slot, service: ServiceRecord, base: { volumeId: string; unit: string; generation: number }, signal: AbortSignal, err: unknown): Promise<never> {
    if (err instanceof SupersededError || signal.aborted) throw new SupersededError(String(err));
    const after = await this.localState(service).catch(() => ({ unitActive: false, mountActive: false }));
    this.move(s, { type: 'acquire-failed', error: describe(err) });
    await this.deps.reporter.report({ ...base, phase: 'failed', ...after, error: describe(err) });
    throw err;
  }

  private async release(s: Slot, placement: Placement, service: ServiceRecord, signal: AbortSignal, up: LocalState): Promise<void> {
    const { reporter, volumes, metadata, timeouts, mode, log } = this.deps;
    const base = { volumeId: s.volumeId, unit: service.unit, generation: placement.generation };
    const vlog = log.child({ volumeId: s.volumeId, unit: service.unit, generation: placement.generation, to: placement.instanceId });
    const opts = { timeoutMs: timeouts.stopMs, signal };
    let metadataError: unknown;
    let metadataRemoved = false;
    const dropMetadata = async (): Promise<void> => {
      try {
        await metadata.remove(service.metadataKey);
        metadataRemoved = true;
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
      if (!metadataRemoved) {
        metadataError = undefined;
        await dropMetadata();
      }
      if (metadataError) throw metadataError;
      this.move(s, { type: 'released' });
      await reporter.report({ ...base, phase: 'released', mountActive: false, unitActive: false });
      vlog.info('volume released');
    } catch (err) {
      if (err instanceof SupersededError || signal.aborted) throw new SupersededError(String(err));
      const after = await this.localState(service).catch(() => ({ unitActive: true, mountActive: true }));
      this.move(s, { type: 'release-failed', error: describe(err) });
      await reporter.report({ ...base, phase: 'failed', ...after, error: describe(err) });
      throw err;
    }
  }
}

/**
 * Stops what runs on a disk that is gone while the drift report goes to etcd, not after it: the report
 * may wait on a slow or cut-off etcd member, and the unit kept running on a detached disk meanwhile
 * (chaos seed 119: 6.3 s behind a black-holed member). Both are awaited; the stop's error comes first.
 */
async function stopWhileReporting(stop: Promise<void>, report: Promise<unknown>): Promise<void> {
  const [stopped, reported] = await Promise.allSettled([stop, report]);
  if (stopped.status === 'rejected') throw stopped.reason;
  if (reported.status === 'rejected') throw reported.reason;
}

function clearTimers(run: Runner): void {
  if (run.retryTimer) clearTimeout(run.retryTimer);
  if (run.verifyTimer) clearTimeout(run.verifyTimer);
  run.retryTimer = null;
  run.verifyTimer = null;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
