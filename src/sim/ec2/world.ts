import type { SimClock } from './clock.js';
import type { DeviceFiles } from './devices.js';
import type { FaultBook } from './faults.js';
import type { HistoryEntry, Latencies, SimInstance, SimSnapshot, SimVolume } from './model.js';

/** The simulator's mutable state, shared by the semantic modules (attachments, instances, snapshots). */
export interface World {
  readonly instances: Map<string, SimInstance>;
  readonly volumes: Map<string, SimVolume>;
  readonly snapshots: Map<string, SimSnapshot>;
  readonly clock: SimClock;
  readonly devices: DeviceFiles;
  readonly faults: FaultBook;
  readonly history: HistoryEntry[];
  latencies: Latencies;
  /** Multiplier the clock applies to every delay (> 0); 1 for a manual clock. */
  timeScale(): number;
  /** Volumes the host still uses (set through `setInUse`), besides the on-disk in-use marker. */
  readonly inUse: Set<string>;
  /** `ms` with the configured jitter applied (every scheduled delay goes through it). */
  delay(ms: number): number;
}
