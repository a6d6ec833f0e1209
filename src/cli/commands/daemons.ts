import { hostname } from 'node:os';
import type { Command } from 'commander';
import { createLogger } from '../../log/logger.js';
import { configFromOptions, type GlobalOptions } from '../context.js';
import { openEc2 } from '../ec2.js';
import { openFleet } from '../fleet.js';
import { connectEtcd } from '../../locks/index.js';
import { configWarnings } from '../../config/index.js';
import { keyspace } from '../../keyspace/index.js';
import { checkEtcdAccess } from '../../security/index.js';
import { isLoopbackListen } from '../../security/listen.js';

/** Aborted on SIGTERM/SIGINT: the daemons wind down on it and `runCli` returns. */
export function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = (): void => controller.abort(new Error('signal'));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return controller.signal;
}

export function registerDaemonCommands(program: Command): void {
  program
    .command('controller')
    .description('run the controller daemon: campaigns in etcd; the leader watches hosts and fails services over. SIGTERM resigns leadership and exits 0')
    .option('--candidate-id <name>', 'name shown as leader in `failover status`', `${hostname()}:${process.pid}`)
    .option('--no-fleet', 'do not edit fleet metadata (systemd-mode agents)')
    .option('--metrics-listen <host:port>', 'Prometheus /metrics listener (default 127.0.0.1:9642)')
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { candidateId: string; fleet: boolean; metricsListen?: string }>();
      const config = configFromOptions(opts, opts.metricsListen ? { controller: { metricsListen: opts.metricsListen } } : {});
      const log = createLogger('failover-controller');
      // Daemon code is loaded only by the daemon commands, keeping `status` and friends quick to start.
      const { runController } = await import('../../controller/index.js');
      for (const warning of configWarnings(config)) log.warn({ warning }, 'insecure secret file');
      if (!isLoopbackListen(config.controller.metricsListen)) {
        log.warn({ metricsListen: config.controller.metricsListen }, '/metrics is served in plain HTTP beyond loopback: put it behind a TLS proxy or a firewall');
      }
      const etcd = connectEtcd(config.etcd);
      try {
        const signal = shutdownSignal();
        // Before campaigning: a controller elected without placements/ or journal/ would fail every failover.
        await checkEtcdAccess({
          client: etcd, etcd: config.etcd, ks: keyspace(config.prefix), component: 'controller',
          waitForEtcd: { signal, onRetry: (err, attempt) => log.warn({ err, attempt }, 'cannot check etcd permissions yet (etcd unreachable); retrying') },
        });
        const result = await runController({
          ...config.controller,
          etcd,
          ec2: await openEc2(config.aws, log),
          fleet: opts.fleet && config.agent.mode === 'fleet' ? openFleet(config.agent.fleetSocket) : undefined,
          prefix: config.prefix,
          candidateId: opts.candidateId,
          electionTtlMs: config.lease.ttlMs,
          log,
          signal,
        });
        log.info({ terms: result.terms }, 'controller stopped');
      } finally {
        etcd.close();
      }
    });

  program
    .command('agent')
    .description(
      'run the host agent: holds this host\'s lease, mounts placed volumes, starts units, fences itself when renewals fail. ' +
        'SIGTERM exits WITHOUT stopping units or revoking the lease: a restart within the lease TTL resumes the same lease (leaseStateFile)',
    )
    .option('--instance-id <id>', 'override IMDS instance id')
    .option('--az <zone>', 'override IMDS availability zone')
    .option('--private-ip <ip>', 'override IMDS private IPv4')
    .option('--mode <mode>', 'fleet (fleet starts units) or systemd (the agent starts them)')
    .option('--device-root <dir>', 'where attached devices appear (default /dev)')
    .option('--lease-state-file <file>', 'where the lease id is kept across restarts')
    .option('--label <k=v>', 'host label (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { instanceId?: string; az?: string; privateIp?: string; mode?: string; deviceRoot?: string; leaseStateFile?: string; label: string[] }>();
      const { runAgentDaemon } = await import('./agent.js');
      await runAgentDaemon(opts, shutdownSignal());
    });
}
