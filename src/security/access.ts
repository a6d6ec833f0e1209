/**
 * What every component runs once before its first real etcd call: the TLS pre-flight (certificate
 * dates, handshake with each https:// endpoint) and, when an identity is configured, the permission
 * probe for its role. Refusals are typed errors whose message names the endpoint and the key range.
 */
import type { Etcd3 } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import { isEtcdUnavailable } from '../locks/errors.js';
import { probePermissions } from './probe.js';
import type { Component } from './roles.js';
import { certificateCommonName, tlsPreflight, type EtcdTlsConfig } from './tls.js';

export interface EtcdAccessConfig extends EtcdTlsConfig {
  username?: string | undefined;
}

/**
 * The user etcd will see: the username, else the client certificate's CN (etcd takes it as the user
 * when auth is on), else null (anonymous: only works while etcd's auth is off).
 */
export function etcdIdentity(cfg: EtcdAccessConfig): string | null {
  return cfg.username ?? certificateCommonName(cfg.certFile);
}

export interface CheckAccessOptions {
  client: Etcd3;
  etcd: EtcdAccessConfig;
  ks: Keyspace;
  component: Component;
  /**
   * Daemons: keep probing while etcd is unreachable (a daemon started before etcd must wait, not exit),
   * reporting each failed attempt; stop when the signal aborts. CLI commands: unset (fail at once).
   */
  waitForEtcd?: { signal?: AbortSignal | undefined; onRetry(err: unknown, attempt: number): void; retryMs?: number };
}

/**
 * TLS pre-flight, then the permission probe (skipped when no identity is configured: with etcd's auth
 * off there is nothing to probe, and with it on every call fails with etcd's own "user name is empty").
 */
export async function checkEtcdAccess(opts: CheckAccessOptions): Promise<void> {
  await tlsPreflight(opts.etcd);
  const identity = etcdIdentity(opts.etcd);
  if (identity === null) return;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await probePermissions({ client: opts.client, ks: opts.ks, component: opts.component, identity, endpoints: opts.etcd.endpoints });
      return;
    } catch (err) {
      const wait = opts.waitForEtcd;
      if (!wait || !isEtcdUnavailable(err) || wait.signal?.aborted) throw err;
      wait.onRetry(err, attempt);
      await new Promise((resolve) => setTimeout(resolve, wait.retryMs ?? 1_000));
    }
  }
}
