import type { Command } from 'commander';
import { AvailabilityZone, SnapshotId } from '../../ec2/ids.js';
import type { SnapshotInfo, VolumeInfo } from '../../ec2/types.js';
import { encodeRecord, type ServiceRecord } from '../../keyspace/index.js';
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

/** Pure: the snapshot to restore: the one named (it must be this volume's and completed), or the newest completed. */
export function pickSnapshot(snapshots: SnapshotInfo[], volumeId: string, opts: { snapshot?: string; latest?: boolean }): SnapshotInfo {
  const ours = snapshots.filter((s) => s.volumeId === volumeId || s.tags['ebs-failover:volume'] === volumeId);
  if (opts.snapshot !== undefined) {
    const s = ours.find((x) => x.snapshotId === opts.snapshot);
    if (!s) throw new RefusedError(`${opts.snapshot} is not a snapshot of ${volumeId} (see: failover snapshot list)`, { volumeId });
    if (s.state !== 'completed') throw new RefusedError(`${s.snapshotId} is ${s.state}, not completed`, { volumeId });
    return s;
  }
  const done = ours.filter((s) => s.state === 'completed').sort((a, b) => b.startTime - a.startTime);
  const newest = done[0];
  if (!newest) throw new RefusedError(`no completed snapshot of ${volumeId} (see: failover snapshot list)`, { volumeId });
  return newest;
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
        const newVolumeId = await createVolumeFromSnapshot(config.aws, { az, snapshotId: snapshot.snapshotId, tags: { [MANAGED_TAG]: 'true', 'ebs-failover:restored-from': snapshot.snapshotId, 'ebs-failover:replaces': volumeId } });
        io.err(`created ${newVolumeId} in ${az}; waiting for it to be available`);
        await ec2.waitAvailable(newVolumeId, { timeoutMs: CREATE_TIMEOUT_MS });
        const template = unit.slice(0, unit.indexOf('@'));
        const record: ServiceRecord = { ...stored.value, unit: `${template}@${newVolumeId}`, volumeId: newVolumeId };
        // Swapped in one transaction, only if nothing changed since the read: never two services, never none.
        const swap = etcd
          .if(ks.service(unit), 'Mod', '==', stored.modRevision)
          .and(ks.journal(volumeId), 'Mod', '==', state.journals.get(volumeId)?.modRevision ?? '0')
          .and(ks.service(record.unit), 'Create', '==', 0)
          .then(etcd.delete().key(ks.service(unit)), etcd.put(ks.service(record.unit)).value(encodeRecord(record)));
        const res = await etcdBounded(etcd, () => swap.commit());
        if (!res.succeeded) {
          throw new OperationFailedError(`${unit} changed while restoring; the new volume ${newVolumeId} exists but is not registered (register it with failover service add, or delete it)`, { unit, volumeId });
        }
        io.out(`restored: ${record.unit} (volume ${newVolumeId} in ${az}, data as of ${new Date(snapshot.startTime).toISOString()}) replaces ${unit}; the controller places it (follow: failover status --watch); ${volumeId} is kept`);
      });
    });
}

/**
 * CreateVolume through the SDK directly: the controller's EC2 port has no CreateVolume (it never
 * creates volumes), and a new, unattached volume needs none of its lease-guarded mutation gate.
 */
async function createVolumeFromSnapshot(aws: { region?: string; endpoint?: string }, p: { az: string; snapshotId: string; tags: Record<string, string> }): Promise<string> {
  const { EC2Client, CreateVolumeCommand } = await import('@aws-sdk/client-ec2');
  const region = aws.region ?? process.env.AWS_REGION ?? (aws.endpoint ? 'us-east-1' : undefined);
  const client = new EC2Client({ region, endpoint: aws.endpoint });
  try {
    const res = await client.send(
      new CreateVolumeCommand({
        AvailabilityZone: p.az,
        SnapshotId: p.snapshotId,
        VolumeType: 'gp3',
        TagSpecifications: [{ ResourceType: 'volume', Tags: Object.entries(p.tags).map(([Key, Value]) => ({ Key, Value })) }],
      }),
    );
    if (!res.VolumeId) throw new OperationFailedError('CreateVolume returned no volume id');
    return res.VolumeId;
  } finally {
    client.destroy();
  }
}
