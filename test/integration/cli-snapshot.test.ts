import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord, type Keyspace } from '../../src/keyspace/index.js';
import { acquireVolumeLock } from '../../src/locks/index.js';
import { dayBucket, snapshotTags } from '../../src/snapshot/index.js';
import { Ec2Sim, ManualClock, startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { dumpKeys, freshKeyspace, postgresService, runFailoverCli, type CliResult } from '../fixtures/cli-harness.js';

const VOL_A = 'vol-0aaa12345def67890';
const VOL_B = 'vol-0bbb12345def67890';
const UNIT_A = `postgres@${VOL_A}`;
const DAY_MS = 86_400_000;

let etcdServer: EtcdServer;
let ec2: Ec2Endpoint;
let client: Etcd3;
let ks: Keyspace;
// The simulator's time is driven by hand: 40 nights of snapshots are seeded in an instant, and a
// snapshot created by the CLI stays `pending` until the test advances the clock.
const clock = new ManualClock(Date.UTC(2026, 0, 1));
let foreignSnapshotId: string;

beforeAll(async () => {
  const sim = new Ec2Sim({ clock });
  sim.setThrottle({ enabled: false, scale: 1, buckets: {} });
  [etcdServer, ec2] = await Promise.all([startEtcd(), startEc2Endpoint({ sim })]);
  client = new Etcd3({ hosts: etcdServer.endpoint });
  ks = freshKeyspace();
  sim.addVolume({ volumeId: VOL_A, az: 'us-east-1a' });
  sim.addVolume({ volumeId: VOL_B, az: 'us-east-1a' });
  for (const volumeId of [VOL_A, VOL_B]) await client.put(ks.service(`postgres@${volumeId}`)).value(encodeRecord(postgresService(volumeId)));
  // Nightly at 00:00 UTC from 2026-01-01 to 2026-02-09, all completed; plus one foreign snapshot.
  for (let night = 0; night < 40; night += 1) {
    sim.createSnapshot(VOL_A, 'nightly', snapshotTags(UNIT_A, VOL_A, clock.now()));
    if (night === 20) foreignSnapshotId = sim.createSnapshot(VOL_A, 'hand-made before an upgrade', { Name: 'pre-upgrade' }).snapshotId;
    clock.advance(DAY_MS);
  }
});

afterAll(async () => {
  client?.close();
  await Promise.all([etcdServer?.stop(), ec2?.close()]);
});

function cli(args: string[]): Promise<CliResult> {
  return runFailoverCli(args, { EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
}

function snapshotsOf(volumeId: string): Array<{ snapshotId: string; startTime: number; state: string; tags: Record<string, string> }> {
  return ec2.sim.state().snapshots.filter((s) => s.volumeId === volumeId);
}

// daily 7: Feb 3..9; weekly 4: 2026-W07 (Feb 9), W06 (Feb 8), W05 (Feb 1), W04 (Jan 25); monthly 6: Feb (9), Jan (31).
const SURVIVORS = ['2026-01-25', '2026-01-31', '2026-02-01', '2026-02-03', '2026-02-04', '2026-02-05', '2026-02-06', '2026-02-07', '2026-02-08', '2026-02-09'];
const POLICY = ['--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '6'];

describe('failover snapshot', () => {
  it('--dry-run lists what would go and changes nothing', async () => {
    const before = snapshotsOf(VOL_A).length;
    const result = await cli(['snapshot', UNIT_A, '--dry-run', ...POLICY, '--json']);
    expect(result.code).toBe(0);
    const [plan] = JSON.parse(result.stdout) as Array<{ created: string | null; deleted: string[]; kept: Array<{ snapshotId: string; startTime: number }> }>;
    expect(plan?.created).toBeNull();
    expect(plan?.deleted).toHaveLength(30);
    expect(plan?.kept.filter((k) => k.snapshotId !== foreignSnapshotId).map((k) => dayBucket(k.startTime)).sort()).toEqual(SURVIVORS);
    expect(plan?.kept.map((k) => k.snapshotId)).toContain(foreignSnapshotId);
    expect(result.stderr).toMatch(/would delete snap-/);
    expect(snapshotsOf(VOL_A)).toHaveLength(before);
  });

  it('snapshots every managed volume with our tags, then prunes by retention', async () => {
    const result = await cli(['snapshot', ...POLICY]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`${VOL_A}\\s+${UNIT_A}\\s+snap-\\w+\\s+30\\s+12`)); // 10 survivors + foreign + the new pending one
    const a = snapshotsOf(VOL_A);
    const created = a.find((s) => s.state === 'pending');
    expect(created?.tags).toMatchObject({ 'ebs-failover:service': UNIT_A, 'ebs-failover:volume': VOL_A });
    expect(created?.tags['ebs-failover:time']).toMatch(/^\d{4}-\d\d-\d\dT/);
    const completedOurs = a.filter((s) => s.state === 'completed' && s.snapshotId !== foreignSnapshotId);
    expect(completedOurs.map((s) => dayBucket(s.startTime)).sort()).toEqual(SURVIVORS);
    expect(a.some((s) => s.snapshotId === foreignSnapshotId)).toBe(true);
    expect(snapshotsOf(VOL_B)).toHaveLength(1);
  });

  it('skips a volume whose previous snapshot is still pending', async () => {
    const before = snapshotsOf(VOL_A).length;
    const result = await cli(['snapshot', VOL_A, ...POLICY]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/previous snapshot snap-\w+ is still pending/);
    expect(snapshotsOf(VOL_A)).toHaveLength(before);
  });

  it('list shows ours and foreign snapshots (table and --json)', async () => {
    const table = await cli(['snapshot', 'list', UNIT_A]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SNAPSHOT\s+VOLUME\s+SERVICE\s+STARTED\s+STATE/);
    expect(table.stdout).toMatch(new RegExp(`${foreignSnapshotId}\\s+${VOL_A}\\s+-\\s+\\S+\\s+completed\\s+100%\\s+no`));
    const rows = JSON.parse((await cli(['snapshot', 'list', '--json'])).stdout) as Array<{ volumeId: string; managed: boolean; state: string }>;
    expect(rows.filter((r) => r.volumeId === VOL_A)).toHaveLength(12);
    expect(rows.filter((r) => !r.managed)).toHaveLength(1);
  });

  it('waits for, then skips, a volume locked by another operation — with a clear message', async () => {
    clock.advance(DAY_MS); // the pending one completes; a new snapshot would now be due
    const lock = await acquireVolumeLock(client, ks, VOL_B, { ttlMs: 30_000, waitMs: 5_000, owner: 'test-failover' });
    try {
      const before = snapshotsOf(VOL_B).length;
      const keysBefore = await dumpKeys(client, ks);
      const result = await cli(['snapshot', VOL_B, '--lock-wait', '1']);
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(new RegExp(`lock on ${VOL_B} held by test-failover \\(waited 1s\\); skipped`));
      expect(snapshotsOf(VOL_B)).toHaveLength(before);
      expect(await dumpKeys(client, ks)).toEqual(keysBefore);
    } finally {
      await lock.release();
    }
  });

  it('refuses an unknown target (exit 1) and a malformed one (exit 2)', async () => {
    const unknown = await cli(['snapshot', 'vol-0fff12345def67890']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown service or volume vol-0fff12345def67890');
    expect((await cli(['snapshot', 'not-a-volume'])).code).toBe(2);
    expect((await cli(['snapshot', '--keep-daily', '-1'])).code).toBe(2);
  });
});
