/**
 * Start-up permission probe: each component checks, before doing anything, that its etcd identity
 * holds every key range it needs (src/security/roles.ts), and refuses to start naming the first one
 * missing. Otherwise an agent without write access to status/ would run "fine" while the controller
 * never hears from it, and a controller without placements/ would win the election and then fail
 * every failover.
 *
 * The probes change nothing: a read is a count-only range over the prefix (etcd checks the whole
 * range, whatever the limit); a write is a transaction whose compare is always false ("create revision
 * of <prefix>.permission-probe < 0") and whose success branch puts that key. etcd checks the
 * permissions of both branches before evaluating the compare, so a missing write permission is
 * reported while nothing is ever written.
 */
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, type Etcd3 } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';
import { componentGrants, roleName, type Access, type Component } from './roles.js';

/** The identity lacks a permission the component needs. */
export class EtcdPermissionError extends Error {
  override readonly name = 'EtcdPermissionError';
  constructor(
    readonly component: Component,
    readonly identity: string,
    readonly access: 'read' | 'write',
    readonly prefix: string,
    readonly why: string,
    readonly endpoints: readonly string[],
  ) {
    super(
      `etcd (${endpoints.join(', ')}) denies ${access} on ${prefix} to user "${identity}", which the ${component} needs (${why}); ` +
        `grant it the ${roleName(component)} role (see \`failover etcd-roles\`), e.g. etcdctl role grant-permission ${roleName(component)} --prefix=true ${access === 'write' ? 'readwrite' : 'read'} ${prefix}`,
    );
  }
}

/** etcd refused the identity itself (wrong password, unknown user, or auth on and no identity given). */
export class EtcdAuthError extends Error {
  override readonly name = 'EtcdAuthError';
  constructor(
    readonly identity: string,
    readonly endpoints: readonly string[],
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`etcd (${endpoints.join(', ')}) refuses user "${identity}": ${reason}`, options);
  }
}

export interface ProbeTarget {
  client: Etcd3;
  ks: Keyspace;
  component: Component;
  /** The user etcd will see: the username, or the client certificate's CN. */
  identity: string;
  endpoints: readonly string[];
}

/** The key a write probe would put (never written: its compare is false). */
export function probeKey(prefix: string): string {
  return `${prefix}.permission-probe`;
}

function isDenied(err: unknown): boolean {
  return err instanceof EtcdPermissionDeniedError || (err instanceof Error && /permission denied/i.test(err.message));
}

function authFailure(err: unknown, t: ProbeTarget): EtcdAuthError | null {
  if (err instanceof EtcdAuthenticationFailedError) return new EtcdAuthError(t.identity, t.endpoints, 'authentication failed (wrong user name or password)', { cause: err });
  // etcd's words when auth is on and the request carries no user (no password, no client-certificate CN).
  if (err instanceof Error && /user name is empty/i.test(err.message)) return new EtcdAuthError(t.identity, t.endpoints, 'auth is enabled and the request carried no user (set etcd.username + passwordFile, or a client certificate whose CN is the user)', { cause: err });
  if (err instanceof Error && /user name not found|invalid auth token/i.test(err.message)) return new EtcdAuthError(t.identity, t.endpoints, err.message, { cause: err });
  return null;
}

async function probeOne(t: ProbeTarget, access: Access, prefix: string): Promise<'read' | 'write' | null> {
  const { client } = t;
  try {
    await client.getAll().prefix(prefix).count();
  } catch (err) {
    if (isDenied(err)) return 'read';
    throw authFailure(err, t) ?? err;
  }
  if (access === 'read') return null;
  const key = probeKey(prefix);
  try {
    await client.if(key, 'Create', '<', 0).then(client.put(key).value('')).commit();
  } catch (err) {
    if (isDenied(err)) return 'write';
    throw authFailure(err, t) ?? err;
  }
  return null;
}

/**
 * Checks every range the component needs, in order; throws EtcdPermissionError for the first one
 * denied, EtcdAuthError when etcd refuses the identity, and passes transport errors through (the
 * caller decides whether to retry).
 */
export async function probePermissions(t: ProbeTarget): Promise<void> {
  for (const grant of componentGrants(t.ks, t.component)) {
    const denied = await probeOne(t, grant.access, grant.prefix);
    if (denied !== null) throw new EtcdPermissionError(t.component, t.identity, denied, grant.prefix, grant.why, t.endpoints);
  }
}
