import { DEFAULT_PREFIX } from '../keyspace/index.js';
import type { DaemonExitedError } from '../testing/proc.js';
import { buildWorld, type Member, type World } from '../testing/world.js';

/**
 * The demo's world: src/testing/world.ts (the builder of tests, bench and the fault campaign) with the
 * real `failover` daemons (`daemons: 'cli'`, the in-memory systemd in each agent), one etcd member, the
 * EC2 endpoint with AWS-like latencies and throttling, and the fleet stand-in: four hosts
 * (`host-1`…`host-4` in the output) and a controller. This file only holds the demo's settings.
 */

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

const HOST_AZS = ['us-east-1a', 'us-east-1a', 'us-east-1a', 'us-east-1b'] as const;

export interface DemoCluster {
  world: World;
  /** The four host agents, named `host-1`…`host-4`. */
  hosts: Member[];
  controller: Member;
  /** instanceId → `host-N`, for the timeline. */
  names: Map<string, string>;
  /** fleet machine id → instanceId. */
  machines: Map<string, string>;
}

export interface DemoClusterOptions {
  /** Called when a daemon dies without the demo asking it to. */
  onDaemonExit(err: DaemonExitedError): void;
}

export async function startDemoCluster(opts: DemoClusterOptions): Promise<DemoCluster> {
  const world = await buildWorld({
    name: 'demo',
    daemons: 'cli',
    etcdMembers: 1,
    prefix: DEFAULT_PREFIX,
    fleet: true,
    ec2Throttle: true,
    latencies: EC2_LATENCIES,
    hosts: HOST_AZS.map((az, index) => ({
      az,
      name: `host-${index + 1}`,
      privateIp: `10.0.${az.endsWith('a') ? 1 : 2}.${10 + index}`,
      // fleetd on each host would register its machine with the static `role=db` metadata.
      labels: { role: 'db' },
    })),
    controllers: 1,
    controllerIds: ['demo-controller'],
    services: [],
    registered: 0,
    leaseTtlMs: LEASE_TTL_MS,
    fenceMarginMs: FENCE_MARGIN_MS,
    forceDetachAfterMs: FORCE_DETACH_AFTER_MS,
    logLevel: process.env.LOG_LEVEL ?? 'info',
    onUnexpectedExit: (_member, err) => opts.onDaemonExit(err),
  });
  const controller = world.controllers[0];
  if (!controller) throw new Error('the demo world has no controller');
  return {
    world,
    hosts: world.agents,
    controller,
    names: new Map(world.agents.map((h) => [h.id, h.name])),
    machines: new Map(world.agents.flatMap((h) => (h.machineId === null ? [] : [[h.machineId, h.id] as const]))),
  };
}
