import type { AgentOptions } from '../host/agent/options.js';

/**
 * src/host's agent loop, loaded on demand by a computed path: only `failover agent` needs it (it pulls
 * in D-Bus), and this folder type-checks even while the agent module is being written.
 */
export interface HostModule {
  runAgent(opts: AgentOptions): Promise<unknown>;
}

export async function loadHost(): Promise<HostModule> {
  const path = '../host/agent/index.js';
  return (await import(path)) as HostModule;
}
