import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEc2Endpoint, type Ec2Endpoint } from '../sim/ec2/index.js';
import { startFleetServer, type FleetServer } from '../sim/fleet/index.js';
import { Daemon, runCli, type CliResult, type DaemonExitedError } from '../testing/proc.js';
import { startEtcd } from '../testing/etcd-server.js';

/**
 * Starts and stops the demo's pieces on this machine: a real etcd (the test helper), the EC2 endpoint
 * in-process, the fleet API stand-in, four host agents and a controller as separate `failover`
 * processes. Hosts are named `host-1`…`host-4` in the output.
 */
export const REGION = 'us-east-1';

/**
 * Host lease TTL: 3 s (the config's minimum is 2 s) so a dead host is noticed quickly; the agents
 * fence 1 s before their lease could expire.
 */
const LEASE_TTL_MS = 3_000;
const FENCE_MARGIN_MS = 1_000;
/** A dead host never finishes a graceful detach: force after 4 s instead of 30 s to keep the demo short. */
const FORCE_DETACH_AFTER_MS = 4_000;

/**
 * AWS-like EBS timings, scaled down: attach ~5 s and detach ~10 s on real EC2 become 1.5 s and 2 s,
 * a small snapshot 3 s. Throttling stays on with AWS's default buckets (see the sim's throttle.ts).
 */
const EC2_LATENCIES = { attachMs: 1_500, detachMs: 2_000, snapshotMs: 3_000, stopMs: 3_000, forceStopMs: 1_000, terminateMs: 3_000 };

/**
 * How an agent selects the in-memory systemd instead of D-Bus. Spelled in one place so it can follow
 * src/cli/src/host's actual switch.
 */
const MEMORY_SYSTEMD_ENV = { EBS_FAILOVER_SYSTEMD_BUS: 'memory' } as const;


export interface DemoHost {
  name: string;
  instanceId: string;
  az: string;
  machineId: string;
  deviceDir: string;
  agent: Daemon;
}

export interface DemoCluster {
  dir: string;
  etcdEndpoint: string;
  ec2: Ec2Endpoint;
  fleet: FleetServer;
  hosts: DemoHost[];
  controller: Daemon;
  /** instanceId → `host-N`, for the timeline. */
  names: Map<string, string>;
  /** fleet machine id → instanceId. */
  machines: Map<string, string>;
  /** Runs `failover <args…>` against this cluster. */
  cli(args: readonly string[], opts?: { timeoutMs?: number; onLine?: (line: string) => void }): Promise<CliResult>;
  /** Stops every child process and server and removes the temp dir; safe to call twice. */
  stop(): Promise<void>;
}

export interface DemoClusterOptions {
  /** Called when a daemon dies without the demo asking it to. */
  onDaemonExit(err: DaemonExitedError): void;
}

const HOST_AZS = ['us-east-1a', 'us-east-1a', 'us-east-1a', 'us-east-1b'] as const;
/** A CLI command that has not finished in this long is stuck (a manual failover takes ~10 s). */
const CLI_TIMEOUT_MS = 45_000;

export async function startDemoCluster(opts: DemoClusterOptions): Promise<DemoCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'ebs-failover-demo-'));
  const cleanups: Array<() => Promise<void>> = [() => rm(dir, { recursive: true, force: true })];
  const daemons: Daemon[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(daemons.map((d) => d.stop()));
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const fleetSocket = join(dir, 'fleet.sock');
    const [etcd, ec2, fleet] = await Promise.all([
      startEtcd({ dataDir: join(dir, 'etcd') }).then((server) => (cleanups.push(() => server.stop()), server)),
      startEc2Endpoint({ latencies: EC2_LATENCIES, throttle: { enabled: true } }).then((endpoint) => (cleanups.push(() => endpoint.close()), endpoint)),
      startFleetServer({ socketPath: fleetSocket }).then((server) => (cleanups.push(() => server.close()), server)),
    ]);

    const configFile = join(dir, 'config.json');
    await writeFile(
      configFile,
      JSON.stringify({
        etcd: { endpoints: [etcd.endpoint] },
        aws: { endpoint: ec2.url, region: REGION },
        lease: { ttlMs: LEASE_TTL_MS, fenceMarginMs: FENCE_MARGIN_MS },
        controller: { forceDetachAfterMs: FORCE_DETACH_AFTER_MS, metricsListen: '127.0.0.1:0' },
        agent: { mode: 'systemd', fleetSocket },
      }),
    );
    // Children's temp files (the in-memory systemd's run dir, …) land in our dir, removed with it.
    const childTmp = join(dir, 'tmp');
    await mkdir(childTmp);
    // The loopback EC2 endpoint takes any credentials; IMDS is never consulted (identity is given).
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TMPDIR: childTmp,
      EBS_FAILOVER_CONFIG: configFile,
      AWS_ACCESS_KEY_ID: 'demo',
      AWS_SECRET_ACCESS_KEY: 'demo',
      AWS_EC2_METADATA_DISABLED: 'true',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
    };

    const hosts: DemoHost[] = [];
    for (const [index, az] of HOST_AZS.entries()) {
      const name = `host-${index + 1}`;
      const privateIp = `10.0.${az.endsWith('a') ? 1 : 2}.${10 + index}`;
      const instance = ec2.sim.addInstance({ az, privateIp, tags: { Name: name } });
      const hostDir = join(dir, name);
      const deviceDir = join(hostDir, 'dev');
      await mkdir(deviceDir, { recursive: true });
      ec2.sim.setDeviceDir(instance.instanceId, deviceDir);
      const machineId = randomBytes(16).toString('hex');
      // fleetd on each host would register its machine with the static `role=db` metadata.
      fleet.state.addMachine(machineId, { primaryIP: privateIp, metadata: { role: 'db' } });
      const args = [
        'agent',
        '--instance-id', instance.instanceId,
        '--az', az,
        '--private-ip', privateIp,
        '--mode', 'systemd',
        '--device-root', deviceDir,
        '--lease-state-file', join(hostDir, 'lease'),
        '--label', 'role=db',
      ];
      // Four agents on one machine: each serves its peer endpoint on a free loopback port (default 0.0.0.0:9643).
      const agent = new Daemon(`agent ${name}`, args, { ...env, ...MEMORY_SYSTEMD_ENV, EBS_FAILOVER_MACHINE_ID: machineId, EBS_FAILOVER_PEER_LISTEN: '127.0.0.1:0' }, join(hostDir, 'agent.log'));
      agent.onUnexpectedExit = opts.onDaemonExit;
      daemons.push(agent);
      hosts.push({ name, instanceId: instance.instanceId, az, machineId, deviceDir, agent });
    }
    // Agents start units themselves (systemd mode, in-memory systemd); the controller still talks to
    // the fleet stand-in so that a dead host's metadata is dropped, as on a fleet cluster.
    const controllerEnv = { ...env, EBS_FAILOVER_MODE: 'fleet' };
    const controller = new Daemon('controller', ['controller', '--candidate-id', 'demo-controller'], controllerEnv, join(dir, 'controller.log'));
    controller.onUnexpectedExit = opts.onDaemonExit;
    daemons.push(controller);
    for (const d of daemons) d.start();

    return {
      dir,
      etcdEndpoint: etcd.endpoint,
      ec2,
      fleet,
      hosts,
      controller,
      names: new Map(hosts.map((h) => [h.instanceId, h.name])),
      machines: new Map(hosts.map((h) => [h.machineId, h.instanceId])),
      cli: (args, o = {}) => runCli(args, env, { timeoutMs: o.timeoutMs ?? CLI_TIMEOUT_MS, ...(o.onLine ? { onLine: o.onLine } : {}) }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
