import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { z } from 'zod';
import { silentLogger, type Logger } from '../log/logger.js';
import { Ec2Caller, type Ec2Send } from './call.js';
import { InvalidInputError } from './errors.js';
import { GatedHttpHandler, type GateHooks } from './gate.js';
import { describeInstanceStatus, describeInstances, findInstances, stopInstance } from './instances.js';
import { VolumePoller } from './poller.js';
import { createSnapshot, deleteSnapshot, listSnapshots, tagResources, untagResources } from './snapshots.js';
import { EC2_TIMING, type Ec2Timing } from './timing.js';
import { RateLimiter, systemClock, type BucketSpec, type Clock, type RateCategory } from './token-bucket.js';
import type { Ec2Port } from './types.js';
import { checkAz, checkDevice, checkInstanceId, checkList, checkSnapshotId, checkTags, checkTimeout, checkVolumeId } from './validate.js';
import { attachVolume, createVolume, describeVolumeMap, describeVolumes, detachVolume, findVolumes } from './volumes.js';
import { detachAndWait, waitAttached, waitAvailable, type WaitDeps } from './wait.js';

const BucketSpecSchema = z.object({ burst: z.number().min(1), perSecond: z.number().positive() });
const OptionsSchema = z.object({
  region: z.string().min(1).optional(),
  endpoint: z.url().optional(),
  bucket: z.partialRecord(z.enum(['mutating', 'describe', 'snapshot', 'tags']), BucketSpecSchema).optional(),
});

export interface CreateEc2Options {
  /** Defaults to AWS_REGION / AWS_DEFAULT_REGION, else the SDK's own resolution (profile). */
  region?: string;
  /** EC2 endpoint override (the simulator in tests); the SDK also reads AWS_ENDPOINT_URL_EC2 itself. */
  endpoint?: string;
  credentials?: EC2ClientConfig['credentials'];
  log?: Logger;
  /** Client-side rate limits per category (defaults: AWS's, see EC2_RATE_DEFAULTS). */
  bucket?: Partial<Record<RateCategory, BucketSpec>>;
  /** A ready client (tests: `aws-sdk-client-mock`); region/endpoint/credentials are then unused. */
  client?: Ec2Send;
  /** Injected time for waits and buckets (unit tests). */
  clock?: Clock;
  timing?: Partial<Ec2Timing>;
  /** Test hooks of the mutation gate (src/ec2/gate.ts); unused with `client`. */
  gateHooks?: GateHooks;
}

/** Placeholder keys for a loopback endpoint (the simulator checks no signatures). */
const LOOPBACK_CREDENTIALS = { accessKeyId: 'AKIDSIMULATOR', secretAccessKey: 'simulator-secret' };

function isLoopback(endpoint: string | undefined): boolean {
  if (endpoint === undefined) return false;
  const host = new URL(endpoint).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}

function sdkClient(opts: CreateEc2Options): Ec2Send {
  const endpoint = opts.endpoint ?? process.env.AWS_ENDPOINT_URL_EC2;
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (endpoint !== undefined ? 'us-east-1' : undefined);
  const credentials = opts.credentials ?? (isLoopback(endpoint) && process.env.AWS_ACCESS_KEY_ID === undefined ? LOOPBACK_CREDENTIALS : undefined);
  return new EC2Client({
    ...(region === undefined ? {} : { region }),
    ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
    ...(credentials === undefined ? {} : { credentials }),
    // Our p-retry layer owns retrying (with the shared token buckets); SDK retries would multiply it.
    maxAttempts: 1,
    // Every request passes the mutation gate last, after signing (a no-op for ungated calls).
    requestHandler: new GatedHttpHandler(new NodeHttpHandler(), opts.gateHooks),
  });
}

/** The SDK-backed `Ec2Port`. One instance shares its rate limiter and poll batching across callers. */
export function createEc2(opts: CreateEc2Options = {}): Ec2Port {
  const parsed = OptionsSchema.safeParse({ region: opts.region, endpoint: opts.endpoint, bucket: opts.bucket });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') ?? 'options';
    throw new InvalidInputError(field, undefined, issue?.message ?? 'invalid EC2 options');
  }
  const log = (opts.log ?? silentLogger()).child({ component: 'ec2' });
  const clock = opts.clock ?? systemClock;
  const timing: Ec2Timing = { ...EC2_TIMING, ...opts.timing };
  const caller = new Ec2Caller(opts.client ?? sdkClient(opts), new RateLimiter(opts.bucket, clock), log, timing);
  const poller = new VolumePoller((volumeIds) => describeVolumeMap(caller, volumeIds), timing.pollCoalesceMs);
  const waitDeps: WaitDeps = {
    observe: async (volumeId, signal) => poller.observe(volumeId, signal),
    detach: async (volumeId, instanceId, force, signal, guard) => detachVolume(caller, volumeId, instanceId, force, signal, guard),
    clock,
    timing,
    log,
    stuckSince: new Map(),
  };
  const azOf = async (volumeId: string, instanceId: string): Promise<{ volumeAz: string; instanceAz: string }> => {
    const [[volume], [instance]] = await Promise.all([describeVolumes(caller, [volumeId]), describeInstances(caller, [instanceId])]);
    return { volumeAz: volume?.az ?? '?', instanceAz: instance?.az ?? '?' };
  };

  return {
    describeVolumes: async (volumeIds, o) => describeVolumes(caller, checkList(volumeIds, 'volumeIds', checkVolumeId), o?.signal),
    describeInstances: async (instanceIds, o) => describeInstances(caller, checkList(instanceIds, 'instanceIds', checkInstanceId), o?.signal),
    describeInstanceStatus: async (instanceIds, o) => describeInstanceStatus(caller, checkList(instanceIds, 'instanceIds', checkInstanceId), o?.signal),
    findInstances: async (filter, o) =>
      findInstances(caller, { az: filter.az === undefined ? undefined : checkAz(filter.az), tags: filter.tags === undefined ? undefined : checkTags(filter.tags) }, o?.signal),
    attachVolume: async (volumeId, instanceId, device, o) => attachVolume(caller, checkVolumeId(volumeId), checkInstanceId(instanceId), checkDevice(device), o?.signal, azOf, o?.guard, o?.beforeSend),
    detachVolume: async (volumeId, instanceId, force, o) => detachVolume(caller, checkVolumeId(volumeId), checkInstanceId(instanceId), force, o?.signal, o?.guard, o?.beforeSend),
    waitAttached: async (volumeId, instanceId, o) => waitAttached(waitDeps, checkVolumeId(volumeId), checkInstanceId(instanceId), { timeoutMs: checkTimeout(o.timeoutMs, 'timeoutMs'), signal: o.signal }),
    waitAvailable: async (volumeId, o) => waitAvailable(waitDeps, checkVolumeId(volumeId), { timeoutMs: checkTimeout(o.timeoutMs, 'timeoutMs'), signal: o.signal }),
    detachAndWait: async (volumeId, instanceId, o) =>
      detachAndWait(waitDeps, checkVolumeId(volumeId), checkInstanceId(instanceId), {
        forceAfterMs: checkTimeout(o.forceAfterMs, 'forceAfterMs'),
        allowForce: o.allowForce,
        timeoutMs: checkTimeout(o.timeoutMs, 'timeoutMs'),
        signal: o.signal,
        guard: o.guard,
      }),
    stopInstance: async (instanceId, o) => stopInstance(caller, checkInstanceId(instanceId), o?.force ?? false, o?.signal, o?.guard),
    createSnapshot: async (volumeId, description, tags, o) => createSnapshot(caller, checkVolumeId(volumeId), description, checkTags(tags), o?.signal, o?.guard),
    listSnapshots: async (filter, o) =>
      listSnapshots(
        caller,
        {
          volumeIds: filter.volumeIds === undefined ? undefined : checkList(filter.volumeIds, 'volumeIds', checkVolumeId),
          tags: filter.tags === undefined ? undefined : checkTags(filter.tags),
          ownerSelf: filter.ownerSelf,
        },
        o?.signal,
      ),
    deleteSnapshot: async (snapshotId, o) => deleteSnapshot(caller, checkSnapshotId(snapshotId), o?.signal, o?.guard),
    createVolume: async (p, o) =>
      createVolume(caller, { ...p, az: checkAz(p.az), snapshotId: checkSnapshotId(p.snapshotId), tags: checkTags(p.tags) }, o?.signal, o?.guard),
    findVolumes: async (filter, o) => findVolumes(caller, checkTags(filter.tags), o?.signal),
    tagResources: async (resourceIds, tags, o) => tagResources(caller, checkList(resourceIds, 'resourceIds', checkResourceId), checkTags(tags), o?.signal),
    untagResources: async (resourceIds, tagKeys, o) => untagResources(caller, checkList(resourceIds, 'resourceIds', checkResourceId), checkList(tagKeys, 'tagKeys', checkTagKey), o?.signal),
  };
}

function checkResourceId(value: unknown, field: string): string {
  if (typeof value === 'string' && /^(vol|i|snap)-[0-9a-f]{8,17}$/.test(value)) return value;
  throw new InvalidInputError(field, value, 'expected a vol-…, i-… or snap-… id');
}

function checkTagKey(value: unknown, field: string): string {
  if (typeof value === 'string' && value.length > 0 && value.length <= 128) return value;
  throw new InvalidInputError(field, value, 'expected a tag key of 1–128 characters');
}
