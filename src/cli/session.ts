import type { Etcd3 } from 'etcd3';
import type { Config } from '../config/index.js';
import { keyspace, type Keyspace } from '../keyspace/index.js';
import { configFromOptions, type GlobalOptions } from './context.js';
import { openEtcd } from './etcd.js';
import { processOutput, type Output } from './output.js';

/** What a command body gets: validated config, an etcd client, the key layout and where to print. */
export interface Session {
  config: Config;
  etcd: Etcd3;
  ks: Keyspace;
  io: Output;
}

/** Loads config (bad field → ConfigError, exit 2), opens etcd, runs `body`, always closes the client. */
export async function withSession<T>(opts: GlobalOptions, body: (session: Session) => Promise<T>, io: Output = processOutput): Promise<T> {
  const config = configFromOptions(opts);
  const etcd = openEtcd(config.etcd);
  try {
    return await body({ config, etcd, ks: keyspace(config.prefix), io });
  } finally {
    etcd.close();
  }
}
