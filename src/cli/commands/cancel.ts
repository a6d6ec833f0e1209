import type { Command } from 'commander';
import type { GlobalOptions } from '../context.js';
import { RefusedError } from '../errors.js';
import { withSession } from '../session.js';
import { withdrawRequest } from '../withdraw.js';
import { parseUnitName } from './service.js';

export function registerCancelCommand(program: Command): void {
  program
    .command('cancel <unit>')
    .description('withdraw a manual failover request the controller has not started yet (a started failover carries on)')
    .action(async (unit: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions>();
      const { volumeId } = parseUnitName(unit);
      await withSession(opts, async ({ etcd, ks, io }) => {
        const outcome = await withdrawRequest(etcd, ks, volumeId, null);
        switch (outcome.kind) {
          case 'withdrawn': {
            const r = outcome.request;
            io.out(`withdrawn: request ${r.requestId} to move ${unit} → ${r.toInstanceId ?? '(controller chooses)'}; nothing changed`);
            return;
          }
          case 'started':
            throw new RefusedError(`the failover of ${unit} has already started (step ${outcome.journal.step}); it cannot be withdrawn and carries on (follow it with: failover history ${unit})`, { unit, volumeId });
          case 'refused':
            throw new RefusedError(`no pending request for ${unit}: the controller refused request ${outcome.request.requestId} (${outcome.request.refusedReason ?? 'no reason given'}) and drops it itself`, { unit, volumeId });
          case 'other':
          case 'none':
            throw new RefusedError(`no pending request for ${unit} (nothing to withdraw)`, { unit, volumeId });
        }
      });
    });
}
