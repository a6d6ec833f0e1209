export { runAgent, startAgent } from './agent.js';
export type { Agent, AgentOptions, AgentTimeouts, FenceRecord, HeldVolume } from './options.js';
export { DEFAULT_TIMEOUTS } from './options.js';
export type { VolumeState, Drift, DriftKind } from './volume-state.js';
