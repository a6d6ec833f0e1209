export { runAgent, startAgent } from './agent/index.js';
export type { Agent, AgentOptions } from './agent/index.js';
export * from './systemd/index.js';
export * from './device.js';
export * from './mount.js';
