/**
 * Records what the cluster did, as history events: a watch on the world's etcd prefix (journals,
 * placements, hosts, reports, requests, services, election), read at once from the start so nothing
 * is missed, and re-read from the last revision after a broken watch (etcd3's watcher resumes by
 * revision). Uses etcd3's watcher directly, not the project's PrefixWatch: the recorder must not
 * share the bugs of the code under test.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Keyspace } from '../../keyspace/index.js';
import type { HistoryEvent } from './history.js';

type Json = Record<string, unknown>;

function parse(value: Buffer): Json | null {
  try {
    const v: unknown = JSON.parse(value.toString());
    return typeof v === 'object' && v !== null ? (v as Json) : null;
  } catch {
    return null;
  }
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** One etcd change → history events (none for keys the checker does not use). */
export function eventFor(ks: Keyspace, at: number, key: string, value: Buffer | null, createRevision: string): HistoryEvent[] {
  const present = value !== null;
  const rec = value === null ? null : parse(value);
  const tail = (under: string): string | null => (key.startsWith(under) ? key.slice(under.length) : null);
  let t: string | null;
  if ((t = tail(ks.hostsPrefix())) !== null) return [{ at, type: 'host', host: t, up: present }];
  if ((t = tail(ks.servicesPrefix())) !== null) return [{ at, type: 'service', unit: t, present }];
  if ((t = tail(ks.placementsPrefix())) !== null) {
    if (rec === null) return [];
    return [{ at, type: 'placement', volumeId: t, instanceId: str(rec.instanceId) ?? null, generation: num(rec.generation) ?? 0 }];
  }
  if ((t = tail(ks.journalPrefix())) !== null) {
    if (rec === null) return [];
    return [{
      at, type: 'journal', volumeId: t, unit: str(rec.unit) ?? '', kind: rec.kind === 'manual' ? 'manual' : 'auto', step: str(rec.step) ?? '?',
      from: str(rec.fromInstanceId) ?? null, to: str(rec.toInstanceId) ?? null, requestId: str(rec.requestId) ?? null, startedAt: num(rec.startedAt) ?? at,
      ...(str(rec.cause) === undefined ? {} : { cause: str(rec.cause) }),
      blockedReason: str(rec.blockedReason) ?? null, error: str(rec.error) ?? null,
    }];
  }
  if ((t = tail(ks.statusPrefix())) !== null) {
    const [host = '', volumeId = ''] = t.split('/');
    if (rec === null) return [{ at, type: 'status', host, volumeId, present: false }];
    return [{ at, type: 'status', host, volumeId, present: true, phase: str(rec.phase), mountActive: rec.mountActive === true, unitActive: rec.unitActive === true, generation: num(rec.generation) }];
  }
  if ((t = tail(ks.requestsPrefix())) !== null) {
    if (rec === null) return [{ at, type: 'request', volumeId: t, present: false }];
    return [{
      at, type: 'request', volumeId: t, present: true, requestId: str(rec.requestId), requestedAt: num(rec.requestedAt), deadline: num(rec.deadline),
      toInstanceId: str(rec.toInstanceId) ?? null, force: rec.force === true, refusedReason: str(rec.refusedReason) ?? null,
    }];
  }
  if (key.startsWith(ks.electionPrefix())) return [{ at, type: 'election', key, candidate: value?.toString() ?? '', createRevision, present }];
  return [];
}

export class EtcdRecorder {
  private watcher: Watcher | null = null;
  /** Create revisions of live election keys: a delete event carries none. */
  private readonly revisions = new Map<string, string>();

  constructor(private readonly client: Etcd3, private readonly ks: Keyspace, private readonly record: (e: HistoryEvent) => void) {}

  async start(): Promise<void> {
    const res = await this.client.getAll().prefix(this.ks.prefix).exec();
    const now = Date.now();
    for (const kv of res.kvs) this.emit(now, kv, false);
    const startRevision = String(BigInt(res.header.revision) + 1n);
    this.watcher = await this.client.watch().prefix(this.ks.prefix).startRevision(startRevision).create();
    this.watcher.on('put', (kv: IKeyValue) => this.emit(Date.now(), kv, false));
    this.watcher.on('delete', (kv: IKeyValue) => this.emit(Date.now(), kv, true));
    // Reconnects are etcd3's job; an error here only means the watch is being re-established.
    this.watcher.on('error', () => undefined);
  }

  private emit(at: number, kv: IKeyValue, deleted: boolean): void {
    const key = kv.key.toString();
    let rev = String(kv.create_revision);
    if (deleted) rev = this.revisions.get(key) ?? rev;
    else this.revisions.set(key, rev);
    if (deleted) this.revisions.delete(key);
    for (const e of eventFor(this.ks, at, key, deleted ? null : kv.value, rev)) this.record(e);
  }

  async stop(): Promise<void> {
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = null;
  }
}
