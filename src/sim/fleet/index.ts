export { startFleetServer, type FleetServer, type FleetServerOptions } from './server.js';
export { FleetState, PatchError, type MetadataChange, type ScheduleChange, type SimUnit } from './state.js';
