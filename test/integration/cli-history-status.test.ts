import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeRecord, FailoverJournal, type AgentReport, type EventRecord, type Keyspace, type Placement } from '../../src/keyspace/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { eventually, freshKeyspace, postgresService, registerLiveHost, runFailoverCli, startFailoverCli, type CliResult } from '../fixtures/cli-harness.js';

// Issue 13: `failover history`, and `status` showing offline hosts, blocked with its reason, -o wide/json, --watch.
const VOL_A = 'vol-0aaa12345def67890';
const VOL_B = 'vol-0bbb12345def67890';
const UNIT_A = `postgres@${VOL_A}`;
const UNIT_B = `postgres@${VOL_B}`;
const HOST_1 = 'i-0111111111111111a';
const HOST_DEAD = 'i-0999999999999999a';

let etcdServer: EtcdServer;
let client: Etcd3;
let ks: Keyspace;
const leases: Array<{ revoke(): Promise<void> }> = [];

beforeAll(async () => {
  etcdServer = await startEtcd();
  client = new Etcd3({ hosts: etcdServer.endpoint });
});

afterAll(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  client?.close();
  await etcdServer?.stop();
});

/**
 * A world after the controller found HOST_DEAD gone 2 min ago: A failed over to HOST_1 (done), B was on
 * HOST_DEAD and is blocked (no host in its AZ with a free device). Records as the controller writes them.
 */
beforeEach(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  ks = freshKeyspace();
  leases.push(await registerLiveHost(client, ks, { instanceId: HOST_1, az: 'us-east-1a' }));
  const t0 = Date.now() - 120_000;
  const placeA: Placement = { volumeId: VOL_A, unit: UNIT_A, instanceId: HOST_1, device: '/dev/xvdf', generation: 2, updatedAt: t0 + 9_000 };
  const placeB: Placement = { volumeId: VOL_B, unit: UNIT_B, instanceId: HOST_DEAD, device: '/dev/xvdg', generation: 1, updatedAt: t0 - 3_600_000 };
  const reportA: AgentReport = { instanceId: HOST_1, volumeId: VOL_A, unit: UNIT_A, generation: 2, phase: 'active', mountActive: true, unitActive: true, error: null, at: Date.now() };
  const journalA = FailoverJournal.parse({
    volumeId: VOL_A, unit: UNIT_A, kind: 'auto', step: 'done', fromInstanceId: HOST_DEAD, toInstanceId: HOST_1, device: '/dev/xvdf', startedAt: t0, stepStartedAt: t0 + 9_000, finishedAt: t0 + 9_000, generation: 2,
    history: [{ step: 'detected', at: t0 }, { step: 'fencing', at: t0 + 100 }, { step: 'detaching', at: t0 + 3_000, note: 'graceful detach from i-0999999999999999a' }, { step: 'attaching', at: t0 + 5_000 }, { step: 'starting', at: t0 + 7_000 }, { step: 'done', at: t0 + 9_000 }],
  });
  const journalB = FailoverJournal.parse({
    volumeId: VOL_B, unit: UNIT_B, kind: 'auto', step: 'blocked', fromInstanceId: HOST_DEAD, toInstanceId: null, device: null, startedAt: t0, stepStartedAt: t0 + 5_000,
    blockedReason: 'no live host in us-east-1a with a free device', history: [{ step: 'detected', at: t0 }, { step: 'blocked', at: t0 + 5_000 }],
  });
  const events: EventRecord[] = [
    { at: t0, volumeId: VOL_A, unit: UNIT_A, step: 'detected', message: `holder ${HOST_DEAD} lost its lease`, instanceId: HOST_DEAD },
    { at: t0 + 1, volumeId: VOL_B, unit: UNIT_B, step: 'detected', message: `holder ${HOST_DEAD} lost its lease`, instanceId: HOST_DEAD },
    { at: t0 + 5_000, volumeId: VOL_B, unit: UNIT_B, step: 'blocked', message: 'no live host in us-east-1a with a free device', instanceId: HOST_DEAD },
    { at: t0 + 9_000, volumeId: VOL_A, unit: UNIT_A, step: 'done', message: `active on ${HOST_1}`, instanceId: HOST_1 },
    // An old event outside --since windows below.
    { at: t0 - 7_200_000, volumeId: VOL_A, unit: UNIT_A, step: 'done', message: 'an old move', instanceId: HOST_1 },
  ];
  for (const svc of [postgresService(VOL_A), postgresService(VOL_B)]) await client.put(ks.service(svc.unit)).value(encodeRecord(svc));
  await client.put(ks.placement(VOL_A)).value(encodeRecord(placeA));
  await client.put(ks.placement(VOL_B)).value(encodeRecord(placeB));
  await client.put(ks.status(HOST_1, VOL_A)).value(encodeRecord(reportA));
  await client.put(ks.journal(VOL_A)).value(encodeRecord(journalA));
  await client.put(ks.journal(VOL_B)).value(encodeRecord(journalB));
  for (const e of events) await client.put(ks.event(e.at, e.volumeId)).value(encodeRecord(e));
});

function cli(args: string[]): Promise<CliResult> {
  return runFailoverCli(args, { EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix });
}

describe('failover history', () => {
  it('lists what happened, oldest first, with hosts and reasons; journal steps fill in what events do not say', async () => {
    const result = await cli(['history', '--since', '1h']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+UNIT\s+STEP\s+HOST\s+WHAT/);
    expect(result.stdout).toMatch(new RegExp(`${UNIT_A}\\s+detected\\s+${HOST_DEAD}\\s+holder ${HOST_DEAD} lost its lease`));
    expect(result.stdout).toMatch(new RegExp(`${UNIT_A}\\s+detaching\\s+${HOST_DEAD}\\s+graceful detach from ${HOST_DEAD}`));
    expect(result.stdout).toMatch(new RegExp(`${UNIT_B}\\s+blocked\\s+${HOST_DEAD}\\s+no live host in us-east-1a with a free device`));
    expect(result.stdout).toMatch(new RegExp(`${UNIT_A}\\s+done\\s+${HOST_1}\\s+active on ${HOST_1}`));
    expect(result.stdout).not.toContain('an old move');
    // detected, fencing, detaching, attaching, starting, done for A; detected, blocked for B: each once.
    expect(lines).toHaveLength(1 + 6 + 2);
  });

  it('<unit> --json: only that unit, machine-readable; --since widens the window', async () => {
    const result = await cli(['history', UNIT_B, '--json', '--since', '1d']);
    expect(result.code).toBe(0);
    const entries = JSON.parse(result.stdout) as Array<{ unit: string; step: string; source: string }>;
    expect(entries.map((e) => [e.unit, e.step, e.source])).toEqual([[UNIT_B, 'detected', 'event'], [UNIT_B, 'blocked', 'event']]);
    const wide = JSON.parse((await cli(['history', UNIT_A, '--json', '--since', '1d'])).stdout) as Array<{ message: string }>;
    expect(wide.map((e) => e.message)).toContain('an old move');
  });

  it('bad --since is bad usage (exit 2)', async () => {
    const result = await cli(['history', '--since', 'soon']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/bad --since "soon"/);
  });
});

describe('failover status', () => {
  it('shows the gone host offline and since when, and the blocked service with its reason', async () => {
    const result = await cli(['status']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`${HOST_DEAD}\\s+offline 2m\\d\\ds \\(since `));
    expect(result.stdout).toMatch(new RegExp(`${UNIT_B}\\s+${VOL_B}\\s+${HOST_DEAD}\\s+blocked \\(no live host in us-east-1a with a free device\\)`));
    expect(result.stdout).toMatch(new RegExp(`${UNIT_A}\\s+${VOL_A}\\s+${HOST_1}\\s+active`));
  });

  it('-o json and -o wide', async () => {
    const json = JSON.parse((await cli(['status', '-o', 'json'])).stdout) as { offline: Array<{ instanceId: string; since: number }>; services: Array<{ unit: string; state: string; detail: string | null }> };
    expect(json.offline.map((h) => h.instanceId)).toEqual([HOST_DEAD]);
    expect(json.services).toContainEqual(expect.objectContaining({ unit: UNIT_B, state: 'blocked', detail: 'no live host in us-east-1a with a free device' }));
    const wide = await cli(['status', '-o', 'wide']);
    expect(wide.stdout).toMatch(/SERVICE\s+VOLUME\s+HOLDER\s+GEN\s+STATE/);
    expect(wide.stdout).toMatch(new RegExp(`${UNIT_A}\\s+${VOL_A}\\s+${HOST_1}\\s+2\\s+active`));
    const bad = await cli(['status', '-o', 'yaml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad -o "yaml"/);
  });

  it('--watch refreshes: a host whose lease goes between two refreshes is offline in the second', async () => {
    const run = startFailoverCli(['status', '--watch', '1', '--count', '2'], { EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, LOG_LEVEL: 'warn' });
    await eventually(async () => (run.output().stdout.includes('OFFLINE HOST') ? true : undefined), 'the first refresh');
    await leases.splice(0)[0]?.revoke();
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    const frames = run.output().stdout.split(/^--- /m).filter((f) => f.trim() !== '');
    expect(frames).toHaveLength(2);
    expect(frames[0]).toMatch(new RegExp(`^${HOST_1}\\s+us-east-1a`, 'm'));
    expect(frames[1]).not.toMatch(new RegExp(`^${HOST_1}\\s+us-east-1a`, 'm'));
    expect(frames[1]).toMatch(new RegExp(`^${HOST_1}\\s+offline`, 'm'));
  });
});
