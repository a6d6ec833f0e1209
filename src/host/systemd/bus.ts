import dbus, { type Message as DbusMessage, type MessageBus } from 'dbus-next';
import { SystemdBusError } from './errors.js';

/** Thin helpers over dbus-next's low-level messages: no introspection round trips, typed replies. */

export const SYSTEMD = 'org.freedesktop.systemd1';
export const MANAGER_PATH = '/org/freedesktop/systemd1';
export const MANAGER = 'org.freedesktop.systemd1.Manager';
export const PROPERTIES = 'org.freedesktop.DBus.Properties';
export const UNIT = 'org.freedesktop.systemd1.Unit';
export const JOB = 'org.freedesktop.systemd1.Job';

export type Bus = MessageBus;
export type Message = DbusMessage;

export function defaultBusAddress(): string {
  return process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'unix:path=/run/dbus/system_bus_socket';
}

/** Opens the connection and waits for the bus's Hello reply (or the connect error). */
export function openBus(busAddress: string, timeoutMs: number): Promise<Bus> {
  // sessionBus() because systemBus() ignores its options and always reads the env/default path.
  const bus = dbus.sessionBus({ busAddress });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      bus.disconnect();
      reject(new SystemdBusError(busAddress, undefined, `no answer from D-Bus at ${busAddress} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onConnect = (): void => {
      cleanup();
      resolve(bus);
    };
    const onError = (err: unknown): void => {
      cleanup();
      bus.disconnect();
      reject(new SystemdBusError(busAddress, undefined, `cannot connect to D-Bus at ${busAddress}: ${String(err)}`, { cause: err }));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      bus.off('connect', onConnect);
      bus.off('error', onError);
    };
    bus.on('connect', onConnect);
    bus.on('error', onError);
  });
}

/** The D-Bus error name of a failed call (`org.freedesktop.systemd1.NoSuchUnit`, ...). */
export function dbusErrorName(err: unknown): string | undefined {
  if (err instanceof dbus.DBusError) return err.type;
  return undefined;
}

export function methodCall(path: string, iface: string, member: string, signature = '', body: unknown[] = []): Message {
  return new dbus.Message({ destination: SYSTEMD, path, interface: iface, member, signature, body });
}

/** A dbus-next Variant's value (GetAll/Get return variants). */
export function variantValue(v: unknown): unknown {
  return v instanceof dbus.Variant ? v.value : v;
}

/** Match rule for a systemd signal; `extra` adds e.g. a path_namespace. */
export function signalRule(iface: string, member: string, extra = ''): string {
  return `type='signal',sender='${SYSTEMD}',interface='${iface}',member='${member}'${extra}`;
}

/** `org.freedesktop.DBus.AddMatch(rule)`: ask the bus to route matching signals to us. */
export function addMatchCall(rule: string): Message {
  return new dbus.Message({
    destination: 'org.freedesktop.DBus',
    path: '/org/freedesktop/DBus',
    interface: 'org.freedesktop.DBus',
    member: 'AddMatch',
    signature: 's',
    body: [rule],
  });
}
