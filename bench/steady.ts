/**
 * Steady state at scale (issue 12): 10,000 registered services on 500 hosts, nothing failing. Prints
 * the controller's RSS and CPU, etcd's requests/s and writes/s (from its /metrics and its revision),
 * EC2 requests per minute by action (the endpoint's stats), and the time of one decide pass over
 * everything; not part of `npm test`.
 *
 * The world is src/testing/world.ts with no agent processes: the 500 hosts are lightweight lease-holders
 * in this process (one etcd lease each, TTL 10 s, kept alive by the etcd3 client as an agent's is),
 * holding the same records an agent writes (hosts/<id>, status/<id>/<volume>, under the lease); the
 * volumes are attached to them in the EC2 endpoint and placed in etcd before the controller starts.
 * The controller is the real `failover controller` daemon as production runs it: the built CLI
 * (`node dist/cli/main.js`, world.ts `cliRuntime: 'dist'`; this bench runs `npm run build` first)
 * configured through EBS_FAILOVER_* with the configuration's defaults (unscaled: TTLs, resync, AWS's
 * own client-side and endpoint buckets). BENCH_RUNTIME=tsx runs the same daemon through tsx, and
 * BENCH_RUNTIME=fixture the test fixture (test/fixtures/controller-proc.ts, tsx), for comparison.
 *
 *   npm run bench:steady                                  # 10,000 services, 500 hosts, 60 s window
 *   BENCH_SERVICES=2000 BENCH_HOSTS=100 BENCH_WINDOW_S=30 npm run bench:steady
 *   BENCH_HEAP_SNAPSHOT=1 npm run bench:steady            # also writes a V8 heap snapshot of the controller
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import type { Etcd3, Lease } from 'etcd3';
import { buildObserved, volumesNeedingWork } from '../src/controller/observe.js';
import { decide } from '../src/controller/decide.js';
import { isMutation } from '../src/controller/decision.js';
import { DEFAULT_DECIDE_CONFIG } from '../src/controller/observed.js';
import type { StoreSnapshot } from '../src/controller/ports.js';
import type { InstanceInfo, VolumeInfo } from '../src/ec2/types.js';
import { encodeRecord, type AgentReport, type HostRecord, type Keyspace, type Placement, type ServiceRecord } from '../src/keyspace/index.js';
import { AWS_THROTTLE_DEFAULTS, type Ec2Sim } from '../src/sim/ec2/index.js';
import { buildWorld } from '../src/testing/world.js';
import { AZ, CONTROLLER_DEFAULTS, etcdMetrics, metricSum, sleep } from './real-world.js';

const SERVICES = Number(process.env.BENCH_SERVICES ?? '10000');
const HOSTS = Number(process.env.BENCH_HOSTS ?? '500');
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? '60');
/** Agent defaults (src/config/schema.ts): lease TTL 10 s, fence margin 3 s; controller election TTL 10 s. */
const TTL_MS = 10_000;
const GOALS = { rssMb: 200, etcdWritesPerS: 0, describePer200PerResync: 1 };
const RESYNC_MS = 30_000;
const RUNTIME = (process.env.BENCH_RUNTIME ?? 'dist') as 'dist' | 'tsx' | 'fixture';
if (!['dist', 'tsx', 'fixture'].includes(RUNTIME)) throw new RangeError(`BENCH_RUNTIME ${RUNTIME}: dist, tsx or fixture`);
/** The names the placement schema accepts (/dev/xvd[f-p], /dev/sd[f-p]): 22, enough for 20 volumes per host. */
const DEVICES = ['xvd', 'sd'].flatMap((p) => 'fghijklmnop'.split('').map((c) => `/dev/${p}${c}`));

const inst = (h: number): string => `i-${h.toString(16).padStart(17, '0')}`;
const vol = (v: number): string => `vol-${v.toString(16).padStart(17, '0')}`;

interface Seeded {
  leases: Lease[];
  snap: StoreSnapshot;
}

/** Runs `fns` with at most `width` in flight. */
async function pool(fns: (() => Promise<unknown>)[], width: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < fns.length) {
      const fn = fns[next];
      next += 1;
      await fn?.();
    }
  }));
}

async function seed(client: Etcd3, ks: Keyspace, sim: Ec2Sim): Promise<Seeded> {
  const now = Date.now();
  const hosts = new Map<string, HostRecord>();
  const services = new Map<string, ServiceRecord>();
  const placements = new Map<string, Placement>();
  const reports = new Map<string, AgentReport>();
  for (let h = 1; h <= HOSTS; h += 1) {
    sim.addInstance({ instanceId: inst(h), az: AZ });
    hosts.set(inst(h), { instanceId: inst(h), az: AZ, privateIp: '127.0.0.1', machineId: `machine-${h}`, agentVersion: 'bench', labels: {}, leaseTtlMs: TTL_MS, fenceMarginMs: 3_000, registeredAt: now });
  }
  const perHost = Math.ceil(SERVICES / HOSTS);
  if (perHost > DEVICES.length) throw new RangeError(`${perHost} volumes per host: more than ${DEVICES.length} device names`);
  for (let v = 1; v <= SERVICES; v += 1) {
    const volumeId = vol(v);
    const instanceId = inst(((v - 1) % HOSTS) + 1);
    const device = DEVICES[Math.floor((v - 1) / HOSTS)] as string;
    sim.addVolume({ volumeId, az: AZ });
    sim.attachVolume(volumeId, instanceId, device);
    const unit = `db${v}@${volumeId}`;
    services.set(unit, { unit, volumeId, mountUnit: `data-${volumeId}.mount`, mountPoint: `/data/${volumeId}`, metadataKey: `db${v}`, requiredLabels: {} });
    placements.set(volumeId, { volumeId, unit, instanceId, device, generation: 1, updatedAt: now });
    reports.set(`${instanceId}/${volumeId}`, { instanceId, volumeId, unit, generation: 1, phase: 'active', mountActive: true, unitActive: true, error: null, at: now });
  }
  // Leases first, one per host, kept alive like an agent's (the etcd3 client renews at TTL/3).
  const leases = new Map<string, Lease>();
  for (const id of hosts.keys()) {
    const lease = client.lease(TTL_MS / 1000);
    lease.on('lost', (err) => console.error(`lease of ${id} lost: ${err.message}`));
    leases.set(id, lease);
  }
  const puts: (() => Promise<unknown>)[] = [];
  for (const [id, h] of hosts) puts.push(() => (leases.get(id) as Lease).put(ks.host(id)).value(encodeRecord(h)).exec());
  for (const r of reports.values()) puts.push(() => (leases.get(r.instanceId) as Lease).put(ks.status(r.instanceId, r.volumeId)).value(encodeRecord(r)).exec());
  for (const s of services.values()) puts.push(() => client.put(ks.service(s.unit)).value(encodeRecord(s)).exec());
  for (const p of placements.values()) puts.push(() => client.put(ks.placement(p.volumeId)).value(encodeRecord(p)).exec());
  const t0 = Date.now();
  await pool(puts, 64);
  console.log(`seeded ${puts.length} etcd keys (${HOSTS} leased host records, ${SERVICES} leased reports, ${SERVICES} services, ${SERVICES} placements) in ${Date.now() - t0} ms`);
  return { leases: [...leases.values()], snap: { hosts, services, placements, reports, journals: new Map(), requests: new Map() } };
}

function procStat(pid: number): { cpuTicks: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command: state is [0]; utime [11], stime [12] (clock ticks, 100 per second on Linux).
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return { cpuTicks, rssMb: rssKb / 1024 };
}

/** Writes to the keyspace bump etcd's revision; lease keep-alives do not. */
async function revision(client: Etcd3): Promise<number> {
  const res = await client.get('/bench-revision-probe').exec();
  return Number(res.header.revision);
}

interface EtcdCounters {
  rev: number;
  unary: number;
  streamMsgs: number;
  keepAlives: number;
  walBytes: number;
  puts: number;
}

async function etcdCounters(client: Etcd3, metrics: () => Promise<string[]>): Promise<EtcdCounters> {
  const texts = await metrics();
  const sum = (name: string, filter = ''): number => texts.reduce((a, t) => a + metricSum(t, name, filter), 0);
  return {
    rev: await revision(client),
    unary: sum('grpc_server_handled_total', 'grpc_type="unary"'),
    streamMsgs: sum('grpc_server_msg_received_total', 'grpc_type="bidi_stream"'),
    keepAlives: sum('grpc_server_msg_received_total', 'grpc_method="LeaseKeepAlive"'),
    walBytes: sum('etcd_disk_wal_write_bytes_total'),
    puts: sum('etcd_mvcc_put_total'),
  };
}

function decidePass(seeded: Seeded, sim: Ec2Sim): { ms: number; volumes: number; mutations: number } {
  const volumes = new Map<string, VolumeInfo>();
  for (const v of sim.state().volumes) {
    const a = v.attachment;
    volumes.set(v.volumeId, { volumeId: v.volumeId, az: v.az, state: v.state, sizeGiB: 10, tags: {}, attachments: a ? [{ instanceId: a.instanceId, device: a.device, state: a.state }] : [] });
  }
  const instances = new Map<string, InstanceInfo>();
  for (const id of seeded.snap.hosts.keys()) instances.set(id, { instanceId: id, az: AZ, state: 'running', privateIp: null, devices: ['/dev/xvda'], tags: {} });
  const t0 = performance.now();
  const ids = volumesNeedingWork(seeded.snap, true);
  let mutations = 0;
  const now = Date.now();
  for (const volumeId of ids) {
    // As the loop does: one Observed per volume over the same snapshot (a working copy in the loop).
    const o = buildObserved({ now, config: DEFAULT_DECIDE_CONFIG, snap: seeded.snap, knownHosts: seeded.snap.hosts, volumes, instances, graceUntil: null, pacing: null });
    const d = decide(o, volumeId);
    if (isMutation(d)) mutations += 1;
  }
  return { ms: performance.now() - t0, volumes: ids.length, mutations };
}

let seeded: Seeded | null = null;
/** Each EC2 request the controller sent (through its proxy): when, and which action. */
const ec2Log: { at: number; action: string }[] = [];

/**
 * Bursts of DescribeVolumes (a resync asks for every volume in one go), split at gaps over 5 s; only
 * whole ones: begun within [from, to) and over 5 s before `to` (a resync cut by the window is not one).
 */
function resyncBursts(from: number, to: number): { start: number; calls: number; ms: number }[] {
  const out: { start: number; calls: number; last: number }[] = [];
  for (const r of ec2Log) {
    if (r.action !== 'DescribeVolumes') continue;
    const cur = out.at(-1);
    if (cur !== undefined && r.at - cur.last <= 5_000) {
      cur.calls += 1;
      cur.last = r.at;
    } else out.push({ start: r.at, calls: 1, last: r.at });
  }
  return out.filter((b) => b.start >= from && b.last < to - 5_000).map((b) => ({ start: b.start, calls: b.calls, ms: b.last - b.start }));
}
if (RUNTIME === 'dist') {
  console.log('building dist/ (npm run build) …');
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
// The controller runs as units/failover-controller@.service runs it: with the unit's NODE_OPTIONS.
const unitNodeOptions = /^Environment=NODE_OPTIONS=(.*)$/m.exec(readFileSync(new URL('../units/failover-controller@.service', import.meta.url), 'utf8'))?.[1];
if (unitNodeOptions !== undefined) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} ${unitNodeOptions}`.trim();
const HEAP_SNAPSHOT = process.env.BENCH_HEAP_SNAPSHOT === '1';
// The daemons inherit this environment (world.ts keeps all but EBS_FAILOVER_*): SIGUSR2 makes the controller write a snapshot.
if (HEAP_SNAPSHOT) process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --heapsnapshot-signal=SIGUSR2`.trim();
const world = await buildWorld({
  daemons: RUNTIME === 'fixture' ? 'fixtures' : 'cli',
  cliRuntime: RUNTIME === 'dist' ? 'dist' : 'tsx',
  name: 'steady',
  hosts: [],
  controllers: 1,
  services: [],
  registered: 0,
  leaseTtlMs: TTL_MS,
  fenceMarginMs: 3_000,
  electionTtlMs: 10_000,
  forceDetachAfterMs: CONTROLLER_DEFAULTS.forceDetachAfterMs,
  reportTimeoutMs: CONTROLLER_DEFAULTS.reportTimeoutMs,
  latencies: { attachMs: 0, detachMs: 0 },
  controllerExtra: { parallelism: CONTROLLER_DEFAULTS.parallelism },
  onEc2Request: (_c, req) => ec2Log.push({ at: req.at, action: /Action=(\w+)/.exec(req.body)?.[1] ?? '?' }),
  beforeProcesses: async ({ client, ks, ec2 }) => {
    // AWS's own buckets, unscaled: the account's real budget.
    ec2.sim.setThrottle({ enabled: true, scale: 1, buckets: { ...AWS_THROTTLE_DEFAULTS } });
    seeded = await seed(client, ks, ec2.sim);
    await sleep(200); // attach latency 0: every attachment settles on the next timer
  },
});
try {
  const s = seeded as Seeded | null;
  if (s === null) throw new Error('not seeded');
  const ctl = world.controllers[0];
  const pid = ctl?.proc.pid;
  if (ctl === undefined || pid === undefined) throw new Error('no controller process');
  // Election, the host grace (TTL × 4/3), the first full resync: then the steady state.
  const settleMs = 10_000 + TTL_MS + TTL_MS / 3 + 5_000;
  console.log(`controller started (pid ${pid}); settling ${settleMs} ms (election, host grace, first resync) …`);
  await sleep(settleMs);
  const startupRss = procStat(pid).rssMb;
  const metrics = (): Promise<string[]> => etcdMetrics(world);
  world.ec2.sim.resetStats();
  // What is written during the window, by kind of key (the goal: nothing but lease keep-alives, which write no key).
  const written = new Map<string, number>();
  const watcher = await world.client.watch().prefix('/').create();
  const count = (kind: string) => (kv: { key: Buffer }): void => {
    const rel = kv.key.toString().replace(world.ks.prefix, '');
    const what = `${kind} ${rel.split('/')[0] ?? rel}/`;
    written.set(what, (written.get(what) ?? 0) + 1);
  };
  const samples: string[] = [];
  const placementKeys = new Set<string>();
  watcher.on('put', (kv) => {
    if (kv.key.toString().startsWith(world.ks.placementsPrefix())) placementKeys.add(kv.key.toString());
  });
  watcher.on('put', count('put'));
  watcher.on('put', (kv) => {
    if (samples.length < 3) samples.push(`${kv.key.toString().replace(world.ks.prefix, '')} = ${kv.value.toString().slice(0, 300)}`);
  });
  watcher.on('delete', count('delete'));
  const e0 = await etcdCounters(world.client, metrics);
  const p0 = procStat(pid);
  const t0 = Date.now();
  let rssMax = p0.rssMb;
  while (Date.now() - t0 < WINDOW_S * 1000) {
    await sleep(1_000);
    rssMax = Math.max(rssMax, procStat(pid).rssMb);
  }
  const elapsedS = (Date.now() - t0) / 1000;
  const p1 = procStat(pid);
  const e1 = await etcdCounters(world.client, metrics);
  await watcher.cancel();
  const stats = world.ec2.sim.stats();
  const journals = await world.client.getAll().prefix(world.ks.journalPrefix()).keys();
  const pass = decidePass(s, world.ec2.sim);

  const perS = (a: number, b: number): number => (b - a) / elapsedS;
  const cpuPct = ((p1.cpuTicks - p0.cpuTicks) / 100 / elapsedS) * 100;
  const writesPerS = perS(e0.rev, e1.rev);
  const perMin = (n: number): number => (n / elapsedS) * 60;
  const describeVolumes = stats.byAction.DescribeVolumes ?? 0;
  const bursts = resyncBursts(t0, t0 + elapsedS * 1000);
  const whole = bursts.filter((b) => b.calls >= 2);
  // Per resync as measured (bursts of DescribeVolumes); if none was seen whole, as the configured period implies.
  const perResync = whole.length > 0 ? whole.reduce((a, b) => a + b.calls, 0) / whole.length : describeVolumes / ((elapsedS * 1000) / RESYNC_MS);
  const describePer200 = perResync / (SERVICES / 200);
  console.log(`\n## steady state: ${SERVICES} services on ${HOSTS} hosts, ${elapsedS.toFixed(0)} s window, nothing failing; controller: ${RUNTIME === 'dist' ? 'failover controller (node dist/cli/main.js, built)' : RUNTIME === 'tsx' ? 'failover controller through tsx' : 'test fixture controller-proc.ts through tsx'}`);
  console.log(`   controller RSS ${p1.rssMb.toFixed(0)} MB (max ${rssMax.toFixed(0)} MB; ${startupRss.toFixed(0)} MB after settling); CPU ${cpuPct.toFixed(1)} % of one core`);
  console.log(`   etcd (3 members, all clients: the controller and ${HOSTS} lease-holders): ${perS(e0.unary, e1.unary).toFixed(1)} unary requests/s, ${perS(e0.streamMsgs, e1.streamMsgs).toFixed(1)} stream messages/s (LeaseKeepAlive ${perS(e0.keepAlives, e1.keepAlives).toFixed(1)}/s ≈ ${HOSTS} / (TTL/3) on the leader)`);
  console.log(`   etcd writes (revision) ${writesPerS.toFixed(2)}/s, puts ${perS(e0.puts, e1.puts).toFixed(2)}/s, WAL bytes written ${perS(e0.walBytes, e1.walBytes).toFixed(0)} B/s (all members)`);
  console.log(`   keys written in the window: ${[...written].map(([k, n]) => `${k} ×${n}`).join(', ') || 'none'}`);
  for (const x of samples) console.log(`     e.g. ${x}`);
  if (placementKeys.size > 0) console.log(`   distinct placements rewritten: ${placementKeys.size}; controller log tail: ${ctl.proc.stderr.slice(-1_500)}`);
  console.log(`   EC2 ${perMin(stats.total).toFixed(1)} requests/min: ${Object.entries(stats.byAction).map(([a, c]) => `${a} ${perMin(c).toFixed(1)}/min`).join(', ')}; errors ${JSON.stringify(stats.errorsByCode)}`);
  console.log(`   whole DescribeVolumes bursts (resyncs, configured every ${RESYNC_MS / 1000} s) in the window: ${bursts.map((b) => `+${((b.start - t0) / 1000).toFixed(0)} s: ${b.calls} calls over ${b.ms} ms`).join('; ') || 'none'}`);
  console.log(`   DescribeVolumes per resync ${perResync.toFixed(1)} for ${SERVICES} services = ${describePer200.toFixed(2)} per 200 services`);
  console.log(`   one decide pass over everything (volumesNeedingWork + buildObserved/decide per volume, in-process, no I/O): ${pass.ms.toFixed(0)} ms for ${pass.volumes} volumes (${pass.mutations} would act)`);
  console.log(`   journals written: ${journals.length} (nothing failed: expected 0)`);
  console.log('');
  console.log(`rss_mb: ${p1.rssMb.toFixed(0)}`);
  console.log(`rss_max_mb: ${rssMax.toFixed(0)}`);
  console.log(`cpu_pct: ${cpuPct.toFixed(1)}`);
  console.log(`etcd_writes_per_s: ${writesPerS.toFixed(1)}`);
  console.log(`ec2_calls_per_min: ${perMin(stats.total).toFixed(0)}`);
  console.log(`describe_per_200_services_per_resync: ${describePer200.toFixed(2)}`);
  console.log(`decide_pass_ms: ${pass.ms.toFixed(0)}`);
  console.log(`goal rss (≤ ${GOALS.rssMb} MB): ${rssMax <= GOALS.rssMb ? 'met' : 'missed'}`);
  console.log(`goal etcd writes (none beyond keep-alives): ${writesPerS <= GOALS.etcdWritesPerS ? 'met' : 'missed'}`);
  console.log(`goal EC2 (≤ 1 describe per 200 services per resync): ${describePer200 <= GOALS.describePer200PerResync ? 'met' : 'missed'}`);
  if (HEAP_SNAPSHOT) {
    // After the figures: writing a snapshot takes about the heap's size again. Written in the daemon's cwd (the repo).
    const before = new Set(readdirSync(world.repo).filter((f) => f.endsWith('.heapsnapshot')));
    process.kill(pid, 'SIGUSR2');
    const deadline = Date.now() + 180_000;
    let file: string | undefined;
    while (Date.now() < deadline && file === undefined) {
      await sleep(2_000);
      file = readdirSync(world.repo).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    }
    // Complete once its size stops growing.
    let size = -1;
    while (file !== undefined && Date.now() < deadline) {
      const now = Number(execFileSync('stat', ['-c', '%s', `${world.repo}/${file}`]).toString().trim());
      if (now > 0 && now === size) break;
      size = now;
      await sleep(2_000);
    }
    console.log(`heap snapshot of the controller: ${file === undefined ? 'not written' : `${world.repo}${file} (${(size / 1e6).toFixed(0)} MB)`}`);
  }
  for (const l of s.leases) await l.revoke().catch(() => undefined);
} finally {
  await world.stop();
}
process.exit(0);
