import { z } from 'zod';
import { DEFAULT_PREFIX } from '../keyspace/keys.js';
import { AvailabilityZone, InstanceId } from '../ec2/ids.js';

const URL_HINT = 'expected a URL like https://10.0.0.5:2379';

const HttpUrl = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}, URL_HINT);

/** `host:port` for a listener; host may be an IPv4/IPv6 literal or a name. */
const ListenAddress = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[a-zA-Z0-9.-]+):\d{1,5}$/, 'expected host:port like 127.0.0.1:9642');

const Ms = z.number().int().positive();

export const EtcdConfig = z
  .object({
    endpoints: z.array(HttpUrl, URL_HINT).min(1, 'at least one etcd endpoint is needed'),
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /**
     * The password in a file readable only by its owner (mode 0600): kept out of the config file, the
     * environment and `ps`. Read at start-up; a file accessible by group/others is refused.
     */
    passwordFile: z.string().min(1).optional(),
    /** Start even when keyFile or passwordFile is accessible by group/others (warns instead, as ssh can be told to). */
    allowInsecureFileModes: z.boolean().default(false),
  })
  .strict()
  .refine((e) => (e.certFile === undefined) === (e.keyFile === undefined), {
    message: 'certFile and keyFile go together (client TLS needs both)',
    path: ['certFile'],
  })
  .refine((e) => e.username === undefined || e.password !== undefined || e.passwordFile !== undefined, { message: 'a username needs a password (or passwordFile)', path: ['password'] })
  .refine((e) => e.password === undefined || e.passwordFile === undefined, { message: 'password and passwordFile exclude each other', path: ['passwordFile'] });

export const AwsConfig = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region like us-east-1').optional(),
    /** Tests and the demo point this at the loopback EC2 stand-in. */
    endpoint: HttpUrl.optional(),
  })
  .strict();

export const LeaseConfig = z
  .object({
    /**
     * Host lease TTL. 10 s: a dead host is noticed within ~10 s, while a few lost keepalives (sent every
     * TTL/3) on a busy network do not fence a healthy host.
     */
    ttlMs: Ms.min(2000, 'lease ttlMs below 2000 would fence healthy hosts on ordinary etcd hiccups').default(10_000),
    /**
     * The agent stops its units this long before its lease could expire in etcd, covering clock-rate
     * drift and the time to stop the unit and unmount (3 s of a 10 s TTL).
     */
    fenceMarginMs: z.number().int().nonnegative().default(3_000),
  })
  .strict()
  .refine((l) => l.fenceMarginMs < l.ttlMs, { message: 'fenceMarginMs must be smaller than ttlMs', path: ['fenceMarginMs'] });

/**
 * controller.autoRestore (opt-in): restore a service from its volume's newest completed snapshot into
 * another AZ once the volume's whole AZ has had no live host for `afterMs`, and only when EC2 shows the
 * old copy cannot run (volume detached, or its last instance stopped/terminated). Loud: event, metric,
 * status. Off by default: a restore loses what was written after the snapshot.
 */
export const AutoRestoreConfig = z
  .object({
    enabled: z.boolean().default(false),
    /** 15 min: an AZ hiccup or a reboot passes first; a restore loses the writes since the snapshot. */
    afterMs: Ms.min(1_000, 'autoRestore.afterMs below 1000 would restore on a mere lease hiccup').default(15 * 60_000),
    /** Only restore a snapshot at most this old (unset: any age; the data-loss window is reported either way). */
    snapshotMaxAgeMs: Ms.optional(),
  })
  .strict();

export const ControllerConfig = z
  .object({
    /** A dead host never finishes a graceful detach; force it after 30 s (EBS detach normally takes 1-10 s). */
    forceDetachAfterMs: Ms.default(30_000),
    /**
     * Failover steps in flight at once, so one slow volume does not hold up the rest. A step waiting
     * for the EC2 rate limiter holds its slot: at 4, an AZ-sized event queued its journal-only steps
     * behind throttled calls (bench: 100 at once 1.27 → 1.16 × floor, leader killed 1.39 → 1.23 at 16).
     */
    parallelism: z.number().int().min(1).max(64).default(16),
    /** Also StopInstances a fenced host (belt and braces against a host that is partitioned but alive). */
    stopInstanceOnFence: z.boolean().default(false),
    /** Prometheus metrics; loopback by default so nothing is exposed unless asked. */
    metricsListen: ListenAddress.default('127.0.0.1:9642'),
    /** Absent: off (see AutoRestoreConfig). */
    autoRestore: AutoRestoreConfig.optional(),
  })
  .strict();

export const AgentConfig = z
  .object({
    /** Overrides of what IMDSv2 would say (tests, non-EC2 demo hosts). */
    instanceId: InstanceId.optional(),
    az: AvailabilityZone.optional(),
    privateIp: z.string().min(1).optional(),
    machineId: z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-digit machine id').optional(),
    machineIdFile: z.string().startsWith('/').default('/etc/machine-id'),
    /** fleet: fleet starts the unit once the metadata is set; systemd: the agent starts it itself. */
    mode: z.enum(['fleet', 'systemd']).default('fleet'),
    fleetSocket: z.string().min(1).default('/var/run/fleet.sock'),
    deviceRoot: z.string().startsWith('/').default('/dev'),
    /** D-Bus address of the system bus; unset means the default system bus. */
    systemdBus: z.string().min(1).optional(),
    labels: z.record(z.string().regex(/^[a-zA-Z0-9_.-]+$/, 'expected a label key like role'), z.string()).default({}),
    /** Where the agent keeps its lease id so that a restart within the TTL resumes the same lease. */
    leaseStateFile: z.string().startsWith('/').default('/run/ebs-failover/lease'),
    /**
     * The peer endpoint (`GET /v1/etcd`): when this agent's lease renewals fail, it asks the other agents
     * whether they reach etcd, and fences only if one does (cut off alone) or none answers (cut off from
     * everyone); an etcd outage for everyone stops nothing. All interfaces by default, because peers on
     * other hosts must reach it; the host record advertises `privateIp:port`.
     */
    peerListen: ListenAddress.default('0.0.0.0:9643'),
    /** Every volume held active is re-verified this often (device, mount, unit); a drift is reported and repaired. */
    verifyEveryMs: Ms.min(100, 'verifyEveryMs below 100 would poll systemd in a busy loop').default(5_000),
  })
  .strict();

export const Config = z
  .object({
    etcd: EtcdConfig,
    prefix: z.string().startsWith('/', 'expected a key prefix like /ebs-failover/').default(DEFAULT_PREFIX),
    // prefault: an absent section is parsed as `{}`, so its fields get their own defaults.
    aws: AwsConfig.prefault({}),
    lease: LeaseConfig.prefault({}),
    controller: ControllerConfig.prefault({}),
    agent: AgentConfig.prefault({}),
  })
  .strict();
export type Config = z.infer<typeof Config>;
export type ConfigInput = z.input<typeof Config>;
