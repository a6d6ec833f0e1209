/**
 * The controller killed at every step of a failover: each test runs a controller that SIGKILLs itself
 * right after persisting step X (the fixture's `crashAtStep`, via `onPersisted`) and a standby that
 * must win the election and finish the failover from the journal and EC2's real state.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord, type FailoverStep, type ManualRequest } from '../../src/keyspace/index.js';
import { AZ, Scenario, activeIntervals, doubleAttachments, overlaps, readLedger, startWorld, until, type World } from '../fixtures/controller-harness.js';

let world: World;
let scenario: Scenario | undefined;

beforeAll(async () => {
  world = await startWorld();
});
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && scenario) console.log(scenario.dump());
  await scenario?.stop();
  scenario = undefined;
});
afterAll(async () => {
  await world?.stop();
});

/**
 * Places the volume (first controller, which then resigns), starts the crashing controller and a
 * standby, and triggers a failover with `trigger`; returns once the standby has finished it.
 */
async function crashAt(name: string, step: FailoverStep, trigger: (s: Scenario, holder: string) => Promise<number>): Promise<void> {
  const s = (scenario = new Scenario(world, name));
  await s.addServices(1);
  await Promise.all([s.addHost(AZ), s.addHost(AZ)]);
  const service = s.services[0] as (typeof s.services)[number];
  const placer = s.startController();
  await placer.ready();
  const first = await s.waitRunning(service.unit, () => true);
  await until(async () => (await s.journal(service.volumeId))?.step === 'done', 30_000, 'initial placement done');
  await placer.stop();

  const crashing = s.startController({ crashAtStep: step });
  await crashing.ready();
  // The crashing one must lead: start the standby only once it has taken over the placement's volume watch.
  await new Promise((r) => setTimeout(r, 500));
  const standby = s.startController();
  await standby.ready();
  const deaths = new Map<string, number>();
  const killedAt = await trigger(s, first);
  if (killedAt > 0) deaths.set(first, killedAt);

  await crashing.wait();
  expect(crashing.lines.some((l) => l.includes(`"persisted":"${step}"`))).toBe(true);
  await until(async () => (await s.journal(service.volumeId))?.step === 'done', 60_000, `failover finished by the standby after a crash at ${step}`);
  const journal = await s.journal(service.volumeId);
  const target = journal?.toInstanceId as string;
  expect(target).not.toBe(first);
  await s.waitRunning(service.unit, (h) => h === target);
  // The standby wrote `done` (its stdout line may trail the etcd write by a moment).
  await until(() => standby.lines.some((l) => l.includes('"persisted":"done"')), 10_000, 'standby persisted done');
  expect(doubleAttachments(world.ec2.sim.history, service.volumeId)).toEqual([]);
  expect(overlaps(activeIntervals(readLedger(s.ledger), service.unit, deaths))).toEqual([]);
  // The standby waits out the quiet period for the volume only when the crashed term had journalled an EC2
  // call for it (its detach, from `attaching` on); a crash before any call leaves nothing in flight.
  const inFlight = step === 'attaching' || step === 'starting';
  const warned = standby.stderr.includes("a previous term's EC2 call may still be in flight: no mutation of this volume");
  expect(warned, `the standby ${inFlight ? 'waits' : 'does not wait'} the quiet period for ${service.volumeId}`).toBe(inFlight);
}

/** Auto failover: SIGKILL the holder's agent. */
const killHolder = async (s: Scenario, holder: string): Promise<number> => {
  s.hosts.find((h) => h.instanceId === holder)?.proc.kill('SIGKILL');
  return Date.now();
};

/** Manual failover to the other host. */
const requestMove = async (s: Scenario, holder: string): Promise<number> => {
  const service = s.services[0] as (typeof s.services)[number];
  const target = s.hosts.find((h) => h.instanceId !== holder)?.instanceId ?? null;
  const request: ManualRequest = { requestId: `req-${s.name}`, unit: service.unit, volumeId: service.volumeId, toInstanceId: target, force: false, requestedAt: Date.now(), refusedReason: null };
  await s.world.client.put(s.ks.request(service.volumeId)).value(encodeRecord(request));
  return 0;
};

describe('controller killed at every step of a failover: a new leader finishes it', () => {
  it.each<FailoverStep>(['detected', 'fencing', 'detaching', 'attaching', 'starting'])('auto failover, crash after persisting %s', async (step) => {
    await crashAt(`crash-${step}`, step, killHolder);
  });

  it('manual failover, crash after persisting releasing', async () => {
    await crashAt('crash-releasing', 'releasing', requestMove);
  });
});
