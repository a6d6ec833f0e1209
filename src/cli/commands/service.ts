import type { Command } from 'commander';
import { decodeRecord, encodeRecord, ServiceRecord, SnapshotSchedule, UnitName } from '../../keyspace/index.js';
import { describeSchedule, parseEvery } from '../../snapshot/index.js';
import { parseLabels, type Config } from '../../config/index.js';
import type { VolumeInfo } from '../../ec2/types.js';
import type { GlobalOptions } from '../context.js';
import { openEc2 } from '../ec2.js';
import { RefusedError, UsageError } from '../errors.js';
import { etcdBounded } from '../etcd.js';
import { shown, unitNameProblem } from '../names.js';
import { renderTable } from '../output.js';
import { withSession } from '../session.js';
import { registerServiceShow } from './service-show.js';
import { isInProgress, readClusterState } from '../state.js';

interface AddOptions extends GlobalOptions {
  mountUnit: string;
  mountPoint: string;
  metadataKey: string;
  conflictGroup?: string;
  label: string[];
  fsLabel?: string;
  snapshotEvery?: string;
  snapshotKeep?: string;
}

interface SetOptions extends GlobalOptions {
  snapshotEvery?: string;
  snapshotKeep?: string;
  snapshotDefault?: boolean;
}

/** Attempts of `service set` when the record changes between its read and its write. */
const SET_ATTEMPTS = 3;

/**
 * `--snapshot-every 6h --snapshot-keep 28` over the current schedule (none for `add`): the flags given
 * replace those fields; a service without a schedule needs both. Validated by the same schema etcd
 * readers use, so the CLI's message is the schema's.
 */
export function scheduleFromFlags(flags: { snapshotEvery?: string; snapshotKeep?: string }, current: SnapshotSchedule | undefined): SnapshotSchedule | undefined {
  const { snapshotEvery: every, snapshotKeep: keep } = flags;
  if (every === undefined && keep === undefined) return current;
  let everyHours = current?.everyHours;
  if (every !== undefined) {
    const hours = parseEvery(every);
    if (hours === null) throw new UsageError(`bad --snapshot-every ${shown(every)}: expected hours like 1h, 6h or 24h`);
    everyHours = hours;
  }
  let count = current?.keep;
  if (keep !== undefined) {
    if (!/^\d{1,6}$/.test(keep.trim())) throw new UsageError(`bad --snapshot-keep ${shown(keep)}: expected how many snapshots to keep, a whole number >= 1`);
    count = Number(keep.trim());
  }
  if (everyHours === undefined) throw new UsageError('--snapshot-keep needs --snapshot-every too: this service has no schedule yet');
  if (count === undefined) throw new UsageError('--snapshot-every needs --snapshot-keep too: this service has no schedule yet (how many snapshots to keep)');
  const parsed = SnapshotSchedule.safeParse({ everyHours, keep: count });
  if (!parsed.success) throw new UsageError(`bad snapshot schedule: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  return parsed.data;
}

/** `--label role=db --label tier=1` */
function collectLabel(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Parse the unit name or fail with exit 2, naming the expected shape. */
export function parseUnitName(unit: string): { unit: string; volumeId: string } {
  const parsed = UnitName.safeParse(unit);
  if (!parsed.success) throw new UsageError(`bad unit name ${shown(unit)}: ${unitNameProblem(unit) ?? parsed.error.issues[0]?.message ?? 'invalid'}`);
  return { unit, volumeId: unit.slice(unit.indexOf('@') + 1) };
}

export function buildServiceRecord(unit: string, opts: AddOptions): ServiceRecord {
  const { volumeId } = parseUnitName(unit);
  let labels: Record<string, string>;
  try {
    labels = Object.assign({}, ...opts.label.map((l) => parseLabels(l, '--label')));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const parsed = ServiceRecord.safeParse({
    unit,
    volumeId,
    mountUnit: opts.mountUnit,
    mountPoint: opts.mountPoint,
    metadataKey: opts.metadataKey,
    conflictGroup: opts.conflictGroup,
    requiredLabels: labels,
    fsLabel: opts.fsLabel,
    snapshot: scheduleFromFlags(opts, undefined),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`bad service field ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/**
 * The volume must exist in EC2 and allow one attachment only: with EBS Multi-Attach, EC2 would attach
 * it to a second instance while the first still has it, and the single attachment is what keeps the
 * disk exclusive (the fence). Refused before anything is written.
 */
async function checkVolumeInEc2(config: Config, unit: string, volumeId: string): Promise<VolumeInfo> {
  const [volume] = await (await openEc2(config.aws)).describeVolumes([volumeId]).catch((err: unknown) => {
    if ((err as Error).name === 'VolumeNotFoundError') return [];
    throw err;
  });
  if (!volume) throw new RefusedError(`unknown volume ${volumeId} (EC2 does not know it); nothing written`, { unit, volumeId });
  if (volume.multiAttachEnabled === true) {
    throw new RefusedError(`${volumeId} has EBS Multi-Attach enabled; ebs-failover's safety relies on a single attachment`, { unit, volumeId });
  }
  return volume;
}

/** The tag units/iam-policy.json requires on every volume the controller may attach or detach. */
export const MANAGED_TAG = 'ebs-failover:managed';
/** Optional volume tag naming the filesystem label on it, compared with --fs-label. */
export const FS_LABEL_TAG = 'ebs-failover:fs-label';

/**
 * Pure: what `service add` refuses (throws) or warns about, from EC2's view of the volume and the live
 * hosts. Warnings do not stop the registration: a policy without the tag condition, or hosts that have
 * not joined yet, are legitimate set-ups; the operator should still hear about them now, not at 3 a.m.
 */
export function volumeChecks(volume: VolumeInfo, record: ServiceRecord, liveAzs: ReadonlySet<string>): string[] {
  const { unit, volumeId } = record;
  if (volume.state !== 'available' && volume.state !== 'in-use') throw new RefusedError(`${volumeId} is ${volume.state}, not available or in-use; nothing written`, { unit, volumeId });
  const tagged = volume.tags[FS_LABEL_TAG];
  if (record.fsLabel !== undefined && tagged !== undefined && tagged !== record.fsLabel) {
    throw new RefusedError(`--fs-label ${record.fsLabel} does not match the volume's tag ${FS_LABEL_TAG}=${tagged}; nothing written`, { unit, volumeId });
  }
  const warnings: string[] = [];
  if (!liveAzs.has(volume.az)) warnings.push(`no live host in ${volume.az} (the volume's AZ) yet: ${unit} stays blocked until an agent there registers`);
  if (volume.tags[MANAGED_TAG] !== 'true') {
    warnings.push(`${volumeId} lacks the tag ${MANAGED_TAG}=true: the IAM policy in units/iam-policy.json lets the controller attach and detach only tagged volumes (aws ec2 create-tags --resources ${volumeId} --tags Key=${MANAGED_TAG},Value=true)`);
  }
  if (record.fsLabel === undefined) warnings.push(`no --fs-label: the agent will mount whatever filesystem the device carries; give the volume's label so a wrong disk is never mounted`);
  return warnings;
}

export function registerServiceCommands(program: Command): void {
  const service = program.command('service').description('register, list and remove managed services (services/<unit>)');

  service
    .command('add <unit>')
    .description(
      'register a service on its EBS volume (refused when EC2 does not know the volume, or it has Multi-Attach enabled). The controller then places it: on the host the volume is attached to, or on a live host it chooses in the volume\'s AZ',
    )
    .requiredOption('--mount-unit <name>', 'mount unit the service Requires=, e.g. data-postgres.mount')
    .requiredOption('--mount-point <path>', 'where the volume is mounted, e.g. /data/postgres')
    .requiredOption('--metadata-key <key>', 'fleet metadata key set to the volume id on the holder, e.g. postgres')
    .option('--conflict-group <group>', 'services of one group never share a host')
    .option('--label <k=v>', 'host label a target must carry (repeatable)', collectLabel, [])
    .option('--fs-label <label>', 'filesystem label the volume must carry')
    .option('--snapshot-every <hours>', 'snapshot this volume every 1h, 2h, 3h, 4h, 6h, 8h, 12h or 24h (UTC-aligned; default: once per UTC day)')
    .option('--snapshot-keep <n>', 'with --snapshot-every: keep the n newest completed snapshots (default: the snapshot job\'s --keep-* flags)')
    .action(async (unit: string, _opts: AddOptions, cmd: Command) => {
      const opts = cmd.optsWithGlobals<AddOptions>();
      const record = buildServiceRecord(unit, opts);
      await withSession(opts, async ({ etcd, ks, io, config }) => {
        const state = await readClusterState(etcd, ks);
        const sameVolume = [...state.services.values()].find((s) => s.value.volumeId === record.volumeId && s.value.unit !== unit);
        if (sameVolume) throw new RefusedError(`volume ${record.volumeId} already belongs to ${sameVolume.value.unit}`, { volumeId: record.volumeId, unit });
        const volume = await checkVolumeInEc2(config, unit, record.volumeId);
        const liveAzs = new Set([...state.hosts.values()].map((h) => h.value.az));
        for (const warning of volumeChecks(volume, record, liveAzs)) io.err(`warning: ${warning}`);
        // Create-only: a second `add` never silently rewrites a running service's mount or labels.
        const key = ks.service(unit);
        const put = etcd.if(key, 'Create', '==', 0).then(etcd.put(key).value(encodeRecord(record)));
        const res = await etcdBounded(etcd, () => put.commit());
        if (!res.succeeded) throw new RefusedError(`service ${unit} is already registered (remove it first)`, { unit });
        io.out(`registered ${unit} (volume ${record.volumeId} in ${volume.az}); the controller will place it`);
        if (record.snapshot) io.out(`snapshots: ${describeSchedule(record.snapshot)}`);
      });
    });

  service
    .command('set <unit>')
    .description("change a registered service's snapshot schedule (prints what changed; the next `failover snapshot` run follows it)")
    .option('--snapshot-every <hours>', 'snapshot every 1h, 2h, 3h, 4h, 6h, 8h, 12h or 24h (UTC-aligned slots)')
    .option('--snapshot-keep <n>', 'keep the n newest completed snapshots')
    .option('--snapshot-default', "drop the service's schedule: back to once per UTC day, pruned by the snapshot job's --keep-* flags")
    .action(async (unit: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<SetOptions>();
      parseUnitName(unit);
      const changesSchedule = opts.snapshotEvery !== undefined || opts.snapshotKeep !== undefined;
      if (!changesSchedule && !opts.snapshotDefault) throw new UsageError('nothing to set: give --snapshot-every/--snapshot-keep, or --snapshot-default');
      if (changesSchedule && opts.snapshotDefault) throw new UsageError('--snapshot-default drops the schedule; it cannot go with --snapshot-every/--snapshot-keep');
      await withSession(opts, async ({ etcd, ks, io }) => {
        const key = ks.service(unit);
        // Read, change one field, write back only if the record is still the one read: the controller
        // never writes service records, but another operator's `set` or `remove` may race this one.
        for (let attempt = 1; ; attempt += 1) {
          const res = await etcdBounded(etcd, () => etcd.get(key).exec());
          const kv = res.kvs[0];
          const current = kv ? decodeRecord(ServiceRecord, key, kv.value) : undefined;
          if (!kv || !current) throw new RefusedError(`unknown service ${unit}`, { unit });
          const next = opts.snapshotDefault ? undefined : scheduleFromFlags(opts, current.snapshot);
          const before = describeSchedule(current.snapshot);
          const after = describeSchedule(next);
          if (before === after) {
            io.out(`${unit}: snapshots unchanged: ${before}`);
            return;
          }
          const { snapshot: _dropped, ...rest } = current;
          const record: ServiceRecord = next ? { ...rest, snapshot: next } : rest;
          const put = await etcdBounded(etcd, () => etcd.if(key, 'Mod', '==', kv.mod_revision).then(etcd.put(key).value(encodeRecord(record))).commit());
          if (put.succeeded) {
            io.out(`${unit}: snapshots ${before} → ${after}`);
            return;
          }
          if (attempt >= SET_ATTEMPTS) throw new RefusedError(`${unit} kept changing while setting its schedule; try again`, { unit });
        }
      });
    });

  registerServiceShow(service);

  service
    .command('list')
    .description('list registered services')
    .option('--json', 'print JSON')
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { json?: boolean }>();
      await withSession(opts, async ({ etcd, ks, io }) => {
        const state = await readClusterState(etcd, ks);
        const services = [...state.services.values()].map((s) => s.value).sort((a, b) => a.unit.localeCompare(b.unit));
        if (opts.json) return io.out(JSON.stringify(services, null, 2));
        io.out(
          renderTable(
            ['UNIT', 'VOLUME', 'MOUNT', 'MOUNT POINT', 'METADATA', 'CONFLICT GROUP', 'LABELS'],
            services.map((s) => [
              s.unit,
              s.volumeId,
              s.mountUnit,
              s.mountPoint,
              `${s.metadataKey}=${s.volumeId}`,
              s.conflictGroup ?? '-',
              Object.entries(s.requiredLabels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
            ]),
          ),
        );
      });
    });

  service
    .command('remove <unit>')
    .description('unregister a service (refused while a failover of its volume runs, unless --force). The volume stays attached and mounted until the holder is told to release it')
    .option('--force', 'remove even while a failover of its volume runs or is blocked: the controller then marks that failover failed and leaves the volume where it is')
    .action(async (unit: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { force?: boolean }>();
      const { volumeId } = parseUnitName(unit);
      await withSession(opts, async ({ etcd, ks, io }) => {
        const state = await readClusterState(etcd, ks);
        const stored = state.services.get(unit);
        if (!stored) throw new RefusedError(`unknown service ${unit}`, { unit });
        const journal = state.journals.get(volumeId)?.value;
        if (isInProgress(journal) && !opts.force) {
          throw new RefusedError(`a failover of ${volumeId} is at step ${journal?.step ?? '?'}${journal?.blockedReason ? ` (${journal.blockedReason})` : ''}; remove ${unit} after it finishes, or with --force`, { unit, volumeId });
        }
        if (isInProgress(journal)) io.err(`warning: --force: the ${journal?.kind ?? ''} failover of ${volumeId} at step ${journal?.step ?? '?'} will be marked failed by the controller; the volume stays where it is (see: failover history ${unit})`);
        // Guarded on the revision read above, and on no failover having started since.
        const remove = etcd
          .if(ks.service(unit), 'Mod', '==', stored.modRevision)
          .and(ks.journal(volumeId), 'Mod', '==', state.journals.get(volumeId)?.modRevision ?? '0')
          .then(etcd.delete().key(ks.service(unit)));
        const res = await etcdBounded(etcd, () => remove.commit());
        if (!res.succeeded) throw new RefusedError(`${unit} changed while removing it; try again`, { unit });
        io.out(`removed ${unit}`);
      });
    });
}
