import type { Command } from 'commander';
import type { VolumeInfo } from '../../ec2/types.js';
import type { GlobalOptions } from '../context.js';
import { openEc2 } from '../ec2.js';
import { RefusedError } from '../errors.js';
import { formatDuration } from '../output.js';
import { renderOverview } from '../../snapshot/index.js';
import { withSession } from '../session.js';
import { readClusterState } from '../state.js';
import { mergeHistory, renderHistory } from './history.js';
import { parseUnitName } from './service.js';
import { lookupSnapshotOverviews } from './snapshot.js';
import { serviceState } from './status.js';

/** How many recent history lines `service show` prints (the rest: `failover history <unit>`). */
const SHOW_HISTORY = 10;

export function registerServiceShow(service: Command): void {
  service
    .command('show <unit>')
    .description("one service in full: its record, where it is placed and why it is in its state, the volume as EC2 sees it, the running failover and the last events")
    .option('--json', 'print JSON')
    .action(async (unit: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions & { json?: boolean }>();
      const { volumeId } = parseUnitName(unit);
      await withSession(opts, async ({ etcd, ks, io, config }) => {
        const state = await readClusterState(etcd, ks);
        const record = state.services.get(unit)?.value;
        if (!record) throw new RefusedError(`unknown service ${unit}`, { unit });
        const placement = state.placements.get(volumeId)?.value ?? null;
        const journal = state.journals.get(volumeId)?.value ?? null;
        const { state: current, detail } = serviceState(state, volumeId);
        // EC2 is a second opinion here, not a requirement: an unreachable endpoint must not hide etcd's view.
        let volume: VolumeInfo | null = null;
        let ec2Error: string | null = null;
        try {
          volume = (await (await openEc2(config.aws)).describeVolumes([volumeId]))[0] ?? null;
        } catch (err) {
          ec2Error = (err as Error).message;
        }
        const snapshots = (await lookupSnapshotOverviews(config.aws, [record], Date.now())).get(unit) ?? null;
        const history = mergeHistory(state.events ?? [], journal ? [journal] : [], { volumeId, since: 0 }).slice(-SHOW_HISTORY);
        if (opts.json) {
          io.out(JSON.stringify({ service: record, state: current, detail, placement, failover: journal, volume, ec2Error, snapshots, history }, null, 2));
          return;
        }
        const now = Date.now();
        const lines = [
          `service:     ${unit}`,
          `state:       ${detail ? `${current} (${detail})` : current}`,
          `holder:      ${placement?.instanceId ?? '-'}${placement ? ` (generation ${placement.generation}, device ${placement.device ?? '-'}, placed ${formatDuration(now - placement.updatedAt)} ago)` : ''}`,
          `mount:       ${record.mountUnit} at ${record.mountPoint}${record.fsLabel ? `, fs label ${record.fsLabel}` : ', no fs label check'}`,
          `fleet:       ${record.metadataKey}=${volumeId}${record.conflictGroup ? `, conflict group ${record.conflictGroup}` : ''}`,
          `labels:      ${Object.entries(record.requiredLabels).map(([k, v]) => `${k}=${v}`).join(',') || '-'}`,
          volume
            ? `volume:      ${volumeId} in ${volume.az}, ${volume.state}, ${volume.sizeGiB} GiB, ${volume.attachments.map((a) => `${a.state} to ${a.instanceId} as ${a.device}`).join('; ') || 'not attached'}; tags ${Object.entries(volume.tags).map(([k, v]) => `${k}=${v}`).join(',') || '-'}`
            : `volume:      ${volumeId}: ${ec2Error ? `EC2 unavailable (${ec2Error})` : 'EC2 does not know it'}`,
          `snapshots:   ${snapshots ? renderOverview(snapshots, now, formatDuration) : '-'}`,
          `failover:    ${journal ? `${journal.kind} ${journal.step}${journal.blockedReason ? ` (${journal.blockedReason})` : ''}${journal.error ? ` (${journal.error})` : ''}, ${journal.fromInstanceId ?? '-'} → ${journal.toInstanceId ?? '-'}, started ${formatDuration(now - journal.startedAt)} ago` : 'none yet'}`,
          '',
          renderHistory(history),
        ];
        io.out(lines.join('\n'));
      });
    });
}
