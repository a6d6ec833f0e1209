import type { ActiveState } from '../systemd/port.js';

/** A unit counts as up (holding the volume) unless it is fully inactive or failed. */
export function isUp(state: ActiveState): boolean {
  return state !== 'inactive' && state !== 'failed';
}

const UNIT_SUFFIX = /\.(service|socket|mount|target|timer|path|scope|slice|swap|device|automount)$/;

/**
 * The systemd name of a service record's unit: records name the template instance (`postgres@vol-…`),
 * systemd's D-Bus API needs the full name (`postgres@vol-….service`).
 */
export function systemdServiceName(unit: string): string {
  return UNIT_SUFFIX.test(unit) ? unit : `${unit}.service`;
}
