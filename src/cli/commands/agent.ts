import { createRequire } from 'node:module';
import { configWarnings, parseLabels } from '../../config/index.js';
import { keyspace } from '../../keyspace/index.js';
import { checkEtcdAccess } from '../../security/index.js';
import { createLogger } from '../../log/logger.js';
import { resolveAgentIdentity } from '../agent-identity.js';
import { configFromOptions, type GlobalOptions } from '../context.js';
import { UsageError } from '../errors.js';
import { openFleet } from '../fleet.js';
import { connectEtcd } from '../../locks/index.js';
import { loadHost } from '../modules.js';

export interface AgentFlags extends GlobalOptions {
  instanceId?: string;
  az?: string;
  privateIp?: string;
  mode?: string;
  deviceRoot?: string;
  leaseStateFile?: string;
  label: string[];
}

const AGENT_VERSION = (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;

/**
 * `failover agent`: config (flags > env > file), identity (overrides, else IMDSv2, machine id from
 * /etc/machine-id), then src/host's agent loop until SIGTERM. On SIGTERM the loop returns without
 * stopping units or revoking the lease, and so does this: the lease id stays in leaseStateFile, and a
 * restart within the TTL resumes the same lease, so a restart never triggers a failover.
 */
export async function runAgentDaemon(flags: AgentFlags, signal: AbortSignal): Promise<void> {
  let labels: Record<string, string> | undefined;
  try {
    labels = flags.label.length ? Object.assign({}, ...flags.label.map((l) => parseLabels(l, 'agent.labels', 'flags'))) : undefined;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const config = configFromOptions(flags, {
    agent: { instanceId: flags.instanceId, az: flags.az, privateIp: flags.privateIp, mode: flags.mode, deviceRoot: flags.deviceRoot, leaseStateFile: flags.leaseStateFile, labels },
  });
  const log = createLogger('failover-agent');
  const identity = await resolveAgentIdentity(config.agent);
  const { runAgent } = await loadHost();
  for (const warning of configWarnings(config)) log.warn({ warning }, 'insecure secret file');
  const etcd = connectEtcd(config.etcd);
  try {
    // Before registering: a wrong CA or a role without hosts/ or status/ refuses to start, naming the range.
    await checkEtcdAccess({
      client: etcd, etcd: config.etcd, ks: keyspace(config.prefix), component: 'agent',
      waitForEtcd: { signal, onRetry: (err, attempt) => log.warn({ err, attempt }, 'cannot check etcd permissions yet (etcd unreachable); retrying') },
    });
    await runAgent({
      etcd,
      prefix: config.prefix,
      ...identity,
      labels: config.agent.labels,
      leaseTtlMs: config.lease.ttlMs,
      fenceMarginMs: config.lease.fenceMarginMs,
      leaseStateFile: config.agent.leaseStateFile,
      mode: config.agent.mode,
      fleet: config.agent.mode === 'fleet' ? openFleet(config.agent.fleetSocket) : undefined,
      deviceRoot: config.agent.deviceRoot,
      systemdBus: config.agent.systemdBus,
      peerListen: config.agent.peerListen,
      timeouts: { verifyEveryMs: config.agent.verifyEveryMs },
      agentVersion: AGENT_VERSION,
      log: log.child({ instanceId: identity.instanceId }),
      signal,
    });
    log.info({ instanceId: identity.instanceId }, 'agent stopped; units left running and lease kept for a restart');
  } finally {
    // Closing the client does not revoke the lease; it simply expires unless a restart resumes it.
    etcd.close();
  }
}
