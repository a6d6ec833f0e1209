import type { InstanceInfo, SnapshotInfo, VolumeInfo } from '../ec2/types.js';
import type { AutoRestoreState, FailoverJournal, ServiceRecord } from '../keyspace/records.js';
import type { Decision } from './decision.js';
import type { Observed } from './observed.js';
import { chooseTarget } from './placement.js';
import { formatWindow, pickRestoreSnapshot, restoredService, restoredVolumeTags, RESTORE_TAGS } from './restore-common.js';
import { advance } from './state.js';

/**
 * controller.autoRestore (opt-in): a failover that cannot go on because its volume's WHOLE AZ has no
 * live host is restored from the volume's newest completed snapshot into another AZ, once that has
 * lasted `afterMs`. Pure functions over one observed snapshot, like decide.ts; the loop gathers the
 * EC2 facts (AutoRestoreFacts) and act.ts does the I/O.
 *
 * The life of one auto-restore, all in the failover journal (`autoRestore`), so a new leader resumes it:
 *   tracked (az, goneSince, dueAt, waiting) ── due, every condition holds ──► restore recorded (restoreId)
 *   ── CreateVolume (tagged with the restoreId) ──► newVolumeId ── available ──► registration swapped,
 *   the old journal closed; the normal placement then attaches the new volume in the new AZ.
 * A host coming back in the AZ before the swap resets the tracking (and abandons a begun restore).
 *
 * SAFETY: never while the old copy may still run. An AZ cut off from etcd but alive keeps its units
 * running by design (its agents all see "etcd down for everyone"), so the restore needs EC2's word that
 * the old copy is down: the old volume `available` (detached), or its last holder `stopped`/`terminated`.
 */

export interface AutoRestoreConfig {
  enabled: boolean;
  /** How long the volume's AZ must have had no live host before the restore begins. */
  afterMs: number;
  /** Only a snapshot at most this old is restored (null: any age). */
  snapshotMaxAgeMs: number | null;
}

/** 15 min: long enough for an AZ hiccup or an instance reboot to pass, short enough to matter for an outage. */
export const DEFAULT_AUTO_RESTORE: AutoRestoreConfig = { enabled: false, afterMs: 15 * 60_000, snapshotMaxAgeMs: null };

/** EC2 facts the auto-restore needs beyond what the failover loop describes. A missing entry: not looked up yet. */
export interface AutoRestoreFacts {
  /** Snapshots by volume id (tracked volumes only). */
  snapshots: ReadonlyMap<string, readonly SnapshotInfo[]>;
  /** Instances a tracked volume is still attached to, described even though their agent is gone. */
  holders: ReadonlyMap<string, InstanceInfo>;
  /** The volume a restore created, by restore id; null: looked up, none exists (yet). */
  restored: ReadonlyMap<string, VolumeInfo | null>;
}

export const NO_FACTS: AutoRestoreFacts = { snapshots: new Map(), holders: new Map(), restored: new Map() };

/** Failover steps at which a service is stuck for want of a host in its AZ (blocked, or a detach that cannot finish). */
const STUCK_STEPS: ReadonlySet<FailoverJournal['step']> = new Set(['blocked', 'detaching']);

export function liveHostsIn(o: Observed, az: string): number {
  let n = 0;
  for (const h of o.hosts.values()) if (h.az === az) n += 1;
  return n;
}

/** The other AZ a restore goes to: the first (by name) with a live host that can take the service now. */
export function restoreTargetAz(o: Observed, service: ServiceRecord, fromAz: string): string | null {
  const azs = [...new Set([...o.hosts.values()].map((h) => h.az))].filter((az) => az !== fromAz).sort();
  for (const az of azs) if (chooseTarget(o, service, az, new Set()).ok) return az;
  return null;
}

/** `ar-<volume hex>-<ms>`: unique per start; tagged on the volume and sent as CreateVolume's ClientToken (≤ 64 chars). */
export function restoreIdOf(volumeId: string, startedAt: number): string {
  return `ar-${volumeId.slice(4)}-${startedAt}`;
}

/**
 * Appended to a blocked reason when the volume's AZ has no live host at all and another AZ could run the
 * service: the way out, by hand (`failover restore --az`) or by the controller after its bound. Stable text
 * (no clock in it): the blocked reason is compared with the journal's to avoid rewriting it every tick.
 */
export function azGoneHint(o: Observed, service: ServiceRecord, az: string): string {
  if (liveHostsIn(o, az) > 0) return '';
  const other = restoreTargetAz(o, service, az);
  if (other === null) return '';
  const cfg = o.config.autoRestore;
  if (cfg?.enabled) return `; ${az} has no live host at all: the controller restores it from a snapshot into ${other} after ${formatWindow(cfg.afterMs)} (controller.autoRestore)`;
  return `; ${az} has no live host at all: restore it from a snapshot in another AZ with failover restore ${service.unit} --latest --az ${other} (or enable controller.autoRestore)`;
}

/**
 * Why the old copy may still run, or null when EC2 proves it cannot: the volume detached (`available`),
 * or the instance it is attached to `stopped`/`terminated`. Undefined: the holder is not described yet.
 */
export function oldCopyMayRun(volume: VolumeInfo, holders: ReadonlyMap<string, InstanceInfo>): string | null | undefined {
  const attachment = volume.attachments[0];
  if (attachment === undefined) return volume.state === 'available' ? null : `${volume.volumeId} is ${volume.state}`;
  const holder = holders.get(attachment.instanceId);
  if (holder === undefined) return undefined;
  if (holder.state === 'stopped' || holder.state === 'terminated') return null;
  return `${volume.volumeId} still attached to ${attachment.instanceId} (${attachment.state}; the instance is ${holder.state} in EC2), so the old copy may still run`;
}

/** What the restore waits for besides time, or null when nothing; undefined while a fact is not looked up yet. */
function waitingFor(o: Observed, service: ServiceRecord, volume: VolumeInfo, facts: AutoRestoreFacts, cfg: AutoRestoreConfig): string | null | undefined {
  const running = oldCopyMayRun(volume, facts.holders);
  if (running === undefined) return undefined;
  if (running !== null) return `${running}: decide by hand with failover restore ${service.unit} --latest --az <az>`;
  if (restoreTargetAz(o, service, volume.az) === null) return `no live host in another AZ can take ${service.unit}`;
  const snapshots = facts.snapshots.get(volume.volumeId);
  if (snapshots === undefined) return undefined;
  const pick = pickRestoreSnapshot(snapshots, volume.volumeId, { maxAgeMs: cfg.snapshotMaxAgeMs, now: o.now });
  return pick.ok ? null : pick.reason;
}

function note(j: FailoverJournal, autoRestore: AutoRestoreState | undefined, reason: string): Decision {
  const journal: FailoverJournal = { ...j };
  if (autoRestore === undefined) delete journal.autoRestore;
  else journal.autoRestore = autoRestore;
  return { kind: 'noteRestore', volumeId: j.volumeId, journal, reason };
}

/**
 * The auto-restore's decision for an active failover, or null when it has nothing to say (the failover's
 * own step decides). While it only tracks, the failover goes on as ever (a host may come back); once a
 * restore is recorded, this decides every step until the swap.
 */
export function decideAutoRestore(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo): Decision | null {
  const cfg = o.config.autoRestore;
  if (!cfg?.enabled) return null;
  const facts = o.autoRestore ?? NO_FACTS;
  const tracked = j.autoRestore;
  const az = volume.az;
  // Hosts may not have re-registered yet (new leader, etcd back): say nothing new until they could have.
  if (o.graceUntil !== null && o.now < o.graceUntil) return tracked?.restore ? { kind: 'wait', volumeId: j.volumeId, requeueAfterMs: o.graceUntil - o.now, reason: 'auto-restore: waiting out the host grace' } : null;
  if (tracked?.restore) return continueRestore(o, j, service, tracked, tracked.restore, facts);
  // Whatever the step (a host back in the AZ may already be the failover's target): continuity is broken.
  if (liveHostsIn(o, az) > 0) {
    return tracked ? note(j, undefined, `${az} has a live host again: auto-restore of ${service.unit} no longer due`) : null;
  }
  if (!STUCK_STEPS.has(j.step)) return null;
  if (!tracked || tracked.az !== az || tracked.dueAt !== tracked.goneSince + cfg.afterMs) {
    const goneSince = tracked?.az === az ? tracked.goneSince : o.now;
    return note(j, { az, goneSince, dueAt: goneSince + cfg.afterMs, waiting: null, restore: null },
      `${az} has no live host at all: ${service.unit} is restored from a snapshot into another AZ at ${new Date(goneSince + cfg.afterMs).toISOString()} unless a host there comes back (controller.autoRestore)`);
  }
  const waiting = waitingFor(o, service, volume, facts, cfg);
  if (waiting === undefined) return null; // a fact is being looked up: the failover goes on meanwhile
  if (waiting !== tracked.waiting) {
    return note(j, { ...tracked, waiting }, waiting === null ? `auto-restore of ${service.unit}: nothing in the way any more` : `auto-restore waiting: ${waiting}`);
  }
  if (waiting !== null || o.now < tracked.dueAt) return null;
  const toAz = restoreTargetAz(o, service, az) as string; // waitingFor checked there is one
  const pick = pickRestoreSnapshot(facts.snapshots.get(volume.volumeId) ?? [], volume.volumeId, { maxAgeMs: cfg.snapshotMaxAgeMs, now: o.now });
  if (!pick.ok) return null; // waitingFor checked it; unreachable
  const snapshot = pick.snapshot;
  const restoreId = restoreIdOf(volume.volumeId, o.now);
  const restore: NonNullable<AutoRestoreState['restore']> = { restoreId, snapshotId: snapshot.snapshotId, snapshotAt: snapshot.startTime, toAz, startedAt: o.now, newVolumeId: null, swappedAt: null };
  return {
    kind: 'createRestoreVolume', volumeId: j.volumeId, journal: { ...j, autoRestore: { ...tracked, waiting: null, restore } },
    restoreId, snapshotId: snapshot.snapshotId, az: toAz, tags: restoredVolumeTags(snapshot.snapshotId, volume.volumeId, restoreId),
    reason: `${az} has had no live host for ${formatWindow(o.now - tracked.goneSince)}: auto-restoring ${service.unit} from ${snapshot.snapshotId} into ${toAz} (data-loss window ${formatWindow(o.now - snapshot.startTime)}: everything written after ${new Date(snapshot.startTime).toISOString()})`,
  };
}

/** A recorded restore, step by step: find or create its volume, wait for `available`, swap the registration. */
function continueRestore(o: Observed, j: FailoverJournal, service: ServiceRecord, tracked: AutoRestoreState, restore: NonNullable<AutoRestoreState['restore']>, facts: AutoRestoreFacts): Decision {
  const { volumeId } = j;
  if (liveHostsIn(o, tracked.az) > 0) {
    // The original data beats a snapshot: before the swap nothing has changed for the service.
    const left = restore.newVolumeId === null ? '' : `; ${restore.newVolumeId} is left unregistered (tagged ${RESTORE_TAGS.restoreId}=${restore.restoreId}): delete it or keep it`;
    return note(j, undefined, `${tracked.az} has a live host again before the swap: auto-restore ${restore.restoreId} abandoned${left}; the failover goes on with ${volumeId}`);
  }
  const found = facts.restored.get(restore.restoreId);
  if (found === undefined) return { kind: 'wait', volumeId, requeueAfterMs: o.config.pollMs, reason: `auto-restore ${restore.restoreId}: looking up its volume` };
  if (restore.newVolumeId === null) {
    if (found !== null) return note(j, { ...tracked, restore: { ...restore, newVolumeId: found.volumeId } }, `auto-restore ${restore.restoreId}: ${found.volumeId} found (created before a leader change)`);
    return {
      kind: 'createRestoreVolume', volumeId, journal: j, restoreId: restore.restoreId, snapshotId: restore.snapshotId, az: restore.toAz,
      tags: restoredVolumeTags(restore.snapshotId, volumeId, restore.restoreId), reason: `auto-restore ${restore.restoreId}: no volume carries its tag yet: creating it in ${restore.toAz} from ${restore.snapshotId}`,
    };
  }
  const failed = (why: string): Decision => {
    const reason = `auto-restore ${restore.restoreId} failed: ${why}`;
    return { kind: 'fail', volumeId, journal: { ...advance(j, 'failed', o.now, reason, { error: reason }), autoRestore: { ...tracked, restore: null } }, reason };
  };
  if (found === null || found.volumeId !== restore.newVolumeId) return failed(`its volume ${restore.newVolumeId} is gone from EC2`);
  if (found.state === 'creating') return { kind: 'wait', volumeId, requeueAfterMs: o.config.pollMs * 4, reason: `auto-restore ${restore.restoreId}: ${found.volumeId} is creating` };
  if (found.state !== 'available' || found.attachments.length > 0) return failed(`${found.volumeId} is ${found.state}${found.attachments[0] ? ` (attached to ${found.attachments[0].instanceId})` : ''}, not available`);
  const record = restoredService(service, found.volumeId);
  const window = formatWindow(restore.startedAt - restore.snapshotAt);
  const message = `auto-restored ${service.unit} as ${record.unit}: ${found.volumeId} created in ${restore.toAz} from ${restore.snapshotId} (data-loss window ${window}: everything written after ${new Date(restore.snapshotAt).toISOString()}) after ${tracked.az} had no live host for ${formatWindow(restore.startedAt - tracked.goneSince)}; ${tracked.az} → ${restore.toAz}; ${volumeId} kept, untouched`;
  const closed = advance(j, 'failed', o.now, `replaced by ${record.unit}: ${message}`, { error: `replaced by ${record.unit} (auto-restored from ${restore.snapshotId})` });
  return {
    kind: 'swapRestored', volumeId, oldUnit: service.unit, service: record,
    journal: { ...closed, autoRestore: { ...tracked, restore: { ...restore, swappedAt: o.now } } },
    message, reason: message,
  };
}

/**
 * For `failover status`: what the auto-restore says about the service on `volumeId`, from the journals
 * alone (no EC2, no config): a restored service's origin, or a tracked one's wait, with time left.
 */
export function autoRestoreStatus(journals: Iterable<FailoverJournal>, volumeId: string, now: number): string | null {
  for (const j of journals) {
    const t = j.autoRestore;
    if (t === undefined) continue;
    const r = t.restore;
    if (r !== null && r.swappedAt !== null && r.newVolumeId === volumeId) {
      return `restored from ${r.snapshotId} (data-loss window ${formatWindow(r.startedAt - r.snapshotAt)}) after ${t.az} was gone ${formatWindow(r.startedAt - t.goneSince)}; replaces ${j.unit}`;
    }
    if (j.volumeId !== volumeId || j.step === 'done' || j.step === 'failed') continue;
    if (r !== null) return `auto-restore ${r.restoreId} running: ${r.newVolumeId ?? 'a new volume'} in ${r.toAz} from ${r.snapshotId}`;
    const gone = `${t.az} gone ${formatWindow(now - t.goneSince)}`;
    if (t.waiting !== null) return `auto-restore waiting: ${t.waiting} (${gone}${now < t.dueAt ? `, due in ${formatWindow(t.dueAt - now)}` : ', due'})`;
    return now < t.dueAt ? `auto-restore in ${formatWindow(t.dueAt - now)} (${gone})` : `auto-restore due (${gone})`;
  }
  return null;
}
