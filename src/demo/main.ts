import { compactLogLine, type CliResult } from '../testing/proc.js';
import type { Member } from '../testing/world.js';
import { startDemoCluster, type DemoCluster } from './cluster.js';
import { ClusterFollower } from './follow.js';
import { formatEntry, formatMilestones, isEchoOfJournal, milestones, type TimelineEntry } from './timeline.js';

/**
 * `npm run demo`: one machine, one minute. A real etcd, the EC2 endpoint, the fleet stand-in, four
 * host agents and a controller (real `failover` processes). Registers postgres@vol-…, kills the host
 * that runs it, prints the failover as it happens, brings the host back, moves the service back by
 * hand and takes a snapshot, checking throughout that no two hosts ever held the volume. Exit 0 on
 * success, 1 (with what went wrong and the daemons' last log lines) on any failure.
 */

/** Generous bounds (2 shared cores): each step normally takes a few seconds. */
const HOSTS_UP_TIMEOUT_MS = 30_000;
const PLACED_TIMEOUT_MS = 30_000;
const FAILOVER_TIMEOUT_MS = 40_000;

const started = Date.now();
const out = (line = ''): void => void process.stdout.write(`${line}\n`);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

let fatal: (err: Error) => void = () => undefined;
/** Rejects as soon as a daemon dies unexpectedly or a safety check fails, ending whatever step waits. */
const fatalPromise = new Promise<never>((_, reject) => (fatal = reject));
fatalPromise.catch(() => undefined);
const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, fatalPromise]);

/** Timeline lines are printed relative to the current phase's start. */
let phaseT0 = started;
let printEntries = false;
/** fleet metadata key → volume, so a removal in the fleet log can be shown against its volume. */
const metadataVolumes = new Map<string, string>();

function phase(title: string): void {
  phaseT0 = Date.now();
  out();
  out(`━━ ${title} (${secs(phaseT0 - started)} into the demo)`);
}

async function cliOk(cluster: DemoCluster, args: string[], onLine?: (line: string) => void): Promise<CliResult> {
  out(`$ failover ${args.join(' ')}`);
  const t = Date.now();
  const res = await guard(cluster.world.cli(args, onLine ? { onLine } : {}));
  if (!onLine) for (const line of res.stdout.trimEnd().split('\n')) if (line) out(`  ${line}`);
  out(`  (exit ${res.code}, ${secs(Date.now() - t)})`);
  if (res.code !== 0) throw new Error(`failover ${args.join(' ')} exited ${res.code}: ${res.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  return res;
}

function hostOf(cluster: DemoCluster, instanceId: string): Member {
  const host = cluster.hosts.find((h) => h.id === instanceId);
  if (!host) throw new Error(`${instanceId} is not a demo host`);
  return host;
}

async function scenario(cluster: DemoCluster, follower: ClusterFollower): Promise<void> {
  const { sim } = cluster.world.ec2;
  const label = (instanceId: string): string => `${cluster.names.get(instanceId) ?? '?'} (${instanceId})`;
  out(`etcd ${cluster.world.etcd.endpoints.join(',')}, EC2 ${cluster.world.ec2.url}, temp dir ${cluster.world.dir}`);
  for (const h of cluster.hosts) out(`  ${h.name}  ${h.id}  ${h.az ?? '?'}  agent pid ${h.proc.pid ?? '-'}`);
  out(`  controller pid ${cluster.controller.proc.pid ?? '-'}`);
  await guard(follower.waitFor('4 hosts to register', HOSTS_UP_TIMEOUT_MS, () => (follower.hosts.size >= cluster.hosts.length ? true : undefined)));
  out(`all ${cluster.hosts.length} agents registered after ${secs(Date.now() - started)}`);

  phase('1. register postgres on a new 20 GiB volume in us-east-1a');
  const volumeId = sim.addVolume({ az: 'us-east-1a', sizeGiB: 20, tags: { Name: 'pgdata' } }).volumeId;
  const unit = `postgres@${volumeId}`;
  metadataVolumes.set('postgres', volumeId);
  printEntries = true;
  await cliOk(cluster, ['service', 'add', unit, '--mount-unit', 'data-postgres.mount', '--mount-point', '/data/postgres', '--metadata-key', 'postgres', '--label', 'role=db']);
  const first = await guard(follower.waitFor(`${unit} to become active`, PLACED_TIMEOUT_MS, () => follower.activeHolder(volumeId)));
  // The controller closes the placement's journal once it has seen the report: kill only after that.
  await guard(follower.waitFor(`the controller to finish placing ${unit}`, PLACED_TIMEOUT_MS, () => (follower.journals.get(volumeId)?.step === 'done' ? true : undefined)));
  out(`${unit} active on ${label(first)} after ${secs(Date.now() - phaseT0)}`);

  const dead = hostOf(cluster, first);
  phase(`2. ${dead.name} dies (SIGKILL of its agent): automatic failover`);
  const killedAt = Date.now();
  await dead.proc.kill();
  out(formatEntry({ at: killedAt, source: 'demo', volumeId, instanceId: first, what: 'killed', detail: 'SIGKILL' }, phaseT0, cluster.names));
  const second = await guard(
    follower.waitFor(`${unit} to become active on another host`, FAILOVER_TIMEOUT_MS, () => follower.activeHolder(volumeId, first)),
  );
  out(`failover done: ${formatMilestones(milestones(follower.entries, killedAt, first), cluster.names)}`);
  const secondHost = hostOf(cluster, second);
  if (secondHost.az !== dead.az) throw new Error(`${unit} moved across AZs: ${dead.az} → ${secondHost.az}`);
  // The host boots while the status table is printed (agent start-up takes a few seconds).
  const rebooted = dead.respawn();
  rebooted.catch(() => undefined);
  await cliOk(cluster, ['status']);

  phase(`3. ${dead.name} comes back; move ${unit} back by hand`);
  await guard(follower.waitFor(`${dead.name} to register again`, HOSTS_UP_TIMEOUT_MS, () => (follower.hosts.has(first) ? true : undefined)));
  await guard(rebooted);
  out(`${dead.name} registered again (agent pid ${dead.proc.pid ?? '-'})`);
  await cliOk(cluster, [unit, '--to', first, '--timeout', String(FAILOVER_TIMEOUT_MS / 1000)], (line) => out(`  │ ${line}`));
  await guard(follower.waitFor(`${unit} to be active on ${dead.name}`, FAILOVER_TIMEOUT_MS, () => (follower.activeHolder(volumeId) === first ? true : undefined)));
  out(`${unit} is back on ${label(first)} after ${secs(Date.now() - phaseT0)}`);

  printEntries = false;
  phase('4. snapshot');
  await cliOk(cluster, ['snapshot', unit]);
  await cliOk(cluster, ['snapshot', 'list', unit]);

  const violations = [...follower.tracker.violations, ...follower.attachmentViolations()];
  if (violations.length > 0) throw new Error(`safety: ${violations.map((v) => v.what).join('; ')}`);
  const changes = sim.history.filter((h) => h.volumeId === volumeId).length;
  const reports = follower.entries.filter((e) => e.source === 'agent').length;
  out();
  out(`safety: ${volumeId} never held by two hosts (${changes} EC2 attachment changes, ${reports} agent reports checked)`);
}

async function main(): Promise<number> {
  let cluster: DemoCluster | undefined;
  let follower: ClusterFollower | undefined;
  const onSignal = (): void => fatal(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    out('ebs-failover demo: starting etcd, the EC2 endpoint, the fleet stand-in, 4 agents and a controller');
    cluster = await guard(startDemoCluster({ onDaemonExit: (err) => fatal(err) }));
    const { world, names } = cluster;
    if (!world.fleet) throw new Error('the demo world has no fleet stand-in');
    const sims = { ec2: world.ec2.sim, fleet: world.fleet.state, machines: cluster.machines, metadataVolumes };
    follower = new ClusterFollower(world.client, world.ks, sims, {
      onEntry: (e: TimelineEntry) => {
        if (!printEntries || e.at < phaseT0 - 1_000 || isEchoOfJournal(e, follower?.entries ?? [])) return;
        out(formatEntry(e, phaseT0, names));
      },
      onViolation: (v) => fatal(new Error(`safety: ${v.what}`)),
    });
    await guard(follower.start());
    await scenario(cluster, follower);
    out(`demo OK in ${secs(Date.now() - started)}`);
    return 0;
  } catch (err) {
    out();
    out(`demo FAILED after ${secs(Date.now() - started)}: ${(err as Error).message}`);
    for (const d of cluster ? [cluster.controller, ...cluster.hosts] : []) {
      out(`--- last lines of ${d.name} (${d.proc.logFile ?? 'stderr'})`);
      for (const line of await d.proc.logTail(8)) out(`  ${compactLogLine(line).slice(0, 300)}`);
    }
    return 1;
  } finally {
    await follower?.close().catch(() => undefined);
    await cluster?.world.stop();
  }
}

process.exit(await main());
