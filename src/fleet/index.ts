export { FleetClient, FleetWaitTimeoutError, DEFAULT_FLEET_SOCKET, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_UNAVAILABLE_RETRY_MS, DEFAULT_ACT_TIMEOUT_MS, type FleetClientOptions } from './client.js';
export { FleetApiError, FleetUnavailableError } from './errors.js';
export {
  FleetMachine,
  FleetUnitState,
  FleetUnit,
  UnitOption,
  DesiredState,
  MetadataOp,
  metadataPath,
  METADATA_PATH,
  type FleetPort,
} from './types.js';
