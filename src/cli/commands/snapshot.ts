import type { Command } from 'commander';
import { VolumeId } from '../../ec2/ids.js';
import { UnitName } from '../../keyspace/index.js';
import type { Config } from '../../config/index.js';
import type { SnapshotSchedule } from '../../keyspace/index.js';
import { isManagedSnapshot, retentionPolicy, runSnapshots, snapshotOverview, TAG_SERVICE, TAG_VOLUME, type OverviewSnapshot, type SnapshotOverview, type SnapshotTarget } from '../../snapshot/index.js';
import type { GlobalOptions } from '../context.js';
import { openEc2 } from '../ec2.js';
import { EXIT_FAILED, RefusedError, UsageError } from '../errors.js';
import { volumeLocker } from '../lock.js';
import { renderTable } from '../output.js';
import { withSession } from '../session.js';
import { readClusterState, type ClusterState } from '../state.js';

/** A failover holds the volume lock for about a minute; 60 s covers most before we skip the volume. */
export const DEFAULT_LOCK_WAIT_S = 60;

/** Bound on the EC2 lookup of `status` and `service show`: EC2 is a second opinion there, never a wait. */
export const SNAPSHOT_LOOKUP_MS = 4_000;

/**
 * Each service's schedule, last completed snapshot and next due time, from ONE DescribeSnapshots
 * filtered by our volume tag (as a job run's). Never throws: an unreachable or unconfigured EC2 gives
 * overviews carrying the reason, so that `status` still shows etcd's view. Without a region or an
 * endpoint EC2 is not asked at all (the SDK would go looking for one, on the network).
 */
export async function lookupSnapshotOverviews(aws: Config['aws'], services: ReadonlyArray<{ unit: string; volumeId: string; snapshot?: SnapshotSchedule | undefined }>, now: number): Promise<Map<string, SnapshotOverview>> {
  let listed: OverviewSnapshot[] | { error: string };
  if (services.length === 0) listed = [];
  else if (!aws.endpoint && !aws.region && !process.env.AWS_REGION && !process.env.AWS_DEFAULT_REGION) listed = { error: 'EC2 not configured: no region' };
  else {
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(new Error(`EC2 did not answer within ${SNAPSHOT_LOOKUP_MS / 1000}s`));
      }, SNAPSHOT_LOOKUP_MS);
    });
    // Handled by the race below; this only keeps a timeout during the SDK's import from going unhandled.
    timeout.catch(() => undefined);
    try {
      const ec2 = await openEc2(aws);
      listed = await Promise.race([ec2.listSnapshots({ tags: { [TAG_VOLUME]: '*' }, ownerSelf: true }, { signal: abort.signal }), timeout]);
    } catch (err) {
      listed = { error: `EC2 unavailable: ${(err as Error).message.split('\n')[0] ?? 'error'}` };
    } finally {
      clearTimeout(timer);
    }
  }
  return new Map(services.map((s) => [s.unit, snapshotOverview(s, listed, now)]));
}

interface SnapshotOptions extends GlobalOptions {
  keepLast?: string;
  keepDaily: string;
  keepWeekly: string;
  keepMonthly: string;
  keepYearly?: string;
  dryRun?: boolean;
  now?: boolean;
  lockWait: string;
  json?: boolean;
}

function count(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new UsageError(`bad ${flag} "${raw}": expected a whole number >= 0`);
  return Number(raw);
}

/** Names (units or volume ids) → registered services; every managed service when none are named. */
export function resolveTargets(state: ClusterState, names: string[]): SnapshotTarget[] {
  const services = [...state.services.values()].map((s) => s.value);
  const target = (s: (typeof services)[number]): SnapshotTarget => ({ unit: s.unit, volumeId: s.volumeId, ...(s.snapshot ? { schedule: s.snapshot } : {}) });
  if (names.length === 0) return services.map(target).sort((a, b) => a.unit.localeCompare(b.unit));
  return names.map((name) => {
    if (!UnitName.safeParse(name).success && !VolumeId.safeParse(name).success) {
      throw new UsageError(`bad snapshot target "${name}": expected a unit like postgres@vol-0abc12345def67890 or a volume id`);
    }
    const service = services.find((s) => s.unit === name || s.volumeId === name);
    if (!service) throw new RefusedError(`unknown service or volume ${name} (only registered services are snapshotted)`, { volumeId: name });
    return target(service);
  });
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description(
      "snapshot every managed volume (or those named) that is due by its service's schedule (`service set --snapshot-every`; default: once per UTC day), then prune by its retention (`--snapshot-keep`, or the --keep-* flags below, restic-style counting)",
    )
    .argument('[targets...]', 'units (postgres@vol-…) or volume ids; default: all registered services')
    .option('--now', 'snapshot the targets now, due or not (never behind a pending snapshot)')
    .option('--keep-last <n>', 'keep the n newest snapshots')
    .option('--keep-daily <n>', 'services without a schedule: keep the newest snapshot of each of the last n days that have one', '7')
    .option('--keep-weekly <n>', 'same for ISO weeks', '4')
    .option('--keep-monthly <n>', 'same for months', '6')
    .option('--keep-yearly <n>', 'same for years')
    .option('--dry-run', 'create and delete nothing; print what would happen')
    .option('--lock-wait <seconds>', 'wait this long for a volume held by a failover, then skip it', String(DEFAULT_LOCK_WAIT_S))
    .option('--json', 'print the per-volume results as JSON')
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<SnapshotOptions>();
      const policy = retentionPolicy({
        keepLast: count(opts.keepLast, '--keep-last'),
        keepDaily: count(opts.keepDaily, '--keep-daily'),
        keepWeekly: count(opts.keepWeekly, '--keep-weekly'),
        keepMonthly: count(opts.keepMonthly, '--keep-monthly'),
        keepYearly: count(opts.keepYearly, '--keep-yearly'),
      });
      const lockWaitS = Number(opts.lockWait);
      if (!Number.isFinite(lockWaitS) || lockWaitS < 0) throw new UsageError(`bad --lock-wait "${opts.lockWait}": expected seconds >= 0`);
      await withSession(opts, async ({ etcd, ks, io, config }) => {
        const targets = resolveTargets(await readClusterState(etcd, ks, { servicesOnly: true }), names);
        {
          const results = await runSnapshots({
            ec2: await openEc2(config.aws),
            targets,
            policy,
            force: opts.now ?? false,
            lockVolume: volumeLocker(etcd, ks, lockWaitS * 1000),
            dryRun: opts.dryRun ?? false,
            now: Date.now,
            onStep: (line) => io.err(line),
          });
          if (opts.json) io.out(JSON.stringify(results, null, 2));
          else {
            io.out(
              renderTable(
                ['VOLUME', 'UNIT', 'CREATED', opts.dryRun ? 'WOULD DELETE' : 'DELETED', 'KEPT', 'SCHEDULE', 'NEXT DUE', 'NOTE'],
                results.map((r) => [
                  r.volumeId,
                  r.unit,
                  r.created ?? '-',
                  String(r.deleted.length),
                  String(r.kept.length),
                  r.schedule,
                  `${new Date(r.nextDueAt).toISOString().slice(0, 16)}Z`,
                  r.error ? `error: ${r.error}` : (r.skipped ?? ''),
                ]),
              ),
            );
          }
          // A skip (lock busy, pending snapshot) is not a failure: the next run catches up.
          if (results.some((r) => r.error)) process.exitCode = EXIT_FAILED;
        }
      }, undefined, 'snapshot');
    });

  snapshot
    .command('list')
    .description('list snapshots of managed volumes (ours are tagged ebs-failover:*)')
    .argument('[targets...]', 'units or volume ids; default: all registered services')
    .option('--json', 'print JSON')
    .action(async (names: string[], _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { json?: boolean }>();
      await withSession(opts, async ({ etcd, ks, io, config }) => {
        const targets = resolveTargets(await readClusterState(etcd, ks, { servicesOnly: true }), names);
        if (targets.length === 0) return io.out(opts.json ? '[]' : 'no registered services');
        const snapshots = (await (await openEc2(config.aws)).listSnapshots({ volumeIds: targets.map((t) => t.volumeId), ownerSelf: true })).sort(
          (a, b) => a.volumeId.localeCompare(b.volumeId) || b.startTime - a.startTime,
        );
        const rows = snapshots.map((s) => ({ ...s, managed: isManagedSnapshot(s.tags, s.volumeId) }));
        if (opts.json) return io.out(JSON.stringify(rows, null, 2));
        io.out(
          renderTable(
            ['SNAPSHOT', 'VOLUME', 'SERVICE', 'STARTED', 'STATE', 'PROGRESS', 'OURS'],
            rows.map((s) => [s.snapshotId, s.volumeId, s.tags[TAG_SERVICE] ?? '-', new Date(s.startTime).toISOString(), s.state, s.progress, s.managed ? 'yes' : 'no']),
          ),
        );
      }, undefined, 'snapshot');
    });
}
