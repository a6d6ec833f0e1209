/**
 * One world on loopback, built the same way for chaos, tests, demo and bench: a 3-member etcd, the EC2
 * endpoint (`src/sim/ec2`, served over HTTP and used through the real SDK), N host agents and M
 * controllers as separate processes (test/fixtures/controller-agent.ts and controller-proc.ts), and a
 * fault proxy (fault-proxy.ts) on every process's path to each etcd member and every controller's path
 * to EC2, so one process can be partitioned alone.
 *
 * The world only builds and steers; it decides nothing. The chaos runner draws what to do.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from './etcd-server.js';
import { encodeRecord, keyspace, type Keyspace, type ServiceRecord } from '../keyspace/index.js';
import { connectEtcd } from '../locks/index.js';
import { startEc2Endpoint, type Ec2Endpoint, type Latencies } from '../sim/ec2/index.js';
import { FaultProxy, type HttpRequestSeen, type ProxyMode } from './fault-proxy.js';
import { FixtureProc } from './proc.js';

const REPO = new URL('../../', import.meta.url).pathname;
const AGENT_SCRIPT = 'test/fixtures/controller-agent.ts';
const CONTROLLER_SCRIPT = 'test/fixtures/controller-proc.ts';
const MULTI_AGENT_SCRIPT = 'test/fixtures/multi-agent.ts';

export interface WorldOptions {
  /** Names the temp dir and the etcd prefix. */
  name: string;
  hosts: readonly { az: string }[];
  controllers: number;
  /** Every service of the world (agents define all their units); the first `registered` are registered at start. */
  services: readonly { az: string }[];
  registered: number;
  /** Agent lease TTL and self-fence margin. */
  leaseTtlMs: number;
  fenceMarginMs: number;
  electionTtlMs: number;
  forceDetachAfterMs: number;
  reportTimeoutMs: number;
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
  /** Direct (unproxied) client for observers and operators. */
  readonly client: Etcd3;
  readonly ks: Keyspace;
  readonly dir: string;
  readonly repo: string;
  readonly ledger: string;
  readonly agents: Member[];
  readonly controllers: Member[];
  readonly services: WorldService[];
  /** Environment for the real CLI (`node --import tsx src/cli/main.ts`) against this world. */
  readonly cliEnv: Record<string, string>;
  registerService(index: number): Promise<void>;
  unregisterService(index: number): Promise<void>;
  /** Sets the mode of every proxy to etcd member `member` (all clients). */
  setMemberPath(member: number, mode: ProxyMode): void;
  stop(): Promise<void>;
}

const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');

export async function buildWorld(opts: WorldOptions): Promise<World> {
  const repo = opts.repo ?? REPO;
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `ebs-world-${opts.name}-`));
  mkdirSync(dir, { recursive: true });
  const ledger = join(dir, 'ledger.jsonl');
  writeFileSync(ledger, '');
  const etcd = await startEtcdCluster(3);
  const ec2 = await startEc2Endpoint({ latencies: opts.latencies });
  const client = connectEtcd({ endpoints: etcd.endpoints });
  const ks = keyspace(`/chaos-${opts.name}/`);
  try {
    await opts.beforeProcesses?.({ client, ks, ec2 });
  } catch (err) {
    client.close();
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

  const services: WorldService[] = opts.services.map((s, index) => {
    const volumeId = `vol-${hex(17)}`;
    ec2.sim.addVolume({ volumeId, az: s.az });
    return { index, az: s.az, unit: `db${index}@${volumeId}`, volumeId, mountUnit: `data-${volumeId}.mount`, mountPoint: `/data/${volumeId}`, metadataKey: `db${index}`, requiredLabels: {} };
  });

  const agents: Member[] = [];
  // hostsPerProcess > 1: hosts grouped into processes of multi-agent.ts; a respawn is a reboot of every host of the group.
  interface Group { configs: Record<string, unknown>[]; members: Member[]; boots: number; spawning: Promise<void> | null }
  const groups: Group[] = [];
  const spawnGroup = (group: Group): FixtureProc => {
    group.boots += 1;
    const hosts = group.configs.map((c) => ({ ...c, runDir: join(dir, String(c.instanceId), `run-${group.boots}`) }));
    // In a file: hosts × services is far beyond what one environment string may hold (E2BIG).
    const file = join(dir, `agents-${groups.indexOf(group)}-${group.boots}.json`);
    writeFileSync(file, JSON.stringify({ hosts }));
    const proc = new FixtureProc(`agents-${String(group.configs[0]?.instanceId)}+${group.configs.length - 1}`, repo, MULTI_AGENT_SCRIPT, { LOG_LEVEL: logLevel, MULTI_AGENT_FILE: file });
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
    const deviceDir = join(dir, instanceId, 'dev');
    ec2.sim.addInstance({ instanceId, az: h.az });
    ec2.sim.setDeviceDir(instanceId, deviceDir);
    const etcdProxies = await Promise.all(etcd.members.map((m, i) => newProxy(`${instanceId}→etcd${i}`, m.clientPort)));
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
        kind: 'agent', index, id: instanceId, az: h.az, proc: undefined as unknown as FixtureProc, etcdProxies, ec2Proxy: null,
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
      return new FixtureProc(instanceId, repo, AGENT_SCRIPT, { LOG_LEVEL: logLevel, CONTROLLER_E2E_AGENT: JSON.stringify(boot) });
    };
    const member: Member = {
      kind: 'agent', index, id: instanceId, az: h.az, proc: spawnAgent(), etcdProxies, ec2Proxy: null,
      async respawn() {
        member.proc = spawnAgent();
        await member.proc.ready();
      },
    };
    agents.push(member);
  }

  for (const group of groups) spawnGroup(group);

  const controllers: Member[] = [];
  for (let index = 0; index < opts.controllers; index += 1) {
    const candidateId = `ctl-${index + 1}`;
    const etcdProxies = await Promise.all(etcd.members.map((m, i) => newProxy(`${candidateId}→etcd${i}`, m.clientPort)));
    const ec2Port = Number(new URL(ec2.url).port);
    const ec2Proxy = await newProxy(`${candidateId}→ec2`, ec2Port, opts.onEc2Request ? (r) => opts.onEc2Request?.(candidateId, r) : undefined);
    const config = {
      etcdEndpoints: etcdProxies.map((p) => p.url), ec2Endpoint: ec2Proxy.url, prefix: ks.prefix, candidateId,
      electionTtlMs: opts.electionTtlMs, forceDetachAfterMs: opts.forceDetachAfterMs, reportTimeoutMs: opts.reportTimeoutMs,
      ...opts.controllerExtra,
    };
    const spawnController = (): FixtureProc => new FixtureProc(candidateId, repo, CONTROLLER_SCRIPT, { LOG_LEVEL: logLevel, CONTROLLER_E2E_CONTROLLER: JSON.stringify(config) });
    const member: Member = {
      kind: 'controller', index, id: candidateId, az: null, proc: spawnController(), etcdProxies, ec2Proxy,
      async respawn() {
        member.proc = spawnController();
        await member.proc.ready();
      },
    };
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

  let stopped = false;
  const world: World = {
    opts, etcd, ec2, client, ks, dir, repo, ledger, agents, controllers, services,
    cliEnv: {
      EBS_FAILOVER_ETCD_ENDPOINTS: etcd.endpoints.join(','),
      EBS_FAILOVER_PREFIX: ks.prefix,
      EBS_FAILOVER_AWS_REGION: 'us-east-1',
      EBS_FAILOVER_AWS_ENDPOINT: ec2.url,
      LOG_LEVEL: 'warn',
    },
    registerService,
    unregisterService,
    setMemberPath(member, mode) {
      for (const m of [...agents, ...controllers]) m.etcdProxies[member]?.set(mode);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all([...new Set([...agents, ...controllers].map((m) => m.proc))].map((p) => p.stop()));
      client.close();
      await Promise.all(proxies.map((p) => p.close()));
      await ec2.close();
      await etcd.stop();
      if (ownsDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < opts.registered; i += 1) await registerService(i);
    // Agents first (a controller that starts before any host registers would see an empty cluster),
    // then the controllers.
    await Promise.all([...new Set(agents.map((a) => a.proc))].map((p) => p.ready()));
    await Promise.all(controllers.map((c) => c.proc.ready()));
  } catch (err) {
    await world.stop();
    throw err;
  }
  return world;
}
