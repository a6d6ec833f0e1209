import type { ServiceRecord } from '../../keyspace/index.js';
import type { Logger } from '../../log/logger.js';
import type { MetadataPort } from '../fleet-metadata.js';
import type { SystemdPort } from '../systemd/port.js';
import type { FenceRecord } from './options.js';
import { isUp, systemdServiceName } from './unit-state.js';

export interface FenceDeps {
  systemd: SystemdPort;
  metadata: MetadataPort;
  log: Logger;
  /** Deadline of each stop job: a unit that does not stop in time is reported, the others are not held up. */
  stopTimeoutMs: number;
  /** Deadline of each metadata removal (fleet may be as unreachable as etcd). */
  metadataTimeoutMs: number;
}

/**
 * Self-fencing: stop every managed unit and its mount at once, without touching etcd. Units and mounts
 * are stopped in parallel across volumes; for one volume the unit and the mount stop jobs are queued
 * together (systemd orders them by `After=`, unit first); a mount that was still busy (a unit without
 * `After=` on it) is stopped once more after its unit is down. Metadata removal is attempted afterwards,
 * best effort, bounded: the stops come first because only they make the host safe.
 */
export async function fenceAll(deps: FenceDeps, services: readonly ServiceRecord[], startedAt: number, reason: string): Promise<FenceRecord> {
  const errors: string[] = [];
  const stopOne = async (service: ServiceRecord): Promise<void> => {
    const opts = { timeoutMs: deps.stopTimeoutMs };
    const [unit, mount] = await Promise.allSettled([deps.systemd.stopUnit(systemdServiceName(service.unit), opts), deps.systemd.stopUnit(service.mountUnit, opts)]);
    if (unit.status === 'rejected') errors.push(`${service.unit}: ${describe(unit.reason)}`);
    if (mount.status === 'rejected' || isUp(mount.value.activeState)) {
      try {
        const again = await deps.systemd.stopUnit(service.mountUnit, opts);
        if (isUp(again.activeState)) errors.push(`${service.mountUnit}: still ${again.activeState}`);
      } catch (err) {
        errors.push(`${service.mountUnit}: ${describe(err)}`);
      }
    }
  };
  await Promise.all(services.map(stopOne));
  const stoppedAt = Date.now();
  const record: FenceRecord = { startedAt, stoppedAt, volumeIds: services.map((s) => s.volumeId), errors, reason };
  if (errors.length) deps.log.error({ errors, stoppedMs: stoppedAt - startedAt }, 'self-fence: some units or mounts did not stop');
  else deps.log.warn({ volumeIds: record.volumeIds, stoppedMs: stoppedAt - startedAt }, 'self-fence: every managed unit and mount stopped');

  await Promise.all(
    services.map((service) =>
      withTimeout(deps.metadata.remove(service.metadataKey), deps.metadataTimeoutMs).catch((err: unknown) =>
        deps.log.warn({ err, volumeId: service.volumeId, key: service.metadataKey }, 'self-fence: metadata not removed (will retry on recovery)'),
      ),
    ),
  );
  return record;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
