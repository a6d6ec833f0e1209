import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../log/logger.js';
import { advertisedEndpoint, decideFence, parseListen, probePeer, probeTimeoutMs, servePeerEndpoint, type PeerServer, type ProbeResult } from './peers.js';

const A = { instanceId: 'i-0aaaaaaaaaaaaaaa1', endpoint: '10.0.1.11:9643' };
const B = { instanceId: 'i-0bbbbbbbbbbbbbbb2', endpoint: '10.0.1.12:9643' };
/** This host last renewed 2 500 ms ago; renewals every 1 333 ms: a peer renewal younger than 1 167 ms proves etcd answers. */
const CTX = { now: 100_000, selfRenewalAgoMs: 2_500, renewEveryMs: 1_333, recoveryGraceMs: 2_667 };
const fresh = { outageForAll: false, peersBackSince: null };
const afterOutage = { outageForAll: true, peersBackSince: null };
/** An answer from an agent that does not probe etcd for the question (its last renewal's word). */
const reaches = (peer: typeof A, ago = 300): ProbeResult => ({ peer, answer: { instanceId: peer.instanceId, reachesEtcd: true, lastRenewalAgoMs: ago, fresh: false } });
const cutOff = (peer: typeof A): ProbeResult => ({ peer, answer: { instanceId: peer.instanceId, reachesEtcd: false, lastRenewalAgoMs: 12_000, fresh: false } });
/** An answer from a round trip to etcd made for the question. */
const freshly = (peer: typeof A, reachesEtcd: boolean, ago = 1_200): ProbeResult => ({ peer, answer: { instanceId: peer.instanceId, reachesEtcd, lastRenewalAgoMs: ago, fresh: true } });
const silent = (peer: typeof A): ProbeResult => ({ peer, error: 'TimeoutError: The operation was aborted due to timeout' });
const KEEP = 'keeping units running (EC2 single attachment keeps each disk exclusive)';

describe('decideFence', () => {
  it.each<[string, ProbeResult[], boolean, string]>([
    ['no peer known', [], false, `no peer known: an etcd outage cannot be told from being cut off alone; ${KEEP}`],
    ['a peer renewed after this host began failing', [cutOff(A), reaches(B)], true, `${B.instanceId} renewed after this host's renewals began failing (2500 ms ago): this host is cut off alone`],
    ['one proves it, the other is silent', [silent(A), reaches(B)], true, `${B.instanceId} renewed after this host's renewals began failing (2500 ms ago): this host is cut off alone`],
    ['both prove it', [reaches(A), reaches(B, 1_000)], true, `${A.instanceId}, ${B.instanceId} renewed after this host's renewals began failing (2500 ms ago): this host is cut off alone`],
    ['nobody answers', [silent(A), silent(B)], true, 'none of 2 known peer(s) answered: this host is cut off from everyone'],
    ['all answer, none reaches etcd', [cutOff(A), cutOff(B)], false, `2 of 2 peer(s) answered and none reaches etcd: etcd is down for everyone; ${KEEP}`],
    ['one answers without etcd, one is silent', [cutOff(A), silent(B)], false, `1 of 2 peer(s) answered and none reaches etcd: etcd is down for everyone; ${KEEP}`],
    [
      // Start of an outage: B renewed just before etcd went away and has not noticed yet.
      'a stale claim (renewed before this host began failing) is no proof',
      [cutOff(A), reaches(B, 1_200)], false, `${B.instanceId} last renewed before this host's renewals began failing: no proof etcd answers anyone; asking again`,
    ],
    [
      // The start-of-outage race, answered by a fresh probe: B's last renewal is old, but it reached etcd just now.
      'a fresh round trip by a peer proves etcd answers it, whatever its last renewal',
      [cutOff(A), freshly(B, true)], true, `${B.instanceId} reached etcd just now: this host is cut off alone`,
    ],
    [
      // B renewed a moment before etcd went away (a stale claim would say "reaches"); its fresh probe fails.
      'fresh probes that all fail mean etcd is down for everyone',
      [freshly(A, false), freshly(B, false, 200)], false, `2 of 2 peer(s) answered and none reaches etcd: etcd is down for everyone; ${KEEP}`,
    ],
  ])('%s', (_name, results, fence, reason) => {
    expect(decideFence(results, CTX, fresh)).toMatchObject({ fence, reason });
  });

  it('right after an outage for everyone, a fresh proof waits out the recovery grace too (chaos seed 14)', () => {
    expect(decideFence([freshly(A, true)], CTX, afterOutage)).toMatchObject({ fence: false, memory: { outageForAll: true, peersBackSince: CTX.now } });
    const later = { ...CTX, now: CTX.now + CTX.recoveryGraceMs };
    expect(decideFence([freshly(A, true)], later, { outageForAll: true, peersBackSince: CTX.now })).toMatchObject({ fence: true });
  });

  it('silence from every peer after they said etcd was down for everyone is no proof of isolation (chaos seed 79)', () => {
    expect(decideFence([silent(A), silent(B)], CTX, afterOutage)).toMatchObject({
      fence: false, reason: 'none of 2 known peer(s) answered, but they said etcd was down for everyone in this episode: asking again',
    });
  });

  it('remembers an outage for everyone', () => {
    expect(decideFence([cutOff(A), cutOff(B)], CTX, fresh).memory).toEqual(afterOutage);
  });

  it('after an outage for everyone, own renewals get a grace once peers reach etcd again, then it fences', () => {
    const back = decideFence([reaches(A), cutOff(B)], { ...CTX, selfRenewalAgoMs: 31_000 }, afterOutage);
    expect(back).toEqual({
      fence: false,
      reason: `etcd is back for ${A.instanceId} after an outage for everyone; own renewals get 2667 ms more before this host counts as cut off alone`,
      memory: { outageForAll: true, peersBackSince: CTX.now },
    });
    const later = decideFence([reaches(A), reaches(B)], { ...CTX, now: CTX.now + 1_000, selfRenewalAgoMs: 32_000 }, back.memory);
    expect(later).toMatchObject({ fence: false, memory: { peersBackSince: CTX.now } });
    const end = decideFence([reaches(A), reaches(B)], { ...CTX, now: CTX.now + 2_700, selfRenewalAgoMs: 33_700 }, later.memory);
    expect(end).toEqual({
      fence: true,
      reason: `etcd is back for ${A.instanceId}, ${B.instanceId} for 2700 ms and still not for this host: cut off alone`,
      memory: { outageForAll: true, peersBackSince: CTX.now },
    });
  });

  it('a grace interrupted by peers failing again starts afresh', () => {
    const back = decideFence([reaches(A)], { ...CTX, selfRenewalAgoMs: 31_000 }, afterOutage);
    const again = decideFence([cutOff(A)], { ...CTX, now: CTX.now + 2_000 }, back.memory);
    expect(again.memory).toEqual(afterOutage);
  });
});

describe('addresses and budgets', () => {
  it.each<[number, number]>([
    [500, 200],
    [1_000, 450],
    [3_000, 800],
    [60, 50],
  ])('fence margin %i ms → probe time-out %i ms', (margin, timeout) => {
    expect(probeTimeoutMs(margin)).toBe(timeout);
  });

  it.each<[string, { host: string; port: number }]>([
    ['0.0.0.0:9643', { host: '0.0.0.0', port: 9643 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:9643', { host: '::1', port: 9643 }],
  ])('parseListen(%s)', (listen, parts) => {
    expect(parseListen(listen)).toEqual(parts);
  });

  it('rejects a listen address without a port', () => {
    expect(() => parseListen('0.0.0.0')).toThrow('expected host:port');
  });

  it.each<[{ address: string; port: number }, string]>([
    [{ address: '0.0.0.0', port: 9643 }, '10.0.1.5:9643'],
    [{ address: '::', port: 9643 }, '10.0.1.5:9643'],
    [{ address: '127.0.0.1', port: 40123 }, '127.0.0.1:40123'],
    [{ address: '::1', port: 40123 }, '[::1]:40123'],
  ])('advertises %j as %s', (bound, endpoint) => {
    expect(advertisedEndpoint(bound, '10.0.1.5')).toBe(endpoint);
  });
});

describe('peer endpoint over loopback HTTP', () => {
  let server: PeerServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('answers GET /v1/etcd from the health source, and a probe reads it', async () => {
    let reaching = true;
    server = await servePeerEndpoint({
      listen: '127.0.0.1:0', instanceId: A.instanceId, privateIp: '10.0.1.11', log: silentLogger(),
      health: () => ({ reachesEtcd: () => reaching, lastRenewalAgoMs: () => 1234.4 }),
    });
    expect(server.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
    const peer = { instanceId: A.instanceId, endpoint: server.endpoint };
    expect(await probePeer(peer, 2_000)).toEqual({ peer, answer: { instanceId: A.instanceId, reachesEtcd: true, lastRenewalAgoMs: 1234, fresh: false } });
    reaching = false;
    expect(await probePeer(peer, 2_000)).toEqual({ peer, answer: { instanceId: A.instanceId, reachesEtcd: false, lastRenewalAgoMs: 1234, fresh: false } });
  });

  it('with probeEtcd, answers from a round trip made for the question, within the asker\'s budget', async () => {
    const budgets: number[] = [];
    let etcdUp = true;
    server = await servePeerEndpoint({
      listen: '127.0.0.1:0', instanceId: A.instanceId, privateIp: '10.0.1.11', log: silentLogger(),
      // The last renewal says "reaches" throughout: only the fresh probe knows etcd just went away.
      health: () => ({ reachesEtcd: () => true, lastRenewalAgoMs: () => 100, probeEtcd: async (ms: number) => (budgets.push(ms), etcdUp) }),
    });
    const peer = { instanceId: A.instanceId, endpoint: server.endpoint };
    expect(await probePeer(peer, 500)).toEqual({ peer, answer: { instanceId: A.instanceId, reachesEtcd: true, lastRenewalAgoMs: 100, fresh: true } });
    etcdUp = false;
    expect(await probePeer(peer, 500)).toEqual({ peer, answer: { instanceId: A.instanceId, reachesEtcd: false, lastRenewalAgoMs: 100, fresh: true } });
    // Half of the asker's 500 ms; the other half is for the HTTP exchange.
    expect(budgets).toEqual([250, 250]);
  });

  it('before registration the host cannot vouch for etcd', async () => {
    server = await servePeerEndpoint({ listen: '127.0.0.1:0', instanceId: A.instanceId, privateIp: '10.0.1.11', log: silentLogger(), health: () => null });
    const peer = { instanceId: A.instanceId, endpoint: server.endpoint };
    expect(await probePeer(peer, 2_000)).toMatchObject({ answer: { reachesEtcd: false } });
  });

  it('a probe of an endpoint answering for another instance, a closed port or a silent server is no answer', async () => {
    server = await servePeerEndpoint({ listen: '127.0.0.1:0', instanceId: A.instanceId, privateIp: '10.0.1.11', log: silentLogger(), health: () => null });
    expect(await probePeer({ instanceId: B.instanceId, endpoint: server.endpoint }, 2_000)).toMatchObject({ error: `answered as ${A.instanceId}` });

    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await probePeer({ instanceId: B.instanceId, endpoint: `127.0.0.1:${closedPort}` }, 2_000)).toHaveProperty('error');

    // Accepts, never answers (a SIGSTOPped peer): bounded by the time-out.
    const hung = createServer(() => undefined);
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', () => r()));
    try {
      const result = await probePeer({ instanceId: B.instanceId, endpoint: `127.0.0.1:${(hung.address() as AddressInfo).port}` }, 200);
      expect(result).toMatchObject({ error: expect.stringContaining('TimeoutError') });
    } finally {
      hung.closeAllConnections();
      await new Promise<void>((r) => hung.close(() => r()));
    }
  });
});
