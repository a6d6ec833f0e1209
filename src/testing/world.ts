/**
 * One world on loopback, built the same way for chaos, tests, demo and bench: a 3-member etcd, the EC2
 * endpoint (`src/sim/ec2`, served over HTTP and used through the real SDK), N host agents and M
 * controllers as separate processes (test/fixtures/controller-agent.ts and controller-proc.ts), and a
 * fault proxy (fault-proxy.ts) on every process's path to each etcd member and every controller's path
 * to EC2, so one process can be partitioned alone.
 *
 * The same builder starts the demo's world (`daemons: 'cli'`): the real `failover agent` and `failover
 * controller` daemons (configured through EBS_FAILOVER_*, the in-memory systemd in each agent) instead
 * of the fixtures, optionally with the fleet API stand-in and one etcd member.
 *
 * The world only builds and steers; it decides nothing. The chaos runner draws what to do.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from './etcd-server.js';
import { encodeRecord, keyspace, type Keyspace, type ServiceRecord } from '../keyspace/index.js';
import { connectEtcd } from '../locks/index.js';
import { startEc2Endpoint, type Ec2Endpoint, type Latencies } from '../sim/ec2/index.js';
import { startFleetServer, type FleetServer } from '../sim/fleet/index.js';
import { FaultProxy, type HttpRequestSeen, type ProxyMode } from './fault-proxy.js';
import { CLI_SCRIPT, FixtureProc, READY_TIMEOUT_MS, runCli, type CliResult, type DaemonExitedError, type FixtureProcOptions, type TsxLaunch } from './proc.js';

const REPO = new URL('../../', import.meta.url).pathname;
const AGENT_SCRIPT = 'test/fixtures/controller-agent.ts';
const CONTROLLER_SCRIPT = 'test/fixtures/controller-proc.ts';
const MULTI_AGENT_SCRIPT = 'test/fixtures/multi-agent.ts';

export interface WorldHostOptions {
  az: string;
  /** Shown in logs and timelines (default: the instance id). */
  name?: string;
  /** The instance's private IP (default: the simulator picks one). */
  privateIp?: string;
  /** Host labels (cli daemons: `--label`; with `fleet`, also the machine's fleet metadata). */
  labels?: Record<string, string>;
}

export interface WorldOptions {
  /** Names the temp dir and the etcd prefix. */
  name: string;
  hosts: readonly WorldHostOptions[];
  controllers: number;
  /** Candidate ids of the controllers, in order (default `ctl-1`, `ctl-2`, …). */
  controllerIds?: readonly string[];
  /** Every service of the world (agents define all their units); the first `registered` are registered at start. */
  services: readonly { az: string }[];
  registered: number;
  /** Agent lease TTL and self-fence margin. */
  leaseTtlMs: number;
  fenceMarginMs: number;
  /** Controller election TTL and report timeout: fixture controllers only (required by them); the CLI derives its own. */
  electionTtlMs?: number;
  forceDetachAfterMs: number;
  reportTimeoutMs?: number;
  latencies: Partial<Latencies>;
  /** Extra fixture options for every controller (e.g. `pauseBeforeMutation`); older fixtures ignore them. */
  controllerExtra?: Record<string, unknown>;
  /** Agent re-verify period (fixture option `verifyEveryMs`, where the fixture has it). */
  agentVerifyEveryMs?: number;
  /** Where ledgers and device dirs go (a new temp dir by default; removed by stop() only if we made it). */
  dir?: string;
  /** Repository whose fixtures to run (this one by default). */
  repo?: string;
  /** Log level of the child processes (warn by default). */
  logLevel?: string;
  /**
   * Called once etcd, the EC2 endpoint and the observer client exist, before any agent or controller
   * starts: an observer started here sees everything from the first write.
   */
  beforeProcesses?: (infra: { client: Etcd3; ks: Keyspace; ec2: Ec2Endpoint }) => Promise<void>;
  /** Each HTTP request a controller sends to EC2, as its proxy forwards it. */
  onEc2Request?: (controller: string, req: HttpRequestSeen) => void;
  /**
   * Hosts per agent process (default 1: test/fixtures/controller-agent.ts). Above 1, consecutive hosts
   * share one process of test/fixtures/multi-agent.ts (same agent code, one systemd/etcd client/lease
   * each; no control file), so a bench can hold hundreds of hosts: killing or respawning one member's
   * process kills or respawns every host of its group.
   */
  hostsPerProcess?: number;
  /**
   * What runs as agents and controllers: 'fixtures' (default; test/fixtures/controller-agent.ts and
   * controller-proc.ts, ready when they print `ready`, unit changes in the ledger) or 'cli': the real
   * `failover agent|controller` daemons as an operator runs them, configured through EBS_FAILOVER_* (no
   * config file), the in-memory systemd in each agent, each daemon's output in `<dir>/<id>.log`; ready
   * once the agent wrote its host record, or the controller its election candidacy.
   */
  daemons?: 'fixtures' | 'cli';
  /**
   * How cli daemons run: 'tsx' (default; `node --import tsx src/cli/main.ts`, compiled in the process) or
   * 'dist': `node dist/cli/main.js`, the built CLI as production runs it (`npm run build` first), so a
   * bench measures the daemon's own memory, not the TypeScript compiler's.
   */
  cliRuntime?: 'tsx' | 'dist';
  /** etcd members (default 3). */
  etcdMembers?: number;
  /** The etcd key prefix (default `/chaos-<name>/`). */
  prefix?: string;
  /** Throttle EC2 calls with AWS's default token buckets (src/sim/ec2/throttle.ts); off by default. */
  ec2Throttle?: boolean;
  /**
   * Start the fleet API stand-in (src/sim/fleet) on `<dir>/fleet.sock`, every host a fleet machine with
   * its labels as metadata; cli controllers then run in fleet mode (a dead host's metadata is dropped).
   */
  fleet?: boolean;
  /** An agent or controller process exited without kill(), stop() or the world's stop() asking it to. */
  onUnexpectedExit?: (member: Member, err: DaemonExitedError) => void;
}

export interface WorldService extends ServiceRecord {
  az: string;
  index: number;
}

/** A host or controller process, with its proxies and the means to restart it as the same identity. */
export interface Member {
  readonly kind: 'agent' | 'controller';
  readonly index: number;
  /** Instance id (agent) or candidate id (controller). */
  readonly id: string;
  readonly az: string | null;
  /** Display name (`WorldHostOptions.name`; the id otherwise). */
  readonly name: string;
  /** Agents: the fleet machine id (cli daemons and fleet) and the device dir the simulator fills on attach. */
  readonly machineId: string | null;
  readonly deviceDir: string | null;
  proc: FixtureProc;
  /** One per etcd member, in member order. */
  readonly etcdProxies: FaultProxy[];
  /** Controllers only. */
  readonly ec2Proxy: FaultProxy | null;
  /** Spawns the process again (after a kill) and waits for `ready`. */
  respawn(): Promise<void>;
}

export interface World {
  readonly opts: WorldOptions;
  readonly etcd: EtcdCluster;
  readonly ec2: Ec2Endpoint;
  /** The fleet API stand-in (`WorldOptions.fleet`), else null. */
  readonly fleet: FleetServer | null;
  /** Direct (unproxied) client for observers and operators. */
  readonly client: Etcd3;
  readonly ks: Keyspace;
  readonly dir: string;
  readonly repo: string;
  /** Unit and mount state changes of the fixture agents, one JSON line each (empty with cli daemons). */
  readonly ledger: string;
  readonly agents: Member[];
  readonly controllers: Member[];
  readonly services: WorldService[];
  /** Environment for the real CLI (`node --import tsx src/cli/main.ts`) against this world. */
  readonly cliEnv: Record<string, string>;
  /** Runs one `failover …` command against this world (cliEnv, loopback AWS credentials) to completion. */
  cli(args: readonly string[], opts?: { timeoutMs?: number; onLine?: (line: string) => void }): Promise<CliResult>;
  registerService(index: number): Promise<void>;
  unregisterService(index: number): Promise<void>;
  /** Sets the mode of every proxy to etcd member `member` (all clients). */
  setMemberPath(member: number, mode: ProxyMode): void;
  stop(): Promise<void>;
}

export interface FixtureSpawnOptions {
  /** Repository whose fixtures to run (this one by default). */
  repo?: string;
  logLevel: string;
  proc?: FixtureProcOptions;
}

/** One fixture agent: test/fixtures/controller-agent.ts with its JSON config; it prints `ready` once registered. */
export function spawnFixtureAgent(name: string, config: object, o: FixtureSpawnOptions): FixtureProc {
  return new FixtureProc(name, { cwd: o.repo ?? REPO, script: AGENT_SCRIPT, env: { LOG_LEVEL: o.logLevel, CONTROLLER_E2E_AGENT: JSON.stringify(config) } }, o.proc);
}

/** One fixture controller: test/fixtures/controller-proc.ts with its JSON config; it prints `ready` once it runs. */
export function spawnFixtureController(name: string, config: object, o: FixtureSpawnOptions): FixtureProc {
  return new FixtureProc(name, { cwd: o.repo ?? REPO, script: CONTROLLER_SCRIPT, env: { LOG_LEVEL: o.logLevel, CONTROLLER_E2E_CONTROLLER: JSON.stringify(config) } }, o.proc);
}

const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');

/** A one-shot CLI command (tsx compiles on start) on a loaded 2-core machine: generous. */
const CLI_TIMEOUT_MS = 60_000;

/** The loopback EC2 endpoint takes any credentials; IMDS is never consulted (the identity is given). */
const LOOPBACK_AWS_ENV = { AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_EC2_METADATA_DISABLED: 'true' } as const;

/** This process's environment without EBS_FAILOVER_* (an operator's shell must not configure the world's daemons). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EBS_FAILOVER_')));
}

async function revisionNow(client: Etcd3, ks: Keyspace): Promise<bigint> {
  const res = await client.get(ks.prefix).exec();
  return BigInt(res.header.revision);
}

/**
 * A cli daemon is ready once it wrote, after revision `since`, a key under `prefix` (the key itself, or
 * any key below it) whose value passes `match`: the agent's host record, the controller's election
 * candidacy. `since` is read before the spawn, so an earlier boot's record does not count.
 */
async function writtenSince(client: Etcd3, proc: FixtureProc, prefix: string, since: bigint, match: (value: string) => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const kvs = (await client.getAll().prefix(prefix).exec()).kvs;
    if (kvs.some((kv) => BigInt(kv.mod_revision) > since && match(kv.value.toString()))) return;
    if (proc.exited) throw new Error(`${proc.name} exited (${proc.exitCode}) before it was ready: ${proc.stderr.slice(-2_000)}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} not ready after ${READY_TIMEOUT_MS} ms: ${proc.stderr.slice(-2_000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function buildWorld(opts: WorldOptions): Promise<World> {
  const repo = opts.repo ?? REPO;
  const cli = opts.daemons === 'cli';
  if (cli && (opts.hostsPerProcess ?? 1) > 1) throw new RangeError('hostsPerProcess is for fixture agents (test/fixtures/multi-agent.ts), not cli daemons');
  if (!cli && opts.electionTtlMs === undefined && opts.controllers > 0) throw new RangeError('fixture controllers need electionTtlMs');
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `ebs-world-${opts.name}-`));
  mkdirSync(dir, { recursive: true });
  const ledger = join(dir, 'ledger.jsonl');
  writeFileSync(ledger, '');
  const etcd = await startEtcdCluster(opts.etcdMembers ?? 3);
  const ec2 = await startEc2Endpoint({ latencies: opts.latencies, ...(opts.ec2Throttle ? { throttle: { enabled: true } } : {}) });
  const fleet = opts.fleet ? await startFleetServer({ socketPath: join(dir, 'fleet.sock') }) : null;
  const client = connectEtcd({ endpoints: etcd.endpoints });
  const ks = keyspace(opts.prefix ?? `/chaos-${opts.name}/`);
  try {
    await opts.beforeProcesses?.({ client, ks, ec2 });
  } catch (err) {
    client.close();
    await fleet?.close();
    await ec2.close();
    await etcd.stop();
    throw err;
  }
  const logLevel = opts.logLevel ?? 'warn';
  const proxies: FaultProxy[] = [];
  const newProxy = async (name: string, port: number, onRequest?: (r: HttpRequestSeen) => void): Promise<FaultProxy> => {
    const p = new FaultProxy({ name, targetPort: port, onRequest });
    await p.start();
    proxies.push(p);
    return p;
  };
  const procOpts = (member: () => Member, extra: FixtureProcOptions = {}): FixtureProcOptions => ({
    ...extra,
    ...(opts.onUnexpectedExit ? { onUnexpectedExit: (err: DaemonExitedError) => opts.onUnexpectedExit?.(member(), err) } : {}),
  });

  // cli daemons: what every one of them shares (children's temp files, the in-memory systemd's run dir
  // among them, land in the world's dir and go with it).
  const childTmp = join(dir, 'tmp');
  if (cli) mkdirSync(childTmp, { recursive: true });
  const daemonEnv: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    ...LOOPBACK_AWS_ENV,
    TMPDIR: childTmp,
    LOG_LEVEL: logLevel,
    EBS_FAILOVER_PREFIX: ks.prefix,
    EBS_FAILOVER_AWS_REGION: 'us-east-1',
    EBS_FAILOVER_AWS_ENDPOINT: ec2.url,
    EBS_FAILOVER_LEASE_TTL_MS: String(opts.leaseTtlMs),
    EBS_FAILOVER_FENCE_MARGIN_MS: String(opts.fenceMarginMs),
    EBS_FAILOVER_FORCE_DETACH_AFTER_MS: String(opts.forceDetachAfterMs),
    // Several daemons on one machine: every listener on a free loopback port.
    EBS_FAILOVER_METRICS_LISTEN: '127.0.0.1:0',
    EBS_FAILOVER_PEER_LISTEN: '127.0.0.1:0',
    ...(fleet ? { EBS_FAILOVER_FLEET_SOCKET: join(dir, 'fleet.sock') } : {}),
  };
  const bootRevision = cli ? await revisionNow(client, ks) : 0n;
  /** A cli daemon's launch, or with cliRuntime 'dist' the built CLI spawned with the same arguments and environment. */
  const cliLaunch = (l: TsxLaunch): TsxLaunch | ChildProcess =>
    opts.cliRuntime === 'dist' ? spawn(process.execPath, [join(repo, 'dist/cli/main.js'), ...(l.args ?? [])], { cwd: l.cwd, env: l.env, stdio: ['ignore', 'pipe', 'pipe'] }) : l;

  const services: WorldService[] = opts.services.map((s, index) => {
    const volumeId = `vol-${hex(17)}`;
    ec2.sim.addVolume({ volumeId, az: s.az });
    return { index, az: s.az, unit: `db${index}@${volumeId}`, volumeId, mountUnit: `data-${volumeId}.mount`, mountPoint: `/data/${volumeId}`, metadataKey: `db${index}`, requiredLabels: {} };
  });

  const agents: Member[] = [];
  /** How each member becomes ready after its first spawn (fixtures: `ready` on stdout). */
  const firstReady = new Map<Member, () => Promise<void>>();
  // hostsPerProcess > 1: hosts grouped into processes of multi-agent.ts; a respawn is a reboot of every host of the group.
  interface Group { configs: Record<string, unknown>[]; members: Member[]; boots: number; spawning: Promise<void> | null }
  const groups: Group[] = [];
  const spawnGroup = (group: Group): FixtureProc => {
    group.boots += 1;
    const hosts = group.configs.map((c) => ({ ...c, runDir: join(dir, String(c.instanceId), `run-${group.boots}`) }));
    // In a file: hosts × services is far beyond what one environment string may hold (E2BIG).
    const file = join(dir, `agents-${groups.indexOf(group)}-${group.boots}.json`);
    writeFileSync(file, JSON.stringify({ hosts }));
    const first = (): Member => group.members[0] as Member;
    const name = `agents-${String(group.configs[0]?.instanceId)}+${group.configs.length - 1}`;
    const proc = new FixtureProc(name, { cwd: repo, script: MULTI_AGENT_SCRIPT, env: { LOG_LEVEL: logLevel, MULTI_AGENT_FILE: file } }, procOpts(first));
    for (const m of group.members) m.proc = proc;
    return proc;
  };
  const respawnGroup = async (group: Group): Promise<void> => {
    // Siblings respawning together share one new process.
    group.spawning ??= (async () => {
      await spawnGroup(group).ready();
    })().finally(() => (group.spawning = null));
    await group.spawning;
  };
  for (const [index, h] of opts.hosts.entries()) {
    // 17 hex digits at most (EC2's format): 2 decimal digits of the index below 100, 3 from there (bench worlds).
    const instanceId = index + 1 < 100 ? `i-${String(index + 1).padStart(2, '0')}${hex(15)}` : `i-${String(index + 1).padStart(3, '0')}${hex(14)}`;
    const name = h.name ?? instanceId;
    const deviceDir = join(dir, instanceId, 'dev');
    const instance = ec2.sim.addInstance({ instanceId, az: h.az, ...(h.privateIp ? { privateIp: h.privateIp } : {}), ...(h.name ? { tags: { Name: h.name } } : {}) });
    ec2.sim.setDeviceDir(instanceId, deviceDir);
    const machineId = cli || fleet ? randomBytes(16).toString('hex') : null;
    // fleetd on each host would register its machine with the host's static metadata.
    if (fleet && machineId) fleet.state.addMachine(machineId, { primaryIP: instance.privateIp, metadata: { ...h.labels } });
    const etcdProxies = await Promise.all(etcd.members.map((m, i) => newProxy(`${instanceId}→etcd${i}`, m.clientPort)));
    if (cli) {
      mkdirSync(deviceDir, { recursive: true });
      const args = [
        'agent', '--instance-id', instanceId, '--az', h.az, '--private-ip', instance.privateIp, '--mode', 'systemd',
        '--device-root', deviceDir, '--lease-state-file', join(dir, instanceId, 'lease'),
        ...Object.entries(h.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
      ];
      const env = { ...daemonEnv, EBS_FAILOVER_ETCD_ENDPOINTS: etcdProxies.map((p) => p.url).join(','), EBS_FAILOVER_SYSTEMD_BUS: 'memory', EBS_FAILOVER_MACHINE_ID: String(machineId) };
      // A restart keeps the lease-state file (a quick restart resumes the lease), as on a real host.
      const launch = { cwd: repo, script: CLI_SCRIPT, env, args, inheritEnv: false };
      const spawnCliAgent = (): FixtureProc => new FixtureProc(name, cliLaunch(launch), procOpts(() => member, { logFile: join(dir, instanceId, 'agent.log') }));
      const registered = (proc: FixtureProc, since: bigint): Promise<void> => writtenSince(client, proc, ks.host(instanceId), since, () => true);
      const member: Member = {
        kind: 'agent', index, id: instanceId, az: h.az, name, machineId, deviceDir, proc: spawnCliAgent(), etcdProxies, ec2Proxy: null,
        async respawn() {
          const since = await revisionNow(client, ks);
          member.proc = spawnCliAgent();
          await registered(member.proc, since);
        },
      };
      firstReady.set(member, () => registered(member.proc, bootRevision));
      agents.push(member);
      continue;
    }
    const config = {
      etcdEndpoints: etcdProxies.map((p) => p.url), prefix: ks.prefix, instanceId, az: h.az, deviceDir, runDir: join(dir, instanceId, 'run'), ledger,
      leaseTtlMs: opts.leaseTtlMs, fenceMarginMs: opts.fenceMarginMs, services: services.map((s) => ({ unit: s.unit, mountUnit: s.mountUnit })),
      // Fixture options of newer code (ignored by older fixtures): how often the agent re-verifies what it reported.
      ...(opts.agentVerifyEveryMs === undefined ? {} : { verifyEveryMs: opts.agentVerifyEveryMs }),
    };
    const perProcess = opts.hostsPerProcess ?? 1;
    if (perProcess > 1) {
      const g = Math.floor(index / perProcess);
      const group = (groups[g] ??= { configs: [], members: [], boots: 0, spawning: null });
      group.configs.push(config);
      const member: Member = {
        kind: 'agent', index, id: instanceId, az: h.az, name, machineId, deviceDir, proc: undefined as unknown as FixtureProc, etcdProxies, ec2Proxy: null,
        async respawn() {
          await respawnGroup(group);
        },
      };
      group.members.push(member);
      agents.push(member);
      continue;
    }
    let boots = 0;
    // Killing the agent process kills the host (its in-memory systemd goes with it), so a respawn is a
    // reboot: /run, where the mount drop-ins live, starts empty.
    const spawnAgent = (): FixtureProc => {
      boots += 1;
      const boot = { ...config, runDir: join(dir, instanceId, `run-${boots}`) };
      return spawnFixtureAgent(instanceId, boot, { repo, logLevel, proc: procOpts(() => member) });
    };
    const member: Member = {
      kind: 'agent', index, id: instanceId, az: h.az, name, machineId, deviceDir, proc: spawnAgent(), etcdProxies, ec2Proxy: null,
      async respawn() {
        member.proc = spawnAgent();
        await member.proc.ready();
      },
    };
    agents.push(member);
  }

  const controllers: Member[] = [];
  for (let index = 0; index < opts.controllers; index += 1) {
    const candidateId = opts.controllerIds?.[index] ?? `ctl-${index + 1}`;
    const etcdProxies = await Promise.all(etcd.members.map((m, i) => newProxy(`${candidateId}→etcd${i}`, m.clientPort)));
    const ec2Port = Number(new URL(ec2.url).port);
    const ec2Proxy = await newProxy(`${candidateId}→ec2`, ec2Port, opts.onEc2Request ? (r) => opts.onEc2Request?.(candidateId, r) : undefined);
    let spawnController: () => FixtureProc;
    let ready: (proc: FixtureProc, since: bigint) => Promise<void>;
    if (cli) {
      const env = {
        ...daemonEnv, EBS_FAILOVER_ETCD_ENDPOINTS: etcdProxies.map((p) => p.url).join(','), EBS_FAILOVER_AWS_ENDPOINT: ec2Proxy.url,
        // The controller talks to the fleet stand-in so that a dead host's metadata is dropped, as on a fleet cluster.
        ...(fleet ? { EBS_FAILOVER_MODE: 'fleet' } : {}),
      };
      const args = ['controller', '--candidate-id', candidateId];
      const launch = { cwd: repo, script: CLI_SCRIPT, env, args, inheritEnv: false };
      spawnController = () => new FixtureProc(candidateId, cliLaunch(launch), procOpts(() => member, { logFile: join(dir, `${candidateId}.log`) }));
      ready = (proc, since) => writtenSince(client, proc, `${ks.electionPrefix()}/`, since, (value) => value === candidateId);
    } else {
      const config = {
        etcdEndpoints: etcdProxies.map((p) => p.url), ec2Endpoint: ec2Proxy.url, prefix: ks.prefix, candidateId,
        electionTtlMs: opts.electionTtlMs, forceDetachAfterMs: opts.forceDetachAfterMs, reportTimeoutMs: opts.reportTimeoutMs,
        ...opts.controllerExtra,
      };
      spawnController = () => spawnFixtureController(candidateId, config, { repo, logLevel, proc: procOpts(() => member) });
      ready = (proc) => proc.ready();
    }
    const member: Member = {
      kind: 'controller', index, id: candidateId, az: null, name: candidateId, machineId: null, deviceDir: null, proc: spawnController(), etcdProxies, ec2Proxy,
      async respawn() {
        const since = cli ? await revisionNow(client, ks) : 0n;
        member.proc = spawnController();
        await ready(member.proc, since);
      },
    };
    firstReady.set(member, () => ready(member.proc, bootRevision));
    controllers.push(member);
  }

  const registerService = async (index: number): Promise<void> => {
    const s = services[index];
    if (s === undefined) throw new RangeError(`no service ${index}`);
    const { az: _az, index: _i, ...record } = s;
    await client.put(ks.service(s.unit)).value(encodeRecord(record as ServiceRecord));
  };
  const unregisterService = async (index: number): Promise<void> => {
    const s = services[index];
    if (s === undefined) throw new RangeError(`no service ${index}`);
    await client.delete().key(ks.service(s.unit));
  };

  const cliEnv = {
    EBS_FAILOVER_ETCD_ENDPOINTS: etcd.endpoints.join(','),
    EBS_FAILOVER_PREFIX: ks.prefix,
    EBS_FAILOVER_AWS_REGION: 'us-east-1',
    EBS_FAILOVER_AWS_ENDPOINT: ec2.url,
    LOG_LEVEL: 'warn',
  };
  let stopped = false;
  const world: World = {
    opts, etcd, ec2, fleet, client, ks, dir, repo, ledger, agents, controllers, services,
    cliEnv,
    cli: (args, o = {}) =>
      runCli(args, { ...cleanEnv(), ...LOOPBACK_AWS_ENV, ...cliEnv }, { timeoutMs: o.timeoutMs ?? CLI_TIMEOUT_MS, ...(o.onLine ? { onLine: o.onLine } : {}) }),
    registerService,
    unregisterService,
    setMemberPath(member, mode) {
      for (const m of [...agents, ...controllers]) m.etcdProxies[member]?.set(mode);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // A group not spawned yet (its start failed before it) has no process.
      await Promise.all([...new Set([...agents, ...controllers].map((m) => m.proc))].filter((p) => p !== undefined).map((p) => p.stop()));
      client.close();
      await Promise.all(proxies.map((p) => p.close()));
      await fleet?.close();
      await ec2.close();
      await etcd.stop();
      if (ownsDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < opts.registered; i += 1) await registerService(i);
    // Groups one after another: 8 processes of 25 hosts each compiling and registering at once kept a
    // 2-core machine so busy that keep-alives missed their bounds and no group got ready (az1000).
    for (const group of groups) await spawnGroup(group).ready();
    const whenReady = (m: Member): Promise<void> => firstReady.get(m)?.() ?? m.proc.ready();
    // Agents first (a controller that starts before any host registers would see an empty cluster),
    // then the controllers.
    await Promise.all([...new Map(agents.map((a) => [a.proc, a])).values()].map(whenReady));
    await Promise.all(controllers.map(whenReady));
  } catch (err) {
    await world.stop();
    throw err;
  }
  return world;
}
