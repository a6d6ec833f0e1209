import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/logger.js';
import { EtcdStallWatch } from './etcd-stall.js';
import { eventually } from '../testing/controller-builders.js';

const until = eventually;

describe('EtcdStallWatch', () => {
  const stops: (() => void)[] = [];
  afterEach(() => stops.splice(0).forEach((s) => s()));

  it('a silence longer than the bound is a stall: once when noticed, once when etcd answers again; answers in time are none', async () => {
    let stalls = 0;
    let bound = 60_000;
    const w = new EtcdStallWatch({ log: silentLogger(), stallAfterMs: () => bound, onStall: () => (stalls += 1), checkEveryMs: 5 });
    stops.push(() => w.stop());
    w.answered();
    w.answered();
    expect(stalls).toBe(0);
    // The bound is asked afresh (it follows the hosts' TTL): shortened, the silence so far is a stall.
    bound = 50;
    await until('the stall noticed', () => stalls === 1);
    // Still silent: not noticed again.
    const noticed = stalls;
    await new Promise((r) => setTimeout(r, 0));
    expect(stalls).toBe(noticed);
    w.answered();
    expect(stalls).toBe(2);
    // Answering again right away is no news.
    bound = 60_000;
    w.answered();
    expect(stalls).toBe(2);
  });

  it('a new campaign restarts the count without ending a stall in progress', async () => {
    let stalls = 0;
    let bound = 50;
    const w = new EtcdStallWatch({ log: silentLogger(), stallAfterMs: () => bound, onStall: () => (stalls += 1), checkEveryMs: 5 });
    stops.push(() => w.stop());
    await until('the stall noticed', () => stalls === 1);
    bound = 60_000;
    w.restart();
    expect(stalls).toBe(1);
    // The first answer of the new lease ends the stall: the grace after it.
    w.answered();
    expect(stalls).toBe(2);
  });
});
