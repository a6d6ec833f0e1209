/**
 * controller.autoRestore with real processes: real etcd, the EC2 endpoint through the SDK, agent
 * processes (in-memory systemd) in two AZs, controller processes. A service in us-east-1a with a
 * completed snapshot; every us-east-1a agent is SIGKILLed. With auto-restore on, the controller
 * restores it from the snapshot into us-east-1b (new tagged volume, registration swapped, unit active
 * there, event, metric, status, history); off, it stays blocked and names `failover restore --az`; with
 * the old volume still attached to a running instance, it creates nothing and says why; and a leader
 * killed right after its CreateVolume leaves the successor to finish with that very volume.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord, EventRecord, ServiceRecord, type FailoverJournal } from '../../src/keyspace/index.js';
import { runFailoverCli } from '../fixtures/cli-harness.js';
import { AZ, ELECTION_TTL_MS, OTHER_AZ, Proc, Scenario, activeIntervals, doubleAttachments, overlaps, readLedger, startWorld, until, type Host, type World } from '../fixtures/controller-harness.js';

const REPO = new URL('../../', import.meta.url).pathname;
/** A few seconds: long enough that the failover visibly blocks first, short for a test. */
const AFTER_MS = 4_000;
/** The snapshot is back-dated so the data-loss window reads like a real one. */
const SNAPSHOT_AGE_MS = 3 * 3_600_000 + 12 * 60_000;

let world: World;
let scenario: Scenario | undefined;

beforeAll(async () => {
  world = await startWorld();
  world.ec2.sim.setLatencies({ snapshotMs: 0 });
});
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && scenario) console.log(scenario.dump(60));
  world.ec2.sim.clearFaults();
  await scenario?.stop();
  scenario = undefined;
});
afterAll(async () => {
  await world?.stop();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

let controllers = 0;
/** A controller process with autoRestore (test/fixtures/auto-restore-controller.ts), stopped with the scenario. */
function startController(s: Scenario, opts: { autoRestore?: { enabled: boolean; afterMs: number }; crashAfterCreateVolume?: boolean; metricsPort?: number }): Proc {
  controllers += 1;
  const config = {
    etcdEndpoints: [world.etcd.endpoint], ec2Endpoint: world.ec2.url, prefix: s.ks.prefix, candidateId: `ar${controllers}-${s.name}`, electionTtlMs: ELECTION_TTL_MS,
    autoRestore: opts.autoRestore, crashAfterCreateVolume: opts.crashAfterCreateVolume, metricsListen: opts.metricsPort ? `127.0.0.1:${opts.metricsPort}` : undefined,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/auto-restore-controller.ts'], {
    cwd: REPO,
    env: { ...process.env, LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn', AUTO_RESTORE_CONTROLLER: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = new Proc(`controller-ar${controllers}`, child);
  s.controllers.push(proc);
  return proc;
}

interface Setup {
  s: Scenario;
  unit: string;
  volumeId: string;
  snapshotId: string;
  aHosts: Host[];
  bHost: Host;
  holder: string;
}

/** Two us-east-1a hosts and one us-east-1b host (agents that learn services registered later), one service and its completed snapshot. */
async function setup(name: string): Promise<Omit<Setup, 'holder'>> {
  const s = (scenario = new Scenario(world, name));
  await s.addServices(1);
  const service = s.services[0] as ServiceRecord;
  const snap = world.ec2.sim.createSnapshot(service.volumeId, 'nightly', { 'ebs-failover:volume': service.volumeId, 'ebs-failover:service': service.unit });
  world.ec2.sim.setSnapshotStartTime(snap.snapshotId, Date.now() - SNAPSHOT_AGE_MS);
  const agent = { watchServices: true };
  const aHosts = await Promise.all([s.addHost(AZ, { agent }), s.addHost(AZ, { agent })]);
  const bHost = await s.addHost(OTHER_AZ, { agent });
  return { s, unit: service.unit, volumeId: service.volumeId, snapshotId: snap.snapshotId, aHosts, bHost };
}

/** Waits for the first placement (done by `leader`), then SIGKILLs every us-east-1a agent; returns the holder. */
async function loseAzA(x: Omit<Setup, 'holder'>, leader: Proc, opts: { terminate: boolean }): Promise<string> {
  const holder = await x.s.waitRunning(x.unit, (h) => x.aHosts.some((a) => a.instanceId === h));
  await until(() => leader.lines.some((l) => l.includes('"persisted":"done"')), 30_000, 'initial placement done by the first controller');
  for (const h of x.aHosts) h.proc.kill('SIGKILL');
  // The AZ is really gone: EC2 shows its instances terminated (their volumes then detach).
  if (opts.terminate) for (const h of x.aHosts) world.ec2.sim.terminateInstance(h.instanceId);
  return holder;
}

async function servicesNow(s: Scenario): Promise<ServiceRecord[]> {
  const raw = await world.client.getAll().prefix(s.ks.servicesPrefix()).strings();
  return Object.entries(raw).map(([k, v]) => decodeRecord(ServiceRecord, k, v)).filter((r): r is ServiceRecord => r !== undefined);
}

async function eventsNow(s: Scenario): Promise<EventRecord[]> {
  const raw = await world.client.getAll().prefix(s.ks.eventsPrefix()).strings();
  return Object.entries(raw).map(([k, v]) => decodeRecord(EventRecord, k, v)).filter((r): r is EventRecord => r !== undefined);
}

/** Volumes in the sim that a restore of `volumeId` created. */
function restoredVolumes(volumeId: string): { volumeId: string; az: string; tags: Record<string, string> }[] {
  return world.ec2.sim.state().volumes.filter((v) => v.tags['ebs-failover:replaces'] === volumeId);
}

const cliEnv = (s: Scenario): Record<string, string> => ({ EBS_FAILOVER_ETCD_ENDPOINTS: world.etcd.endpoint, EBS_FAILOVER_PREFIX: s.ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: world.ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });

describe('controller.autoRestore', () => {
  it('restores a service whose whole AZ is gone into the other AZ: tagged volume, registration swapped, unit active there, event, metric, status, history', async () => {
    const x = await setup('ar-on');
    const metricsPort = await freePort();
    const c = startController(x.s, { autoRestore: { enabled: true, afterMs: AFTER_MS }, metricsPort });
    await c.ready();
    const holder = await loseAzA(x, c, { terminate: true });
    const killedAt = Date.now();

    let restored: ServiceRecord | undefined;
    await until(async () => {
      restored = (await servicesNow(x.s)).find((r) => r.unit !== x.unit);
      return restored !== undefined;
    }, 90_000, 'the registration swapped to the restored volume');
    const newVolumeId = (restored as ServiceRecord).volumeId;
    const newUnit = `postgres@${newVolumeId}`;
    expect(restored).toEqual({ ...x.s.services[0], unit: newUnit, volumeId: newVolumeId });
    expect((await servicesNow(x.s)).map((r) => r.unit)).toEqual([newUnit]);
    const running = await x.s.waitRunning(newUnit, (h) => h === x.bHost.instanceId, 60_000);
    const activeAfterMs = Date.now() - killedAt;
    expect(running).toBe(x.bHost.instanceId);

    // One new volume, in us-east-1b, from the snapshot, tagged; the old one kept.
    const created = restoredVolumes(x.volumeId);
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ volumeId: newVolumeId, az: OTHER_AZ, tags: { 'ebs-failover:managed': 'true', 'ebs-failover:restored-from': x.snapshotId, 'ebs-failover:replaces': x.volumeId } });
    expect(created[0]?.tags['ebs-failover:restore-id']).toMatch(/^ar-[0-9a-f]+-\d+$/);
    expect(world.ec2.sim.volume(x.volumeId)?.volumeId).toBe(x.volumeId);
    // CreateVolume went through the mutation gate: the sim saw the leader's identity and term on it.
    const creates = world.ec2.sim.requests.filter((r) => r.action === 'CreateVolume' && r.snapshotId === x.snapshotId);
    expect(creates).toHaveLength(1);
    expect(creates[0]?.caller).toMatch(/^ar\d+-ar-on$/);
    expect(creates[0]?.term).toMatch(/^\d+$/);

    // Not before the bound: the restore began at least afterMs after the AZ was first seen empty.
    const journal = (await x.s.journal(x.volumeId)) as FailoverJournal;
    const t = journal.autoRestore;
    expect(t?.restore?.newVolumeId).toBe(newVolumeId);
    expect((t?.restore?.startedAt ?? 0) - (t?.goneSince ?? Infinity)).toBeGreaterThanOrEqual(AFTER_MS);
    expect(journal.step).toBe('failed');
    expect(journal.error).toBe(`replaced by ${newUnit} (auto-restored from ${x.snapshotId})`);

    // Loud: the event, the metric, status and history.
    const events = await eventsNow(x.s);
    const ev = events.find((e) => e.step === 'auto-restored');
    expect(ev).toMatchObject({ volumeId: newVolumeId, unit: newUnit });
    expect(ev?.message).toContain(`auto-restored ${x.unit} as ${newUnit}: ${newVolumeId} created in ${OTHER_AZ} from ${x.snapshotId} (data-loss window 3h12m`);
    expect(ev?.message).toContain(`${AZ} → ${OTHER_AZ}; ${x.volumeId} kept, untouched`);
    expect(events.some((e) => e.step === 'auto-restore' && e.message.includes(`${AZ} has no live host at all`))).toBe(true);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^ebs_failover_auto_restores_total 1$/m);

    const status = await runFailoverCli(['status'], cliEnv(x.s));
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`${newUnit} +restored from ${x.snapshotId} \\(data-loss window 3h12m\\) after ${AZ} was gone \\d+s; replaces ${x.unit}`));
    const history = await runFailoverCli(['history', newUnit], cliEnv(x.s));
    expect(history.code, history.stderr).toBe(0);
    expect(history.stdout).toContain('auto-restored');
    const oldHistory = await runFailoverCli(['history', x.unit], cliEnv(x.s));
    expect(oldHistory.stdout).toMatch(new RegExp(`failed .*auto-restored ${x.unit} as ${newUnit}`));
    if (process.env.AUTO_RESTORE_PRINT) console.log(`${status.stdout}\n\n${history.stdout}\n\n${oldHistory.stdout}`);

    // Safety: the old volume was never attached twice, and the unit never ran on two hosts at once.
    expect(doubleAttachments(world.ec2.sim.history, x.volumeId)).toEqual([]);
    const deaths = new Map(x.aHosts.map((h) => [h.instanceId, killedAt]));
    expect(overlaps(activeIntervals(readLedger(x.s.ledger), x.unit, deaths))).toEqual([]);
    expect(holder).not.toBe(x.bHost.instanceId);
    console.log(`auto-restore: unit active in ${OTHER_AZ} ${activeAfterMs} ms after the AZ was killed (afterMs ${AFTER_MS})`);
  }, 180_000);

  it('off (the default): stays blocked, the reason names failover restore --az, nothing is created', async () => {
    const x = await setup('ar-off');
    const c = startController(x.s, {});
    await c.ready();
    await loseAzA(x, c, { terminate: true });
    const hint = `restore it from a snapshot in another AZ with failover restore ${x.unit} --latest --az ${OTHER_AZ}`;
    await until(async () => (await x.s.journal(x.volumeId))?.blockedReason?.includes(hint) === true, 60_000, 'blocked with the failover restore hint');
    // Well past the bound an enabled controller would have used: still blocked, nothing created.
    await new Promise((r) => setTimeout(r, AFTER_MS + 3_000));
    const journal = await x.s.journal(x.volumeId);
    expect(journal?.step).toBe('blocked');
    expect(journal?.autoRestore).toBeUndefined();
    expect(restoredVolumes(x.volumeId)).toEqual([]);
    expect((await servicesNow(x.s)).map((r) => r.unit)).toEqual([x.unit]);
    const status = await runFailoverCli(['status'], cliEnv(x.s));
    expect(status.stdout).toContain(`blocked (no live host in ${AZ} can take ${x.unit}; ${AZ} has no live host at all: ${hint}`);
  }, 120_000);

  it('on, but the old volume is still attached to a running instance (detach stuck): nothing is created, status says why; once detached it restores', async () => {
    const x = await setup('ar-stuck');
    const c = startController(x.s, { autoRestore: { enabled: true, afterMs: AFTER_MS } });
    await c.ready();
    // Every DetachVolume fails: the volume stays attached to its holder, whose instance EC2 shows running
    // (the AZ cut off from etcd but alive keeps its units running: a restored copy would diverge).
    world.ec2.sim.injectFault({ kind: 'server-error', action: 'DetachVolume', count: 1_000_000 });
    const holder = await loseAzA(x, c, { terminate: false });
    await until(async () => (await x.s.journal(x.volumeId))?.autoRestore?.waiting?.includes(`still attached to ${holder}`) === true, 60_000, 'auto-restore waiting on the attached volume');
    const waiting = (await x.s.journal(x.volumeId))?.autoRestore;
    expect(waiting?.waiting).toBe(`${x.volumeId} still attached to ${holder} (attached; the instance is running in EC2), so the old copy may still run: decide by hand with failover restore ${x.unit} --latest --az <az>`);
    // Past the bound: still nothing created, the registration unchanged.
    await until(() => Date.now() > (waiting?.dueAt ?? 0) + 3_000, AFTER_MS + 10_000, 'past the auto-restore bound');
    expect(restoredVolumes(x.volumeId)).toEqual([]);
    expect(world.ec2.sim.requests.filter((r) => r.action === 'CreateVolume' && r.snapshotId === x.snapshotId)).toEqual([]);
    expect((await servicesNow(x.s)).map((r) => r.unit)).toEqual([x.unit]);
    const status = await runFailoverCli(['status'], cliEnv(x.s));
    expect(status.stdout).toMatch(new RegExp(`${x.unit} +auto-restore waiting: ${x.volumeId} still attached to ${holder} \\(attached; the instance is running in EC2\\)`));
    if (process.env.AUTO_RESTORE_PRINT) console.log(status.stdout);

    // EC2's word arrives (the detach goes through at last): the wait is lifted and the restore happens.
    world.ec2.sim.clearFaults();
    await until(async () => (await servicesNow(x.s)).some((r) => r.unit !== x.unit), 60_000, 'restored once the old volume is detached');
    const [restored] = restoredVolumes(x.volumeId);
    await x.s.waitRunning(`postgres@${restored?.volumeId ?? ''}`, (h) => h === x.bHost.instanceId, 60_000);
  }, 180_000);

  it('a leader killed right after its CreateVolume: the successor finds that volume by its tag and finishes, never a second volume', async () => {
    const x = await setup('ar-crash');
    const crashing = startController(x.s, { autoRestore: { enabled: true, afterMs: AFTER_MS }, crashAfterCreateVolume: true });
    await crashing.ready();
    // The crashing one leads (it placed the service); the standby campaigns behind it.
    await x.s.waitRunning(x.unit, (h) => x.aHosts.some((a) => a.instanceId === h));
    await until(() => crashing.lines.some((l) => l.includes('"persisted":"done"')), 30_000, 'initial placement done by the crashing controller');
    const standby = startController(x.s, { autoRestore: { enabled: true, afterMs: AFTER_MS } });
    await standby.ready();
    await loseAzA(x, crashing, { terminate: true });

    await crashing.wait();
    const crashLine = crashing.lines.find((l) => l.includes('"crashing":"after CreateVolume"'));
    expect(crashLine, crashing.lines.join('\n')).toBeDefined();
    const firstVolume = (JSON.parse(crashLine as string) as { volumeId: string }).volumeId;
    // The crash came before the id was recorded: the journal knows the restore but not its volume.
    expect(crashing.lines.some((l) => l.includes(firstVolume) && l.includes('"persisted"'))).toBe(false);

    const newUnit = `postgres@${firstVolume}`;
    await until(async () => (await servicesNow(x.s)).some((r) => r.unit === newUnit), 90_000, 'the successor swapped to the volume the dead leader created');
    await x.s.waitRunning(newUnit, (h) => h === x.bHost.instanceId, 60_000);
    expect(restoredVolumes(x.volumeId).map((v) => v.volumeId)).toEqual([firstVolume]);
    expect(world.ec2.sim.requests.filter((r) => r.action === 'CreateVolume' && r.snapshotId === x.snapshotId)).toHaveLength(1);
    expect(standby.lines.some((l) => l.includes('"persisted":"failed"'))).toBe(true);
    const journal = await x.s.journal(x.volumeId);
    expect(journal?.autoRestore?.restore?.newVolumeId).toBe(firstVolume);
    expect(journal?.history.some((h) => h.note?.includes(`replaced by ${newUnit}`))).toBe(true);
  }, 180_000);
});
