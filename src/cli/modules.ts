import type { Etcd3 } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';

/**
 * The colleague modules the daemons and the snapshot job call (src/locks, src/fleet, src/host), typed
 * by the cross-team API. They are loaded on demand by a computed path: only daemon and snapshot
 * commands need them, and this folder type-checks on its own while they are being written.
 */
export interface EtcdConnectOptions {
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
}

export interface LocksModule {
  connectEtcd(opts: EtcdConnectOptions): Etcd3;
  acquireVolumeLock(
    client: Etcd3,
    ks: Keyspace,
    volumeId: string,
    opts: { ttlMs: number; waitMs: number; owner: string; signal?: AbortSignal },
  ): Promise<{ token: string | number | bigint; release(): Promise<void> }>;
}

export interface FleetClientLike {
  removeMetadata(machineId: string, key: string): Promise<void>;
  setMetadata(machineId: string, key: string, value: string): Promise<void>;
}

export interface FleetModule {
  FleetClient: new (opts: { socketPath?: string; url?: string }) => FleetClientLike;
}

async function load<T>(path: string): Promise<T> {
  return (await import(path)) as T;
}

export const loadLocks = (): Promise<LocksModule> => load<LocksModule>('../locks/index.js');
export const loadFleet = (): Promise<FleetModule> => load<FleetModule>('../fleet/index.js');

/** What `failover agent` hands to src/host's `runAgent` (adapted to its real options when wiring). */
export interface AgentRunOptions {
  etcd: Etcd3;
  prefix: string;
  instanceId: string;
  az: string;
  privateIp: string;
  machineId: string;
  labels: Record<string, string>;
  leaseTtlMs: number;
  fenceMarginMs: number;
  leaseStateFile: string;
  mode: 'fleet' | 'systemd';
  fleet?: FleetClientLike;
  deviceRoot: string;
  systemdBus?: string;
  agentVersion: string;
  log: import('../log/logger.js').Logger;
  /** Aborted on SIGTERM: the agent returns WITHOUT stopping units or revoking its lease. */
  signal: AbortSignal;
}

export interface HostModule {
  runAgent(opts: AgentRunOptions): Promise<unknown>;
}

export const loadHost = (): Promise<HostModule> => load<HostModule>('../host/index.js');
