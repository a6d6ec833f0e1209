import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetApiError, FleetClient, FleetUnavailableError } from '../../src/fleet/index.js';
import { startFleetServer, type FleetServer } from '../../src/sim/fleet/index.js';

const MACHINE_A = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const MACHINE_B = 'aa1e2d3c4b5a69788796a5b4c3d2e1ff';

describe('FleetClient against the fleet API v1 stand-in on a unix socket', () => {
  let dir: string;
  let server: FleetServer;
  let client: FleetClient;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-client-'));
    // Page size 2 so that listing three machines needs nextPageToken.
    server = await startFleetServer({ socketPath: join(dir, 'fleet.sock'), pageSize: 2 });
    client = new FleetClient({ socketPath: join(dir, 'fleet.sock') });
    server.state.addMachine(MACHINE_A, { primaryIP: '10.0.1.10', metadata: { role: 'db' } });
    server.state.addMachine(MACHINE_B, { primaryIP: '10.0.1.11', metadata: { role: 'db' } });
    server.state.addMachine('cc00', { primaryIP: '10.0.1.12' });
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('lists every machine across pages', async () => {
    const machines = await client.listMachines();
    expect(machines.map((m) => m.id)).toEqual([MACHINE_A, MACHINE_B, 'cc00'].sort());
    expect(machines.find((m) => m.id === MACHINE_A)).toEqual({ id: MACHINE_A, primaryIP: '10.0.1.10', metadata: { role: 'db' } });
  });

  it('adds, overwrites and removes a metadata key with JSON Patch, logging each change', async () => {
    const before = server.state.changes.length;
    await client.setMetadata(MACHINE_A, 'postgres', 'vol-0abc12345def67890');
    expect((await client.listMachines()).find((m) => m.id === MACHINE_A)?.metadata).toEqual({ role: 'db', postgres: 'vol-0abc12345def67890' });
    await client.setMetadata(MACHINE_A, 'postgres', 'vol-0abc12345def67891');
    await client.removeMetadata(MACHINE_A, 'postgres');
    expect((await client.listMachines()).find((m) => m.id === MACHINE_A)?.metadata).toEqual({ role: 'db' });
    const log = server.state.changes.slice(before);
    expect(log.map((c) => [c.op, c.machineId, c.key, c.value])).toEqual([
      ['add', MACHINE_A, 'postgres', 'vol-0abc12345def67890'],
      ['add', MACHINE_A, 'postgres', 'vol-0abc12345def67891'],
      ['remove', MACHINE_A, 'postgres', null],
    ]);
    for (let i = 1; i < log.length; i++) expect(log[i]!.at).toBeGreaterThanOrEqual(log[i - 1]!.at);
  });

  it('removing a key that is not there succeeds (idempotent release)', async () => {
    await expect(client.removeMetadata(MACHINE_B, 'never-set')).resolves.toBeUndefined();
  });

  it('schedules a unit with MachineMetadata onto the machine whose metadata matches', async () => {
    await client.putUnit('postgres@vol-0abc12345def67890.service', 'launched', [
      { section: 'Service', name: 'ExecStart', value: '/bin/sleep infinity' },
      { section: 'X-Fleet', name: 'MachineMetadata', value: 'postgres=vol-0abc12345def67890' },
    ]);
    expect(await client.getState({ unitName: 'postgres@vol-0abc12345def67890.service' })).toEqual([]);
    await client.setMetadata(MACHINE_B, 'postgres', 'vol-0abc12345def67890');
    const states = await client.getState({ unitName: 'postgres@vol-0abc12345def67890.service' });
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject({ machineID: MACHINE_B, systemdActiveState: 'active' });
    expect((await client.getUnit('postgres@vol-0abc12345def67890.service'))?.machineID).toBe(MACHINE_B);
    await client.removeMetadata(MACHINE_B, 'postgres');
    expect(await client.getState({ machineId: MACHINE_B })).toEqual([]);
    expect(server.state.schedule.map((c) => [c.machineId, c.previous])).toEqual([
      [MACHINE_B, null],
      [null, MACHINE_B],
    ]);
  });

  it('reports fleet errors as FleetApiError with status, machine and key', async () => {
    // A unit created without options is a 409 in fleet's API.
    const err = await client.putUnit('nothing.service', 'launched').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FleetApiError);
    expect((err as FleetApiError).status).toBe(409);
    // A raw malformed patch is a 400 with fleet's error entity.
    const raw = await fetchOverSocket(join(dir, 'fleet.sock'), 'PATCH', '/fleet/v1/machines', '[{"op":"add","path":"/bad","value":{"value":"x"}}]');
    expect(raw.status).toBe(400);
    expect(JSON.parse(raw.body)).toMatchObject({ error: { code: 400 } });
    // Invalid arguments never reach the wire.
    await expect(client.setMetadata('bad/id', 'k', 'v')).rejects.toThrow(/machine id/);
  });

  it('reports an unreachable socket as FleetUnavailableError', async () => {
    const missing = new FleetClient({ socketPath: join(dir, 'missing.sock'), timeoutMs: 2_000 });
    await expect(missing.setMetadata(MACHINE_A, 'postgres', 'vol-0abc12345def67890')).rejects.toBeInstanceOf(FleetUnavailableError);
  });

  it('works over http on loopback too', async () => {
    const tcp = await startFleetServer({ port: 0 });
    try {
      const viaUrl = new FleetClient({ url: tcp.url! });
      await viaUrl.setMetadata(MACHINE_A, 'postgres', 'vol-0abc12345def67890');
      expect(await viaUrl.listMachines()).toEqual([{ id: MACHINE_A, primaryIP: '', metadata: { postgres: 'vol-0abc12345def67890' } }]);
      const err = await viaUrl.getState({ machineId: MACHINE_A }).then(() => null, (e: unknown) => e);
      expect(err).toBeNull();
    } finally {
      await tcp.close();
    }
  });
});

async function fetchOverSocket(socketPath: string, method: string, path: string, body: string): Promise<{ status: number; body: string }> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
