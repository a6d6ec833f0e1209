export { Config, EtcdConfig, AwsConfig, LeaseConfig, ControllerConfig, AgentConfig, type ConfigInput } from './schema.js';
export { configWarnings, loadConfig, mergeLayers, type LoadConfigOptions } from './load.js';
export { ConfigError, fieldPath, fromZodError } from './errors.js';
export { ENV_PREFIX, ENV_VARS, configFromEnv, parseLabels, parseList, setPath } from './env.js';
