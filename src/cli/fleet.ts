import { loadFleet, type FleetClientLike } from './modules.js';

/** fleet's API: a unix socket path (`/var/run/fleet.sock`) or an http(s) URL. */
export async function openFleet(socketOrUrl: string): Promise<FleetClientLike> {
  const { FleetClient } = await loadFleet();
  return /^https?:\/\//.test(socketOrUrl) ? new FleetClient({ url: socketOrUrl }) : new FleetClient({ socketPath: socketOrUrl });
}
