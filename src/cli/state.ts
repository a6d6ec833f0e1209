import type { Etcd3, IKeyValue } from 'etcd3';
import {
  AgentReport,
  decodeRecord,
  EventRecord,
  FailoverJournal,
  HostRecord,
  ManualRequest,
  Placement,
  ServiceRecord,
  type Keyspace,
} from '../keyspace/index.js';
import { etcdBounded } from './etcd.js';

/** A decoded record plus the etcd metadata the CLI needs (lease for TTL, mod revision for guarded txns). */
export interface Stored<T> {
  key: string;
  value: T;
  modRevision: string;
  lease: string;
}

/** One consistent read of everything `status` and `failover <unit>` look at. */
export interface ClusterState {
  revision: string;
  hosts: Map<string, Stored<HostRecord>>;
  services: Map<string, Stored<ServiceRecord>>;
  placements: Map<string, Stored<Placement>>;
  journals: Map<string, Stored<FailoverJournal>>;
  /** keyed `<instanceId>/<volumeId>` */
  reports: Map<string, Stored<AgentReport>>;
  requests: Map<string, Stored<ManualRequest>>;
  /** The campaign value of the current controller leader, or null when none. */
  leader: string | null;
  /** events/ in key (time) order; optional so hand-built states in tests may leave it out. */
  events?: EventRecord[];
}

function collect<T>(kvs: IKeyValue[], under: string, decode: (key: string, raw: Buffer) => T | undefined): Map<string, Stored<T>> {
  const out = new Map<string, Stored<T>>();
  for (const kv of kvs) {
    const key = kv.key.toString('utf8');
    const value = decode(key, kv.value);
    if (value !== undefined) out.set(key.slice(under.length), { key, value, modRevision: kv.mod_revision, lease: kv.lease });
  }
  return out;
}

/**
 * Reads the whole keyspace at one revision (one range over the prefix), so that the CLI never mixes
 * a host list from before a failover with placements from after it.
 */
export async function readClusterState(client: Etcd3, ks: Keyspace, opts: { servicesOnly?: boolean } = {}): Promise<ClusterState> {
  // servicesOnly: the snapshot job needs only services/, and its etcd role can read nothing else.
  const res = await etcdBounded(client, () => client.getAll().prefix(opts.servicesOnly ? ks.servicesPrefix() : ks.prefix).exec());
  const kvs = res.kvs;
  const under = (prefix: string): IKeyValue[] => kvs.filter((kv) => kv.key.toString('utf8').startsWith(prefix));
  // etcd3's Election: the candidate key created first is the leader.
  const election = under(ks.electionPrefix()).sort((a, b) => Number(BigInt(a.create_revision) - BigInt(b.create_revision)));
  return {
    revision: res.header.revision,
    hosts: collect(under(ks.hostsPrefix()), ks.hostsPrefix(), (k, v) => decodeRecord(HostRecord, k, v)),
    services: collect(under(ks.servicesPrefix()), ks.servicesPrefix(), (k, v) => decodeRecord(ServiceRecord, k, v)),
    placements: collect(under(ks.placementsPrefix()), ks.placementsPrefix(), (k, v) => decodeRecord(Placement, k, v)),
    journals: collect(under(ks.journalPrefix()), ks.journalPrefix(), (k, v) => decodeRecord(FailoverJournal, k, v)),
    reports: collect(under(ks.statusPrefix()), ks.statusPrefix(), (k, v) => decodeRecord(AgentReport, k, v)),
    requests: collect(under(ks.requestsPrefix()), ks.requestsPrefix(), (k, v) => decodeRecord(ManualRequest, k, v)),
    leader: election[0]?.value.toString('utf8') ?? null,
    events: [...collect(under(ks.eventsPrefix()), ks.eventsPrefix(), (k, v) => decodeRecord(EventRecord, k, v)).values()].map((e) => e.value),
  };
}

/** Seconds left on a key's lease (-1 when the lease is gone), for `status`. */
export async function leaseTtlLeftMs(client: Etcd3, lease: string): Promise<number | null> {
  if (lease === '0') return null;
  const res = await etcdBounded(client, () => client.leaseClient.leaseTimeToLive({ ID: lease }));
  return Number(res.TTL) * 1000;
}

/** Is a failover of this volume still running? (`done`/`failed` are final.) */
export function isInProgress(journal: FailoverJournal | undefined): boolean {
  return journal !== undefined && journal.step !== 'done' && journal.step !== 'failed';
}
