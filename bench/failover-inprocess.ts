/**
 * Failover timing against AWS-like EC2 latencies (scaled), printed as figures; not part of `npm test`.
 * In-process: the EC2 simulator's model (src/sim/ec2 Ec2Sim, with AWS's throttling buckets), the
 * controller's loop, an in-memory etcd stand-in and pretend agents with a mount + start delay. The
 * lease TTL is modelled as the delay between a host's death and its record vanishing.
 *   npx tsx bench/failover-inprocess.ts (npm run bench:failover runs the real stack: bench/failover.ts)
 */
import { AWS_THROTTLE_DEFAULTS, Ec2Sim } from '../src/sim/ec2/index.js';
import type { Ec2Port, InstanceInfo, VolumeInfo } from '../src/ec2/types.js';
import { FailoverLoop } from '../src/controller/loop.js';
import { RateLimiter } from '../src/ec2/token-bucket.js';
import { MemoryLocks, MemoryStore } from '../src/controller/memory.js';
import { ControllerMetrics } from '../src/controller/metrics.js';
import { DEFAULT_DECIDE_CONFIG } from '../src/controller/observed.js';
import { createLogger, silentLogger } from '../src/log/logger.js';

// AWS-like figures scaled by SCALE: attach ~5 s, detach ~10 s (forced: the dead host never unmounted), TTL 10 s, mount 1 s, start 2 s.
const SCALE = 0.2;
const TTL_MS = 10_000 * SCALE;
const ATTACH_MS = 5_000 * SCALE;
const DETACH_MS = 10_000 * SCALE;
const MOUNT_MS = 1_000 * SCALE;
const START_MS = 2_000 * SCALE;
const AZ = 'us-east-1a';
// AWS's default buckets with refill sped up by 1/SCALE, like the latencies: the same calls per simulated second.
const THROTTLE = {
  enabled: true,
  scale: 1,
  buckets: {
    describeFiltered: { burst: AWS_THROTTLE_DEFAULTS.describeFiltered.burst, perSecond: AWS_THROTTLE_DEFAULTS.describeFiltered.perSecond / SCALE },
    mutating: { burst: AWS_THROTTLE_DEFAULTS.mutating.burst, perSecond: AWS_THROTTLE_DEFAULTS.mutating.perSecond / SCALE },
  },
};

class ThrottledError extends Error {
  override readonly name = 'RequestLimitExceeded';
}

/**
 * Ec2Port over the simulator's model, drawing from AWS's token buckets like the HTTP endpoint does.
 * Like src/ec2 (createEc2), calls first queue on a client-side RateLimiter with the same rates, so
 * the controller waits for a token instead of being throttled by EC2 and retrying.
 */
function simPort(sim: Ec2Sim, throttled: { count: number }): Ec2Port {
  const limiter = new RateLimiter({ mutating: THROTTLE.buckets.mutating, describe: THROTTLE.buckets.describeFiltered });
  const admit = async (category: 'describeFiltered' | 'mutating'): Promise<void> => {
    await limiter.take(category === 'mutating' ? 'mutating' : 'describe');
    if (!sim.throttle.admit(category)) {
      throttled.count += 1;
      throw new ThrottledError(`throttled (${category})`);
    }
  };
  const info = (volumeId: string): VolumeInfo[] => {
    const v = sim.volume(volumeId);
    if (!v) return [];
    const a = v.attachment;
    return [{ volumeId, az: v.az, state: v.state, sizeGiB: 10, tags: {}, attachments: a ? [{ instanceId: a.instanceId, device: a.device, state: a.state }] : [] }];
  };
  const unused = async (): Promise<never> => {
    throw new Error('not used by the controller');
  };
  return {
    describeVolumes: async (ids) => (await admit('describeFiltered'), ids.flatMap(info)),
    describeInstances: async (ids) => (await admit('describeFiltered'), ids.flatMap((id): InstanceInfo[] => {
      const i = sim.instance(id);
      // Like EC2's block device mappings: the root device plus every attached volume's device.
      const devices = ['/dev/xvda', ...sim.state().volumes.flatMap((v) => (v.attachment?.instanceId === id ? [v.attachment.device] : []))];
      return i ? [{ instanceId: id, az: i.az, state: 'running', privateIp: null, devices, tags: {} }] : [];
    })),
    findInstances: unused,
    attachVolume: async (volumeId, instanceId, device, o) => void (await admit('mutating'), await o?.beforeSend?.(), sim.attachVolume(volumeId, instanceId, device)),
    detachVolume: async (volumeId, instanceId, force, o) => void (await admit('mutating'), await o?.beforeSend?.(), sim.detachVolume({ volumeId, instanceId, force })),
    waitAttached: unused, waitAvailable: unused, detachAndWait: unused,
    stopInstance: async () => undefined,
    createSnapshot: unused, listSnapshots: unused, deleteSnapshot: unused, tagResources: unused, untagResources: unused,
  };
}

const vol = (n: number): string => `vol-${n.toString(16).padStart(17, '0')}`;
const inst = (n: number): string => `i-${n.toString(16).padStart(17, '0')}`;

async function scenario(hosts: number, volumesPerHost: number, dying: number): Promise<void> {
  const sim = new Ec2Sim({ latencies: { attachMs: ATTACH_MS, detachMs: DETACH_MS }, throttle: THROTTLE });
  const throttled = { count: 0 };
  const store = new MemoryStore();
  const dead = new Set<string>();
  for (let h = 1; h <= hosts; h += 1) {
    sim.addInstance({ instanceId: inst(h), az: AZ });
    store.putHost({ instanceId: inst(h), az: AZ, privateIp: '10.0.0.1', machineId: `m${h}`, agentVersion: 'bench', labels: {}, leaseTtlMs: TTL_MS, fenceMarginMs: 0, registeredAt: 0 });
  }
  let n = 0;
  // The first `dying` hosts hold the volumes; the others are spare capacity in the same AZ.
  for (let h = 1; h <= dying; h += 1) {
    for (let k = 0; k < volumesPerHost; k += 1) {
      n += 1;
      const volumeId = vol(n);
      sim.addVolume({ volumeId, az: AZ });
      sim.setLatencies({ attachMs: 0 });
      sim.attachVolume(volumeId, inst(h), `/dev/xvd${'fghijklmnop'[k]}`);
      store.services.set(`postgres@${volumeId}`, { unit: `postgres@${volumeId}`, volumeId, mountUnit: 'data.mount', mountPoint: '/data', metadataKey: `pg${n}`, requiredLabels: {} });
      store.placements.set(volumeId, { volumeId, unit: `postgres@${volumeId}`, instanceId: inst(h), device: `/dev/xvd${'fghijklmnop'[k]}`, generation: 1, updatedAt: 0 });
    }
  }
  await new Promise((r) => setTimeout(r, 20));
  sim.setLatencies({ attachMs: ATTACH_MS, detachMs: DETACH_MS });
  for (let v = 1; v <= n; v += 1) sim.setInUse(vol(v), true);
  for (const p of store.placements.values()) store.putReport({ instanceId: p.instanceId as string, volumeId: p.volumeId, unit: p.unit, generation: 1, phase: 'active', mountActive: true, unitActive: true, error: null, at: 0 });

  // Pretend agents: mount + start after the device is attached, then report active.
  const busy = new Set<string>();
  const agents = setInterval(() => {
    for (const p of store.placements.values()) {
      if (p.instanceId === null || dead.has(p.instanceId) || busy.has(p.volumeId)) continue;
      const r = store.reports.get(`${p.instanceId}/${p.volumeId}`);
      if (r?.generation === p.generation) continue;
      if (sim.volume(p.volumeId)?.attachment?.state !== 'attached') continue;
      busy.add(p.volumeId);
      setTimeout(() => {
        busy.delete(p.volumeId);
        store.putReport({ instanceId: p.instanceId as string, volumeId: p.volumeId, unit: p.unit, generation: p.generation, phase: 'active', mountActive: true, unitActive: true, error: null, at: Date.now() });
      }, MOUNT_MS + START_MS);
    }
  }, 10);

  const abort = new AbortController();
  const loop = new FailoverLoop({
    store, ec2: simPort(sim, throttled), locks: new MemoryLocks(), metrics: new ControllerMetrics(), log: process.env.BENCH_DEBUG ? createLogger('bench', 'info') : silentLogger(), now: Date.now,
    signal: abort.signal, parallelism: 32, config: { ...DEFAULT_DECIDE_CONFIG, forceDetachAfterMs: 60_000 },
  });
  const running = loop.run();
  await new Promise((r) => setTimeout(r, 300));

  const victims = new Set<string>();
  for (let h = 1; h <= dying; h += 1) {
    dead.add(inst(h));
    for (const p of store.placements.values()) if (p.instanceId === inst(h)) victims.add(p.volumeId);
  }
  const killedAt = Date.now();
  setTimeout(() => {
    for (const h of dead) store.removeHost(h);
  }, TTL_MS);
  const finished = new Map<string, number>();
  while (finished.size < victims.size && Date.now() - killedAt < 120_000) {
    for (const v of victims) {
      const j = store.journals.get(v);
      if (!finished.has(v) && (j?.step === 'done' || j?.step === 'failed')) finished.set(v, Date.now() - killedAt);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  abort.abort();
  clearInterval(agents);
  await running;

  const floor = TTL_MS + DETACH_MS + ATTACH_MS + MOUNT_MS + START_MS;
  const times = [...finished.values()].sort((a, b) => a - b);
  const failed = [...victims].filter((v) => store.journals.get(v)?.step !== 'done').length;
  const max = times.at(-1) ?? NaN;
  console.log(`${victims.size} failover(s) (${dying} of ${hosts} hosts dying, ${volumesPerHost} volumes each), scale ${SCALE}:`);
  console.log(`  floor (TTL ${TTL_MS} + detach ${DETACH_MS} + attach ${ATTACH_MS} + mount ${MOUNT_MS} + start ${START_MS}) = ${floor} ms`);
  console.log(`  done: ${finished.size - failed}/${victims.size}, failed: ${failed}; first ${times[0]} ms, median ${times[Math.floor(times.length / 2)]} ms, last ${max} ms`);
  const reasons = new Map<string, number>();
  for (const v of victims) {
    const e = store.journals.get(v)?.error;
    if (e) reasons.set(e.replace(/i-[0-9a-f]+|vol-[0-9a-f]+|\/dev\/\w+/g, '…'), (reasons.get(e.replace(/i-[0-9a-f]+|vol-[0-9a-f]+|\/dev\/\w+/g, '…')) ?? 0) + 1);
  }
  for (const v of victims) { const j = store.journals.get(v); if (j?.step !== "done") { console.log(`  e.g. ${v}: step ${j?.step}, ${j?.error ?? j?.history.at(-1)?.note}`); break; } }
  for (const [reason, count] of reasons) console.log(`  failed ×${count}: ${reason}`);
  console.log(`  overhead of the last over the floor: ${max - floor} ms; throttled EC2 calls (retried): ${throttled.count}`);
}

await scenario(2, 1, 1);
if (!process.env.BENCH_ONE) await scenario(20, 10, 10);
