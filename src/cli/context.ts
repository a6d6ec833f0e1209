import { Option, type Command } from 'commander';
import { loadConfig, parseList, type Config } from '../config/index.js';

/** Options every command accepts; they override env and the config file (see `loadConfig`). */
export interface GlobalOptions {
  config?: string;
  etcd?: string;
  prefix?: string;
  awsEndpoint?: string;
  awsRegion?: string;
  /** Seconds one etcd call may take (CLI commands only; see src/cli/etcd.ts). */
  etcdTimeout?: string;
}

export function addGlobalOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'JSON config file (env EBS_FAILOVER_CONFIG)')
    .option('--etcd <urls>', 'etcd endpoints, comma separated (env EBS_FAILOVER_ETCD_ENDPOINTS)')
    .option('--prefix <prefix>', 'etcd key prefix (default /ebs-failover/)')
    .option('--aws-endpoint <url>', 'EC2 endpoint (tests and demo)')
    .option('--aws-region <region>', 'AWS region')
    .addOption(new Option('--etcd-timeout <seconds>', 'seconds to wait for an etcd answer before giving up, default 5 (one-shot commands; not the daemons)').env('EBS_FAILOVER_ETCD_TIMEOUT'));
}

/** Flags → the nested partial config `loadConfig` merges last. */
export function flagsToConfig(opts: GlobalOptions): Record<string, unknown> {
  return {
    etcd: opts.etcd !== undefined ? { endpoints: parseList(opts.etcd) } : undefined,
    prefix: opts.prefix,
    aws: opts.awsEndpoint !== undefined || opts.awsRegion !== undefined ? { endpoint: opts.awsEndpoint, region: opts.awsRegion } : undefined,
  };
}

export function configFromOptions(opts: GlobalOptions, extraFlags: Record<string, unknown> = {}): Config {
  const file = opts.config ?? process.env.EBS_FAILOVER_CONFIG;
  const flags = flagsToConfig(opts);
  for (const [key, value] of Object.entries(extraFlags)) {
    const prev = flags[key];
    flags[key] = typeof prev === 'object' && prev !== null ? { ...prev, ...(value as object) } : value;
  }
  return loadConfig({ file, env: process.env, flags });
}
