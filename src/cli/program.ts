import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { registerCompletionCommand } from './commands/completion.js';
import { registerRestoreCommand } from './commands/restore.js';
import { didYouMean, shown } from './names.js';
import { ConfigError } from '../config/index.js';
import { addGlobalOptions } from './context.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, OperationFailedError, RefusedError, UsageError } from './errors.js';
import { DEFAULT_FAILOVER_TIMEOUT_S, requestFailover, type FailoverOptions } from './commands/failover.js';
import { registerCancelCommand } from './commands/cancel.js';
import { registerDaemonCommands } from './commands/daemons.js';
import { registerEtcdRolesCommand } from './commands/etcd-roles.js';
import { registerServiceCommands } from './commands/service.js';
import { registerSnapshotCommands } from './commands/snapshot.js';
import { registerStatusCommand } from './commands/status.js';
import { registerHistoryCommand } from './commands/history.js';
import { processOutput, type Output } from './output.js';
import { withSession } from './session.js';

/** The package version, read from package.json (two levels up from src/cli and from dist/cli alike). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export const EXIT_CODES_HELP = `
Exit codes:
  0  ok
  1  failed, refused by the cluster state, or timed out (nothing written on a refusal)
  2  bad usage or input (unknown flag, malformed unit name, bad config field)

Config: --config FILE (JSON), EBS_FAILOVER_* env vars, then flags; flags win.`;

/** Every subcommand (and their subcommands) get the exit-code help and parse errors as exit 2. */
function decorate(cmd: Command): void {
  cmd.addHelpText('after', EXIT_CODES_HELP).exitOverride().showHelpAfterError('(run with --help for usage)');
  cmd.commands.forEach(decorate);
}

export function buildProgram(): Command {
  const program = new Command('failover')
    .description('Fail EBS-backed services (postgres@vol-…) over to a healthy host in the same AZ.\n`failover <unit>` moves one service by hand; subcommands run the daemons and manage services.')
    .argument('[unit]', 'a service to move, e.g. postgres@vol-0abc12345def67890')
    .option('--to <instance>', 'target instance (default: the controller picks a live host in the volume\'s AZ)')
    .option('--force-detach', 'allow a forced detach if the graceful one does not finish')
    .addOption(new Option('--force', 'deprecated: same as --force-detach').hideHelp())
    .option('-y, --yes', 'do not ask for confirmation (never asked when not on a terminal)')
    .option('--dry-run', 'print the plan (source, target, devices, fencing) and change nothing')
    .option('--timeout <seconds>', 'give up after this long: a request the controller has not started by then is withdrawn (and never started later); a started move carries on', String(DEFAULT_FAILOVER_TIMEOUT_S))
    .allowExcessArguments(false);
  addGlobalOptions(program);
  program.version(packageVersion(), '-V, --version', 'print the version');
  program.helpCommand('help [command]', 'help for a command, e.g. failover help status');
  program.action(async (unit: string | undefined, _opts: unknown, cmd: Command) => {
    if (unit === undefined) {
      cmd.outputHelp();
      throw new UsageError('missing <unit> or subcommand');
    }
    if (!unit.includes('@')) {
      // Not a unit at all: most likely a mistyped subcommand (`failover stauts`).
      const names = cmd.commands.map((c) => c.name());
      const close = didYouMean(unit, names);
      throw new UsageError(`unknown command ${shown(unit)}${close.length ? `; did you mean: ${close.map((c) => `failover ${c}`).join(', ')}?` : ''} (commands: ${names.join(', ')}; or give a unit like postgres@vol-0abc12345def67890)`);
    }
    const opts = cmd.opts<FailoverOptions>();
    await withSession(opts, (session) => requestFailover(session, unit, opts));
  });
  registerDaemonCommands(program);
  registerServiceCommands(program);
  registerStatusCommand(program);
  registerHistoryCommand(program);
  registerCancelCommand(program);
  registerSnapshotCommands(program);
  registerEtcdRolesCommand(program);
  registerRestoreCommand(program);
  registerCompletionCommand(program);
  decorate(program);
  return program;
}

/** Runs the CLI; returns the exit code instead of exiting so tests and `main.ts` share it. */
export async function runCli(argv: string[], io: Output = processOutput): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version land here with exit code 0; parse errors were already printed.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.err(`error: ${err.message}`);
      return EXIT_USAGE;
    }
    if (err instanceof RefusedError) {
      io.err(`refused: ${err.message}`);
      return EXIT_FAILED;
    }
    if (err instanceof OperationFailedError) {
      io.err(`failed: ${err.message}`);
      return EXIT_FAILED;
    }
    io.err(`error: ${(err as Error).message ?? String(err)}`);
    return EXIT_FAILED;
  }
}
