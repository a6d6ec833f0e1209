import type { Command } from 'commander';
import { keyspace } from '../../keyspace/index.js';
import { COMPONENTS, DEFAULT_ROLE_PREFIX, applyRoles, componentGrants, etcdctlCommands, roleName } from '../../security/index.js';
import { configFromOptions, type GlobalOptions } from '../context.js';
import { etcdBounded, openEtcd, parseEtcdTimeoutSeconds } from '../etcd.js';
import { processOutput } from '../output.js';

interface EtcdRolesOptions extends GlobalOptions {
  apply?: boolean;
  rolePrefix: string;
  json?: boolean;
}

/**
 * `failover etcd-roles`: the least-privilege etcd roles (src/security/roles.ts) for this key prefix,
 * as `etcdctl` commands; with `--apply`, creates the roles and grants them through the etcd API (needs
 * an identity allowed to manage auth, e.g. root). Users are not created: print, adapt, run.
 */
export function registerEtcdRolesCommand(program: Command): void {
  program
    .command('etcd-roles')
    .description('print the etcdctl commands that create least-privilege etcd roles (agent, controller, operator, snapshot); --apply creates the roles')
    .option('--apply', 'create the roles and grant their permissions through the etcd API (needs root or an auth admin)')
    .option('--role-prefix <prefix>', 'role names are <prefix><component>', DEFAULT_ROLE_PREFIX)
    .option('--json', 'print the roles and their key ranges as JSON')
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<EtcdRolesOptions>();
      const io = processOutput;
      const config = configFromOptions(opts);
      const ks = keyspace(config.prefix);
      if (opts.json) {
        const roles = COMPONENTS.map((c) => ({ component: c, role: roleName(c, opts.rolePrefix), grants: componentGrants(ks, c) }));
        io.out(JSON.stringify(roles, null, 2));
      } else {
        io.out(etcdctlCommands(ks, opts.rolePrefix).join('\n'));
      }
      if (!opts.apply) return;
      const etcd = openEtcd(config.etcd, parseEtcdTimeoutSeconds(opts.etcdTimeout));
      try {
        const applied = await etcdBounded(etcd, () => applyRoles(etcd, ks, { rolePrefix: opts.rolePrefix }));
        for (const a of applied) io.err(`${a.created ? 'created' : 'updated'} role ${a.role}: ${a.granted.join(', ')}`);
      } finally {
        etcd.close();
      }
    });
}
