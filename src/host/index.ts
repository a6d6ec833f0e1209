export { runAgent, startAgent } from './agent/index.js';
export type { Agent, AgentOptions } from './agent/index.js';
