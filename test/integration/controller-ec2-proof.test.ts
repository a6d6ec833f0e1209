/**
 * Issue 12: hosts EC2 proves dead skip the suspect grace and pacing; the rest stay paced. Real processes:
 * etcd, the EC2 endpoint over HTTP, 8 agent processes and one controller process (controller-harness).
 *
 * 7 of 10 hosts (≥ 50 % within one TTL: a suspect mass vanishing) hold 14 volumes and are SIGKILLed
 * together. The first few to vanish are plain deaths (fail over at once); the vanishing that crosses the
 * threshold makes the rest suspect: a grace (TTL + TTL/3), then 1 host (10 % of 10) per TTL.
 *
 * (a) EC2 shows the 7 instances stopping (stopped before their agents die, as a shutdown does): the
 *     controller logs the proof, and the suspect holders' failovers start in the tick that noticed them:
 *     no grace, all within one TTL of each other (impossible under the pacing).
 * (b) The same kill with EC2 showing them running, status checks ok (what an etcd artifact looks like):
 *     no proof; the suspect holders' failovers start no sooner than the grace after the suspect log,
 *     and at least one TTL apart.
 * Both: every volume ends active on a live host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostGraceMs } from '../../src/controller/hosts.js';
import { AZ, LEASE_TTL_MS, Scenario, startWorld, until, type Host, type World } from '../fixtures/controller-harness.js';

/**
 * 7 of 10 die: the vanishing turns suspect at the 5th (half of 10), so at least the last 3 to vanish are
 * suspect whatever order their leases expire in (the first 4 are plain deaths and fail over at once).
 */
const HOSTS = 10;
const DEAD = 7;
/** Two per dying host on average (placement balances by load); each holder's failover start is its first volume's. */
const VOLUMES = 14;
/** Generous: a shared 2-core machine. */
const WAIT_MS = 120_000;
const GRACE_MS = hostGraceMs(LEASE_TTL_MS);

let world: World;
beforeAll(async () => {
  world = await startWorld();
}, 60_000);
afterAll(async () => {
  await world.stop();
});

/** The time (controller clock, ms) of the controller's first log line containing `text`, or null. */
function logTime(stderr: string, text: string): number | null {
  for (const line of stderr.split('\n')) {
    if (!line.includes(text)) continue;
    try {
      return (JSON.parse(line) as { time: number }).time;
    } catch {
      // a partial line at the tail's cut
    }
  }
  return null;
}

interface Outcome {
  s: Scenario;
  /** When each dead holder's failover started (its journal's startedAt), by instance id. */
  started: Map<string, number>;
  suspectAt: number;
  /** The suspect log line (vanished, known, instance ids), for failure messages. */
  suspectLine: string;
  stderr: string;
}

async function killMost(name: string, ec2Shows: 'stopped' | 'running'): Promise<Outcome> {
  const s = new Scenario(world, name);
  try {
    await s.addServices(VOLUMES);
    const hosts: Host[] = [];
    for (let i = 0; i < HOSTS; i += 1) hosts.push(await s.addHost(AZ));
    const dead = hosts.slice(0, DEAD);
    const spares = hosts.slice(DEAD);
    // Spares not eligible while the volumes are placed, so each volume lands on a host that will die.
    world.ec2.sim.stopInstances(spares.map((h) => h.instanceId), true);
    // One term throughout (see the leadership check below): a 2 s election lease can lapse on a loaded
    // 2-core machine, and a successor never saw the dead hosts alive. 8 s keeps one leader; the hosts'
    // 2 s TTL, which this test is about, is unchanged.
    const ctl = s.startController({ electionTtlMs: 8_000 });
    await ctl.ready();
    const holders = new Map<string, string>();
    for (const svc of s.services) holders.set(svc.volumeId, await s.waitRunning(svc.unit, (h) => dead.some((d) => d.instanceId === h), WAIT_MS));
    expect(new Set(holders.values()).size, `volumes spread over the hosts that will die: ${JSON.stringify([...holders.values()])}`).toBeGreaterThanOrEqual(DEAD - 1);
    for (const h of spares) world.ec2.sim.startInstance(h.instanceId);
    // The controller's instance cache (5 s) sees the spares running again before anything dies.
    await new Promise((r) => setTimeout(r, 6_000));

    if (ec2Shows === 'stopped') world.ec2.sim.stopInstances(dead.map((h) => h.instanceId), true);
    for (const h of dead) h.proc.kill('SIGKILL');
    for (const svc of s.services) await s.waitRunning(svc.unit, (h) => !dead.some((d) => d.instanceId === h), WAIT_MS);

    // The unit runs; the controller closes the journal once the new holder's report is in.
    await until(async () => (await Promise.all(s.services.map((svc) => s.journal(svc.volumeId)))).every((j) => j?.step === 'done'), WAIT_MS, 'every failover journal done');
    const started = new Map<string, number>();
    for (const svc of s.services) {
      const j = await s.journal(svc.volumeId);
      expect(j?.step, `${svc.volumeId}'s failover done`).toBe('done');
      expect(j?.cause).toBe('holder-lost');
      const from = String(j?.fromInstanceId);
      started.set(from, Math.min(started.get(from) ?? Infinity, Number(j?.startedAt)));
    }
    const suspectAt = logTime(ctl.stderr, 'many hosts vanished at once');
    expect(suspectAt, `the controller logged the suspect vanishing:\n${s.dump()}`).not.toBeNull();
    const suspectLine = ctl.stderr.split('\n').find((l) => l.includes('many hosts vanished at once')) ?? '';
    // One term throughout: the timings below are one controller's (its suspect log, its admissions); on
    // a machine so loaded that even the 8 s election lease lapses, this test's premise does not hold.
    expect(ctl.stderr, 'the controller kept its leadership through the event').not.toContain('leadership lost');
    return { s, started, suspectAt: suspectAt as number, suspectLine, stderr: ctl.stderr };
  } finally {
    await s.stop();
  }
}

describe('EC2 proof of death vs the suspect pacing (real processes)', () => {
  it('7 of 10 hosts killed, EC2 shows them stopped: proven, their failovers start at once (no grace, no pacing)', async () => {
    const o = await killMost('proof-stopped', 'stopped');
    expect(o.stderr).toMatch(/EC2 proves \d+ lost host\(s\) dead/);
    expect(o.stderr).toContain('EC2 reports the instance stop');
    // Holders whose failover started in or after the tick that noticed the suspect vanishing (that
    // tick read its clock just before the log line); the first few to vanish were plain deaths.
    const late = [...o.started.values()].filter((t) => t >= o.suspectAt - 200).sort((a, b) => a - b);
    expect(late.length, `suspect holders (started ${JSON.stringify([...o.started.values()].map((t) => t - o.suspectAt))} ms from the suspect log: ${o.suspectLine})`).toBeGreaterThanOrEqual(2);
    // No grace: the first started before the suspect grace could have ended…
    expect((late[0] as number) - o.suspectAt).toBeLessThan(GRACE_MS);
    // …and no pacing: faster than 1 host per TTL (the pacing's budget here) could have admitted them.
    expect((late.at(-1) as number) - (late[0] as number)).toBeLessThan(LEASE_TTL_MS * (late.length - 1));
  }, 300_000);

  it('the same kill with EC2 showing them running (checks ok): no proof, the grace and the pacing hold', async () => {
    const o = await killMost('proof-running', 'running');
    expect(o.stderr).not.toContain('EC2 proves');
    const late = [...o.started.values()].filter((t) => t >= o.suspectAt).sort((a, b) => a - b);
    // At least one holder is held (how many depends on how etcd batched the lease expiries; a CI run
    // under heavy load once saw 6 of 7 start ≈ 0.5 s before the suspect was noticed: ticks decided on
    // the host view from before their EC2 look-ups, fixed since with chaos seed 70).
    expect(late.length, `suspect holders (started ${JSON.stringify([...o.started.values()].map((t) => t - o.suspectAt))} ms from the suspect log: ${o.suspectLine})`).toBeGreaterThanOrEqual(1);
    // The grace first (the log line is written just after the tick's clock read: a few ms of slack)…
    expect((late[0] as number) - o.suspectAt).toBeGreaterThanOrEqual(GRACE_MS - 50);
    // …then 1 host per TTL: consecutive admissions at least one TTL apart.
    for (let i = 1; i < late.length; i += 1) expect((late[i] as number) - (late[i - 1] as number)).toBeGreaterThan(LEASE_TTL_MS);
  }, 300_000);
});
