/**
 * A controller keeps looking at host liveness while it stands by, so that when its leader dies the
 * successor judges the hosts as the leader would have (bench/failover's leader-killed run): no fresh
 * grace at election for vanishings it watched, the grace again after a watch reconnect, and a suspect
 * mass vanishing still paced, with the predecessor's admissions taken from its journals.
 *
 * The clock is the test's (frozen unless advanced) and the loop ticks only when the test says, so what
 * waits for a grace or a pacing turn cannot slip through on a slow machine.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log/logger.js';
import { HostTracker } from './hosts.js';
import { FailoverLoop } from './loop.js';
import { MemoryLocks } from './memory.js';
import { ControllerMetrics } from './metrics.js';
import { DEFAULT_DECIDE_CONFIG } from './observed.js';
import { StandbyLiveness } from './standby-liveness.js';
import { NOW, eventually, instN, journal, placedWorld, volN } from '../testing/controller-builders.js';

const vol = volN;
const inst = instN;
const TTL = 1_000;
/** Long: a grace that slipped into a test would hold everything for the whole test. */
const GRACE = 60_000;
const until = eventually;

describe('StandbyLiveness: the successor of a dead leader already knows which hosts vanished when', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));

  /** `hosts` hosts, `volumes` volumes (volume v on host ((v − 1) mod hosts) + 1), a standby looking. */
  function standingBy(hosts: number, volumes: number) {
    const clock = { now: NOW };
    const now = (): number => clock.now;
    const { store, ec2 } = placedWorld(hosts, volumes, { leaseTtlMs: TTL });
    const metrics = new ControllerMetrics();
    const tracker = new HostTracker({ log: silentLogger(), hostGraceMs: GRACE });
    const standby = new StandbyLiveness(tracker, store, now, silentLogger());
    cleanups.push(() => standby.stop());
    /** This controller is elected: the loop takes over the tracker's looks (ticks only when the test calls tick()). */
    const elect = (shared: HostTracker | undefined = tracker) => {
      standby.pause();
      const signal = new AbortController();
      cleanups.push(() => signal.abort());
      return new FailoverLoop({
        store, ec2, locks: new MemoryLocks(), metrics, parallelism: 16, log: silentLogger(), now, signal: signal.signal,
        config: DEFAULT_DECIDE_CONFIG, hostGraceMs: GRACE, hosts: shared,
      });
    };
    /** Volumes whose failover has started (a journal exists), sorted. */
    const started = (): string[] => [...store.journals.keys()].sort();
    return { clock, store, tracker, standby, elect, started };
  }

  it('a host that died while standing by is failed over in the first tick after election (no grace at election)', async () => {
    const w = standingBy(3, 3);
    // The first look (this process just started) granted the grace; it ends while standing by.
    expect(w.tracker.graceUntil).toBe(NOW + GRACE);
    w.clock.now = NOW + GRACE + 1;
    w.store.removeHost(inst(1));
    // A fresh tracker (a controller that just started) holds the same host for its grace:
    const fresh = w.elect(new HostTracker({ log: silentLogger(), hostGraceMs: GRACE }));
    await fresh.tick();
    expect(w.started()).toEqual([]);
    // The standby's own tracker, which watched it vanish, does not.
    const loop = w.elect();
    await loop.tick();
    await until('the failover of vol 1 started', () => w.started().length > 0);
    expect(w.started()).toEqual([vol(1)]);
    expect(w.store.journals.get(vol(1))).toMatchObject({ fromInstanceId: inst(1), cause: 'holder-lost', startedAt: NOW + GRACE + 1 });
  });

  it('a watch reconnect while standing by grants the grace again, and it holds at election', async () => {
    const w = standingBy(3, 3);
    w.clock.now = NOW + GRACE + 1;
    w.store.reconnected();
    await until('the standby looked after the reconnect', () => w.tracker.graceUntil === NOW + GRACE + 1 + GRACE);
    w.store.removeHost(inst(1));
    const loop = w.elect();
    await loop.tick();
    expect(w.started()).toEqual([]);
    w.clock.now = NOW + 2 * GRACE + 2;
    await loop.tick();
    await until('the failover of vol 1 started after the grace', () => w.started().length > 0);
    expect(w.started()).toEqual([vol(1)]);
  });

  it('a suspect vanishing watched while standing by stays paced after election, counting the predecessor\'s admission', async () => {
    // 10 hosts, 2 volumes each; 6 vanish at once: suspect (≥ half), paced to 1 host (10 % of 10) per TTL.
    const w = standingBy(10, 20);
    w.clock.now = NOW + GRACE + 1;
    for (const h of [1, 2, 3, 4, 5, 6]) w.store.hosts.delete(inst(h));
    w.store.changed();
    const suspectAt = NOW + GRACE + 1;
    await until('the standby saw the suspect vanishing', () => w.tracker.graceUntil === suspectAt + GRACE);
    // The leader (another process) waited out the grace, admitted host 1 and started its first volume; then it died.
    const admittedAt = suspectAt + GRACE + 10;
    w.store.journals.set(vol(1), journal({ volumeId: vol(1), unit: `postgres@${vol(1)}`, fromInstanceId: inst(1), cause: 'holder-lost', step: 'detected', startedAt: admittedAt, stepStartedAt: admittedAt }));
    w.store.changed();
    // Elected half a TTL later: host 1's other volume (11) may start; nobody else's (the budget is spent).
    w.clock.now = admittedAt + TTL / 2;
    const loop = w.elect();
    await loop.tick();
    await until('host 1\'s second volume started', () => w.started().includes(vol(11)));
    expect(w.started()).toEqual([vol(1), vol(11)]);
    // A TTL after the predecessor's admission: exactly one more host's two volumes.
    w.clock.now = admittedAt + TTL + 1;
    await loop.tick();
    await until('one more host admitted', () => w.started().length === 4);
    const hostsStarted = new Set([...w.store.journals.values()].map((j) => j.fromInstanceId));
    expect(hostsStarted.size).toBe(2);
    await loop.tick();
    expect(w.started()).toHaveLength(4);
  });
});
