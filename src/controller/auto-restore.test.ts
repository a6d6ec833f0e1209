import { describe, expect, it } from 'vitest';
import type { InstanceInfo, SnapshotInfo, VolumeInfo } from '../ec2/types.js';
import { FailoverJournal, type AutoRestoreState } from '../keyspace/records.js';
import { AZ, I1, IB, NOW, UNIT, VOL, host, instance, journal, observed, service, volume, type Spec } from '../testing/controller-builders.js';
import { autoRestoreStatus, azGoneHint, decideAutoRestore, oldCopyMayRun, restoreIdOf, type AutoRestoreConfig, type AutoRestoreFacts } from './auto-restore.js';
import { decide } from './decide.js';
import type { Decision } from './decision.js';
import type { Observed } from './observed.js';
import { formatWindow, pickRestoreSnapshot, restoredVolumeTags } from './restore-common.js';
import { advance } from './state.js';

const AZ_B = 'us-east-1b';
const AFTER = 60_000;
const ON: AutoRestoreConfig = { enabled: true, afterMs: AFTER, snapshotMaxAgeMs: null };
const SNAP = 'snap-0aaaaaaaaaaaaaaa1';
const SNAP_OLD = 'snap-0aaaaaaaaaaaaaaa0';
const NEW_VOL = 'vol-0bbbbbbbbbbbbbbb1';
const NEW_UNIT = `postgres@${NEW_VOL}`;
const GONE_AT = NOW - 2 * AFTER;

function snapshot(snapshotId: string, startTime: number, over: Partial<SnapshotInfo> = {}): SnapshotInfo {
  return { snapshotId, volumeId: VOL, state: 'completed', startTime, progress: '100%', description: '', tags: {}, ...over };
}

/** Only an AZ-b host is live (the whole of us-east-1a is gone); its instance runs in us-east-1b. */
const hostB = host(IB, { az: AZ_B });
const instB = instance(IB, { az: AZ_B });

const blocked = (over: Partial<FailoverJournal> = {}): FailoverJournal =>
  journal({ step: 'blocked', blockedReason: `no live host in ${AZ} can take ${UNIT}`, stepStartedAt: GONE_AT, ...over });

const tracked = (over: Partial<AutoRestoreState> = {}): AutoRestoreState => ({ az: AZ, goneSince: GONE_AT, dueAt: GONE_AT + AFTER, waiting: null, restore: null, ...over });

interface World {
  spec?: Spec;
  facts?: Partial<AutoRestoreFacts>;
  config?: AutoRestoreConfig | undefined;
}

/** Observed with us-east-1a empty, an eligible host in us-east-1b, a detached volume and one completed snapshot. */
function world(j: FailoverJournal, w: World = {}): Observed {
  const base = observed({ hosts: [hostB], instances: [instB], journals: [j], volumes: [volume()], ...w.spec, config: { autoRestore: 'config' in w ? w.config : ON, ...w.spec?.config } });
  const facts: AutoRestoreFacts = { snapshots: new Map([[VOL, [snapshot(SNAP, NOW - 3_600_000)]]]), holders: new Map(), restored: new Map(), ...w.facts };
  return { ...base, autoRestore: facts };
}

const withTracking = (t: Partial<AutoRestoreState> = {}, j: Partial<FailoverJournal> = {}): FailoverJournal => blocked({ autoRestore: tracked(t), ...j });
const note = (j: FailoverJournal, autoRestore: AutoRestoreState | undefined, reason: string): Decision => {
  const next: FailoverJournal = { ...j };
  if (autoRestore === undefined) delete next.autoRestore;
  else next.autoRestore = autoRestore;
  return { kind: 'noteRestore', volumeId: VOL, journal: next, reason };
};
const held = (state: InstanceInfo['state']): Partial<AutoRestoreFacts> => ({ holders: new Map([[I1, instance(I1, { state })]]) });
const attachedVolume = (state: VolumeInfo['attachments'][number]['state'] = 'attached'): VolumeInfo => volume({ instanceId: I1, state });

describe('decideAutoRestore: tracking and the conditions (table)', () => {
  const fresh = blocked();
  const t = withTracking();
  const dueIn = new Date(NOW + AFTER).toISOString();
  it.each<[string, FailoverJournal, World, Decision | null]>([
    ['off (the default): nothing, the failover stays blocked', fresh, { config: undefined }, null],
    ['off explicitly', fresh, { config: { ...ON, enabled: false } }, null],
    [
      'AZ seen empty for the first time: the instant is persisted, with when the restore is due',
      fresh, {},
      note(fresh, { az: AZ, goneSince: NOW, dueAt: NOW + AFTER, waiting: null, restore: null }, `${AZ} has no live host at all: ${UNIT} is restored from a snapshot into another AZ at ${dueIn} unless a host there comes back (controller.autoRestore)`),
    ],
    [
      'a stuck detach (step detaching) with the AZ empty is tracked too',
      journal({ step: 'detaching' }), {},
      note(journal({ step: 'detaching' }), { az: AZ, goneSince: NOW, dueAt: NOW + AFTER, waiting: null, restore: null }, `${AZ} has no live host at all: ${UNIT} is restored from a snapshot into another AZ at ${dueIn} unless a host there comes back (controller.autoRestore)`),
    ],
    ['a step that is not stuck (attaching): nothing', journal({ step: 'attaching', toInstanceId: IB }), {}, null],
    [
      'afterMs changed since: the bound is recomputed, the first-seen instant kept',
      withTracking({ dueAt: GONE_AT + 5 }), {},
      note(withTracking({ dueAt: GONE_AT + 5 }), tracked(), `${AZ} has no live host at all: ${UNIT} is restored from a snapshot into another AZ at ${new Date(GONE_AT + AFTER).toISOString()} unless a host there comes back (controller.autoRestore)`),
    ],
    ['a host of the AZ is live again: the tracking is dropped (continuity broken)', t, { spec: { hosts: [hostB, host(I1)] } }, note(t, undefined, `${AZ} has a live host again: auto-restore of ${UNIT} no longer due`)],
    ['a live host of the AZ, nothing tracked: nothing', fresh, { spec: { hosts: [hostB, host(I1)] } }, null],
    [
      'a host back in the AZ already chosen as the target (attaching): the tracking is dropped too',
      withTracking({}, { step: 'attaching', toInstanceId: I1 }), { spec: { hosts: [hostB, host(I1)] } },
      note(withTracking({}, { step: 'attaching', toInstanceId: I1 }), undefined, `${AZ} has a live host again: auto-restore of ${UNIT} no longer due`),
    ],
    ['within the host grace (new leader): nothing new', fresh, { spec: { graceUntil: NOW + 1 } }, null],
    ['not due yet, nothing in the way: the failover goes on (it may still find a host)', withTracking({ goneSince: NOW - 10, dueAt: NOW - 10 + AFTER }), {}, null],
    ['snapshots not looked up yet: nothing', t, { facts: { snapshots: new Map() } }, null],
    ['no snapshot at all: waiting, persisted once', t, { facts: { snapshots: new Map([[VOL, []]]) } }, note(t, tracked({ waiting: `no completed snapshot of ${VOL}` }), `auto-restore waiting: no completed snapshot of ${VOL}`)],
    ['only a pending snapshot: waiting', t, { facts: { snapshots: new Map([[VOL, [snapshot(SNAP, NOW - 10, { state: 'pending' })]]]) } }, note(t, tracked({ waiting: `no completed snapshot of ${VOL}` }), `auto-restore waiting: no completed snapshot of ${VOL}`)],
    ['the same wait already persisted: nothing more written', withTracking({ waiting: `no completed snapshot of ${VOL}` }), { facts: { snapshots: new Map([[VOL, []]]) } }, null],
    [
      'snapshot older than snapshotMaxAgeMs: waiting',
      t, { config: { ...ON, snapshotMaxAgeMs: 600_000 } },
      note(t, tracked({ waiting: `the newest completed snapshot of ${VOL}, ${SNAP}, is older than the allowed 10 min (snapshotMaxAgeMs)` }), `auto-restore waiting: the newest completed snapshot of ${VOL}, ${SNAP}, is older than the allowed 10 min (snapshotMaxAgeMs)`),
    ],
    [
      'SAFETY: still attached to an instance EC2 shows running (AZ cut off from etcd, alive): waiting, never restored',
      t, { spec: { volumes: [attachedVolume('attached')] }, facts: held('running') },
      note(t, tracked({ waiting: `${VOL} still attached to ${I1} (attached; the instance is running in EC2), so the old copy may still run: decide by hand with failover restore ${UNIT} --latest --az <az>` }),
        `auto-restore waiting: ${VOL} still attached to ${I1} (attached; the instance is running in EC2), so the old copy may still run: decide by hand with failover restore ${UNIT} --latest --az <az>`),
    ],
    [
      'SAFETY: a detach stuck in detaching on a running instance: waiting',
      t, { spec: { volumes: [attachedVolume('detaching')] }, facts: held('running') },
      note(t, tracked({ waiting: `${VOL} still attached to ${I1} (detaching; the instance is running in EC2), so the old copy may still run: decide by hand with failover restore ${UNIT} --latest --az <az>` }),
        `auto-restore waiting: ${VOL} still attached to ${I1} (detaching; the instance is running in EC2), so the old copy may still run: decide by hand with failover restore ${UNIT} --latest --az <az>`),
    ],
    ['SAFETY: attached, instance stopping (not yet stopped): waiting', t, { spec: { volumes: [attachedVolume()] }, facts: held('stopping') },
      note(t, tracked({ waiting: `${VOL} still attached to ${I1} (attached; the instance is stopping in EC2), so the old copy may still run: decide by hand with failover restore ${UNIT} --latest --az <az>` }),
        `auto-restore waiting: ${VOL} still attached to ${I1} (attached; the instance is stopping in EC2), so the old copy may still run: decide by hand with failover restore ${UNIT} --latest --az <az>`)],
    ['attached to an instance not described yet: nothing', t, { spec: { volumes: [attachedVolume()] } }, null],
    [
      'no other AZ has a live host: waiting',
      t, { spec: { hosts: [] } },
      note(t, tracked({ waiting: `no live host in another AZ can take ${UNIT}` }), `auto-restore waiting: no live host in another AZ can take ${UNIT}`),
    ],
    [
      'the other AZ\'s host lacks a required label: waiting',
      t, { spec: { services: [service({ requiredLabels: { role: 'db' } })] } },
      note(t, tracked({ waiting: `no live host in another AZ can take ${UNIT}` }), `auto-restore waiting: no live host in another AZ can take ${UNIT}`),
    ],
    [
      'the other AZ\'s instance is stopped in EC2: waiting',
      t, { spec: { instances: [instance(IB, { az: AZ_B, state: 'stopped' })] } },
      note(t, tracked({ waiting: `no live host in another AZ can take ${UNIT}` }), `auto-restore waiting: no live host in another AZ can take ${UNIT}`),
    ],
    [
      'a wait that is over is cleared (and said)',
      withTracking({ waiting: `no completed snapshot of ${VOL}` }), {},
      note(withTracking({ waiting: `no completed snapshot of ${VOL}` }), tracked(), `auto-restore of ${UNIT}: nothing in the way any more`),
    ],
  ])('%s', (_name, j, w, expected) => {
    expect(decideAutoRestore(world(j, w), j, w.spec?.services?.[0] ?? service(), w.spec?.volumes?.[0] ?? volume())).toEqual(expected);
  });
});

describe('decideAutoRestore: starting a restore', () => {
  const restoreId = restoreIdOf(VOL, NOW);
  const startOf = (j: FailoverJournal, snap: SnapshotInfo): Decision => ({
    kind: 'createRestoreVolume', volumeId: VOL, restoreId, snapshotId: snap.snapshotId, az: AZ_B,
    tags: { 'ebs-failover:managed': 'true', 'ebs-failover:restored-from': snap.snapshotId, 'ebs-failover:replaces': VOL, 'ebs-failover:restore-id': restoreId },
    journal: { ...j, autoRestore: { ...tracked(), restore: { restoreId, snapshotId: snap.snapshotId, snapshotAt: snap.startTime, toAz: AZ_B, startedAt: NOW, newVolumeId: null, swappedAt: null } } },
    reason: `${AZ} has had no live host for ${formatWindow(NOW - GONE_AT)}: auto-restoring ${UNIT} from ${snap.snapshotId} into ${AZ_B} (data-loss window ${formatWindow(NOW - snap.startTime)}: everything written after ${new Date(snap.startTime).toISOString()})`,
  });
  const newest = snapshot(SNAP, NOW - 3_600_000);
  const older = snapshot(SNAP_OLD, NOW - 7_200_000);

  it.each<[string, World, SnapshotInfo]>([
    ['due, volume detached: the newest completed snapshot, into the AZ with a host', { facts: { snapshots: new Map([[VOL, [older, newest, snapshot('snap-0aaaaaaaaaaaaaaa2', NOW - 5, { state: 'pending' })]]]) } }, newest],
    ['due, still attached but its instance is terminated', { spec: { volumes: [attachedVolume()] }, facts: held('terminated') }, newest],
    ['due, still attached but its instance is stopped', { spec: { volumes: [attachedVolume('detaching')] }, facts: held('stopped') }, newest],
    ['a snapshot within snapshotMaxAgeMs', { config: { ...ON, snapshotMaxAgeMs: 4_000_000 } }, newest],
    ['a snapshot tagged for the volume (copied) counts', { facts: { snapshots: new Map([[VOL, [snapshot(SNAP, NOW - 3_600_000, { volumeId: 'vol-ffffffff', tags: { 'ebs-failover:volume': VOL } })]]]) } }, { ...newest, volumeId: 'vol-ffffffff', tags: { 'ebs-failover:volume': VOL } }],
  ])('%s', (_name, w, snap) => {
    const j = withTracking();
    const v = w.spec?.volumes?.[0] ?? volume();
    expect(decideAutoRestore(world(j, w), j, service(), v)).toEqual(startOf(j, snap));
    // decide() itself lets the auto-restore speak before the failover step.
    expect(decide(world(j, w), VOL)).toEqual(startOf(j, snap));
  });

  it('exactly at the bound it starts; 1 ms before it does not', () => {
    const j = withTracking({ goneSince: NOW - AFTER, dueAt: NOW });
    expect(decideAutoRestore(world(j), j, service(), volume())?.kind).toBe('createRestoreVolume');
    const k = withTracking({ goneSince: NOW - AFTER + 1, dueAt: NOW + 1 });
    expect(decideAutoRestore(world(k), k, service(), volume())).toBeNull();
  });

  it('while tracking but not due, decide() still runs the failover (blocked: same reason, it waits)', () => {
    const j = withTracking({ goneSince: NOW - 10, dueAt: NOW - 10 + AFTER });
    const d = decide(world(j), VOL);
    expect(d.kind).toBe('block'); // the blocked reason gains the hint, written once
    expect(d.reason).toContain(`${AZ} has no live host at all: the controller restores it from a snapshot into ${AZ_B} after 1m (controller.autoRestore)`);
  });
});

describe('decideAutoRestore: a recorded restore, resumed step by step (table)', () => {
  const restoreId = restoreIdOf(VOL, NOW - 5_000);
  const restore = { restoreId, snapshotId: SNAP, snapshotAt: NOW - 3_600_000, toAz: AZ_B, startedAt: NOW - 5_000, newVolumeId: null, swappedAt: null };
  const running = withTracking({ restore });
  const created = withTracking({ restore: { ...restore, newVolumeId: NEW_VOL } });
  const newVolume = (over: Partial<VolumeInfo> = {}): VolumeInfo => ({ volumeId: NEW_VOL, az: AZ_B, state: 'available', sizeGiB: 10, attachments: [], tags: {}, ...over });
  const restored = (v: VolumeInfo | null): Partial<AutoRestoreFacts> => ({ restored: new Map([[restoreId, v]]) });
  const message = `auto-restored ${UNIT} as ${NEW_UNIT}: ${NEW_VOL} created in ${AZ_B} from ${SNAP} (data-loss window 59m: everything written after ${new Date(NOW - 3_600_000).toISOString()}) after ${AZ} had no live host for ${formatWindow(NOW - 5_000 - GONE_AT)}; ${AZ} → ${AZ_B}; ${VOL} kept, untouched`;
  const fail = (j: FailoverJournal, why: string): Decision => {
    const reason = `auto-restore ${restoreId} failed: ${why}`;
    return { kind: 'fail', volumeId: VOL, journal: { ...advance(j, 'failed', NOW, reason, { error: reason }), autoRestore: { ...tracked(), restore: null } }, reason };
  };

  it.each<[string, FailoverJournal, World, Decision]>([
    ['its volume not looked up yet: wait', running, { facts: { restored: new Map() } }, { kind: 'wait', volumeId: VOL, requeueAfterMs: 250, reason: `auto-restore ${restoreId}: looking up its volume` }],
    [
      'none carries its tag (a leader died before CreateVolume): create it, same restore, same journal',
      running, { facts: restored(null) },
      { kind: 'createRestoreVolume', volumeId: VOL, journal: running, restoreId, snapshotId: SNAP, az: AZ_B, tags: restoredVolumeTags(SNAP, VOL, restoreId), reason: `auto-restore ${restoreId}: no volume carries its tag yet: creating it in ${AZ_B} from ${SNAP}` },
    ],
    [
      'one carries its tag but the journal does not know it (a leader died after CreateVolume): recorded, never created again',
      running, { facts: restored(newVolume({ state: 'creating' })) },
      note(running, tracked({ restore: { ...restore, newVolumeId: NEW_VOL } }), `auto-restore ${restoreId}: ${NEW_VOL} found (created before a leader change)`),
    ],
    ['still creating: wait', created, { facts: restored(newVolume({ state: 'creating' })) }, { kind: 'wait', volumeId: VOL, requeueAfterMs: 1000, reason: `auto-restore ${restoreId}: ${NEW_VOL} is creating` }],
    [
      'available: the registration is swapped and the failover closed, in one write',
      created, { facts: restored(newVolume()) },
      {
        kind: 'swapRestored', volumeId: VOL, oldUnit: UNIT, service: { ...service(), unit: NEW_UNIT, volumeId: NEW_VOL }, message, reason: message,
        journal: { ...advance(created, 'failed', NOW, `replaced by ${NEW_UNIT}: ${message}`, { error: `replaced by ${NEW_UNIT} (auto-restored from ${SNAP})` }), autoRestore: tracked({ restore: { ...restore, newVolumeId: NEW_VOL, swappedAt: NOW } }) },
      },
    ],
    ['the volume vanished from EC2: the failover fails, loudly', created, { facts: restored(null) }, fail(created, `its volume ${NEW_VOL} is gone from EC2`)],
    ['the volume is in error: fails', created, { facts: restored(newVolume({ state: 'error' })) }, fail(created, `${NEW_VOL} is error, not available`)],
    ['someone attached it: fails, never swapped', created, { facts: restored(newVolume({ state: 'in-use', attachments: [{ instanceId: IB, device: '/dev/xvdf', state: 'attached' }] })) }, fail(created, `${NEW_VOL} is in-use (attached to ${IB}), not available`)],
    [
      'a host of the old AZ is back before the swap: abandoned, the original data wins',
      created, { spec: { hosts: [hostB, host(I1)] }, facts: restored(newVolume()) },
      note(created, undefined, `${AZ} has a live host again before the swap: auto-restore ${restoreId} abandoned; ${NEW_VOL} is left unregistered (tagged ebs-failover:restore-id=${restoreId}): delete it or keep it; the failover goes on with ${VOL}`),
    ],
    ['within the grace of a new leader: waits it out', created, { spec: { graceUntil: NOW + 700 } }, { kind: 'wait', volumeId: VOL, requeueAfterMs: 700, reason: 'auto-restore: waiting out the host grace' }],
  ])('%s', (_name, j, w, expected) => {
    expect(decideAutoRestore(world(j, w), j, service(), volume())).toEqual(expected);
  });

  it('a recorded restore pre-empts the failover step (decide never detaches or attaches meanwhile)', () => {
    expect(decide(world(created, { facts: restored(newVolume({ state: 'creating' })) }), VOL).kind).toBe('wait');
    expect(decide(world(created, { facts: restored(newVolume()) }), VOL).kind).toBe('swapRestored');
  });
});

describe('blocked reasons name the way out (azGoneHint)', () => {
  it.each<[string, Spec, AutoRestoreConfig | undefined, string]>([
    ['off, another AZ can run it: names failover restore --az', {}, undefined, `; ${AZ} has no live host at all: restore it from a snapshot in another AZ with failover restore ${UNIT} --latest --az ${AZ_B} (or enable controller.autoRestore)`],
    ['on: names the bound', {}, ON, `; ${AZ} has no live host at all: the controller restores it from a snapshot into ${AZ_B} after 1m (controller.autoRestore)`],
    ['a live host in the AZ (merely no free device, labels…): nothing', { hosts: [hostB, host(I1)] }, undefined, ''],
    ['no other AZ can run it: nothing to suggest', { hosts: [] }, undefined, ''],
  ])('%s', (_name, spec, config, hint) => {
    const o = observed({ hosts: [hostB], instances: [instB], ...spec, config: { autoRestore: config } });
    expect(azGoneHint(o, service(), AZ)).toBe(hint);
  });
});

describe('oldCopyMayRun: EC2 proof that the old copy cannot run', () => {
  it.each<[string, VolumeInfo, InstanceInfo['state'] | null, string | null | undefined]>([
    ['detached (available)', volume(), null, null],
    ['no attachment but not available (transient)', volume(undefined, { state: 'in-use' }), null, `${VOL} is in-use`],
    ['attached, holder terminated', attachedVolume(), 'terminated', null],
    ['attached, holder stopped', attachedVolume(), 'stopped', null],
    ['attached, holder running', attachedVolume(), 'running', `${VOL} still attached to ${I1} (attached; the instance is running in EC2), so the old copy may still run`],
    ['busy, holder shutting-down', attachedVolume('busy'), 'shutting-down', `${VOL} still attached to ${I1} (busy; the instance is shutting-down in EC2), so the old copy may still run`],
    ['attached, holder not described', attachedVolume(), null, undefined],
  ])('%s', (_name, v, state, expected) => {
    expect(oldCopyMayRun(v, state === null ? new Map() : new Map([[I1, instance(I1, { state })]]))).toBe(expected);
  });
});

describe('autoRestoreStatus (failover status)', () => {
  const restore = { restoreId: restoreIdOf(VOL, GONE_AT + AFTER), snapshotId: SNAP, snapshotAt: GONE_AT + AFTER - 11_520_000, toAz: AZ_B, startedAt: GONE_AT + AFTER, newVolumeId: NEW_VOL, swappedAt: GONE_AT + AFTER + 4_000 };
  it.each<[string, FailoverJournal[], string, string | null]>([
    ['nothing tracked', [blocked()], VOL, null],
    ['tracked, not due', [withTracking({ goneSince: NOW - 10_000, dueAt: NOW + 50_000 })], VOL, `auto-restore in 50s (${AZ} gone 10s)`],
    ['tracked, waiting', [withTracking({ waiting: 'no completed snapshot of x' })], VOL, `auto-restore waiting: no completed snapshot of x (${AZ} gone 2m, due)`],
    ['tracked, waiting, not due', [withTracking({ goneSince: NOW - 60_000, dueAt: NOW + 840_000, waiting: 'w' })], VOL, `auto-restore waiting: w (${AZ} gone 1m, due in 14m)`],
    ['tracked, due', [withTracking()], VOL, `auto-restore due (${AZ} gone 2m)`],
    ['running', [withTracking({ restore: { ...restore, swappedAt: null } })], VOL, `auto-restore ${restore.restoreId} running: ${NEW_VOL} in ${AZ_B} from ${SNAP}`],
    [
      'the restored service shows its origin',
      [{ ...withTracking({ restore }), step: 'failed' }], NEW_VOL,
      `restored from ${SNAP} (data-loss window 3h12m) after ${AZ} was gone 1m; replaces ${UNIT}`,
    ],
    ['a closed journal of another volume says nothing about this one', [{ ...withTracking(), step: 'failed' }], VOL, null],
  ])('%s', (_name, journals, volumeId, expected) => {
    expect(autoRestoreStatus(journals, volumeId, NOW)).toBe(expected);
  });
});

describe('shared restore parts', () => {
  it('pickRestoreSnapshot: named, newest completed, max age', () => {
    const a = snapshot(SNAP_OLD, NOW - 2_000);
    const b = snapshot(SNAP, NOW - 1_000);
    expect(pickRestoreSnapshot([a, b], VOL)).toEqual({ ok: true, snapshot: b });
    expect(pickRestoreSnapshot([a, b], VOL, { snapshot: SNAP_OLD })).toEqual({ ok: true, snapshot: a });
    expect(pickRestoreSnapshot([a], VOL, { snapshot: SNAP })).toEqual({ ok: false, reason: `${SNAP} is not a snapshot of ${VOL} (see: failover snapshot list)` });
    expect(pickRestoreSnapshot([{ ...b, state: 'pending' }], VOL, { snapshot: SNAP })).toEqual({ ok: false, reason: `${SNAP} is pending, not completed` });
    expect(pickRestoreSnapshot([b], VOL, { maxAgeMs: 999, now: NOW }).ok).toBe(false);
    expect(pickRestoreSnapshot([b], VOL, { maxAgeMs: 1_000, now: NOW })).toEqual({ ok: true, snapshot: b });
    expect(pickRestoreSnapshot([snapshot(SNAP, 0, { volumeId: 'vol-99999999' })], VOL)).toEqual({ ok: false, reason: `no completed snapshot of ${VOL}` });
  });

  it.each<[number, string]>([[0, '0s'], [42_000, '42s'], [90_000, '1m30s'], [900_000, '15m'], [11_520_000, '3h12m'], [7_200_000, '2h'], [3 * 86_400_000 + 3_600_000, '3d1h']])('formatWindow(%i) = %s', (ms, text) => {
    expect(formatWindow(ms)).toBe(text);
  });

  it('a journal carrying a restore survives the etcd schema (a new leader reads what the old one wrote)', () => {
    const j = withTracking({ restore: { restoreId: restoreIdOf(VOL, NOW), snapshotId: SNAP, snapshotAt: 1, toAz: AZ_B, startedAt: NOW, newVolumeId: null, swappedAt: null } });
    expect(FailoverJournal.parse(JSON.parse(JSON.stringify(j)))).toEqual(j);
    expect(FailoverJournal.safeParse({ ...j, autoRestore: { ...j.autoRestore, restore: { ...j.autoRestore?.restore, restoreId: 'x' } } }).success).toBe(false);
    // A journal written before auto-restore existed reads without it.
    expect('autoRestore' in FailoverJournal.parse(JSON.parse(JSON.stringify(blocked())))).toBe(false);
  });
});
