/**
 * Controller end to end: real etcd, the EC2 endpoint, agents and the controller as separate processes.
 * Safety is checked on every test: EC2's attachment history never shows a volume on two instances,
 * and the agents' ledger never shows a unit active on two hosts at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecord, type ManualRequest } from '../../src/keyspace/index.js';
import {
  AZ, OTHER_AZ, Scenario, activeIntervals, doubleAttachments, overlaps, readLedger, startWorld, until, type World,
} from '../fixtures/controller-harness.js';

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

/** Both safety properties for one unit; `deaths` closes the intervals of SIGKILLed hosts at their kill time. */
function expectSafe(s: Scenario, deaths: ReadonlyMap<string, number> = new Map()): void {
  for (const service of s.services) {
    expect(doubleAttachments(world.ec2.sim.history, service.volumeId)).toEqual([]);
    expect(overlaps(activeIntervals(readLedger(s.ledger), service.unit, deaths))).toEqual([]);
  }
}

/** The first placement (an auto failover from nowhere) has finished and the unit runs. */
async function placedAndRunning(s: Scenario): Promise<string> {
  const service = s.services[0];
  if (!service) throw new Error('no service');
  const holder = await s.waitRunning(service.unit, () => true);
  await until(async () => (await s.journal(service.volumeId))?.step === 'done', 30_000, 'initial placement done');
  return holder;
}

/**
 * One service on the hosts `addHosts` starts, a leading controller, and the service's first placement
 * done and running: the common start of every test here.
 */
async function runningScenario<T>(name: string, addHosts: (s: Scenario) => Promise<T>) {
  const s = (scenario = new Scenario(world, name));
  await s.addServices(1);
  const hosts = await addHosts(s);
  await s.startController().ready();
  const service = s.services[0] as (typeof s.services)[number];
  const first = await placedAndRunning(s);
  return { s, service, first, hosts };
}

describe('controller end to end', () => {
  it('SIGKILL of the holding agent: the unit runs on another host in the same AZ', async () => {
    const { s, service, first } = await runningScenario('kill', (s) => Promise.all([s.addHost(AZ), s.addHost(AZ), s.addHost(OTHER_AZ)]));

    const victim = s.hosts.find((h) => h.instanceId === first);
    victim?.proc.kill('SIGKILL');
    const killedAt = Date.now();
    const second = await s.waitRunning(service.unit, (h) => h !== first);
    const activeAt = Date.now();

    expect(s.hosts.find((h) => h.instanceId === second)?.az).toBe(AZ);
    await until(async () => (await s.journal(service.volumeId))?.step === 'done', 30_000, 'failover done');
    const journal = await s.journal(service.volumeId);
    expect(journal).toMatchObject({ kind: 'auto', step: 'done', fromInstanceId: first, toInstanceId: second });
    const at = (step: string): number => journal?.history.find((e) => e.step === step)?.at ?? NaN;
    const attached = world.ec2.sim.history.find((e) => e.volumeId === service.volumeId && e.instanceId === second && e.state === 'attached')?.at ?? NaN;
    const detached = world.ec2.sim.history.find((e) => e.volumeId === service.volumeId && e.instanceId === first && e.state === 'detached')?.at ?? NaN;
    console.log(
      `auto failover after SIGKILL (lease TTL 2 s): detected +${at('detected') - killedAt} ms, fenced +${at('detaching') - killedAt} ms, ` +
        `detached +${detached - killedAt} ms, attached +${attached - killedAt} ms, placement written +${at('starting') - killedAt} ms, ` +
        `unit active +${activeAt - killedAt} ms (ledger sampled every 20 ms)`,
    );
    expect(at('detected')).toBeGreaterThanOrEqual(killedAt);
    expectSafe(s, new Map([[first, killedAt]]));
  });

  it('no healthy host in the AZ: blocked with the reason, never cross-AZ; a host joining unblocks it', async () => {
    const { s, service, first } = await runningScenario('blocked', (s) => Promise.all([s.addHost(AZ), s.addHost(OTHER_AZ)]));
    expect(s.hosts.find((h) => h.instanceId === first)?.az).toBe(AZ);

    s.hosts.find((h) => h.instanceId === first)?.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await until(async () => (await s.journal(service.volumeId))?.step === 'blocked', 30_000, 'journal blocked');
    const blocked = await s.journal(service.volumeId);
    expect(blocked?.blockedReason).toContain(`no live host in ${AZ} can take ${service.unit}`);
    // Never attached across AZs: the volume stays detached while blocked.
    expect(world.ec2.sim.volume(service.volumeId)?.attachment ?? null).toBeNull();
    expect(world.ec2.sim.history.filter((e) => e.volumeId === service.volumeId && e.state === 'attaching').map((e) => e.instanceId)).toEqual([first]);

    const joined = await s.addHost(AZ, { index: 9 });
    const holder = await s.waitRunning(service.unit, (h) => h === joined.instanceId);
    expect(holder).toBe(joined.instanceId);
    await until(async () => (await s.journal(service.volumeId))?.step === 'done', 30_000, 'failover done');
    expect(await s.journal(service.volumeId)).toMatchObject({ step: 'done', toInstanceId: joined.instanceId });
    expectSafe(s, new Map([[first, killedAt]]));
  });

  it('a host cut off from etcd but alive fences itself before the volume is attached elsewhere', async () => {
    const { s, service, first, hosts: cutHost } = await runningScenario('partition', async (s) => {
      // The forwarded host gets the lowest instance id, so the controller places the volume there first.
      const forwarded = await s.addHost(AZ, { forwarded: true, index: 1 });
      await s.addHost(AZ, { index: 2 });
      return forwarded;
    });
    expect(first).toBe(cutHost.instanceId);

    cutHost.forwarder?.cut();
    const cutAt = Date.now();
    const second = await s.waitRunning(service.unit, (h) => h !== first);
    const ledger = readLedger(s.ledger);
    const stoppedAt = ledger.find((e) => e.instanceId === first && e.unit === service.unit && e.active === false)?.at ?? Infinity;
    const fence = ledger.find((e) => e.instanceId === first && e.fence === true);
    const attachedElsewhere = world.ec2.sim.history.find((e) => e.volumeId === service.volumeId && e.instanceId === second && e.state === 'attaching')?.at ?? -Infinity;
    console.log(`partition: self-fence stopped the unit at +${stoppedAt - cutAt} ms, attach elsewhere began at +${attachedElsewhere - cutAt} ms`);
    expect(fence).toBeDefined();
    expect(stoppedAt).toBeLessThan(attachedElsewhere);
    // The cut-off agent is still alive: it was fenced, not killed.
    expect(cutHost.proc.exited).toBe(false);
    expectSafe(s);
  });

  it('manual failover: graceful, with no forced detach', async () => {
    const { s, service, first } = await runningScenario('manual', (s) => Promise.all([s.addHost(AZ), s.addHost(AZ)]));
    const target = s.hosts.find((h) => h.instanceId !== first)?.instanceId as string;

    const request: ManualRequest = { requestId: 'req-manual', unit: service.unit, volumeId: service.volumeId, toInstanceId: target, force: false, requestedAt: Date.now(), refusedReason: null };
    const historyBefore = world.ec2.sim.history.length;
    await world.client.put(s.ks.request(service.volumeId)).value(encodeRecord(request));
    await s.waitRunning(service.unit, (h) => h === target);
    await until(async () => (await s.journal(service.volumeId))?.step === 'done', 30_000, 'manual journal done');
    const journal = await s.journal(service.volumeId);
    expect(journal).toMatchObject({ kind: 'manual', step: 'done', requestId: 'req-manual', fromInstanceId: first, toInstanceId: target });
    expect(journal?.history.map((e) => e.step)).toEqual(['detected', 'releasing', 'detaching', 'attaching', 'starting', 'done']);
    const moves = world.ec2.sim.history.slice(historyBefore).filter((e) => e.volumeId === service.volumeId);
    expect(moves.filter((e) => e.forced === true)).toEqual([]);
    expect(moves.some((e) => e.instanceId === first && e.state === 'detached')).toBe(true);
    expect(await world.client.get(s.ks.request(service.volumeId)).string()).toBeNull();
    expectSafe(s);
  });

  it('manual failover refused: a clear reason, nothing else changes', async () => {
    const { s, service, first } = await runningScenario('refused', (s) => Promise.all([s.addHost(AZ), s.addHost(OTHER_AZ)]));
    const crossAz = s.hosts.find((h) => h.az === OTHER_AZ)?.instanceId as string;
    const placementBefore = await s.placement(service.volumeId);
    const journalBefore = await s.journal(service.volumeId);
    const historyBefore = world.ec2.sim.history.length;

    for (const [requestId, toInstanceId, reason] of [
      ['req-az', crossAz, `target ${crossAz} in ${OTHER_AZ}, not the volume's ${AZ}`],
      ['req-self', first, `${service.unit} already runs on ${first}`],
    ] as const) {
      const request: ManualRequest = { requestId, unit: service.unit, volumeId: service.volumeId, toInstanceId, force: false, requestedAt: Date.now(), refusedReason: null };
      await world.client.put(s.ks.request(service.volumeId)).value(encodeRecord(request));
      let refused: ManualRequest | undefined;
      await until(async () => {
        const raw = await world.client.get(s.ks.request(service.volumeId)).string();
        refused = raw === null ? undefined : (JSON.parse(raw) as ManualRequest);
        return typeof refused?.refusedReason === 'string';
      }, 30_000, `request ${requestId} refused`);
      expect(refused?.refusedReason).toBe(reason);
      await world.client.delete().key(s.ks.request(service.volumeId));
    }
    expect(await s.placement(service.volumeId)).toEqual(placementBefore);
    expect(await s.journal(service.volumeId)).toEqual(journalBefore);
    expect(world.ec2.sim.history.slice(historyBefore).filter((e) => e.volumeId === service.volumeId)).toEqual([]);
    expect(s.runningOn(service.unit)).toEqual([first]);
  });
});
