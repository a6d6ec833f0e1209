import type { Etcd3 } from 'etcd3';
import { configWarnings, type Config } from '../config/index.js';
import { keyspace, type Keyspace } from '../keyspace/index.js';
import { checkEtcdAccess, type Component } from '../security/index.js';
import { configFromOptions, type GlobalOptions } from './context.js';
import { asEtcdUnreachable, etcdBounded, openEtcd, parseEtcdTimeoutSeconds } from './etcd.js';
import { processOutput, type Output } from './output.js';

/** What a command body gets: validated config, an etcd client, the key layout and where to print. */
export interface Session {
  config: Config;
  etcd: Etcd3;
  ks: Keyspace;
  io: Output;
  /** The bound on each etcd call (`--etcd-timeout`). */
  etcdTimeoutMs: number;
}

/**
 * Loads config (bad field → ConfigError, exit 2), opens etcd, runs `body`, always closes the client.
 * An etcd transport failure that escapes `body` (e.g. from a call made through src/locks) is reported
 * as one readable line naming the endpoints, not gRPC's text.
 */
export async function withSession<T>(
  opts: GlobalOptions,
  body: (session: Session) => Promise<T>,
  io: Output = processOutput,
  /** Whose etcd permissions the command needs (src/security/roles.ts): probed before `body` runs. */
  component: Component = 'operator',
): Promise<T> {
  const config = configFromOptions(opts);
  for (const warning of configWarnings(config)) io.err(`warning: ${warning}`);
  const etcdTimeoutMs = parseEtcdTimeoutSeconds(opts.etcdTimeout);
  const etcd = openEtcd(config.etcd, etcdTimeoutMs);
  const ks = keyspace(config.prefix);
  try {
    // TLS pre-flight and permission probe: a wrong CA or a missing grant is one clear refusal.
    await etcdBounded(etcd, () => checkEtcdAccess({ client: etcd, etcd: config.etcd, ks, component }));
    return await body({ config, etcd, ks, io, etcdTimeoutMs });
  } catch (err) {
    throw asEtcdUnreachable(err, config.etcd.endpoints, etcdTimeoutMs) ?? err;
  } finally {
    etcd.close();
  }
}
