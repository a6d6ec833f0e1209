export { startEc2Endpoint, type Ec2Endpoint, type Ec2EndpointOptions } from './server.js';
export { Ec2Sim, type Ec2SimOptions, type SimStats, type VolumeView, type InstanceView, type SnapshotView } from './sim.js';
export { ManualClock, realClock, type SimClock } from './clock.js';
export { Fault } from './faults.js';
export { Ec2SimError } from './errors.js';
export { AWS_THROTTLE_DEFAULTS, type BucketSpec, type ThrottleCategory } from './throttle.js';
export {
  AWS_LIKE_LATENCIES,
  DEFAULT_LATENCIES,
  SIM_ACCOUNT_ID,
  NITRO_ATTACHMENT_SLOTS,
  type HistoryEntry,
  type RequestEntry,
  type Latencies,
} from './model.js';
export { AddInstanceInput, AddVolumeInput, SeedInput, ThrottleInput } from './schemas.js';
export { applySeed, loadSeedFile } from './seed.js';
export { nvmeLinkName } from './devices.js';
