/**
 * Issue 9, finding 3: an etcd outage stops nothing and moves nothing; a host cut off ALONE still fails over.
 * Real processes: one etcd (restartable on its data dir), the EC2 endpoint, three agent processes in one
 * AZ (test/fixtures/controller-agent.ts, each reaching etcd through its own loopback forwarder), and a
 * controller process. Two services placed and running.
 *
 * (i)  etcd SIGSTOPped for 30 s, then SIGCONT;
 * (ii) etcd SIGKILLed, restarted 30 s later on the same data dir.
 *      For each: during the outage and for 60 s after, no unit stops and no mount goes down (ledger),
 *      no fence, and no EC2 attachment change (the simulator's history).
 * (iii) one holder's etcd traffic cut (its forwarder), the others untouched: it fences (its unit stops)
 *      and its service runs on another host, never on two at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentReport, decodeRecord } from '../../src/keyspace/index.js';
import {
  AZ, Scenario, activeIntervals, doubleAttachments, overlaps, readLedger, startWorld, until, type Host, type World,
} from '../fixtures/controller-harness.js';

/** The outage the issue describes. */
const OUTAGE_MS = 30_000;
/** How long after etcd is back nothing may change either (a controller elected meanwhile must not act). */
const AFTER_MS = 60_000;
/**
 * Agent lease: 4 s with a 1.2 s fence margin, so the peer check gets 550 ms (min(margin/2 − 50, 800)) for
 * its probes on a loaded 2-core machine, and the margin stays within a renewal period (TTL/3), which
 * lets a peer's renewal prove "etcd answers others" at the first question (see src/host/agent/peers.ts).
 */
const AGENT = { leaseTtlMs: 4_000, fenceMarginMs: 1_200 };
/** Generous: the machine is shared. */
const WAIT_MS = 90_000;

let world: World;
let s: Scenario;
/** Where each unit ran once everything had settled (before any outage). */
const holders = new Map<string, string>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Everything that must NOT have happened since `since`: unit stops, mounts down, fences, EC2 attachment changes. */
function changesSince(since: number): string[] {
  const units = new Set(s.services.map((x) => x.unit));
  const mounts = new Set(s.services.map((x) => x.mountUnit));
  const volumes = new Set(s.services.map((x) => x.volumeId));
  const out: string[] = [];
  for (const e of readLedger(s.ledger)) {
    if (e.at < since) continue;
    if (e.fence === true) out.push(`${new Date(e.at).toISOString()} ${e.instanceId} fenced`);
    if (e.unit !== undefined && units.has(e.unit) && e.active === false) out.push(`${new Date(e.at).toISOString()} ${e.instanceId} stopped ${e.unit}`);
    if (e.mountUnit !== undefined && mounts.has(e.mountUnit) && e.mounted === false) out.push(`${new Date(e.at).toISOString()} ${e.instanceId} unmounted ${e.mountUnit}`);
  }
  for (const h of world.ec2.sim.history) {
    if (h.at >= since && volumes.has(h.volumeId)) out.push(`${new Date(h.at).toISOString()} EC2 ${h.volumeId} ${h.state} on ${h.instanceId}${h.forced ? ' (forced)' : ''}`);
  }
  return out;
}

/** Watches for `ms`, failing as soon as anything changed since `since` (so a failure names the first change). */
async function expectQuiet(since: number, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const changes = changesSince(since);
    if (changes.length > 0) throw new Error(`${what}: ${changes.length} change(s):\n${changes.slice(0, 20).join('\n')}\n${s.dump(15)}`);
    await sleep(500);
  }
}

/**
 * The controller must ride out the outage: it steps down and campaigns again, it never exits (a process
 * that exits would only be restarted by systemd into the same outage). Its last error lines are shown
 * if it did exit.
 */
function expectControllerAlive(when: string): void {
  const dead = s.controllers.filter((c) => c.exited);
  expect(dead.map((c) => `${c.name} exited ${when}: ${c.stderr.split('\n').filter((l) => /Error/.test(l)).slice(-2).join(' | ')}`)).toEqual([]);
}

/** Each holder's report on its volume says `active` again (etcd is really back and the agents re-registered). */
async function reportsActive(): Promise<boolean> {
  for (const service of s.services) {
    const holder = holders.get(service.unit);
    if (holder === undefined) return false;
    const raw = await world.client.get(s.ks.status(holder, service.volumeId)).string().catch(() => null);
    if (decodeRecord(AgentReport, 'status', raw)?.phase !== 'active') return false;
  }
  return true;
}

async function outage(kind: 'SIGSTOP' | 'SIGKILL'): Promise<void> {
  await until(reportsActive, WAIT_MS, 'every holder reports active before the outage');
  expectControllerAlive('before the outage');
  const since = Date.now();
  world.etcd.kill(kind);
  try {
    await expectQuiet(since, OUTAGE_MS, `during the ${kind} outage`);
  } finally {
    // etcd comes back whatever happened: the next test (and the clean-up) need it.
    if (kind === 'SIGSTOP') world.etcd.kill('SIGCONT');
    else await world.etcd.restart({ wait: 'healthy' });
  }
  const backAt = Date.now();
  console.log(`${kind}: etcd back after ${backAt - since} ms`);
  expectControllerAlive(`during the ${kind} outage`);
  await expectQuiet(since, AFTER_MS, `${AFTER_MS} ms after the ${kind} outage`);
  await until(reportsActive, WAIT_MS, 'every holder reports active after the outage');
  for (const service of s.services) expect(s.runningOn(service.unit)).toEqual([holders.get(service.unit)]);
}

beforeAll(async () => {
  world = await startWorld();
  s = new Scenario(world, 'outage');
  await s.addServices(2);
  for (let i = 0; i < 3; i += 1) await s.addHost(AZ, { forwarded: true, agent: AGENT });
  await s.startController().ready();
  try {
    for (const service of s.services) {
      holders.set(service.unit, await s.waitRunning(service.unit, () => true, WAIT_MS));
      await until(async () => (await s.journal(service.volumeId))?.step === 'done', WAIT_MS, `first placement of ${service.unit} done`);
    }
  } catch (err) {
    console.log(s.dump());
    throw err;
  }
  console.log(`placed: ${[...holders].map(([u, h]) => `${u} on ${h}`).join(', ')}`);
}, 240_000);

afterAll(async () => {
  world?.etcd.kill('SIGCONT');
  await s?.stop();
  await world?.stop();
});

describe('etcd outage (real etcd, EC2 endpoint, 3 agent processes, a controller process)', () => {
  it('(i) etcd SIGSTOPped for 30 s: no unit stops, no mount goes down, no fence, no EC2 change, then and for 60 s after', async () => {
    await outage('SIGSTOP');
  }, 300_000);

  it('(ii) etcd SIGKILLed and restarted 30 s later on its data dir: nothing stops or moves, then and for 60 s after', async () => {
    await outage('SIGKILL');
  }, 300_000);

  it('(iii) a holder cut off from etcd alone fences itself and its service fails over, never on two hosts at once', async () => {
    await until(reportsActive, WAIT_MS, 'every holder reports active');
    expectControllerAlive('before the cut');
    const service = s.services[0];
    if (!service) throw new Error('no service');
    const victimId = s.runningOn(service.unit)[0];
    const victim: Host | undefined = s.hosts.find((h) => h.instanceId === victimId);
    if (!victim?.forwarder) throw new Error('the holder has no forwarder');
    const cutAt = Date.now();
    victim.forwarder.cut();

    await until(() => readLedger(s.ledger).some((e) => e.instanceId === victim.instanceId && e.fence === true && e.at >= cutAt), WAIT_MS, 'the cut-off holder fences');
    const stopped = readLedger(s.ledger).find((e) => e.instanceId === victim.instanceId && e.unit === service.unit && e.active === false && e.at >= cutAt);
    expect(stopped).toBeDefined();
    const next = await s.waitRunning(service.unit, (h) => h !== victim.instanceId, WAIT_MS).catch(async (err: unknown) => {
      console.log(`journal: ${JSON.stringify(await s.journal(service.volumeId))}\nhosts: ${JSON.stringify(Object.keys(await world.client.getAll().prefix(s.ks.hostsPrefix()).strings()))}\n${s.dump(60)}`);
      throw err;
    });
    console.log(`cut off alone: unit stopped +${(stopped?.at ?? NaN) - cutAt} ms, running on ${next} +${Date.now() - cutAt} ms`);
    expect(victim.proc.exited).toBe(false); // fenced, not dead

    const deaths = new Map<string, number>();
    for (const x of s.services) {
      expect(doubleAttachments(world.ec2.sim.history, x.volumeId)).toEqual([]);
      expect(overlaps(activeIntervals(readLedger(s.ledger), x.unit, deaths))).toEqual([]);
    }
  }, 300_000);
});
