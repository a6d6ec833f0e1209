import type { Etcd3 } from 'etcd3';
import type { FleetClient } from '../fleet/index.js';

/**
 * src/host's agent, typed by the cross-team API and loaded on demand by a computed path: only
 * `failover agent` needs it, and this folder type-checks while it is being written.
 */
async function load<T>(path: string): Promise<T> {
  return (await import(path)) as T;
}

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
  fleet?: FleetClient;
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
