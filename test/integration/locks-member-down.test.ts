import { createServer, type Server, type Socket } from 'node:net';
import type { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { keyspace } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { HostRegistrar, connectEtcd, type FenceEvent } from '../../src/locks/index.js';
import { startEtcdCluster, type EtcdCluster, type EtcdServer } from '../helpers/etcd.js';
import { sleep, until } from '../fixtures/locks-procs.js';

/**
 * Issue 9, finding 8: one bad member of three must not fence a host. The registrar is given all
 * three endpoints with the bad one FIRST, for three kinds of bad member: killed (port refuses),
 * SIGSTOPped (connections black-holed), and a port that accepts and at once closes connections.
 *
 * TTL 3 s, margin 1 s: the fence is due 2 s after the last confirmed renewal was sent and renewals go
 * every second, so a client that keeps retrying the bad member (or waits out a whole renewal period
 * on it) fences. The member made bad is a raft FOLLOWER: losing the raft leader adds an election
 * (1–2 s here) during which no member can renew a lease, which this TTL cannot absorb by design.
 */
const TTL_MS = 3_000;
const MARGIN_MS = 1_000;
/** The watch window: at least 4 × TTL, so a registrar stuck on the bad member would have fenced several times over. */
const WINDOW_MS = 4 * TTL_MS + 1_000;
/** How often the host key is read (through the healthy members only) during the window. */
const SAMPLE_MS = 250;

const record = (instanceId: string) => ({
  instanceId,
  az: 'us-east-1a',
  privateIp: '10.0.0.7',
  machineId: `machine-${instanceId}`,
  agentVersion: 'test',
  labels: {},
});

/** A loopback port that accepts every connection and destroys it at once. */
async function acceptAndClose(): Promise<{ endpoint: string; server: Server; accepted: () => number }> {
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { endpoint: `http://127.0.0.1:${address.port}`, server, accepted: () => accepted };
}

describe('one bad etcd member (listed first) never fences a host (real 3-member cluster)', () => {
  let cluster: EtcdCluster;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    cluster = await startEtcdCluster(3);
  });
  afterEach(() => {
    // A test that failed mid-way must not leave a member paused for the next one.
    for (const m of cluster?.members ?? []) m.kill('SIGCONT');
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    await cluster?.stop();
  });

  /** A member that is not the raft leader (asked of every member; all must answer and agree). */
  async function follower(): Promise<EtcdServer> {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const views = await Promise.all(
        cluster.members.map(async (m) => {
          const c = connectEtcd({ endpoints: [m.endpoint] });
          try {
            const s = await c.maintenance.status({ deadline: Date.now() + 2_000 });
            return { member: m, id: String(s.header.member_id), leader: String(s.leader) };
          } catch {
            return null; // not serving yet (just restarted): ask again
          } finally {
            c.close();
          }
        }),
      );
      const leader = views[0]?.leader;
      if (views.every((v) => v !== null && v.leader === leader) && leader !== undefined && leader !== '0') {
        const f = views.find((v) => v !== null && v.id !== leader);
        if (f) return f.member;
      }
      await sleep(200);
    }
    throw new Error('the cluster never agreed on a leader');
  }

  interface Observation {
    fences: FenceEvent[];
    /** Samples in which the host key was missing or had been re-created (a new lease). */
    lost: string[];
    maxRenewalAgoMs: number;
  }

  /** Watches the registrar and the host key for WINDOW_MS. */
  async function observe(registrar: HostRegistrar, checker: Etcd3, hostKey: string, createRevision: string, fences: FenceEvent[]): Promise<Observation> {
    const lost: string[] = [];
    let maxRenewalAgoMs = 0;
    const end = Date.now() + WINDOW_MS;
    while (Date.now() < end) {
      maxRenewalAgoMs = Math.max(maxRenewalAgoMs, registrar.lastRenewalAgoMs());
      const res = await checker.get(hostKey).exec().then(
        (r) => r,
        () => null, // a read failing says nothing about the key; the next sample decides
      );
      const kv = res?.kvs[0];
      if (res !== null && kv === undefined) lost.push(`missing at +${Math.round(WINDOW_MS - (end - Date.now()))} ms`);
      else if (kv !== undefined && String(kv.create_revision) !== createRevision) lost.push(`re-created (revision ${String(kv.create_revision)})`);
      await sleep(SAMPLE_MS);
    }
    return { fences, lost, maxRenewalAgoMs };
  }

  /** Starts a registrar on `endpoints`, runs `breakIt`, watches for WINDOW_MS: no fence, the host key never lost. */
  async function run(name: string, endpoints: string[], healthy: string[], breakIt: () => Promise<void>): Promise<Observation> {
    const ks = keyspace(`/t-member-${name}-${Date.now()}/`);
    const client = connectEtcd({ endpoints, dialTimeoutMs: 2_000 });
    const checker = connectEtcd({ endpoints: healthy, dialTimeoutMs: 2_000 });
    const registrar = new HostRegistrar({ client, ks, log: silentLogger(), ttlMs: TTL_MS, fenceMarginMs: MARGIN_MS, record: record(`i-0${name}1111bbbb2222c`) });
    const fences: FenceEvent[] = [];
    registrar.on('fence', (ev) => fences.push(ev));
    try {
      await registrar.start();
      const hostKey = ks.host(`i-0${name}1111bbbb2222c`);
      const before = await checker.get(hostKey).exec();
      const createRevision = String(before.kvs[0]?.create_revision);
      expect(before.kvs).toHaveLength(1);
      // A few renewals on the healthy cluster first.
      await sleep(TTL_MS);
      await breakIt();
      const obs = await observe(registrar, checker, hostKey, createRevision, fences);
      console.log(`${name}: longest time since the last confirmed renewal ${Math.round(obs.maxRenewalAgoMs)} ms (fence due at ${TTL_MS - MARGIN_MS} ms); fences ${obs.fences.length}; key lost in ${obs.lost.length} samples`);
      expect(obs.fences, 'fence events').toEqual([]);
      expect(obs.lost, 'host key').toEqual([]);
      expect(registrar.fenced).toBe(false);
      await until(() => registrar.reachesEtcd(), 5_000, 'reachesEtcd() through the healthy members');
      return obs;
    } finally {
      await registrar.stop({ revoke: true }).catch(() => undefined);
      client.close();
      checker.close();
    }
  }

  it('(a) a killed member (port refuses)', async () => {
    const bad = await follower();
    const others = cluster.members.filter((m) => m !== bad).map((m) => m.endpoint);
    try {
      await run('aaa', [bad.endpoint, ...others], others, async () => {
        bad.kill('SIGKILL');
        await bad.exited();
      });
    } finally {
      await bad.restart();
    }
  });

  it('(b) a SIGSTOPped member (black hole)', async () => {
    const bad = await follower();
    const others = cluster.members.filter((m) => m !== bad).map((m) => m.endpoint);
    try {
      await run('bbb', [bad.endpoint, ...others], others, async () => {
        bad.kill('SIGSTOP');
      });
    } finally {
      bad.kill('SIGCONT');
    }
  });

  it('(c) a port that accepts and at once closes every connection, in place of a member', async () => {
    const bad = await follower();
    const others = cluster.members.filter((m) => m !== bad).map((m) => m.endpoint);
    const fake = await acceptAndClose();
    try {
      await run('ccc', [fake.endpoint, ...others], others, async () => undefined);
      // The bad endpoint was really tried (it is first in the list).
      expect(fake.accepted()).toBeGreaterThan(0);
    } finally {
      await new Promise<void>((resolve) => fake.server.close(() => resolve()));
    }
    expect(unhandled).toEqual([]);
  });
});
