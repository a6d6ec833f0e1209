import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../log/logger.js';
import type { Keyspace } from '../../keyspace/index.js';
import type { FleetMetadataClient, MetadataPort } from '../fleet-metadata.js';

/**
 * Everything `runAgent`/`startAgent` takes. The CLI passes the identity, lease settings and a few
 * paths; tests additionally inject ports (`systemd`, `metadata`) and shorter timeouts.
 */
export interface AgentOptions {
  /** A connected client (src/locks `connectEtcd`). The agent never closes it. */
  etcd: Etcd3;
  /** etcd key prefix (default `/ebs-failover/`); ignored when `keyspace` is given. */
  prefix?: string;
  keyspace?: Keyspace;

  // Host record fields (hosts/<instanceId>).
  instanceId: string;
  az: string;
  privateIp: string;
  /** fleet's machine id (`/etc/machine-id`). */
  machineId: string;
  labels?: Record<string, string>;
  agentVersion?: string;

  /** Host lease TTL. */
  leaseTtlMs: number;
  /** The agent fences itself this long before its lease could expire in etcd. */
  fenceMarginMs: number;
  /** Where the lease id is kept so that a restart within the TTL resumes the same lease. */
  leaseStateFile?: string;

  /**
   * `fleet`: fleet starts the unit once this machine's metadata matches (the agent sets metadata and
   * waits for the unit). `systemd`: the agent starts and stops the unit itself.
   */
  mode: 'fleet' | 'systemd';
  /** fleet API client (API metadata mode). Ignored when `metadata` is given. */
  fleet?: FleetMetadataClient;
  /** The metadata port; default: API mode over `fleet` if given, otherwise no metadata. */
  metadata?: MetadataPort;

  /** Where device nodes appear (`/dev`, or a test directory). */
  deviceRoot: string;
  /** Device root as the host's systemd sees it (default `/dev`); differs from `deviceRoot` only in tests. */
  unitDeviceRoot?: string;
  /**
   * Where runtime drop-ins go (default `/run/systemd/system`; with `systemdBus: 'memory'` a private
   * temp dir, so that an in-memory agent never writes into this machine's real systemd).
   */
  runDir?: string;
  /** A SystemdPort (src/host/systemd). When absent, one is opened from `systemdBus`. */
  systemd?: import('../systemd/port.js').SystemdPort;
  /** D-Bus address of systemd (default: the system bus); `memory` selects the in-memory stand-in. */
  systemdBus?: string;

  /**
   * Where to serve the peer endpoint (`host:port`, port 0 = any free port; the CLI's default is
   * `0.0.0.0:9643`). Absent: not served; this agent still asks its peers before fencing.
   */
  peerListen?: string;

  timeouts?: Partial<AgentTimeouts>;
  log?: Logger;
  /** Aborted on SIGTERM: `runAgent` returns WITHOUT stopping units or revoking the lease. */
  signal?: AbortSignal;
}

export interface AgentTimeouts {
  /** How long a placement may wait for its device node before the attempt is reported `failed`. */
  deviceMs: number;
  /** Mount unit start + identity check. */
  mountMs: number;
  /** Service unit active (started by us, or by fleet once metadata matches). */
  unitMs: number;
  /** Stop unit / stop mount on release. */
  stopMs: number;
  /** A failed placement attempt is retried after this long (level-based: the placement still says so). */
  retryMs: number;
  /**
   * Every volume held `active` is re-verified this often: device present and the right volume, mount
   * active, unit active. A drift is reported (`drift`) and repaired.
   */
  verifyEveryMs: number;
}

/**
 * Defaults: an EBS attach usually completes within 1-10 s but may take a minute on a busy instance,
 * hence 120 s for the device; a journal replay on mount can take tens of seconds; postgres crash
 * recovery after a failover can take minutes, hence 5 min for the unit. Retries every 5 s keep a
 * transient failure (e.g. a device that needed a rescan) from needing a new placement generation.
 * Re-verification every 5 s: three local reads (a stat, two unit states), so a crashed unit or a
 * vanished disk is noticed within seconds at no measurable cost.
 */
export const DEFAULT_TIMEOUTS: AgentTimeouts = {
  deviceMs: 120_000,
  mountMs: 90_000,
  unitMs: 300_000,
  stopMs: 90_000,
  retryMs: 5_000,
  verifyEveryMs: 5_000,
};

/** What `startAgent` returns. */
export interface Agent {
  /**
   * Stops the loop. `keepLease: true` (SIGTERM): units, mounts and the lease are left as they are, so a
   * restarted agent adopts them. `keepLease: false`: the lease is revoked (units are still not stopped).
   */
  shutdown(opts?: { keepLease?: boolean }): Promise<void>;
  /** Resolves once every in-flight reconcile of the current placements has settled (tests). */
  idle(): Promise<void>;
  /** Volumes this agent currently holds (mounted or unit running), by volume id. */
  held(): ReadonlyMap<string, HeldVolume>;
  /** Fence events handled so far, with timings (tests and logs). */
  readonly fences: readonly FenceRecord[];
  /** Where the peer endpoint is served (`ip:port`), or null when it is not. */
  readonly peerEndpoint: string | null;
  /** The reconciler's state of one volume (tests, logs). */
  volumeState(volumeId: string): import('./volume-state.js').VolumeState;
}

export interface HeldVolume {
  volumeId: string;
  unit: string;
  generation: number;
  phase: import('../../keyspace/index.js').AgentPhase;
}

export interface FenceRecord {
  /** When the registrar emitted 'fence'. */
  startedAt: number;
  /** When every unit and mount was stopped (or failed to stop). */
  stoppedAt: number;
  volumeIds: string[];
  errors: string[];
  /** Why the host fenced: the registrar's reason and, when peers were asked, their verdict. */
  reason: string;
}
