import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord, ServiceRecord, type Keyspace } from '../../src/keyspace/index.js';
import { snapshotTags } from '../../src/snapshot/index.js';
import { Ec2Sim, startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { eventually, freshKeyspace, runFailoverCli, type CliResult } from '../fixtures/cli-harness.js';
import type { SnapshotOverview } from '../../src/snapshot/overview.js';

// Issue 13: per-service snapshot schedules. Real etcd, the EC2 endpoint through the real SDK, the real
// CLI binary as a child process; the simulator runs on the real clock (the CLI's `now` is Date.now()).

const VOL_A = 'vol-0a1a12345def67890';
const VOL_B = 'vol-0b1b12345def67890';
const UNIT_A = `postgres@${VOL_A}`;
const UNIT_B = `mysql@${VOL_B}`;
const HOUR_MS = 3_600_000;

let etcdServer: EtcdServer;
let ec2: Ec2Endpoint;
let client: Etcd3;
let ks: Keyspace;

interface RunResult {
  unit: string;
  volumeId: string;
  created: string | null;
  deleted: string[];
  skipped: string | null;
  due: boolean;
  schedule: string;
  nextDueAt: number;
}

function cli(args: string[]): Promise<CliResult> {
  return runFailoverCli(args, { EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
}

function snapshotsOf(volumeId: string): Array<{ snapshotId: string; startTime: number; state: string }> {
  return ec2.sim.state().snapshots.filter((s) => s.volumeId === volumeId);
}

async function allCompleted(volumeId: string): Promise<void> {
  await eventually(async () => (snapshotsOf(volumeId).every((s) => s.state === 'completed') ? true : undefined), `every snapshot of ${volumeId} completed`, 30_000);
}

async function runJob(): Promise<RunResult[]> {
  const result = await cli(['snapshot', '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as RunResult[];
}

const byUnit = <T extends { unit: string }>(rows: T[], unit: string): T => {
  const row = rows.find((r) => r.unit === unit);
  if (!row) throw new Error(`no row for ${unit}`);
  return row;
};

const nextHour = (t: number): number => t - (t % HOUR_MS) + HOUR_MS;
const nextUtcMidnight = (t: number): number => t - (t % (24 * HOUR_MS)) + 24 * HOUR_MS;

beforeAll(async () => {
  const sim = new Ec2Sim();
  sim.setThrottle({ enabled: false, scale: 1, buckets: {} });
  [etcdServer, ec2] = await Promise.all([startEtcd(), startEc2Endpoint({ sim })]);
  client = new Etcd3({ hosts: etcdServer.endpoint });
  ks = freshKeyspace();
  for (const volumeId of [VOL_A, VOL_B]) sim.addVolume({ volumeId, az: 'us-east-1a', tags: { 'ebs-failover:managed': 'true' } });
  // The whole test must run inside one clock hour: its "right away" steps rely on the hourly slot not
  // turning over between two runs. Near a boundary, wait until it has passed (a wait, not an assertion).
  const left = nextHour(Date.now()) - Date.now();
  if (left < 4 * 60_000) await new Promise((r) => setTimeout(r, left + 1_000));
}, 300_000);

afterAll(async () => {
  client?.close();
  await Promise.all([etcdServer?.stop(), ec2?.close()]);
});

describe('per-service snapshot schedules', () => {
  it('service add validates the schedule with a clear message (exit 2) and stores it', async () => {
    const add = (unit: string, extra: string[]): Promise<CliResult> =>
      cli(['service', 'add', unit, '--mount-unit', 'data-x.mount', '--mount-point', '/data/x', '--metadata-key', unit.split('@')[0] ?? 'x', '--fs-label', 'data', ...extra]);
    const bad = await add(UNIT_A, ['--snapshot-every', '5h', '--snapshot-keep', '2']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('snapshot interval must be one of 1h, 2h, 3h, 4h, 6h, 8h, 12h, 24h');
    const noKeep = await add(UNIT_A, ['--snapshot-every', '1h']);
    expect(noKeep.code).toBe(2);
    expect(noKeep.stderr).toContain('--snapshot-every needs --snapshot-keep too');
    const notDuration = await add(UNIT_A, ['--snapshot-every', 'hourly', '--snapshot-keep', '2']);
    expect(notDuration.code).toBe(2);
    expect(notDuration.stderr).toContain('bad --snapshot-every "hourly"');
    expect((await client.getAll().prefix(ks.servicesPrefix()).keys()).length).toBe(0);

    const a = await add(UNIT_A, ['--snapshot-every', '1h', '--snapshot-keep', '2']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toContain('snapshots: every 1h, keep 2');
    const b = await add(UNIT_B, []);
    expect(b.code, b.stderr).toBe(0);
    expect(decodeRecord(ServiceRecord, 'a', await client.get(ks.service(UNIT_A)).string())?.snapshot).toEqual({ everyHours: 1, keep: 2 });
    expect(decodeRecord(ServiceRecord, 'b', await client.get(ks.service(UNIT_B)).string())?.snapshot).toBeUndefined();
  });

  let older: string;
  let first: { a: string; b: string };

  it('the first run snapshots both; a second run right away creates none, with ONE DescribeSnapshots and no mutating call', async () => {
    // An older hourly snapshot of A (ours, completed, 2 h ago), as an earlier run left it.
    const now = Date.now();
    older = ec2.sim.createSnapshot(VOL_A, 'earlier run', snapshotTags(UNIT_A, VOL_A, now - 2 * HOUR_MS)).snapshotId;
    ec2.sim.setSnapshotStartTime(older, now - 2 * HOUR_MS);
    await allCompleted(VOL_A);

    const run1 = await runJob();
    const [a1, b1] = [byUnit(run1, UNIT_A), byUnit(run1, UNIT_B)];
    expect(a1).toMatchObject({ due: true, schedule: 'every 1h, keep 2', deleted: [] });
    expect(b1).toMatchObject({ due: true, schedule: 'default (daily, global retention)', deleted: [] });
    expect(a1.created).toMatch(/^snap-/);
    expect(b1.created).toMatch(/^snap-/);
    first = { a: a1.created ?? '', b: b1.created ?? '' };
    await allCompleted(VOL_A);
    await allCompleted(VOL_B);

    ec2.sim.resetStats();
    const mutatingBefore = ec2.sim.requests.length;
    const run2 = await runJob();
    const now2 = Date.now();
    expect(byUnit(run2, UNIT_A)).toMatchObject({ due: false, created: null, deleted: [], nextDueAt: nextHour(now2) });
    expect(byUnit(run2, UNIT_A).skipped).toMatch(new RegExp(`^not due: ${first.a} already covers the 1h slot`));
    expect(byUnit(run2, UNIT_B)).toMatchObject({ due: false, created: null, deleted: [], nextDueAt: nextUtcMidnight(now2) });
    expect(ec2.sim.stats().byAction).toEqual({ DescribeSnapshots: 1 });
    expect(ec2.sim.requests.length).toBe(mutatingBefore);
    expect(snapshotsOf(VOL_A).map((s) => s.snapshotId).sort()).toEqual([first.a, older].sort());
    expect(snapshotsOf(VOL_B).map((s) => s.snapshotId)).toEqual([first.b]);
  });

  it('once the hourly one is due it gets a new snapshot, and its oldest beyond keep 2 is pruned; the unscheduled one is untouched', async () => {
    // Make A due: its snapshot of this hour moves back an hour (EC2 has no such call; the sim's test hook).
    ec2.sim.setSnapshotStartTime(first.a, Date.now() - HOUR_MS);
    const bBefore = snapshotsOf(VOL_B);

    const run3 = await runJob();
    const a3 = byUnit(run3, UNIT_A);
    expect(a3.due).toBe(true);
    expect(a3.created).toMatch(/^snap-/);
    // Retention counts completed snapshots only (a pending one may still fail): first.a and older are
    // the 2 kept, the new one is pending and kept.
    expect(a3.deleted).toEqual([]);
    expect(byUnit(run3, UNIT_B)).toMatchObject({ due: false, created: null, deleted: [] });

    // Once the new one has completed A holds 3 completed: the next run creates nothing and prunes the oldest.
    await allCompleted(VOL_A);
    const run4 = await runJob();
    expect(byUnit(run4, UNIT_A)).toMatchObject({ due: false, created: null, deleted: [older] });
    expect(snapshotsOf(VOL_A).map((s) => s.snapshotId).sort()).toEqual([a3.created, first.a].sort());
    expect(byUnit(run4, UNIT_B)).toMatchObject({ due: false, created: null, deleted: [] });
    expect(snapshotsOf(VOL_B)).toEqual(bBefore);
  });

  it('status -o json and -o wide, and service show, give the schedule, the last completed snapshot and the next due time', async () => {
    const before = Date.now();
    const status = await cli(['status', '-o', 'json']);
    expect(status.code, status.stderr).toBe(0);
    const services = (JSON.parse(status.stdout) as { services: Array<{ unit: string; snapshot?: SnapshotOverview }> }).services;
    const a = byUnit(services, UNIT_A).snapshot;
    const b = byUnit(services, UNIT_B).snapshot;
    const newestA = snapshotsOf(VOL_A).sort((x, y) => y.startTime - x.startTime)[0];
    expect(a).toMatchObject({ schedule: 'every 1h, keep 2', everyHours: 1, keep: 2, due: false, error: null, lastCompletedId: newestA?.snapshotId, lastCompletedAt: newestA?.startTime, nextDueAt: nextHour(before) });
    expect(b).toMatchObject({ schedule: 'default (daily, global retention)', everyHours: 24, keep: null, due: false, error: null, lastCompletedId: first.b, nextDueAt: nextUtcMidnight(before) });

    const wide = await cli(['status', '-o', 'wide']);
    expect(wide.code, wide.stderr).toBe(0);
    expect(wide.stdout).toMatch(/SERVICE\s+VOLUME\s+HOLDER\s+GEN\s+STATE\s+LAST FAILOVER\s+SNAPSHOTS/);
    expect(wide.stdout).toMatch(new RegExp(`${UNIT_A}\\s+.*every 1h, keep 2; last \\d+s ago; next in \\d+m\\d\\ds \\(\\d{4}-\\d\\d-\\d\\dT\\d\\d:00Z\\)`));
    expect(wide.stdout).toMatch(new RegExp(`${UNIT_B}\\s+.*default \\(daily, global retention\\); last \\S+ ago; next in \\S+ \\(\\d{4}-\\d\\d-\\d\\dT00:00Z\\)`));

    const show = await cli(['service', 'show', UNIT_A]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^snapshots: {3}every 1h, keep 2; last \d+s ago; next in /m);
    const showJson = JSON.parse((await cli(['service', 'show', UNIT_A, '--json'])).stdout) as { snapshots: SnapshotOverview };
    expect(showJson.snapshots).toMatchObject({ schedule: 'every 1h, keep 2', nextDueAt: nextHour(before) });
  });

  it('service set changes the schedule of a registered service, prints the change, and refuses nonsense', async () => {
    const set = await cli(['service', 'set', UNIT_B, '--snapshot-every', '6h', '--snapshot-keep', '28']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout.trim()).toBe(`${UNIT_B}: snapshots default (daily, global retention) → every 6h, keep 28`);
    const keepOnly = await cli(['service', 'set', UNIT_B, '--snapshot-keep', '4']);
    expect(keepOnly.stdout.trim()).toBe(`${UNIT_B}: snapshots every 6h, keep 28 → every 6h, keep 4`);
    const same = await cli(['service', 'set', UNIT_B, '--snapshot-every', '6h']);
    expect(same.stdout.trim()).toBe(`${UNIT_B}: snapshots unchanged: every 6h, keep 4`);
    const record = decodeRecord(ServiceRecord, 'b', await client.get(ks.service(UNIT_B)).string());
    expect(record?.snapshot).toEqual({ everyHours: 6, keep: 4 });
    expect(record?.mountUnit).toBe('data-x.mount'); // the rest of the record is kept as it was

    const bad = await cli(['service', 'set', UNIT_B, '--snapshot-every', '7h']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('snapshot interval must be one of');
    expect((await cli(['service', 'set', UNIT_B, '--snapshot-keep', '0'])).stderr).toContain('snapshot keep must be at least 1');
    expect((await cli(['service', 'set', UNIT_B])).code).toBe(2);
    const unknown = await cli(['service', 'set', 'pg@vol-0fff12345def67890', '--snapshot-keep', '3']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown service pg@vol-0fff12345def67890');

    const back = await cli(['service', 'set', UNIT_B, '--snapshot-default']);
    expect(back.stdout.trim()).toBe(`${UNIT_B}: snapshots every 6h, keep 4 → default (daily, global retention)`);
    expect(decodeRecord(ServiceRecord, 'b', await client.get(ks.service(UNIT_B)).string())?.snapshot).toBeUndefined();
  });

  it('the shipped timer fires every 15 minutes (often enough for hourly), persistently, with a random delay', async () => {
    const timer = readFileSync(new URL('../../units/failover-snapshot.timer', import.meta.url), 'utf8');
    const onCalendar = /^OnCalendar=(.+)$/m.exec(timer)?.[1];
    expect(onCalendar).toBeDefined();
    expect(timer).toMatch(/^Persistent=true$/m);
    const delay = /^RandomizedDelaySec=(\d+)min$/m.exec(timer)?.[1];
    expect(Number(delay)).toBeLessThan(15);
    const { stdout } = await promisify(execFile)('systemd-analyze', ['calendar', '--iterations=3', onCalendar ?? ''], { env: { ...process.env, TZ: 'UTC' } });
    const elapses = [...stdout.matchAll(/(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC/g)].map((m) => Date.parse(`${m[1]?.replace(' ', 'T')}Z`));
    expect(elapses).toHaveLength(3);
    expect(elapses[1]! - elapses[0]!).toBe(15 * 60_000);
    expect(elapses[2]! - elapses[1]!).toBe(15 * 60_000);
    expect(readFileSync(new URL('../../units/failover-snapshot.service', import.meta.url), 'utf8')).not.toMatch(/--now/);
  });
});
