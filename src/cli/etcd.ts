import type { Etcd3 } from 'etcd3';
import type { Config } from '../config/index.js';
import { connectEtcd } from '../locks/index.js';

/**
 * The etcd client for CLI commands. Dials for 2 s at most because a person is waiting; the daemons
 * use the locks module's 5 s default.
 */
export const CLI_ETCD_DIAL_TIMEOUT_MS = 2_000;

export function openEtcd(config: Config['etcd']): Etcd3 {
  return connectEtcd({ ...config, dialTimeoutMs: CLI_ETCD_DIAL_TIMEOUT_MS });
}
