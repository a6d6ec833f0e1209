import type { ActiveState, SystemdPort, UnitState } from './systemd/port.js';
import { UnitFailedError } from './systemd/errors.js';

/** How the service unit gets started on the holding host. */
export type ServiceMode = 'fleet' | 'systemd';

/** The service was asked to start while its mount was not active: never run postgres on an empty dir. */
export class MountNotActiveError extends Error {
  override readonly name = 'MountNotActiveError';
  constructor(
    readonly unit: string,
    readonly mountUnit: string,
    readonly mountState: ActiveState,
  ) {
    super(`refusing to start ${unit}: its mount ${mountUnit} is ${mountState}, not active`);
  }
}

export interface ServiceOpOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Starts and stops one service unit (`postgres@vol-…`) on top of its mount unit.
 * - `systemd` mode: the agent starts the unit itself.
 * - `fleet` mode: fleet starts it once this machine's metadata matches the unit's `MachineMetadata=`;
 *   the agent only waits for it to be active, with a deadline.
 * In both modes the mount must be active first (checked here, not only by the unit's `Requires=`,
 * which an operator's unit file could lack). Stopping is always done locally, also in fleet mode:
 * release and self-fencing must not depend on fleet (or etcd) being reachable.
 */
export class ServiceControl {
  constructor(
    private readonly systemd: SystemdPort,
    readonly mode: ServiceMode,
  ) {}

  async start(unit: string, mountUnit: string, opts: ServiceOpOptions): Promise<UnitState> {
    const mount = await this.systemd.unitState(mountUnit);
    if (mount.activeState !== 'active') throw new MountNotActiveError(unit, mountUnit, mount.activeState);
    if (this.mode === 'systemd') return this.systemd.startUnit(unit, opts);
    const state = await this.systemd.waitForState(unit, ['active', 'failed'], opts);
    // fleet restarts a failed unit on its own schedule; for this attempt a failed unit is a failure.
    if (state.activeState === 'failed') throw new UnitFailedError(unit, state.result, undefined);
    return state;
  }

  /**
   * Starts again a unit that went down on its own while its mount stayed active (re-acquire after a
   * drift). In both modes through the local systemd: in fleet mode the unit is already scheduled here
   * (our metadata matches) and fleet runs it under this host's systemd, so a local start is exactly
   * what fleet's own agent would do, without waiting for fleet's next reconcile.
   */
  async startAgain(unit: string, mountUnit: string, opts: ServiceOpOptions): Promise<UnitState> {
    const mount = await this.systemd.unitState(mountUnit);
    if (mount.activeState !== 'active') throw new MountNotActiveError(unit, mountUnit, mount.activeState);
    return this.systemd.startUnit(unit, opts);
  }

  async stop(unit: string, opts: ServiceOpOptions): Promise<UnitState> {
    return this.systemd.stopUnit(unit, opts);
  }

  async isActive(unit: string): Promise<boolean> {
    const state = await this.systemd.unitState(unit);
    return state.activeState === 'active' || state.activeState === 'activating' || state.activeState === 'reloading';
  }
}
