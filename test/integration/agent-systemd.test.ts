import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../../src/host/agent/index.js';
import { DbusSystemd } from '../../src/host/systemd/index.js';
import { AgentReport, decodeRecord, encodeRecord, keyspace, type HostRecord, type Placement, type ServiceRecord } from '../../src/keyspace/index.js';
import { connectEtcd } from '../../src/locks/index.js';
import { createLogger } from '../../src/log/logger.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { bootHost, makeVolumeImage, type SdHost } from '../helpers/sdhost.js';

/**
 * The agent against real etcd and a REAL systemd host (systemd mode): placement → device appears →
 * mount active → unit active → report; placement moved away → released; etcd frozen while a peer
 * still reaches it (this host is cut off alone) → the agent fences itself (unit and mount stopped)
 * before its lease can expire, measured.
 */
const SELF = 'i-0bbbbbbbbbbbbbbb1';
const OTHER = 'i-0bbbbbbbbbbbbbbb2';
const VOLUME = 'vol-0abc12345def67890';
const UNIT = `postgres@${VOLUME}`;
const SYSTEMD_UNIT = `${UNIT}.service`;
const MOUNT = 'data-postgres.mount';
/** 3 s lease (etcd counts whole seconds), fence 1 s before it could expire: fence ≤ 2 s after the last renewal. */
const LEASE_TTL_MS = 3_000;
const FENCE_MARGIN_MS = 1_000;
/** Generous: the machine is shared; each step takes well under a second when idle. */
const WAIT_MS = 60_000;

const service: ServiceRecord = {
  unit: UNIT,
  volumeId: VOLUME,
  mountUnit: MOUNT,
  mountPoint: '/data/postgres',
  metadataKey: 'postgres',
  requiredLabels: {},
  fsLabel: 'postgres-data',
};

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = WAIT_MS, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('agent with real etcd and a real systemd host (systemd mode)', () => {
  const ks = keyspace('/agent-systemd-test/');
  let dir: string;
  let etcd: EtcdServer;
  let client: Etcd3;
  let host: SdHost;
  let systemd: DbusSystemd;
  let probe: DbusSystemd;
  let agent: Agent;
  let img: string;
  /** The other host's peer endpoint (a stub): it says it reaches etcd, so a lost etcd means "cut off alone". */
  let peer: Server;

  const report = async (): Promise<AgentReport | undefined> => decodeRecord(AgentReport, 'status', await client.get(ks.status(SELF, VOLUME)).string());
  const reportFor = (generation: number, phase: AgentReport['phase']) => async (): Promise<AgentReport | undefined> => {
    const r = await report();
    return r && r.generation === generation && r.phase === phase ? r : undefined;
  };
  const place = (p: Omit<Placement, 'volumeId' | 'unit' | 'updatedAt'>): Promise<unknown> =>
    client.put(ks.placement(VOLUME)).value(encodeRecord({ volumeId: VOLUME, unit: UNIT, updatedAt: Date.now(), ...p })).exec();
  const active = async (unit: string): Promise<string> => (await probe.unitState(unit)).activeState;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-systemd-'));
    const [etcdServer, sdhost, image] = await Promise.all([
      startEtcd(),
      bootHost('agent-host'),
      makeVolumeImage({ dir, label: 'postgres-data', files: { PG_VERSION: '16\n' } }),
    ]);
    etcd = etcdServer;
    host = sdhost;
    img = image;
    client = connectEtcd({ endpoints: [etcd.endpoint] });
    await host.writeFile(
      '/etc/systemd/system/data-postgres.mount',
      '[Unit]\nDescription=data volume\n[Mount]\nWhat=/dev/disk/by-label/postgres-data\nWhere=/data/postgres\nType=ext4\n',
    );
    // A postgres stand-in that needs its data: it fails unless the volume's file is there.
    await host.writeFile(
      '/etc/systemd/system/postgres@.service',
      '[Unit]\nRequires=data-postgres.mount\nAfter=data-postgres.mount\n[Service]\nExecStartPre=/bin/test -f /data/postgres/PG_VERSION\nExecStart=/bin/sleep infinity\n',
    );
    systemd = await DbusSystemd.connect({ busAddress: host.busAddress, journal: false });
    probe = await DbusSystemd.connect({ busAddress: host.busAddress, journal: false });
    await systemd.reload();
    await client.put(ks.service(UNIT)).value(encodeRecord(service)).exec();
    peer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ instanceId: OTHER, reachesEtcd: true, lastRenewalAgoMs: 100 })));
    await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', () => resolve()));
    const other: HostRecord = {
      instanceId: OTHER, az: 'us-east-1a', privateIp: '127.0.0.1', machineId: 'b'.repeat(32), agentVersion: 'test', labels: {},
      leaseTtlMs: LEASE_TTL_MS, fenceMarginMs: FENCE_MARGIN_MS, registeredAt: Date.now(), peerEndpoint: `127.0.0.1:${(peer.address() as AddressInfo).port}`,
    };
    await client.put(ks.host(OTHER)).value(encodeRecord(other)).exec();
    agent = await startAgent({
      etcd: client,
      keyspace: ks,
      instanceId: SELF,
      az: 'us-east-1a',
      privateIp: '10.0.1.20',
      machineId: 'aaaabbbbccccddddeeeeffff00001111',
      leaseTtlMs: LEASE_TTL_MS,
      fenceMarginMs: FENCE_MARGIN_MS,
      mode: 'systemd',
      deviceRoot: join(host.rootDir, 'dev'),
      unitDeviceRoot: '/dev',
      runDir: join(host.rootDir, 'run/systemd/system'),
      systemd,
      timeouts: { retryMs: 500 },
      ...(process.env.AGENT_TEST_LOG ? { log: createLogger('agent-test', 'debug') } : {}),
    });
  });
  afterAll(async () => {
    etcd?.kill('SIGCONT');
    await agent?.shutdown({ keepLease: false }).catch(() => undefined);
    await probe?.close();
    await systemd?.close();
    client?.close();
    await host?.stop();
    await etcd?.stop();
    peer?.closeAllConnections();
    peer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('placement → device appears → mount active → unit active → report active', async () => {
    await place({ instanceId: SELF, device: '/dev/xvdf', generation: 1 });
    await waitFor('waiting-device report', reportFor(1, 'waiting-device'));
    const attachedAt = Date.now();
    await host.addDisk(img, 'xvdf');
    const r = await waitFor('active report', reportFor(1, 'active'));
    console.log(`device appeared → report active: ${Date.now() - attachedAt} ms (upper bound)`);
    expect(r).toMatchObject({ mountActive: true, unitActive: true, error: null });
    expect(await active(MOUNT)).toBe('active');
    expect(await active(SYSTEMD_UNIT)).toBe('active');
    const { stdout } = await host.exec(['findmnt', '-n', '-o', 'SOURCE', '/data/postgres']);
    expect(stdout.trim()).toBe('/dev/xvdf');
  });

  it('placement moved to another host → unit and mount stopped → report released', async () => {
    await place({ instanceId: OTHER, device: '/dev/xvdg', generation: 2 });
    const r = await waitFor('released report', reportFor(2, 'released'));
    expect(r).toMatchObject({ mountActive: false, unitActive: false });
    expect(await active(SYSTEMD_UNIT)).toBe('inactive');
    expect(await active(MOUNT)).toBe('inactive');
  });

  it('self-fences when cut off from etcd alone (a peer reaches it): unit and mount inactive well before the lease TTL', async () => {
    await place({ instanceId: SELF, device: '/dev/xvdf', generation: 3 });
    await waitFor('active report', reportFor(3, 'active'));
    const phases: string[] = [];
    const watcher = await client.watch().key(ks.status(SELF, VOLUME)).create();
    watcher.on('put', (kv) => phases.push(decodeRecord(AgentReport, 'status', kv.value.toString())?.phase ?? '?'));

    etcd.kill('SIGSTOP');
    const lostAt = Date.now();
    const stoppedAt = await waitFor(
      'unit and mount inactive',
      async () => ((await active(SYSTEMD_UNIT)) === 'inactive' && (await active(MOUNT)) === 'inactive' ? Date.now() : undefined),
      WAIT_MS,
      10,
    );
    const fenceMs = stoppedAt - lostAt;
    console.log(`etcd lost → unit and mount inactive: ${fenceMs} ms (lease TTL ${LEASE_TTL_MS} ms, margin ${FENCE_MARGIN_MS} ms)`);
    expect(fenceMs).toBeLessThan(LEASE_TTL_MS);
    // The record is pushed after the stops AND the bounded metadata removal: wait for it, do not assume it.
    const fence = await waitFor('the fence record', () => agent.fences.at(-1));
    expect(fence.volumeIds).toContain(VOLUME);
    expect(fence.errors).toEqual([]);
    console.log(`fence event → everything stopped: ${fence.stoppedAt - fence.startedAt} ms`);

    etcd.kill('SIGCONT');
    // etcd back: the agent reports 'fenced', then reconciles: the placement still names it.
    await waitFor('active again after recovery', reportFor(3, 'active'));
    // The watch delivers the writes made after the outage in order: 'fenced' first, then the re-acquire.
    await waitFor('fenced, then active, seen by a watch', () =>
      phases.includes('fenced') && phases.lastIndexOf('active') > phases.indexOf('fenced') ? true : undefined,
    );
    expect(await active(SYSTEMD_UNIT)).toBe('active');
    await watcher.cancel();
  });
});
