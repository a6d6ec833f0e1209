import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../log/logger.js';
import { FailoverLoop } from './loop.js';
import { MemoryLocks, MemoryStore } from './memory.js';
import { ControllerMetrics } from './metrics.js';
import { DEFAULT_DECIDE_CONFIG } from './observed.js';
import { FakeEc2 } from '../testing/fake-ec2-port.js';
import { instN, placedWorld, report, volN } from '../testing/controller-builders.js';

const vol = volN;
const inst = instN;

/** Pretend agents: a host reports `active` once its placement's volume is attached, `released` when moved away. */
function fakeAgents(store: MemoryStore, ec2: FakeEc2): () => void {
  const timer = setInterval(() => {
    for (const p of store.placements.values()) {
      for (const h of store.hosts.keys()) {
        const mine = p.instanceId === h;
        const current = store.reports.get(`${h}/${p.volumeId}`);
        const attached = ec2.volumes.get(p.volumeId)?.attachments.some((a) => a.instanceId === h && a.state === 'attached');
        if (mine && attached && current?.generation !== p.generation) {
          ec2.inUse.add(p.volumeId);
          store.putReport({ ...report(h, 'active', p.generation), volumeId: p.volumeId, unit: p.unit });
        } else if (!mine && current && current.phase === 'active') {
          ec2.inUse.delete(p.volumeId);
          store.putReport({ ...report(h, 'released', p.generation), volumeId: p.volumeId, unit: p.unit });
        }
      }
    }
  }, 10);
  return () => clearInterval(timer);
}

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('FailoverLoop against in-memory fakes', () => {
  const stops: (() => void)[] = [];
  afterEach(() => stops.splice(0).forEach((s) => s()));

  function setup(volumes: number, hosts: number, opts: { leaseTtlMs?: number; hostGraceMs?: number; run?: boolean } = {}) {
    const { store, ec2 } = placedWorld(hosts, volumes, opts.leaseTtlMs === undefined ? {} : { leaseTtlMs: opts.leaseTtlMs });
    const locks = new MemoryLocks();
    const controller = new AbortController();
    const metrics = new ControllerMetrics();
    const loop = new FailoverLoop({
      store, ec2, locks, metrics, parallelism: 8, log: process.env.H5DEBUG ? createLogger("t", "debug") : silentLogger(), now: Date.now, signal: controller.signal,
      config: { ...DEFAULT_DECIDE_CONFIG, pollMs: 20 }, hostGraceMs: opts.hostGraceMs ?? 0,
    });
    // Before run(): its first look (which starts the election grace) happens synchronously inside it.
    const startedAt = Date.now();
    // run: false leaves the ticks to the test (loop.tick()); run() after abort() then drains the actions.
    const running = opts.run === false ? Promise.resolve() : loop.run();
    stops.push(fakeAgents(store, ec2), () => controller.abort());
    return { store, ec2, locks, metrics, running, controller, loop, startedAt };
  }

  it('fails the volumes of a dead host over to live hosts, each attached once, locks released', async () => {
    const { store, ec2, locks, metrics, controller, running } = setup(6, 3);
    store.removeHost(inst(1)); // holds vol 1 and 4
    await until(() => [vol(1), vol(4)].every((v) => store.journals.get(v)?.step === 'done'));
    for (const v of [vol(1), vol(4)]) {
      const p = store.placements.get(v);
      expect(p?.instanceId).not.toBe(inst(1));
      expect(p?.generation).toBe(3); // 1 → nobody (2) → target (3)
      expect(ec2.calls.filter((c) => c.startsWith(`AttachVolume ${v}`))).toHaveLength(1);
      expect(ec2.calls).toContain(`DetachVolume ${v} ${inst(1)} force`); // busy: the dead host never unmounted
      const log = store.journalLog.filter((j) => j.volumeId === v);
      // Each EC2 mutation's intent is written (same step) before the call: drop those repeats to read the steps.
      expect(log.map((j) => j.step).filter((step, i, all) => step !== all[i - 1])).toEqual(['detected', 'fencing', 'detaching', 'attaching', 'starting', 'done']);
      expect(log.find((j) => j.step === 'detaching' && j.intent !== null)?.intent).toMatchObject({ action: 'detach', instanceId: inst(1), force: true });
      expect(log.find((j) => j.step === 'attaching' && j.intent?.action === 'attach')?.intent?.instanceId).toBe(p?.instanceId);
    }
    expect(locks.holders.size).toBe(0);
    expect(metrics.render()).toContain('ebs_failover_failovers_total{kind="auto",outcome="done"} 2');
    controller.abort();
    await running;
  });

  it('manual request: graceful (no force), the old agent releases first', async () => {
    const { store, ec2, controller, running } = setup(1, 2);
    store.requests.set(vol(1), { requestId: 'r1', unit: `postgres@${vol(1)}`, volumeId: vol(1), toInstanceId: inst(2), force: false, requestedAt: 0, refusedReason: null });
    store.changed();
    await until(() => store.journals.get(vol(1))?.step === 'done');
    expect(store.placements.get(vol(1))).toMatchObject({ instanceId: inst(2), generation: 3 });
    expect(ec2.calls.filter((c) => c.includes('force'))).toEqual([]);
    expect(store.requests.has(vol(1))).toBe(false);
    controller.abort();
    await running;
  });

  it('a refused request changes nothing but the request', async () => {
    const { store, ec2, controller, running } = setup(1, 2);
    const before = structuredClone(store.placements.get(vol(1)));
    store.requests.set(vol(1), { requestId: 'r1', unit: `postgres@${vol(1)}`, volumeId: vol(1), toInstanceId: inst(9), force: false, requestedAt: 0, refusedReason: null });
    store.changed();
    await until(() => store.requests.get(vol(1))?.refusedReason !== null);
    expect(store.requests.get(vol(1))?.refusedReason).toBe(`target ${inst(9)} is not live (no agent lease in etcd)`);
    expect(store.placements.get(vol(1))).toEqual(before);
    expect(store.journals.size).toBe(0);
    expect(ec2.calls.filter((c) => !c.startsWith('Describe'))).toEqual([]);
    controller.abort();
    await running;
  });

  it('device name in use on the target (InvalidDevice.InUse): attaches under another name', async () => {
    const { store, ec2, controller, running } = setup(1, 2);
    ec2.failures.push({ prefix: `AttachVolume ${vol(1)} ${inst(2)} /dev/xvdf`, error: Object.assign(new Error('device in use'), { name: 'DeviceInUseError', code: 'InvalidDevice.InUse' }) });
    store.removeHost(inst(1));
    await until(() => store.journals.get(vol(1))?.step === 'done');
    expect(ec2.calls.filter((c) => c.startsWith(`AttachVolume ${vol(1)}`))).toEqual([`AttachVolume ${vol(1)} ${inst(2)} /dev/xvdf`, `AttachVolume ${vol(1)} ${inst(2)} /dev/xvdg`]);
    expect(store.placements.get(vol(1))).toMatchObject({ instanceId: inst(2), device: '/dev/xvdg' });
    controller.abort();
    await running;
  });

  it('throttled EC2 calls are looked at again (no failed failover, the call is reissued)', async () => {
    const { store, ec2, metrics, controller, running } = setup(1, 2);
    const throttled = (): Error => Object.assign(new Error('slow down'), { name: 'RequestLimitExceededError', code: 'RequestLimitExceeded' });
    ec2.failures.push({ prefix: `DetachVolume ${vol(1)}`, error: throttled() }, { prefix: `AttachVolume ${vol(1)}`, error: throttled() });
    store.removeHost(inst(1));
    await until(() => store.journals.get(vol(1))?.step === 'done');
    expect(ec2.calls.filter((c) => c.startsWith(`DetachVolume ${vol(1)}`))).toHaveLength(2);
    expect(ec2.calls.filter((c) => c.startsWith(`AttachVolume ${vol(1)}`))).toHaveLength(2);
    expect(metrics.render()).toContain('ebs_failover_failovers_total{kind="auto",outcome="done"} 1');
    controller.abort();
    await running;
  });

  it('grants hosts a grace when elected and after an etcd reconnect: no holder is called dead before it ends', async () => {
    const { store, controller, running, startedAt } = setup(2, 3, { hostGraceMs: 600 });
    store.removeHost(inst(1)); // holds vol 1, at once after the election
    await until(() => store.journals.get(vol(1))?.step === 'done');
    expect(store.journals.get(vol(1))?.startedAt).toBeGreaterThanOrEqual(startedAt + 600);

    await new Promise((r) => setTimeout(r, 700)); // the election grace is over
    const reconnectedAt = Date.now();
    store.reconnected();
    store.removeHost(inst(2)); // holds vol 2, right after the reconnect
    await until(() => store.journals.get(vol(2))?.step === 'done');
    expect(store.journals.get(vol(2))?.startedAt).toBeGreaterThanOrEqual(reconnectedAt + 600);
    controller.abort();
    await running;
  });

  it('many holders vanishing at once: failovers paced by host (at most one host per TTL here), all done in the end', async () => {
    const ttl = 300;
    const { store, metrics, controller, running } = setup(8, 8, { leaseTtlMs: ttl, hostGraceMs: 0 });
    await new Promise((r) => setTimeout(r, 100)); // the loop has seen all eight hosts
    for (let h = 1; h <= 5; h += 1) store.removeHost(inst(h));
    const lost = [1, 2, 3, 4, 5].map(vol);
    await until(() => lost.every((v) => store.journals.get(v)?.step === 'done'), 20_000);
    const starts = lost.map((v) => store.journals.get(v)?.startedAt ?? NaN).sort((a, b) => a - b);
    for (let i = 1; i < starts.length; i += 1) expect((starts[i] ?? 0) - (starts[i - 1] ?? 0)).toBeGreaterThanOrEqual(ttl);
    for (const v of lost) expect(store.placements.get(v)?.instanceId).toMatch(/^i-0+[678]$/);
    expect(metrics.render()).toContain('ebs_failover_suspect_vanishings_total 1');
    controller.abort();
    await running;
  });

  it('many holders vanishing at once and coming back within the grace: nothing moves', async () => {
    const ttl = 300;
    const { store, ec2, controller, running } = setup(4, 4, { leaseTtlMs: ttl, hostGraceMs: 1_000 });
    await new Promise((r) => setTimeout(r, 1_200)); // the election grace is over
    const records = [1, 2, 3].map((h) => store.hosts.get(inst(h)));
    for (let h = 1; h <= 3; h += 1) store.removeHost(inst(h)); // e.g. etcd revoked their leases on resume
    await new Promise((r) => setTimeout(r, 300));
    for (const r of records) if (r) store.putHost(r); // the agents re-registered
    await new Promise((r) => setTimeout(r, 1_500)); // well past the suspect grace
    expect(store.journals.size).toBe(0);
    expect(ec2.calls.filter((c) => !c.startsWith('Describe'))).toEqual([]);
    controller.abort();
    await running;
  });

  // Chaos seed 70: a tick saw a partitioned holder's lease gone, spent 8 s on DescribeVolumes retries
  // (EC2 5xx), and meanwhile the host came back and ran its unit again; the tick then failed it over.
  it('decides on the hosts as they are after its EC2 look-ups: a holder back meanwhile is not failed over', async () => {
    const { store, ec2, controller, loop } = setup(3, 3, { run: false });
    const attempted: string[] = [];
    const write = store.write.bind(store);
    store.write = async (w) => {
      attempted.push(w.journal?.step ?? 'other');
      return write(w);
    };
    const record = store.hosts.get(inst(1));
    store.removeHost(inst(1));
    let lookedUp = false;
    ec2.beforeDescribe = async () => {
      lookedUp = true;
      if (record) store.putHost(record); // the agent re-registered while EC2 was answering
    };
    await loop.tick();
    controller.abort();
    await loop.run(); // drains any action the tick dispatched
    expect(lookedUp).toBe(true);
    // Not even tried (the store's host-absent guard would refuse it: that is the second line of defence).
    expect(attempted).toEqual([]);
    expect(store.journalLog).toEqual([]);
    expect(ec2.calls.filter((c) => !c.startsWith('Describe'))).toEqual([]);
  });

  it('the same holder still gone after the look-ups is failed over', async () => {
    const { store, ec2, controller, loop } = setup(3, 3, { run: false });
    store.removeHost(inst(1));
    await loop.tick();
    controller.abort();
    await loop.run();
    expect(store.journalLog.map((j) => [j.volumeId, j.cause, j.fromInstanceId])).toEqual([[vol(1), 'holder-lost', inst(1)]]);
    expect(ec2.calls.filter((c) => !c.startsWith('Describe'))).toEqual([]);
  });

  it('paced by host: all volumes of an admitted host go together', async () => {
    const ttl = 400;
    const { store, controller, running } = setup(10, 5, { leaseTtlMs: ttl, hostGraceMs: 0 }); // vol n and n+5 on host n
    await new Promise((r) => setTimeout(r, 100));
    for (let h = 1; h <= 3; h += 1) store.removeHost(inst(h));
    const lost = [1, 2, 3, 6, 7, 8].map(vol);
    await until(() => lost.every((v) => store.journals.get(v)?.step === 'done'), 20_000);
    const startOf = (v: number): number => store.journals.get(vol(v))?.startedAt ?? NaN;
    const turns = [1, 2, 3].map((h) => ({ first: Math.min(startOf(h), startOf(h + 5)), last: Math.max(startOf(h), startOf(h + 5)) })).sort((a, b) => a.first - b.first);
    for (let i = 1; i < turns.length; i += 1) {
      const [prev, cur] = [turns[i - 1], turns[i]];
      expect((cur?.first ?? 0) - (prev?.first ?? 0)).toBeGreaterThanOrEqual(ttl);
      // Both volumes of one host start in its turn, before the next host's.
      expect(prev?.last ?? Infinity).toBeLessThan(cur?.first ?? 0);
    }
    controller.abort();
    await running;
  });

  it('a host gone for 10 TTLs and named by no placement or journal is forgotten', async () => {
    const ttl = 200;
    const { store, controller, running, loop } = setup(4, 4, { leaseTtlMs: ttl, hostGraceMs: 0 });
    await new Promise((r) => setTimeout(r, 100));
    expect(loop.knownHostIds()).toContain(inst(1));
    store.removeHost(inst(1));
    await until(() => store.journals.get(vol(1))?.step === 'done');
    // No longer named by a placement; the journal still names it (fromInstanceId) until another failover of vol 1.
    store.journals.delete(vol(1));
    store.changed();
    await until(() => !loop.knownHostIds().includes(inst(1)), 20_000);
    expect(loop.knownHostIds()).toEqual([2, 3, 4].map(inst));
    controller.abort();
    await running;
  });

  it('never chooses a host whose instance EC2 shows stopped', async () => {
    const { store, ec2, controller, running } = setup(1, 3, { hostGraceMs: 0 });
    const stopped = ec2.instances.get(inst(2));
    if (stopped) stopped.state = 'stopped';
    await new Promise((r) => setTimeout(r, 100));
    store.removeHost(inst(1));
    await until(() => store.journals.get(vol(1))?.step === 'done');
    expect(store.placements.get(vol(1))?.instanceId).toBe(inst(3));
    expect(ec2.calls.filter((c) => c.startsWith(`AttachVolume ${vol(1)}`))).toEqual([`AttachVolume ${vol(1)} ${inst(3)} /dev/xvdf`]);
    controller.abort();
    await running;
  });
});
