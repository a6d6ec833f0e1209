/**
 * EC2 calls and time per attach+detach cycle against the simulated endpoint, with AWS-like
 * latencies scaled down by SCALE. Prints figures only. Run: `npx tsx bench/ec2-calls.ts`.
 *
 * Time is scaled consistently: latencies ÷SCALE and request rates ×SCALE (bursts unchanged), so a
 * scaled second here behaves like SCALE real seconds against EC2.
 */
import { createEc2, EC2_RATE_DEFAULTS, type Ec2Port } from '../src/ec2/index.js';
import { AWS_THROTTLE_DEFAULTS, startEc2Endpoint, type Ec2Endpoint } from '../src/sim/ec2/index.js';

const SCALE = 10;
const AZ = 'us-east-1a';
/** AWS-like attach 2–8 s and detach 2–10 s: low, typical and high figures, each run as one cycle. */
const SINGLE_CASES = [
  { attachMs: 2_000, detachMs: 2_000 },
  { attachMs: 5_000, detachMs: 6_000 },
  { attachMs: 8_000, detachMs: 10_000 },
];
const SINGLE_REPEAT = 5;
/** The concurrent run uses the typical figures. */
const CONCURRENT = { cycles: 100, attachMs: 5_000, detachMs: 6_000 };

let hex = 0x1000;
const nextHex = (): string => (hex++).toString(16).padStart(17, '0');

interface Cycle {
  totalMs: number;
  /** How long after EC2 finished the transition (simulator's history) the wait returned: pure polling lateness. */
  attachLateMs: number;
  detachLateMs: number;
  /** Wait time beyond the injected latency, measured from the call's start (includes token queueing and round trips). */
  attachBeyondMs: number;
  detachBeyondMs: number;
}

/** One attach → waitAttached → detachAndWait cycle. */
async function cycle(ec2: Ec2Port, endpoint: Ec2Endpoint, instanceId: string, device: string, lat: { attachMs: number; detachMs: number }): Promise<Cycle> {
  const volumeId = endpoint.sim.addVolume({ volumeId: `vol-${nextHex()}`, az: AZ }).volumeId;
  const t0 = Date.now();
  await ec2.attachVolume(volumeId, instanceId, device);
  await ec2.waitAttached(volumeId, instanceId, { timeoutMs: 120_000 });
  const tAttached = Date.now();
  await ec2.detachAndWait(volumeId, instanceId, { forceAfterMs: 120_000, allowForce: false, timeoutMs: 120_000 });
  const tDone = Date.now();
  const at = (state: string): number => endpoint.sim.history.find((h) => h.volumeId === volumeId && h.state === state)?.at ?? NaN;
  return {
    totalMs: tDone - t0,
    attachLateMs: tAttached - at('attached'),
    detachLateMs: tDone - at('detached'),
    attachBeyondMs: tAttached - t0 - lat.attachMs / SCALE,
    detachBeyondMs: tDone - tAttached - lat.detachMs / SCALE,
  };
}

function stats(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  const pct = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return `mean ${mean.toFixed(0)} ms, p50 ${pct(0.5).toFixed(0)}, p95 ${pct(0.95).toFixed(0)}, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(0)}`;
}

async function main(): Promise<void> {
  const endpoint = await startEc2Endpoint();
  endpoint.sim.setThrottle({
    enabled: true,
    scale: 1,
    buckets: Object.fromEntries(Object.entries(AWS_THROTTLE_DEFAULTS).map(([k, b]) => [k, { burst: b.burst, perSecond: b.perSecond * SCALE }])),
  });
  const bucket = Object.fromEntries(Object.entries(EC2_RATE_DEFAULTS).map(([k, b]) => [k, { burst: b.burst, perSecond: b.perSecond * SCALE }]));
  const ec2 = createEc2({ endpoint: endpoint.url, region: 'us-east-1', bucket });
  console.log(`ebs-failover EC2 layer bench: AWS-like latencies ÷${SCALE}, EC2 rate limits ×${SCALE} (bursts as on AWS)`);

  for (const lat of SINGLE_CASES) {
    endpoint.sim.setLatencies({ attachMs: lat.attachMs / SCALE, detachMs: lat.detachMs / SCALE });
    const instanceId = endpoint.sim.addInstance({ instanceId: `i-${nextHex()}`, az: AZ }).instanceId;
    endpoint.sim.resetStats();
    const runs: Cycle[] = [];
    // One at a time, SINGLE_REPEAT times: single samples are noisy on a shared machine.
    for (let i = 0; i < SINGLE_REPEAT; i++) runs.push(await cycle(ec2, endpoint, instanceId, '/dev/sdf', lat));
    const s = endpoint.sim.stats();
    const mean = (f: (c: Cycle) => number): string => (runs.reduce((sum, c) => sum + f(c), 0) / runs.length).toFixed(0);
    console.log(
      `single cycle attach ${lat.attachMs / 1000}s/detach ${lat.detachMs / 1000}s (scaled ${lat.attachMs / SCALE}/${lat.detachMs / SCALE} ms), mean of ${SINGLE_REPEAT}: ` +
        `${(s.total / SINGLE_REPEAT).toFixed(1)} requests/cycle, ${mean((c) => c.totalMs)} ms/cycle, ` +
        `polling lateness attach ${mean((c) => c.attachLateMs)} ms, detach ${mean((c) => c.detachLateMs)} ms; ` +
        `wait beyond latency attach ${mean((c) => c.attachBeyondMs)} ms, detach ${mean((c) => c.detachBeyondMs)} ms`,
    );
  }

  endpoint.sim.setLatencies({ attachMs: CONCURRENT.attachMs / SCALE, detachMs: CONCURRENT.detachMs / SCALE });
  // Up to 11 data devices per instance (/dev/sd[f-p]): spread the cycles over enough instances.
  const letters = 'fghijklmnop';
  const instances = Array.from({ length: Math.ceil(CONCURRENT.cycles / letters.length) }, () => endpoint.sim.addInstance({ instanceId: `i-${nextHex()}`, az: AZ }).instanceId);
  endpoint.sim.resetStats();
  const t0 = performance.now();
  const cycles = await Promise.all(
    Array.from({ length: CONCURRENT.cycles }, (_, i) =>
      cycle(ec2, endpoint, instances[Math.floor(i / letters.length)] as string, `/dev/sd${letters[i % letters.length] ?? 'f'}`, CONCURRENT),
    ),
  );
  const wall = performance.now() - t0;
  const s = endpoint.sim.stats();
  console.log(
    `${CONCURRENT.cycles} concurrent cycles (attach ${CONCURRENT.attachMs / SCALE} ms, detach ${CONCURRENT.detachMs / SCALE} ms scaled): ` +
      `${s.total} requests ${JSON.stringify(s.byAction)}, throttled ${s.errorsByCode.RequestLimitExceeded ?? 0}, wall ${wall.toFixed(0)} ms`,
  );
  console.log(`  cycle time: ${stats(cycles.map((c) => c.totalMs))}`);
  console.log(`  polling lateness attach: ${stats(cycles.map((c) => c.attachLateMs))}`);
  console.log(`  polling lateness detach: ${stats(cycles.map((c) => c.detachLateMs))}`);
  console.log(`  wait beyond latency attach (incl. queueing for mutating tokens): ${stats(cycles.map((c) => c.attachBeyondMs))}`);
  console.log(`  wait beyond latency detach (incl. queueing for mutating tokens): ${stats(cycles.map((c) => c.detachBeyondMs))}`);
  await endpoint.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
