import { FleetClient } from '../fleet/index.js';

/** fleet's API: a unix socket path (`/var/run/fleet.sock`) or an http(s) URL. */
export function openFleet(socketOrUrl: string): FleetClient {
  return /^https?:\/\//.test(socketOrUrl) ? new FleetClient({ url: socketOrUrl }) : new FleetClient({ socketPath: socketOrUrl });
}
