/**
 * Issue 9, finding 5: a manual request must not outlive the command that made it. The real `failover`
 * CLI as a child process, real etcd, the EC2 endpoint, agents and controllers as separate processes
 * (test/fixtures/controller-harness.ts). A service is placed and running on one host, then the
 * controller stops, and with no controller leading:
 *   (a) `failover <unit> --timeout 8` times out, exits 1 and withdraws its request;
 *   SIGINT or SIGTERM while waiting withdraws it too;
 *   (c) `failover status` lists a pending request, and `failover cancel` withdraws it;
 *   (b) a CLI SIGKILLed (it cannot clean up) leaves its request behind; a controller started after
 *       the request's deadline drops it and does NOT move the service.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecord, ManualRequest, type ServiceRecord } from '../../src/keyspace/index.js';
import { AZ, Scenario, startWorld, until, type World } from '../fixtures/controller-harness.js';
import { runFailoverCli, startFailoverCli, type CliResult, type RunningCli } from '../fixtures/cli-harness.js';

let world: World;
let s: Scenario;
let service: ServiceRecord;
/** The host the service runs on, and the other host in its AZ (the target of every request here). */
let holder: string;
let other: string;
let generation: number;
const clis: RunningCli[] = [];

beforeAll(async () => {
  world = await startWorld();
  s = new Scenario(world, 'cli-requests');
  await s.addServices(1);
  service = s.services[0] as ServiceRecord;
  await Promise.all([s.addHost(AZ), s.addHost(AZ)]);
  const controller = s.startController();
  try {
    await controller.ready();
    holder = await s.waitRunning(service.unit, () => true);
    await until(async () => (await s.journal(service.volumeId))?.step === 'done', 60_000, 'initial placement done');
  } catch (err) {
    console.log(s.dump());
    throw err;
  }
  other = s.hosts.map((h) => h.instanceId).find((h) => h !== holder) as string;
  generation = (await s.placement(service.volumeId))?.generation ?? -1;
  // From here on no controller leads (SIGTERM: it resigns), until test (b) starts one.
  await controller.stop();
}, 180_000);

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') console.log(s.dump());
  // A request a failed test left behind must not leak into the next test (it would block or move it).
  await world.client.delete().key(s.ks.request(service.volumeId));
});

afterAll(async () => {
  for (const c of clis) c.signal('SIGKILL');
  await s?.stop();
  await world?.stop();
});

function env(): Record<string, string> {
  return { EBS_FAILOVER_ETCD_ENDPOINTS: world.etcd.endpoint, EBS_FAILOVER_PREFIX: s.ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: world.ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' };
}

const cli = (args: string[]): Promise<CliResult> => runFailoverCli(args, env(), 90_000);

function startCli(args: string[]): RunningCli {
  const child = startFailoverCli(args, { ...env(), LOG_LEVEL: 'warn' });
  clis.push(child);
  return child;
}

async function pendingRequest(): Promise<ManualRequest | undefined> {
  return decodeRecord(ManualRequest, 'request', await world.client.get(s.ks.request(service.volumeId)).string());
}

async function waitForRequest(child: RunningCli): Promise<ManualRequest> {
  let request: ManualRequest | undefined;
  let exited = false;
  void child.exited.then(() => (exited = true));
  await until(async () => (request = await pendingRequest()) !== undefined || exited, 60_000, 'the CLI to write its request');
  if (!request) throw new Error(`the CLI exited without writing a request: ${JSON.stringify(child.output())}`);
  return request;
}

/** The service has not moved: same holder and generation, running there only, no EC2 change for its volume. */
async function expectNotMoved(ec2HistoryBefore: number): Promise<void> {
  const placement = await s.placement(service.volumeId);
  expect(placement?.instanceId).toBe(holder);
  expect(placement?.generation).toBe(generation);
  expect(s.runningOn(service.unit)).toEqual([holder]);
  expect(world.ec2.sim.history.slice(ec2HistoryBefore).filter((e) => e.volumeId === service.volumeId)).toEqual([]);
}

describe('a manual request never outlives its command (no controller leading)', () => {
  it('(a) --timeout 8 with no controller: exit 1 with the timeout message, and the request is gone', async () => {
    const before = world.ec2.sim.history.length;
    const result = await cli([service.unit, '--to', other, '--timeout', '8']);
    expect(result.code, result.stderr).toBe(1);
    expect(await pendingRequest()).toBeUndefined();
    expect(result.stderr).toContain(`failed: timed out after 8s waiting for ${service.unit}; the controller had not started it: request withdrawn, nothing changed`);
    await expectNotMoved(before);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('%s while waiting withdraws the request that has not started, in one line, exit 1', async (signal) => {
    const child = startCli([service.unit, '--to', other, '--timeout', '120']);
    await waitForRequest(child);
    child.signal(signal);
    const exit = await child.exited;
    const { stderr } = child.output();
    expect(exit.code, stderr).toBe(1);
    expect(stderr).toContain(`failed: interrupted (${signal}) while waiting for ${service.unit}; the controller had not started it: request withdrawn, nothing changed`);
    expect(await pendingRequest()).toBeUndefined();
  });

  it('(c) status lists the pending request; failover cancel withdraws it (exit 0), a second cancel finds none (exit 1)', async () => {
    const child = startCli([service.unit, '--to', other, '--timeout', '120']);
    const request = await waitForRequest(child);
    expect(request.deadline).toBe(request.requestedAt + 120_000);

    const table = await cli(['status']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${request.requestId}\\s+${service.unit}\\s+${other}\\s+\\d+s\\s+in \\d+m\\d\\ds\\s+pending \\(not started\\)`));
    const json = JSON.parse((await cli(['status', '--json'])).stdout) as { requests: unknown[] };
    expect(json.requests).toEqual([
      { unit: service.unit, volumeId: service.volumeId, requestId: request.requestId, target: other, force: false, ageMs: expect.any(Number), deadline: request.deadline, state: 'pending', refusedReason: null },
    ]);

    const cancel = await cli(['cancel', service.unit]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toContain(`withdrawn: request ${request.requestId} to move ${service.unit} → ${other}; nothing changed`);
    expect(await pendingRequest()).toBeUndefined();
    // The waiting CLI sees its request gone and stops at once, long before its 120 s.
    const exit = await child.exited;
    expect(exit.code).toBe(1);
    expect(child.output().stderr).toContain(`the request for ${service.unit} was withdrawn (failover cancel) or dropped by the controller before it started; nothing changed`);

    const again = await cli(['cancel', service.unit]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`refused: no pending request for ${service.unit} (nothing to withdraw)`);
    expect((await cli(['status'])).stdout).toContain('no pending requests');
  });

  it('(b) a SIGKILLed CLI leaves its request; a controller started after the deadline drops it and does not move the service', async () => {
    const before = world.ec2.sim.history.length;
    const journalBefore = await s.journal(service.volumeId);
    const child = startCli([service.unit, '--to', other, '--timeout', '3']);
    const request = await waitForRequest(child);
    child.signal('SIGKILL');
    await child.exited;
    // Killed: it could not withdraw anything.
    expect((await pendingRequest())?.requestId).toBe(request.requestId);
    // The code before the fix wrote no deadline: the CLI's 3 s are the deadline it should have written.
    const deadline = request.deadline ?? request.requestedAt + 3_000;
    await until(() => Date.now() > deadline + 1_000, 30_000, 'the request deadline to pass');

    const controller = s.startController();
    await controller.ready();
    await until(async () => (await pendingRequest()) === undefined, 60_000, 'the controller to take or drop the request');
    const journal = await s.journal(service.volumeId);
    expect(journal?.requestId ?? null).not.toBe(request.requestId);
    // The controller swaps request for journal in one txn when it starts one: the journal is the old one.
    expect(journal?.history).toEqual(journalBefore?.history);
    await expectNotMoved(before);
  });
});
