export { runController } from './controller.js';
export type { ControllerOptions, ControllerResult, FleetMetadataPort } from './options.js';
