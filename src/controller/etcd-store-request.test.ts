import { describe, expect, it } from 'vitest';
import { encodeRecord, keyspace, type FailoverJournal, type ManualRequest } from '../keyspace/index.js';
import { TxnConflictError, type TxnCompare } from '../locks/index.js';
import { silentLogger } from '../log/logger.js';
import { EtcdStore } from './etcd-store.js';
import { FakeMirror } from '../testing/fake-mirror.js';

type Txn = { compares?: TxnCompare[]; puts?: { key: string; value: string }[]; deletes?: string[] };

const ks = keyspace('/t/');
const VOL = 'vol-0123456789abcdef0';
const request: ManualRequest = {
  requestId: 'r-1', unit: `postgres@${VOL}`, volumeId: VOL, toInstanceId: 'i-0aaa1111bbbb2222c', force: false,
  requestedAt: 1_000, refusedReason: null, deadline: 60_000,
};
const journal = { volumeId: VOL, requestId: 'r-1' } as unknown as FailoverJournal;

function store(hosts = new FakeMirror()): { s: EtcdStore; requests: FakeMirror; txns: Txn[] } {
  const requests = new FakeMirror();
  const txns: Txn[] = [];
  const other = (): FakeMirror => new FakeMirror();
  const s = new EtcdStore({
    ks, log: silentLogger(), now: () => 0, listKeys: async () => [],
    leadership: { txnGuarded: async (ops) => void txns.push(ops) },
    mirrors: { hosts, reports: other(), services: other(), placements: other(), journals: other(), requests },
  });
  return { s, requests, txns };
}

// Chaos seed 71: a tick decided to start a manual move, spent 4.7 s on EC2 look-ups, and meanwhile the
// operator's `failover cancel` withdrew the request and printed "nothing changed"; the start was
// then written anyway, and the move happened.
describe('EtcdStore: writes that act on a manual request', () => {
  it('starting a failover from a request compares the request as the decision saw it', async () => {
    const { s, requests, txns } = store();
    requests.map.set(ks.request(VOL), encodeRecord(request));
    await s.write({ journal, deleteRequestOf: VOL });
    expect(txns).toHaveLength(1);
    expect(txns[0]?.compares).toEqual([{ key: ks.request(VOL), target: 'Value', op: '==', value: encodeRecord(request) }]);
    expect(txns[0]?.deletes).toEqual([ks.request(VOL)]);
  });

  it('a request withdrawn since the decision: the start is refused and nothing is written', async () => {
    const { s, txns } = store();
    const err = await s.write({ journal, deleteRequestOf: VOL }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TxnConflictError);
    expect((err as TxnConflictError).keys).toEqual([ks.request(VOL)]);
    expect(txns).toEqual([]);
  });

  it('a refusal is not written back over a withdrawn request (it would reappear)', async () => {
    const { s, txns } = store();
    const refused = { ...request, refusedReason: 'no such host', refusedAt: 2_000 };
    await expect(s.write({ request: refused })).rejects.toBeInstanceOf(TxnConflictError);
    expect(txns).toEqual([]);
  });

  it('our own refusal not yet delivered by the watch is what a later drop compares against', async () => {
    const { s, requests, txns } = store();
    requests.map.set(ks.request(VOL), encodeRecord(request));
    const refused = { ...request, refusedReason: 'no such host', refusedAt: 2_000 };
    await s.write({ request: refused });
    await s.write({ deleteRequestOf: VOL });
    expect(txns[1]?.compares).toEqual([{ key: ks.request(VOL), target: 'Value', op: '==', value: encodeRecord(refused) }]);
  });

  it('writes that touch no request carry no request compare', async () => {
    const { s, txns } = store();
    await s.write({ journal });
    expect(txns[0]?.compares).toEqual([]);
  });
});

// Chaos seed 70: a failover of a lost holder written after the holder had re-registered.
describe('EtcdStore: starting the failover of a lost holder', () => {
  const HOST = 'i-0aaa1111bbbb2222c';

  it('holds only while the host has no record: the txn compares its key absent', async () => {
    const { s, txns } = store();
    await s.write({ journal, hostAbsent: HOST });
    expect(txns[0]?.compares).toEqual([{ key: ks.host(HOST), target: 'Version', op: '==', value: 0 }]);
  });

  it('a host the watch already shows back: refused before etcd is asked, nothing written', async () => {
    const hosts = new FakeMirror();
    hosts.map.set(ks.host(HOST), '{}');
    const { s, txns } = store(hosts);
    const err = await s.write({ journal, hostAbsent: HOST }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TxnConflictError);
    expect((err as TxnConflictError).keys).toEqual([ks.host(HOST)]);
    expect(txns).toEqual([]);
  });
});
