import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/logger.js';
import { FailoverLoop } from './loop.js';
import { MemoryLocks, MemoryStore } from './memory.js';
import { ControllerMetrics } from './metrics.js';
import { DEFAULT_DECIDE_CONFIG } from './observed.js';
import { FakeEc2 } from '../testing/fake-ec2-port.js';
import { AZ, host, placement, report, service } from '../testing/controller-builders.js';
import type { InstanceInfo, InstanceStatusInfo } from '../ec2/types.js';

const vol = (n: number): string => `vol-${n.toString(16).padStart(17, '0')}`;
const inst = (n: number): string => `i-${n.toString(16).padStart(17, '0')}`;
/** Lease TTL of the hosts: long, so that the pacing (1 host per TTL with 8 hosts) visibly holds the unproven. */
const TTL = 60_000;

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** FakeEc2 with DescribeInstanceStatus, recording which ids each describe asked for. */
class ProofEc2 extends FakeEc2 {
  readonly asked: { action: string; ids: string[] }[] = [];
  readonly impaired = new Set<string>();
  override async describeInstances(ids: string[]): Promise<InstanceInfo[]> {
    this.asked.push({ action: 'DescribeInstances', ids: [...ids] });
    return super.describeInstances(ids);
  }
  async describeInstanceStatus(ids: string[]): Promise<InstanceStatusInfo[]> {
    this.asked.push({ action: 'DescribeInstanceStatus', ids: [...ids] });
    return ids.map((instanceId) => ({ instanceId, state: this.instances.get(instanceId)?.state ?? 'running', systemStatus: this.impaired.has(instanceId) ? 'impaired' : 'ok', instanceStatus: 'ok' }));
  }
}

describe('FailoverLoop: EC2 proof of death (in-memory store, fake EC2)', () => {
  const stops: (() => void)[] = [];
  afterEach(() => stops.splice(0).forEach((s) => s()));

  /** 8 hosts, one volume each (volume n on host n), all active; no election grace. */
  function setup() {
    const store = new MemoryStore();
    const ec2 = new ProofEc2();
    for (let h = 1; h <= 8; h += 1) {
      store.putHost(host(inst(h), { leaseTtlMs: TTL }));
      ec2.addInstance(inst(h), AZ);
      const s = service({ unit: `postgres@${vol(h)}`, volumeId: vol(h), conflictGroup: undefined });
      store.services.set(s.unit, s);
      ec2.addVolume(vol(h), AZ, inst(h));
      store.placements.set(vol(h), { ...placement(inst(h), 1), volumeId: vol(h), unit: s.unit });
      store.putReport({ ...report(inst(h), 'active', 1), volumeId: vol(h), unit: s.unit });
    }
    const controller = new AbortController();
    // A grace of 0 after the election: only the suspect pacing holds failovers back here.
    const loop = new FailoverLoop({
      store, ec2, locks: new MemoryLocks(), metrics: new ControllerMetrics(), parallelism: 8, log: silentLogger(), now: Date.now, signal: controller.signal,
      config: { ...DEFAULT_DECIDE_CONFIG, pollMs: 20 }, hostGraceMs: 0,
    });
    const running = loop.run();
    stops.push(() => controller.abort());
    return { store, ec2, running, controller };
  }
  /** Describes since `from` (an index into `asked`) that named any of `ids` (before a death, the normal refresh of live hosts names them). */
  const askedAbout = (ec2: ProofEc2, from: number, ids: string[]): ProofEc2['asked'] => ec2.asked.slice(from).filter((a) => a.ids.some((id) => ids.includes(id)));

  it('one host dies (nothing held back): it fails over, and EC2 is never asked about it', async () => {
    const { store, ec2, controller, running } = setup();
    await until(() => ec2.asked.length > 0);
    const from = ec2.asked.length;
    store.removeHost(inst(1));
    await until(() => store.journals.get(vol(1)) !== undefined);
    // A few more ticks while its failover runs: still never asked about.
    await new Promise((r) => setTimeout(r, 300));
    expect(askedAbout(ec2, from, [inst(1)])).toEqual([]);
    controller.abort();
    await running;
  });

  it('5 of 8 vanish at once (suspect): the stopped and the impaired start at once, the rest wait their paced turn', async () => {
    const { store, ec2, controller, running } = setup();
    (ec2.instances.get(inst(2)) as InstanceInfo).state = 'stopped';
    ec2.impaired.add(inst(3));
    const dead = [1, 2, 3, 4, 5];
    await until(() => ec2.asked.length > 0);
    const from = ec2.asked.length;
    for (const h of dead) store.removeHost(inst(h));
    // Proven: 2 (stopped) and 3 (impaired) start although the pacing admits 1 host per TTL (60 s).
    await until(() => [vol(2), vol(3)].every((v) => store.journals.get(v) !== undefined));
    const started = dead.filter((h) => store.journals.has(vol(h)));
    // The pacing's one turn per TTL may have gone to one unproven host: never more.
    expect(started.filter((h) => h !== 2 && h !== 3).length).toBeLessThanOrEqual(1);
    // Every look asked about dead hosts only, at most 100, with one status call for the running ones.
    const looks = askedAbout(ec2, from, dead.map(inst));
    expect(looks.length).toBeGreaterThan(0);
    for (const a of looks) expect(a.ids.every((id) => dead.map(inst).includes(id))).toBe(true);
    const status = looks.filter((a) => a.action === 'DescribeInstanceStatus');
    expect(status.length).toBeGreaterThan(0);
    for (const a of status) expect(a.ids).not.toContain(inst(2)); // stopped: proven by its state alone
    controller.abort();
    await running;
  });
});
