import { CreateVolumeCommand, DescribeVolumesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createEc2 } from '../ec2/client.js';
import { withGuard } from '../ec2/gate.js';
import type { Ec2Port, MutationGuard } from '../ec2/types.js';
import type { FailoverJournal } from '../keyspace/records.js';
import { silentLogger } from '../log/logger.js';
import { act } from './act.js';
import type { Decision } from './decision.js';
import { MemoryStore } from './memory.js';
import { restoredVolumeTags } from './restore-common.js';
import { journal } from '../testing/controller-builders.js';

// act's half of the auto-restore: the restore is journalled BEFORE CreateVolume, CreateVolume goes
// through the gate's port, and a volume already carrying the restore id is taken instead of a new one.
const VOL = 'vol-0123456789abcdef0';
const NEW = 'vol-0fedcba9876543210';
const SNAP = 'snap-0123456789abcdef0';
const RID = `ar-0123456789abcdef0-5`;
const ec2Client = new EC2Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
const mock = mockClient(ec2Client);
const guard: MutationGuard = { caller: 'c1', term: '77', assert: () => undefined, remainingMs: () => 5_000 };

function ec2(): Ec2Port {
  return withGuard(createEc2({ client: ec2Client, timing: { retryMinMs: 1, retryMaxMs: 2, pollInitialMs: 1, pollMaxMs: 2 } }), guard);
}

const recorded: FailoverJournal = journal({
  volumeId: VOL, step: 'blocked',
  autoRestore: { az: 'us-east-1a', goneSince: 1, dueAt: 2, waiting: null, restore: { restoreId: RID, snapshotId: SNAP, snapshotAt: 0, toAz: 'us-east-1b', startedAt: 5, newVolumeId: null, swappedAt: null } },
});
const create: Decision = { kind: 'createRestoreVolume', volumeId: VOL, journal: recorded, restoreId: RID, snapshotId: SNAP, az: 'us-east-1b', tags: restoredVolumeTags(SNAP, VOL, RID), reason: 'test' };
const newVolume = { VolumeId: NEW, AvailabilityZone: 'us-east-1b', State: 'creating' as const, Size: 10, Attachments: [], Tags: [{ Key: 'ebs-failover:restore-id', Value: RID }] };

beforeEach(() => mock.reset());

describe('act: createRestoreVolume', () => {
  it('journals the restore first, looks for its tag, then CreateVolume (tags, ClientToken) through the gate, then records the id', async () => {
    const store = new MemoryStore();
    store.journals.set(VOL, journal({ volumeId: VOL, step: 'blocked' }));
    let restoreAtCall: unknown;
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [] });
    mock.on(CreateVolumeCommand).callsFake(() => {
      restoreAtCall = store.journals.get(VOL)?.autoRestore?.restore;
      return newVolume;
    });
    const written = await act({ store, ec2: ec2(), log: silentLogger(), signal: new AbortController().signal, now: () => 10 }, create, `postgres@${VOL}`);
    expect(restoreAtCall).toEqual(recorded.autoRestore?.restore);
    const sent = mock.commandCalls(CreateVolumeCommand)[0]?.args[0].input;
    expect(sent).toMatchObject({ AvailabilityZone: 'us-east-1b', SnapshotId: SNAP, ClientToken: RID, TagSpecifications: [{ ResourceType: 'volume', Tags: expect.arrayContaining([{ Key: 'ebs-failover:managed', Value: 'true' }, { Key: 'ebs-failover:restore-id', Value: RID }]) }] });
    expect(mock.commandCalls(DescribeVolumesCommand)[0]?.args[0].input.Filters).toEqual([{ Name: 'tag:ebs-failover:restore-id', Values: [RID] }]);
    expect(written?.autoRestore?.restore?.newVolumeId).toBe(NEW);
    expect(store.journals.get(VOL)?.autoRestore?.restore?.newVolumeId).toBe(NEW);
    expect(store.events.map((e) => e.step)).toEqual(['auto-restore', 'auto-restore']);
  });

  it('a volume already tagged with the restore id (created by a dead leader) is taken: no CreateVolume', async () => {
    const store = new MemoryStore();
    store.journals.set(VOL, recorded);
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [newVolume] });
    const written = await act({ store, ec2: ec2(), log: silentLogger(), signal: new AbortController().signal, now: () => 10 }, create, `postgres@${VOL}`);
    expect(mock.commandCalls(CreateVolumeCommand)).toHaveLength(0);
    expect(written?.autoRestore?.restore?.newVolumeId).toBe(NEW);
    // Already recorded by the previous term: not written again before the look-up.
    expect(store.journalLog).toHaveLength(1);
  });

  it('a gate that refuses (leadership lost) stops it before CreateVolume is sent; the journal keeps the restore for the successor', async () => {
    const store = new MemoryStore();
    store.journals.set(VOL, journal({ volumeId: VOL, step: 'blocked' }));
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [] });
    mock.on(CreateVolumeCommand).resolves(newVolume);
    const deposed = withGuard(createEc2({ client: ec2Client, timing: { retryMinMs: 1, retryMaxMs: 2 } }), { ...guard, assert: () => { throw new Error('not the leader'); } });
    await expect(act({ store, ec2: deposed, log: silentLogger(), signal: new AbortController().signal, now: () => 10 }, create, `postgres@${VOL}`)).rejects.toThrow('not the leader');
    expect(mock.commandCalls(CreateVolumeCommand)).toHaveLength(0);
    expect(store.journals.get(VOL)?.autoRestore?.restore?.restoreId).toBe(RID);
  });
});

describe('act: swapRestored', () => {
  it('one write: the closed journal, the registration swapped, the failed and auto-restored events', async () => {
    const store = new MemoryStore();
    const old = { unit: `postgres@${VOL}`, volumeId: VOL, mountUnit: 'data-postgres.mount', mountPoint: '/data', metadataKey: 'postgres', requiredLabels: {} };
    store.services.set(old.unit, old);
    const closed: FailoverJournal = { ...recorded, step: 'failed' };
    const d: Decision = { kind: 'swapRestored', volumeId: VOL, journal: closed, oldUnit: old.unit, service: { ...old, unit: `postgres@${NEW}`, volumeId: NEW }, message: 'auto-restored …', reason: 'auto-restored …' };
    await act({ store, ec2: ec2(), log: silentLogger(), signal: new AbortController().signal, now: () => 10 }, d, old.unit);
    expect([...store.services.keys()]).toEqual([`postgres@${NEW}`]);
    expect(store.journals.get(VOL)?.step).toBe('failed');
    expect(store.events.map((e) => [e.step, e.volumeId])).toEqual([['failed', VOL], ['auto-restored', NEW]]);
  });
});
