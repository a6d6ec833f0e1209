/**
 * The EC2 mutation gate over real HTTP: the SDK client of `createEc2` against the EC2 endpoint
 * (src/sim/ec2), with kept-alive connections. Checks what the endpoint receives (its request log
 * records the caller and term the gate tags each mutating request with), what a failing guard keeps
 * from being sent, how a request is cut at the lease deadline, and the size of the window between
 * the gate's check and the socket write. Also the endpoint's fault-campaign knobs (jitter, Multi-Attach,
 * slow attach, a device name EC2 reports as in use).
 */
import { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEc2, DeviceInUseError, MutationFencedError, monoNow, withGuard, type Ec2Port, type MutationGuard, type MutationInfo } from '../../src/ec2/index.js';
import { lockGuard } from '../../src/snapshot/index.js';
import { startEc2Endpoint, type Ec2Endpoint, type RequestEntry } from '../../src/sim/ec2/index.js';

const AZ = 'us-east-1a';
const DEADLINE_MS = 20_000;
let endpoint: Ec2Endpoint;
let hexCounter = 0x900;

function nextHex(): string {
  return (hexCounter++).toString(16).padStart(17, '0');
}
const newInstance = (): string => endpoint.sim.addInstance({ instanceId: `i-${nextHex()}`, az: AZ }).instanceId;
const newVolume = (extra: { multiAttachEnabled?: boolean } = {}): string => endpoint.sim.addVolume({ volumeId: `vol-${nextHex()}`, az: AZ, ...extra }).volumeId;

/** A lease the test controls. */
class TestLease implements MutationGuard {
  leading = true;
  remaining = 5_000;
  checks = 0;
  constructor(
    readonly caller: string,
    readonly term: string,
  ) {}
  assert(): void {
    this.checks += 1;
    if (!this.leading) throw new Error(`${this.caller} lost its lease`);
  }
  remainingMs(): number {
    return this.remaining;
  }
}

async function requestsOverHttp(): Promise<RequestEntry[]> {
  return (await (await fetch(`${endpoint.url}/_sim/requests`)).json()) as RequestEntry[];
}

beforeAll(async () => {
  endpoint = await startEc2Endpoint({ latencies: { attachMs: 40, detachMs: 40 } });
});
afterAll(async () => {
  await endpoint.close();
});
afterEach(() => {
  endpoint.sim.clearFaults();
  endpoint.sim.setLatencies({ callMs: 0, jitter: null });
});

describe('EC2 mutation gate over HTTP', () => {
  it('tags every gated mutation with the caller and term; the endpoint logs them (GET /_sim/requests)', async () => {
    const lease = new TestLease('c1-gate', '101');
    const ec2 = withGuard(createEc2({ endpoint: endpoint.url, region: 'us-east-1' }), lease);
    const [volumeId, instanceId] = [newVolume(), newInstance()];
    await ec2.attachVolume(volumeId, instanceId, '/dev/sdf');
    await ec2.waitAttached(volumeId, instanceId, { timeoutMs: DEADLINE_MS });
    await ec2.detachVolume(volumeId, instanceId, true);
    const mine = (await requestsOverHttp()).filter((r) => r.volumeId === volumeId);
    expect(mine.map((r) => ({ action: r.action, caller: r.caller, term: r.term, force: r.force, outcome: r.outcome }))).toEqual([
      { action: 'AttachVolume', caller: 'c1-gate', term: '101', force: false, outcome: 'ok' },
      { action: 'DetachVolume', caller: 'c1-gate', term: '101', force: true, outcome: 'ok' },
    ]);
    expect(lease.checks).toBeGreaterThanOrEqual(2);
  });

  it('a lease lost while the request was on its way (after signing, before the socket) sends nothing, over a kept-alive connection', async () => {
    const lease = new TestLease('c2-gate', '102');
    const [volumeId, instanceId] = [newVolume(), newInstance()];
    const hooked: MutationInfo[] = [];
    const ec2 = withGuard(
      createEc2({
        endpoint: endpoint.url,
        region: 'us-east-1',
        // The hook runs right before the gate's check: losing the lease here is the thawed-process case.
        gateHooks: { onBeforeMutation: (info) => { hooked.push(info); lease.leading = false; } },
      }),
      lease,
    );
    await ec2.describeVolumes([volumeId]); // opens the connection the mutation would reuse
    const received = endpoint.sim.requests.length;
    const err = await ec2.attachVolume(volumeId, instanceId, '/dev/sdf').catch((e: unknown) => e);
    // The guard's own error, unchanged (the controller's is a NotLeaderError).
    expect((err as Error).constructor).toBe(Error);
    expect((err as Error).message).toBe('c2-gate lost its lease');
    expect(hooked).toEqual([{ action: 'AttachVolume', caller: 'c2-gate', term: '102', ids: { volumeId, instanceId, device: '/dev/sdf', action: 'AttachVolume' } }]);
    expect(endpoint.sim.requests.length).toBe(received);
    expect(endpoint.sim.volume(volumeId)?.attachment).toBeNull();
  });

  it('too little lease left at the last check (renewals stalled since admission): refused there, nothing sent', async () => {
    const lease = new TestLease('c5-gate', '105');
    const [volumeId, instanceId] = [newVolume(), newInstance()];
    const ec2 = withGuard(
      createEc2({ endpoint: endpoint.url, region: 'us-east-1', gateHooks: { onBeforeMutation: () => { lease.remaining = 100; } } }),
      lease,
    );
    const received = endpoint.sim.requests.length;
    const err = await ec2.detachVolume(volumeId, instanceId, true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MutationFencedError);
    expect(err).toMatchObject({ caller: 'c5-gate', term: '105', remainingMs: 100 });
    expect(endpoint.sim.requests.length).toBe(received);
  });

  it('a request is cut at the lease deadline: MutationFencedError; EC2 may still have acted (it received it)', async () => {
    const lease = new TestLease('c3-gate', '103');
    lease.remaining = 600;
    const ec2 = withGuard(createEc2({ endpoint: endpoint.url, region: 'us-east-1' }), lease);
    const [volumeId, instanceId] = [newVolume(), newInstance()];
    endpoint.sim.setLatencies({ callMs: 3_000 }); // the answer comes long after the deadline
    const err = await ec2.attachVolume(volumeId, instanceId, '/dev/sdf').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MutationFencedError);
    expect((err as Error).message).toContain('aborted at the lease deadline');
    // Why the intent is journalled first: a cut request may still have landed.
    expect(endpoint.sim.requests.filter((r) => r.volumeId === volumeId).map((r) => r.caller)).toEqual(['c3-gate']);
  });

  it('the snapshot job: CreateSnapshot/DeleteSnapshot go through its lock; a lost lock sends nothing', async () => {
    let held = true;
    const lock = { owner: 'snapshot:4242', token: '555', assertHeld: () => { if (!held) throw new Error('lock lost'); }, leaseRemainingMs: () => 20_000 };
    const ec2 = createEc2({ endpoint: endpoint.url, region: 'us-east-1' });
    const volumeId = newVolume();
    const snap = await ec2.createSnapshot(volumeId, 'test', {}, { guard: lockGuard(lock) });
    held = false;
    await expect(ec2.deleteSnapshot(snap.snapshotId, { guard: lockGuard(lock) })).rejects.toThrow(/^lock lost$/);
    held = true;
    await ec2.deleteSnapshot(snap.snapshotId, { guard: lockGuard(lock) });
    // Already gone: counts as deleted (a prune run does not fail over it).
    await ec2.deleteSnapshot(snap.snapshotId, { guard: lockGuard(lock) });
    const mine = endpoint.sim.requests.filter((r) => r.volumeId === volumeId || r.snapshotId === snap.snapshotId);
    expect(mine.map((r) => `${r.action} ${r.caller} ${r.term} ${r.outcome}`)).toEqual([
      'CreateSnapshot snapshot:4242 555 ok',
      'DeleteSnapshot snapshot:4242 555 ok',
      'DeleteSnapshot snapshot:4242 555 InvalidSnapshot.NotFound',
    ]);
  });

  it('measures the window between the gate check and the socket write (reported, not asserted)', async () => {
    const lease = new TestLease('c4-gate', '104');
    const marks: { checkedAt: number; writtenAt: number | null }[] = [];
    const ec2: Ec2Port = withGuard(
      createEc2({ endpoint: endpoint.url, region: 'us-east-1', bucket: { mutating: { burst: 1000, perSecond: 1000 } }, gateHooks: { onBeforeMutation: () => undefined } }),
      {
        ...lease,
        caller: lease.caller,
        term: lease.term,
        assert: () => {
          marks.push({ checkedAt: monoNow(), writtenAt: null });
        },
        remainingMs: () => 5_000,
      },
    );
    const write = Socket.prototype.write;
    // Socket.write's overloads cannot be spelled by one signature: forward the arguments as they come.
    Socket.prototype.write = function patched(this: Socket, ...args: unknown[]): boolean {
      const last = marks.at(-1);
      if (last !== undefined && last.writtenAt === null) last.writtenAt = monoNow();
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof write;
    try {
      const instanceId = newInstance();
      for (let i = 0; i < 40; i += 1) {
        // StopInstances of a stopped instance changes nothing: a cheap mutation to time.
        await ec2.stopInstance(instanceId, { force: true });
      }
    } finally {
      Socket.prototype.write = write;
    }
    const windows = marks.map((m) => (m.writtenAt ?? NaN) - m.checkedAt).filter((w) => Number.isFinite(w)).sort((a, b) => a - b);
    expect(windows.length).toBeGreaterThan(30);
    const at = (q: number): string => (windows[Math.min(windows.length - 1, Math.floor(q * windows.length))] ?? NaN).toFixed(3);
    console.log(`gate check → socket write: median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms over ${windows.length} kept-alive requests`);
  });
});

describe('EC2 endpoint knobs for the fault campaign', () => {
  it('Multi-Attach volumes are reported (VolumeInfo.multiAttachEnabled)', async () => {
    const ec2 = createEc2({ endpoint: endpoint.url, region: 'us-east-1' });
    const [multi, single] = [newVolume({ multiAttachEnabled: true }), newVolume()];
    const [a, b] = await ec2.describeVolumes([multi, single]);
    expect(a?.multiAttachEnabled).toBe(true);
    expect(b?.multiAttachEnabled).toBe(false);
  });

  it('device-busy fault: AttachVolume answers InvalidParameterValue "already in use", which the EC2 layer reports as DeviceInUseError', async () => {
    const ec2 = createEc2({ endpoint: endpoint.url, region: 'us-east-1' });
    const [volumeId, instanceId] = [newVolume(), newInstance()];
    endpoint.sim.injectFault({ kind: 'device-busy', instanceId, device: '/dev/sdf' });
    const err = await ec2.attachVolume(volumeId, instanceId, '/dev/sdf').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceInUseError);
    expect(endpoint.sim.requests.filter((r) => r.volumeId === volumeId).map((r) => r.outcome)).toEqual(['InvalidParameterValue']);
    await ec2.attachVolume(volumeId, instanceId, '/dev/sdg');
    await ec2.waitAttached(volumeId, instanceId, { timeoutMs: DEADLINE_MS });
  });

  it('slow-attach fault and seeded jitter (settable over /_sim/latencies): the same seed gives the same delays', async () => {
    const ec2 = createEc2({ endpoint: endpoint.url, region: 'us-east-1' });
    const [volumeId, instanceId] = [newVolume(), newInstance()];
    await fetch(`${endpoint.url}/_sim/faults`, { method: 'POST', body: JSON.stringify({ kind: 'slow-attach', volumeId, ms: 600 }) });
    const started = Date.now();
    await ec2.attachVolume(volumeId, instanceId, '/dev/sdf');
    await ec2.waitAttached(volumeId, instanceId, { timeoutMs: DEADLINE_MS });
    const attaching = endpoint.sim.history.filter((e) => e.volumeId === volumeId);
    expect(attaching.map((e) => e.state)).toEqual(['attaching', 'attached']);
    expect((attaching[1]?.at ?? 0) - (attaching[0]?.at ?? 0)).toBeGreaterThanOrEqual(590);
    expect(Date.now() - started).toBeGreaterThanOrEqual(590);

    const draws = async (): Promise<number[]> => {
      const res = await fetch(`${endpoint.url}/_sim/latencies`, { method: 'POST', body: JSON.stringify({ jitter: { ratio: 0.5, seed: 7 } }) });
      expect(res.status).toBe(200);
      return Array.from({ length: 5 }, () => endpoint.sim.jittered(1_000));
    };
    const first = await draws();
    expect(await draws()).toEqual(first);
    expect(first.every((d) => d >= 500 && d <= 1_500)).toBe(true);
    expect(new Set(first).size).toBeGreaterThan(1);
  });
});
