/**
 * Least-privilege etcd roles, one per component, derived from the one key layout (src/keyspace) so the
 * roles, the README's `etcdctl` commands and each component's start-up probe cannot drift apart.
 *
 * What each component really touches (checked against the code):
 *   agent      reads services/, placements/ (its mirrors), hosts/ (peer list, own record) and its own
 *              status/<self>/ (adoption after a restart); writes hosts/<self> and status/<self>/… under
 *              its lease, deletes hosts/<self> on a revoking stop.
 *   controller reads everything (mirrors of hosts/, services/, placements/, journal/, status/,
 *              requests/; events/ for pruning; election/ for its guard); writes placements/, journal/,
 *              events/ (and deletes old ones), election/ (its campaign key), locks/ (volume locks), and
 *              requests/ (puts a refusal into a request, deletes a finished one).
 *   operator   (`failover`, `status`, `service add|remove`, `cancel`) reads everything (one consistent
 *              range over the prefix); writes services/ and requests/ (puts and withdraws).
 *   snapshot   (`failover snapshot`) reads services/ (what to snapshot) and takes volume locks in locks/.
 *
 * etcd cannot narrow a role to one host's keys (a permission is a key range, the same for every user
 * holding the role): every agent can write every host's hosts/ and status/ keys. The controller
 * therefore only believes a `status/<instance>/…` report written under the lease of `hosts/<instance>`
 * (see src/controller/etcd-store.ts), so one host's credentials cannot speak for another live host.
 */
import type { Etcd3 } from 'etcd3';
import { Range } from 'etcd3';
import type { Keyspace } from '../keyspace/index.js';

export const COMPONENTS = ['agent', 'controller', 'operator', 'snapshot'] as const;
export type Component = (typeof COMPONENTS)[number];

/** etcd's permission types, as `etcdctl role grant-permission` spells them. */
export type Access = 'read' | 'readwrite';

export interface Grant {
  access: Access;
  /** A key prefix (the grant covers every key starting with it). */
  prefix: string;
  /** Why the component needs it (shown by `failover etcd-roles` and in a failed probe's message). */
  why: string;
}

/** The key ranges each component needs, in the order its start-up probe checks them. */
export function componentGrants(ks: Keyspace, component: Component): Grant[] {
  const all = ks.prefix;
  const election = `${ks.electionPrefix()}/`;
  switch (component) {
    case 'agent':
      return [
        { access: 'read', prefix: ks.servicesPrefix(), why: 'mirror of the managed services' },
        { access: 'read', prefix: ks.placementsPrefix(), why: 'mirror of where each volume belongs' },
        { access: 'readwrite', prefix: ks.hostsPrefix(), why: 'its own leased host record; the peer list' },
        { access: 'readwrite', prefix: ks.statusPrefix(), why: 'its leased reports (status/<self>/…)' },
      ];
    case 'controller':
      return [
        { access: 'read', prefix: all, why: 'mirrors of hosts, services, status; events for pruning' },
        { access: 'readwrite', prefix: ks.placementsPrefix(), why: 'placements (leader-guarded)' },
        { access: 'readwrite', prefix: ks.journalPrefix(), why: 'failover journals (leader-guarded)' },
        { access: 'readwrite', prefix: ks.eventsPrefix(), why: 'event history and its pruning' },
        { access: 'readwrite', prefix: election, why: 'the controller election' },
        { access: 'readwrite', prefix: ks.locksPrefix(), why: 'per-volume locks' },
        { access: 'readwrite', prefix: ks.requestsPrefix(), why: 'refusing and deleting manual requests' },
      ];
    case 'operator':
      return [
        { access: 'read', prefix: all, why: 'status and the checks before a request' },
        { access: 'readwrite', prefix: ks.servicesPrefix(), why: 'service add/remove' },
        { access: 'readwrite', prefix: ks.requestsPrefix(), why: 'manual failover requests and their withdrawal' },
      ];
    case 'snapshot':
      return [
        { access: 'read', prefix: ks.servicesPrefix(), why: 'which volumes to snapshot' },
        { access: 'readwrite', prefix: ks.locksPrefix(), why: 'the volume lock held around each snapshot' },
      ];
  }
}

/** The role name of a component: `<rolePrefix><component>`, e.g. `ebs-failover-agent`. */
export function roleName(component: Component, rolePrefix = DEFAULT_ROLE_PREFIX): string {
  return `${rolePrefix}${component}`;
}
export const DEFAULT_ROLE_PREFIX = 'ebs-failover-';

/** A shell word for a key or name: etcd prefixes are plain, but quote anything unusual. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./@:=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The `etcdctl` (v3 API) commands that create the roles, one user per component named like its role,
 * and grant them. Users authenticated by client certificate need the certificate's CN to equal the
 * user name (etcd then takes the CN as the user); etcd 3.4 still asks a password on `user add`.
 */
export function etcdctlCommands(ks: Keyspace, rolePrefix = DEFAULT_ROLE_PREFIX): string[] {
  const out: string[] = [];
  for (const component of COMPONENTS) {
    const role = roleName(component, rolePrefix);
    out.push(`# ${component}`);
    out.push(`etcdctl role add ${shellWord(role)}`);
    for (const g of componentGrants(ks, component)) {
      out.push(`etcdctl role grant-permission ${shellWord(role)} --prefix=true ${g.access} ${shellWord(g.prefix)}   # ${g.why}`);
    }
    out.push(`etcdctl user add ${shellWord(role)}   # prompts for a password; with client certificates, issue one with CN=${role}`);
    out.push(`etcdctl user grant-role ${shellWord(role)} ${shellWord(role)}`);
  }
  return out;
}

/** etcd3's permission names. */
const PERMISSION = { read: 'Read', readwrite: 'Readwrite' } as const;

export interface AppliedRole {
  role: string;
  created: boolean;
  granted: string[];
}

/**
 * Creates the roles (if missing) and grants their permissions through the API (needs a root or
 * otherwise auth-admin identity). Idempotent: granting a permission the role has is a no-op in etcd.
 * With `users`, also creates one user per role (named like it) with the given password, and grants it.
 */
export async function applyRoles(
  client: Etcd3,
  ks: Keyspace,
  opts: { rolePrefix?: string; components?: readonly Component[]; users?: { password: (role: string) => string } } = {},
): Promise<AppliedRole[]> {
  const out: AppliedRole[] = [];
  for (const component of opts.components ?? COMPONENTS) {
    const name = roleName(component, opts.rolePrefix);
    const role = client.role(name);
    let created = false;
    const existing = await client.getRoles();
    if (!existing.some((r) => r.name === name)) {
      await role.create();
      created = true;
    }
    const grants = componentGrants(ks, component);
    await role.grant(grants.map((g) => ({ permission: PERMISSION[g.access], range: Range.prefix(g.prefix) })));
    if (opts.users) {
      const users = await client.getUsers();
      if (!users.some((u) => u.name === name)) await client.user(name).create(opts.users.password(name));
      await client.user(name).addRole(name);
    }
    out.push({ role: name, created, granted: grants.map((g) => `${g.access} ${g.prefix}`) });
  }
  return out;
}
