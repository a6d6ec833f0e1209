import { describe, expect, it } from 'vitest';
import { createRng } from '../prng.js';
import { countKinds, faultSpan, generateSchedule, type FaultSpec } from './schedule.js';

describe('createRng', () => {
  it('gives the same sequence for the same seed and a different one for another seed', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const seqA = Array.from({ length: 20 }, () => a.next());
    const seqB = Array.from({ length: 20 }, () => b.next());
    const seqC = Array.from({ length: 20 }, () => c.next());
    expect(seqA).toEqual(seqB);
    expect(seqA).not.toEqual(seqC);
    for (const x of seqA) expect(x >= 0 && x < 1).toBe(true);
  });

  it('draws integers inside the bounds, covering both ends', () => {
    const rng = createRng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i += 1) seen.add(rng.int(3, 6));
    expect([...seen].sort()).toEqual([3, 4, 5, 6]);
  });

  it('forks a child whose draws do not depend on how much the parent drew', () => {
    const a = createRng(5);
    a.next();
    a.next();
    const b = createRng(5);
    expect(a.fork('x').next()).toBe(b.fork('x').next());
    expect(createRng(5).fork('x').next()).not.toBe(createRng(5).fork('y').next());
  });
});

describe('generateSchedule', () => {
  const opts = { durationMs: 45_000, ttlMs: 2_000 };

  it('is a pure function of the seed: same seed, same schedule', () => {
    expect(generateSchedule(1234, opts)).toEqual(generateSchedule(1234, opts));
    expect(generateSchedule(1234, opts)).not.toEqual(generateSchedule(1235, opts));
  });

  it('draws a world of 4–6 hosts in two AZs (two per AZ at least), 2–3 controllers, 3–8 services', () => {
    for (let seed = 0; seed < 50; seed += 1) {
      const { world } = generateSchedule(seed, opts);
      expect(world.hosts.length).toBeGreaterThanOrEqual(4);
      expect(world.hosts.length).toBeLessThanOrEqual(6);
      for (const az of ['us-east-1a', 'us-east-1b']) expect(world.hosts.filter((h) => h.az === az).length).toBeGreaterThanOrEqual(2);
      expect(world.controllers).toBeGreaterThanOrEqual(2);
      expect(world.controllers).toBeLessThanOrEqual(3);
      expect(world.registered).toBeGreaterThanOrEqual(3);
      expect(world.registered).toBeLessThanOrEqual(8);
      expect(world.services.length).toBe(world.registered + 1);
    }
    expect(generateSchedule(9, { ...opts, hosts: 5 }).world.hosts.length).toBe(5);
  });

  it('keeps steps inside the fault phase, sorted, with targets that exist', () => {
    for (let seed = 0; seed < 50; seed += 1) {
      const s = generateSchedule(seed, opts);
      const at = s.steps.map((x) => x.atMs);
      expect(at).toEqual([...at].sort((a, b) => a - b));
      for (const { atMs, fault } of s.steps) {
        expect(atMs).toBeGreaterThanOrEqual(0);
        expect(atMs).toBeLessThan(s.durationMs);
        if ('service' in fault) expect(fault.service).toBeLessThan(s.world.services.length);
        if (fault.kind === 'proc-kill' || fault.kind === 'proc-stop' || fault.kind === 'proc-restart') {
          const n = fault.role === 'agent' ? s.world.hosts.length : fault.role === 'controller' ? s.world.controllers : 3;
          expect(fault.index).toBeLessThan(n);
        }
      }
    }
  });

  it('gives an etcd outage, a frozen leader and a leaderless move their own window, with no other fault inside', () => {
    const exclusive = new Set<FaultSpec['kind']>(['etcd-outage', 'freeze-leader-before-detach', 'leaderless-move']);
    let seen = 0;
    for (let seed = 0; seed < 100; seed += 1) {
      const s = generateSchedule(seed, { durationMs: 120_000, ttlMs: 2_000 });
      for (const x of s.steps.filter((st) => exclusive.has(st.fault.kind))) {
        seen += 1;
        const end = x.atMs + faultSpan(x.fault);
        const others = s.steps.filter((o) => o !== x && o.atMs + faultSpan(o.fault) >= x.atMs && o.atMs <= end);
        expect(others).toEqual([]);
      }
    }
    expect(seen).toBeGreaterThan(20);
  });

  it('scales the etcd outage with the run: up to 60 s in a long run, shorter in a short one', () => {
    const outages = (durationMs: number): number[] => Array.from({ length: 200 }, (_, seed) => generateSchedule(seed, { durationMs, ttlMs: 2_000 }).steps)
      .flat().flatMap((st) => (st.fault.kind === 'etcd-outage' ? [st.fault.downMs] : []));
    const short = outages(40_000);
    const long = outages(600_000);
    expect(Math.max(...short)).toBeLessThanOrEqual(16_000);
    expect(Math.max(...long)).toBeLessThanOrEqual(60_000);
    expect(Math.max(...long)).toBeGreaterThan(30_000);
  });

  it('draws every kind of fault over a few seeds', () => {
    const kinds = new Set<string>();
    for (let seed = 0; seed < 60; seed += 1) for (const k of Object.keys(countKinds(generateSchedule(seed, opts).steps))) kinds.add(k.split(':')[0] as string);
    expect([...kinds].sort()).toEqual([
      'ec2-errors', 'ec2-slow-attach', 'ec2-stuck', 'etcd-outage', 'freeze-leader-before-detach', 'leaderless-move', 'net', 'net-member',
      'oob-attach', 'oob-detach', 'op-cancel', 'op-move', 'op-service-add', 'op-service-remove', 'op-snapshot', 'proc-kill', 'proc-restart', 'proc-stop',
    ]);
  });
});
