import { z } from 'zod';
import { AvailabilityZone, InstanceId, VolumeId } from '../../ec2/ids.js';
import { Fault } from './faults.js';

const Tags = z.record(z.string(), z.string());

/** Input of `addInstance` (in-process, `/_sim/instances`, seed files). */
export const AddInstanceInput = z.object({
  instanceId: InstanceId.optional(),
  az: AvailabilityZone,
  state: z.enum(['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated']).default('running'),
  privateIp: z.string().optional(),
  tags: Tags.default({}),
  /** Nitro instances name EBS devices nvme<N>n1 and share attachment slots with ENIs. */
  nitro: z.boolean().default(true),
  /** Network interfaces on the instance; on Nitro each takes one of the 28 shared slots. */
  eniCount: z.number().int().min(1).max(27).default(1),
});
export type AddInstanceInput = z.input<typeof AddInstanceInput>;

export const AddVolumeInput = z.object({
  volumeId: VolumeId.optional(),
  az: AvailabilityZone,
  sizeGiB: z.number().int().min(1).max(65_536).default(8),
  tags: Tags.default({}),
  /** EBS Multi-Attach (io1/io2): only reported by DescribeVolumes; the sim still holds one attachment. */
  multiAttachEnabled: z.boolean().default(false),
});
export type AddVolumeInput = z.input<typeof AddVolumeInput>;

const Millis = z.number().min(0);
/**
 * Jitter on every simulated delay and on every API answer: each delay is multiplied by a factor drawn
 * uniformly from [1 − ratio, 1 + ratio]. With `seed` the draws repeat from run to run.
 */
export const JitterInput = z.object({ ratio: z.number().min(0).max(1), seed: z.number().int().optional() }).strict();
export type JitterInput = z.infer<typeof JitterInput>;
export const LatenciesInput = z
  .object({
    attachMs: Millis,
    detachMs: Millis,
    snapshotMs: Millis,
    stopMs: Millis,
    forceStopMs: Millis,
    terminateMs: Millis,
    /** Delay before every API answer (the state change happens on receipt, as on EC2); default 0. */
    callMs: Millis,
    jitter: JitterInput.nullable(),
  })
  .partial()
  .strict();
export type LatenciesInput = z.infer<typeof LatenciesInput>;

const Bucket = z.object({ burst: z.number().positive(), perSecond: z.number().positive() });
export const ThrottleInput = z
  .object({
    enabled: z.boolean(),
    /** Multiplies every bucket's burst and refill rate (e.g. 10 for a demo with many hosts). */
    scale: z.number().positive(),
    buckets: z
      .object({ describeFiltered: Bucket, describeUnfiltered: Bucket, mutating: Bucket, snapshot: Bucket, tags: Bucket })
      .partial(),
  })
  .partial()
  .strict();
export type ThrottleInput = z.input<typeof ThrottleInput>;

/** A seed file for `main.ts`: resources and settings to start with. */
export const SeedInput = z
  .object({
    instances: z.array(AddInstanceInput).default([]),
    volumes: z.array(AddVolumeInput).default([]),
    latencies: LatenciesInput.optional(),
    timeScale: z.number().positive().optional(),
    throttle: ThrottleInput.optional(),
    faults: z.array(Fault).default([]),
    deviceDirs: z.record(InstanceId, z.string()).default({}),
  })
  .strict();
export type SeedInput = z.input<typeof SeedInput>;
