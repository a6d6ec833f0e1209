export type { ActiveState, JobResult, ReloadOptions, SystemdPort, UnitOpOptions, UnitState } from './port.js';
export { SystemdBusError, UnitFailedError, UnitNotFoundError, UnitTimeoutError } from './errors.js';
export { DbusSystemd, type DbusSystemdOptions, type JournalReader } from './dbus.js';
export { JobTracker } from './jobs.js';
export { MemorySystemd, type MemoryJobRecord, type MemorySystemdOptions, type MemoryUnitSpec } from './memory.js';
