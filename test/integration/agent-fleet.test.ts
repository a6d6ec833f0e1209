import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../src/fleet/index.js';
import { startAgent, type Agent } from '../../src/host/agent/index.js';
import { MemorySystemd } from '../../src/host/systemd/memory.js';
import { AgentReport, decodeRecord, encodeRecord, keyspace, type Placement, type ServiceRecord } from '../../src/keyspace/index.js';
import { createLogger } from '../../src/log/logger.js';
import { connectEtcd } from '../../src/locks/index.js';
import { startFleetServer, type FleetServer } from '../../src/sim/fleet/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';

/**
 * The agent loop with real etcd, the fleet API stand-in and the in-memory systemd (fleet mode):
 * fleet's "agent" is played by the stand-in's scheduler hook, which starts the unit on the machine
 * whose metadata matches, as fleetd would. Checks the ORDER: metadata only after the mount is active.
 */
const SELF = 'i-0aaaaaaaaaaaaaaa1';
const MACHINE = '11112222333344445555666677778888';
const VOLUME = 'vol-0abc12345def67890';
const UNIT = `postgres@${VOLUME}`;
/** The systemd (and fleet) name of the unit. */
const SYSTEMD_UNIT = `${UNIT}.service`;
const MOUNT = 'data-postgres.mount';
/** Generous: the machine is shared; each step takes milliseconds when idle. */
const WAIT_MS = Number(process.env.AGENT_TEST_WAIT_MS ?? 30_000);

const service: ServiceRecord = { unit: UNIT, volumeId: VOLUME, mountUnit: MOUNT, mountPoint: '/data/postgres', metadataKey: 'postgres', requiredLabels: {} };

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('agent loop in fleet mode (real etcd, fleet stand-in, MemorySystemd)', () => {
  const ks = keyspace('/agent-fleet-test/');
  let dir: string;
  let etcd: EtcdServer;
  let client: Etcd3;
  let fleet: FleetServer;
  let systemd: MemorySystemd;
  let agent: Agent;

  const report = async (): Promise<AgentReport | undefined> =>
    decodeRecord(AgentReport, 'status', await client.get(ks.status(SELF, VOLUME)).string());
  const reportFor = (generation: number, phase: AgentReport['phase']) => async (): Promise<AgentReport | undefined> => {
    const r = await report();
    return r && r.generation === generation && r.phase === phase ? r : undefined;
  };
  const place = (p: Omit<Placement, 'volumeId' | 'unit' | 'updatedAt'>): Promise<unknown> =>
    client.put(ks.placement(VOLUME)).value(encodeRecord({ volumeId: VOLUME, unit: UNIT, updatedAt: Date.now(), ...p })).exec();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'agent-fleet-'));
    await mkdir(join(dir, 'dev'));
    etcd = await startEtcd();
    client = connectEtcd({ endpoints: [etcd.endpoint] });
    fleet = await startFleetServer({ socketPath: join(dir, 'fleet.sock') });
    systemd = new MemorySystemd({ runDir: join(dir, 'run') });
    systemd.defineUnit({ name: MOUNT });
    systemd.defineUnit({ name: SYSTEMD_UNIT, requires: [MOUNT] });
    // fleetd's role: run the unit where the metadata matches, stop it where it no longer does.
    fleet.state.onSchedule = (change) => {
      if (change.machineId === MACHINE) void systemd.startUnit(change.unit, { timeoutMs: 10_000 }).catch(() => undefined);
      else if (change.previous === MACHINE) void systemd.stopUnit(change.unit, { timeoutMs: 10_000 }).catch(() => undefined);
    };
    const fleetClient = new FleetClient({ socketPath: join(dir, 'fleet.sock') });
    await fleetClient.putUnit(SYSTEMD_UNIT, 'launched', [
      { section: 'Service', name: 'ExecStart', value: '/usr/bin/postgres' },
      { section: 'X-Fleet', name: 'MachineMetadata', value: `postgres=${VOLUME}` },
    ]);
    await client.put(ks.service(UNIT)).value(encodeRecord(service)).exec();
    agent = await startAgent({
      etcd: client,
      keyspace: ks,
      instanceId: SELF,
      az: 'us-east-1a',
      privateIp: '10.0.1.10',
      machineId: MACHINE,
      leaseTtlMs: 3_000,
      fenceMarginMs: 1_000,
      mode: 'fleet',
      fleet: fleetClient,
      deviceRoot: join(dir, 'dev'),
      unitDeviceRoot: join(dir, 'dev'),
      runDir: join(dir, 'run'),
      systemd,
      timeouts: { retryMs: 200 },
      ...(process.env.AGENT_TEST_LOG ? { log: createLogger('agent-test', 'debug') } : {}),
    });
  });
  afterAll(async () => {
    await agent?.shutdown({ keepLease: false }).catch(() => undefined);
    client?.close();
    await fleet?.close();
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('placement → waits for the device → mount → metadata (after the mount) → unit → report active', async () => {
    await place({ instanceId: SELF, device: '/dev/xvdf', generation: 1 });
    await waitFor('waiting-device report', reportFor(1, 'waiting-device'));
    expect(fleet.state.changes).toEqual([]); // nothing published before the data is mounted
    await writeFile(join(dir, 'dev/xvdf'), ''); // the "attach" completes
    const active = await waitFor('active report', reportFor(1, 'active'));
    expect(active).toMatchObject({ instanceId: SELF, unit: UNIT, mountActive: true, unitActive: true, error: null });

    const mountStarted = systemd.history.find((j) => j.unit === MOUNT && j.operation === 'start' && j.jobResult === 'done');
    const unitStarted = systemd.history.find((j) => j.unit === SYSTEMD_UNIT && j.operation === 'start' && j.jobResult === 'done');
    const added = fleet.state.changes.find((c) => c.op === 'add' && c.key === 'postgres');
    expect(added).toMatchObject({ machineId: MACHINE, value: VOLUME });
    expect(mountStarted).toBeDefined();
    expect(added!.at).toBeGreaterThanOrEqual(mountStarted!.at);
    expect(unitStarted!.at).toBeGreaterThanOrEqual(added!.at);
    console.log(`mount active → metadata added: ${added!.at - mountStarted!.at} ms; metadata → unit active: ${unitStarted!.at - added!.at} ms`);
  });

  it('placement to nobody → metadata removed, unit and mount stopped → report released', async () => {
    await place({ instanceId: null, device: null, generation: 2 });
    const released = await waitFor('released report', reportFor(2, 'released'));
    expect(released).toMatchObject({ mountActive: false, unitActive: false });
    expect(fleet.state.changes.at(-1)).toMatchObject({ op: 'remove', machineId: MACHINE, key: 'postgres' });
    expect((await systemd.unitState(SYSTEMD_UNIT)).activeState).toBe('inactive');
    expect((await systemd.unitState(MOUNT)).activeState).toBe('inactive');
    expect(fleet.state.listMachines().find((m) => m.id === MACHINE)?.metadata).toEqual({});
  });

  it('an agent restart adopts the running volume without stopping anything', async () => {
    await place({ instanceId: SELF, device: '/dev/xvdf', generation: 3 });
    await waitFor('active report', reportFor(3, 'active'));
    await agent.shutdown({ keepLease: true });
    const jobsBefore = systemd.history.length;
    agent = await startAgent({
      etcd: client,
      keyspace: ks,
      instanceId: SELF,
      az: 'us-east-1a',
      privateIp: '10.0.1.10',
      machineId: MACHINE,
      leaseTtlMs: 3_000,
      fenceMarginMs: 1_000,
      mode: 'fleet',
      fleet: new FleetClient({ socketPath: join(dir, 'fleet.sock') }),
      deviceRoot: join(dir, 'dev'),
      unitDeviceRoot: join(dir, 'dev'),
      runDir: join(dir, 'run'),
      systemd,
      timeouts: { retryMs: 200 },
      ...(process.env.AGENT_TEST_LOG ? { log: createLogger('agent-test', 'debug') } : {}),
    });
    await agent.idle();
    expect(await report()).toMatchObject({ generation: 3, phase: 'active' });
    expect(systemd.history.slice(jobsBefore).filter((j) => j.operation === 'stop')).toEqual([]);
    expect((await systemd.unitState(SYSTEMD_UNIT)).activeState).toBe('active');
    expect(agent.held().get(VOLUME)).toMatchObject({ generation: 3 });
  });
});
