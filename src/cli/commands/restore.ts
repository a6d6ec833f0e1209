import type { Command } from 'commander';
import { AvailabilityZone, SnapshotId } from '../../ec2/ids.js';
import type { SnapshotInfo, VolumeInfo } from '../../ec2/types.js';
import type { ServiceRecord } from '../../keyspace/index.js';
import { pickRestoreSnapshot, restoredService, restoredVolumeTags, serviceSwapOps } from '../../controller/restore-common.js';
import type { GlobalOptions } from '../context.js';
import { openEc2 } from '../ec2.js';
import { OperationFailedError, RefusedError, UsageError } from '../errors.js';
import { etcdBounded } from '../etcd.js';
import { formatDuration } from '../output.js';
import { withSession } from '../session.js';
import { readClusterState } from '../state.js';
import { MANAGED_TAG, parseUnitName } from './service.js';
import { serviceState } from './status.js';

interface RestoreOptions extends GlobalOptions {
  snapshot?: string;
  latest?: boolean;
  az?: string;
  yes?: boolean;
  dryRun?: boolean;
}

/** How long to wait for the new volume to become `available` (EBS: seconds; large volumes longer). */
const CREATE_TIMEOUT_MS = 10 * 60_000;

/** States in which the service is not running anywhere, so swapping its volume loses nothing more. */
const DOWN_STATES = new Set(['blocked', 'holder lost', 'unplaced', 'released', 'failed', 'fenced']);

/** The snapshot to restore (see pickRestoreSnapshot, shared with the controller's auto-restore); refused with the reason. */
export function pickSnapshot(snapshots: SnapshotInfo[], volumeId: string, opts: { snapshot?: string; latest?: boolean }): SnapshotInfo {
  const pick = pickRestoreSnapshot(snapshots, volumeId, { snapshot: opts.snapshot });
  if (!pick.ok) throw new RefusedError(opts.snapshot === undefined ? `${pick.reason} (see: failover snapshot list)` : pick.reason, { volumeId });
  return pick.snapshot;
}

export function registerRestoreCommand(program: Command): void {
  program
    .command('restore <unit>')
    .description(
      "restore a service that is down from a snapshot: a new volume (tagged managed) in the volume's AZ or --az, the data-loss window printed, the service's registration swapped to postgres@<new volume> for the controller to place; the old volume is kept, never deleted",
    )
    .option('--snapshot <snap-id>', 'the snapshot to restore (see: failover snapshot list <unit>)')
    .option('--latest', 'the newest completed snapshot of the volume')
    .option('--az <az>', "create the volume in this AZ (default: the old volume's); the way out of an AZ-wide outage")
    .option('-y, --yes', 'do not ask for confirmation (never asked when not on a terminal)')
    .option('--dry-run', 'print the plan and change nothing')
    .action(async (unit: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<RestoreOptions>();
      const { volumeId } = parseUnitName(unit);
      if ((opts.snapshot === undefined) === (opts.latest !== true)) throw new UsageError('give exactly one of --snapshot snap-… or --latest');
      if (opts.snapshot !== undefined && !SnapshotId.safeParse(opts.snapshot).success) throw new UsageError(`bad --snapshot ${JSON.stringify(opts.snapshot.slice(0, 40))}: expected snap-…`);
      if (opts.az !== undefined && !AvailabilityZone.safeParse(opts.az).success) throw new UsageError(`bad --az ${JSON.stringify(opts.az.slice(0, 40))}: expected an AZ like us-east-1b`);
      await withSession(opts, async ({ etcd, ks, io, config }) => {
        const state = await readClusterState(etcd, ks);
        const stored = state.services.get(unit);
        if (!stored) throw new RefusedError(`unknown service ${unit}`, { unit });
        const current = serviceState(state, volumeId);
        // A running service would lose what it wrote since the snapshot, behind its users' backs.
        if (!DOWN_STATES.has(current.state)) {
          throw new RefusedError(`${unit} is ${current.state}${current.detail ? ` (${current.detail})` : ''}: restore replaces a service that is down (blocked, holder lost, failed); nothing changed`, { unit, volumeId });
        }
        const ec2 = await openEc2(config.aws);
        const [old]: Array<VolumeInfo | undefined> = await ec2.describeVolumes([volumeId]).catch(() => []);
        const az = opts.az ?? old?.az;
        if (az === undefined) throw new RefusedError(`EC2 does not describe ${volumeId}: give --az for the new volume`, { unit, volumeId });
        const snapshot = pickSnapshot(await ec2.listSnapshots({ volumeIds: [volumeId], ownerSelf: true }), volumeId, opts);
        const now = Date.now();
        const liveInAz = [...state.hosts.values()].filter((h) => h.value.az === az).length;
        const plan = [
          `restore ${unit}:`,
          `  snapshot:   ${snapshot.snapshotId} taken ${new Date(snapshot.startTime).toISOString()}`,
          `  DATA LOSS:  everything written after that: ${formatDuration(now - snapshot.startTime)} of writes`,
          `  new volume: from ${snapshot.snapshotId} in ${az}${old && az !== old.az ? ` (the old one is in ${old.az})` : ''}, tagged ${MANAGED_TAG}=true`,
          `  service:    ${unit} unregistered, postgres@<new volume> registered with the same mount, metadata key and labels`,
          `  old volume: ${volumeId} kept as it is (never deleted)`,
          `  placement:  by the controller, on a live host in ${az} (${liveInAz} live now)`,
        ];
        if (opts.dryRun) {
          io.out([...plan, 'dry run: nothing created, nothing written'].join('\n'));
          return;
        }
        if (!opts.yes && process.stdin.isTTY && process.stderr.isTTY) {
          io.err(plan.join('\n'));
          const { createInterface } = await import('node:readline/promises');
          const rl = createInterface({ input: process.stdin, output: process.stderr });
          const answer = await rl.question(`Restore ${unit} from ${snapshot.snapshotId}? [y/N] `).finally(() => rl.close());
          if (!/^y(es)?$/i.test(answer.trim())) throw new OperationFailedError('not confirmed; nothing changed', { unit, volumeId });
        } else {
          io.err(plan.join('\n'));
        }
        if (!ec2.createVolume) throw new OperationFailedError('this EC2 client cannot create volumes');
        const created = await ec2.createVolume({ az, snapshotId: snapshot.snapshotId, tags: restoredVolumeTags(snapshot.snapshotId, volumeId) });
        const newVolumeId = created.volumeId;
        io.err(`created ${newVolumeId} in ${az}; waiting for it to be available`);
        await ec2.waitAvailable(newVolumeId, { timeoutMs: CREATE_TIMEOUT_MS });
        const record: ServiceRecord = restoredService(stored.value, newVolumeId);
        // Swapped in one transaction, only if nothing changed since the read: never two services, never none.
        const ops = serviceSwapOps(ks, unit, record);
        let swap = etcd.if(ks.service(unit), 'Mod', '==', stored.modRevision).and(ks.journal(volumeId), 'Mod', '==', state.journals.get(volumeId)?.modRevision ?? '0');
        for (const c of ops.compares) swap = swap.and(c.key, c.target, c.op, c.value);
        swap.then(...ops.deletes.map((key) => etcd.delete().key(key)), ...ops.puts.map((p) => etcd.put(p.key).value(p.value)));
        const res = await etcdBounded(etcd, () => swap.commit());
        if (!res.succeeded) {
          throw new OperationFailedError(`${unit} changed while restoring; the new volume ${newVolumeId} exists but is not registered (register it with failover service add, or delete it)`, { unit, volumeId });
        }
        io.out(`restored: ${record.unit} (volume ${newVolumeId} in ${az}, data as of ${new Date(snapshot.startTime).toISOString()}) replaces ${unit}; the controller places it (follow: failover status --watch); ${volumeId} is kept`);
      });
    });
}

