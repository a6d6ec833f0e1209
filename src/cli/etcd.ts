import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { Config } from '../config/index.js';

/**
 * The etcd client for CLI commands. Fails fast (2 s dial, few retries) because a person is waiting;
 * the daemons use the locks module's client, which keeps retrying.
 */
export const CLI_ETCD_DIAL_TIMEOUT_MS = 2_000;

export function openEtcd(config: Config['etcd']): Etcd3 {
  const options: IOptions = {
    hosts: config.endpoints,
    dialTimeout: CLI_ETCD_DIAL_TIMEOUT_MS,
  };
  if (config.caFile || config.certFile) {
    options.credentials = {
      rootCertificate: config.caFile ? readFileSync(config.caFile) : Buffer.alloc(0),
      ...(config.certFile && config.keyFile ? { certChain: readFileSync(config.certFile), privateKey: readFileSync(config.keyFile) } : {}),
    };
  }
  if (config.username && config.password) options.auth = { username: config.username, password: config.password };
  return new Etcd3(options);
}
