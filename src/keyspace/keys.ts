/**
 * The one place that knows the etcd key layout. Controller, agent and CLI build every key here so
 * that a prefix change or a new record kind cannot drift between them. Layout (prefix defaults to
 * `/ebs-failover/`):
 *
 *   hosts/<instanceId>                 HostRecord, leased by the host's agent (liveness)
 *   services/<unit>                    ServiceRecord: unit → volume, mount unit, metadata key, …
 *   placements/<volumeId>              Placement: volume → host and generation (controller, leader-guarded)
 *   journal/<volumeId>                 FailoverJournal: the persisted failover state machine
 *   status/<instanceId>/<volumeId>     AgentReport: what the agent did for a placement generation (leased)
 *   requests/<volumeId>                ManualRequest: a queued manual failover
 *   events/<ms,15 digits>-<volumeId>   EventRecord: bounded history for `status`
 *   election/                          controller election (etcd3 Election)
 *   locks/<volumeId>                   per-volume lock (fencing token = its create revision)
 */
export const DEFAULT_PREFIX = '/ebs-failover/';

export interface Keyspace {
  readonly prefix: string;
  hostsPrefix(): string;
  host(instanceId: string): string;
  servicesPrefix(): string;
  service(unit: string): string;
  placementsPrefix(): string;
  placement(volumeId: string): string;
  journalPrefix(): string;
  journal(volumeId: string): string;
  statusPrefix(): string;
  statusOfHostPrefix(instanceId: string): string;
  status(instanceId: string, volumeId: string): string;
  requestsPrefix(): string;
  request(volumeId: string): string;
  eventsPrefix(): string;
  event(atMs: number, volumeId: string): string;
  electionPrefix(): string;
  locksPrefix(): string;
  lock(volumeId: string): string;
  /** The last path segment of a key under `under` (e.g. the volume id of a placement key). */
  tail(key: string, under: string): string;
}

export function keyspace(prefix: string = DEFAULT_PREFIX): Keyspace {
  const p = prefix.endsWith('/') ? prefix : `${prefix}/`;
  return {
    prefix: p,
    hostsPrefix: () => `${p}hosts/`,
    host: (instanceId) => `${p}hosts/${instanceId}`,
    servicesPrefix: () => `${p}services/`,
    service: (unit) => `${p}services/${unit}`,
    placementsPrefix: () => `${p}placements/`,
    placement: (volumeId) => `${p}placements/${volumeId}`,
    journalPrefix: () => `${p}journal/`,
    journal: (volumeId) => `${p}journal/${volumeId}`,
    statusPrefix: () => `${p}status/`,
    statusOfHostPrefix: (instanceId) => `${p}status/${instanceId}/`,
    status: (instanceId, volumeId) => `${p}status/${instanceId}/${volumeId}`,
    requestsPrefix: () => `${p}requests/`,
    request: (volumeId) => `${p}requests/${volumeId}`,
    eventsPrefix: () => `${p}events/`,
    // Zero-padded so that etcd's lexical key order is time order.
    event: (atMs, volumeId) => `${p}events/${String(Math.floor(atMs)).padStart(15, '0')}-${volumeId}`,
    electionPrefix: () => `${p}election`,
    locksPrefix: () => `${p}locks/`,
    lock: (volumeId) => `${p}locks/${volumeId}`,
    tail: (key, under) => (key.startsWith(under) ? key.slice(under.length) : key),
  };
}
