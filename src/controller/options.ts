import type { Etcd3 } from 'etcd3';
import type { Ec2Port } from '../ec2/types.js';
import type { FailoverJournal } from '../keyspace/records.js';
import type { Logger } from '../log/logger.js';
import type { DecideConfig } from './observed.js';

/**
 * The only part of fleet's API the controller needs: drop a dead machine's metadata so fleet cannot
 * schedule the unit back there. `FleetClient` (src/fleet) satisfies it structurally.
 */
export interface FleetMetadataPort {
  removeMetadata(machineId: string, key: string): Promise<void>;
  /** Used when the fenced host's machine id is unknown (e.g. a new leader never saw its record). */
  listMachines?(): Promise<{ id: string; metadata: Record<string, string> }[]>;
}

/**
 * Options of `runController`. The CLI builds them from the parsed `Config`:
 * `{ ...config.controller, etcd: connectEtcd(config.etcd), ec2: createEc2(config.aws), fleet, prefix: config.prefix,
 *    candidateId, log, signal }`.
 */
export interface ControllerOptions {
  /** A connected client (src/locks `connectEtcd`). The controller does not close it. */
  etcd: Etcd3;
  ec2: Ec2Port;
  /** Omit when fleet is not used (agents in systemd mode): the metadata step is then skipped. */
  fleet?: FleetMetadataPort;
  /** etcd key prefix; default `/ebs-failover/`. */
  prefix?: string;
  /** This controller's name in the election (shown by `failover status`), e.g. `<hostname>:<pid>`. */
  candidateId: string;
  /** Election lease TTL; default 10 s (a dead leader is replaced within about this long). */
  electionTtlMs?: number;
  /**
   * A manual failover with `force` forces a still-busy detach after this long, and any detach stuck in
   * `detaching` is forced after it (config default 30 s). Auto failovers force at once: the old host is fenced.
   */
  forceDetachAfterMs: number;
  /** Failovers run concurrently up to this many. */
  parallelism: number;
  /** Also StopInstances a fenced host. */
  stopInstanceOnFence: boolean;
  /** `host:port` for Prometheus `/metrics`; null or omitted: no metrics listener. */
  metricsListen?: string | null;
  /**
   * controller.autoRestore: restore a service whose volume's whole AZ has had no live host for `afterMs`
   * from a snapshot into another AZ (src/controller/auto-restore.ts). Absent or not enabled: off.
   */
  autoRestore?: { enabled: boolean; afterMs: number; snapshotMaxAgeMs?: number };
  /** How long to wait for the target agent's `active` report before failing the failover; default 120 s. */
  reportTimeoutMs?: number;
  /** Other knobs of the decision core (e.g. `attachStuckAfterMs`), over DEFAULT_DECIDE_CONFIG; tests shorten them. */
  decide?: Partial<DecideConfig>;
  /** Grace before a host is called dead after the controller starts, an etcd reconnect or stall, or a lost term; default: longest host TTL × 4/3. */
  hostGraceMs?: number;
  log?: Logger;
  /** Aborting it resigns leadership and returns from `runController`. */
  signal: AbortSignal;
  /** Test hook: called after each journal write (crash tests kill the process at a given step). */
  onPersisted?: (journal: FailoverJournal) => void;
  /** Clock, for tests; default Date.now. */
  now?: () => number;
  /**
   * How long a new leader waits after its election before its first EC2 mutation, so that no call of
   * the previous term can still be in flight; default min(election TTL, the EC2 layer's `mutationMaxMs`).
   */
  mutationQuietMs?: number;
}

/** What `runController` resolves to once `signal` is aborted. */
export interface ControllerResult {
  /** How many times this process was elected while running. */
  terms: number;
}
