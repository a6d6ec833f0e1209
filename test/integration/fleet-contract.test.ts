import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetApiError, FleetClient, type UnitOption } from '../../src/fleet/index.js';
import { startFleetServer, type FleetServer } from '../../src/sim/fleet/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { bootRealHost, realFleetAvailable, realHostsAvailable, type RealHost } from '../helpers/realhost.js';

/**
 * ONE contract suite of the fleet client, run against the stand-in (src/sim/fleet) and against the
 * real fleetd v1.0.0 (built by scripts/build-fleet.sh, running inside a real systemd host with etcd's
 * v2 API). Every point here was a divergence between the two (../shared/fleet/README.md); the suite
 * passing on both is what keeps the fast tests, which use the stand-in, meaningful.
 *
 * Nothing assumes a PATCH or PUT took effect when it returned: effects are awaited with budgets.
 */

interface ContractEnv {
  client: FleetClient;
  /** A registered machine with config metadata az=us-east-1a. */
  machineId: string;
  /** Raw request to the API (for status codes the client hides). */
  raw(method: string, path: string, body?: string, contentType?: string): Promise<{ status: number; body: string }>;
  /** Makes the server answer 503 as fleetd does while (re)connecting to etcd, then recover. */
  makeUnavailable(): Promise<void>;
  /** Page size the server was configured with. */
  pageSize: number;
}

/** 60 s: real fleetd acts in 2–6 s on a loaded machine; the budget is for a CI box shared by suites. */
const ACT_MS = 60_000;
const SLEEPER: UnitOption = { section: 'Service', name: 'ExecStart', value: '/bin/sleep infinity' };

function rawOver(target: { socketPath: string } | { port: number }) {
  return (method: string, path: string, body?: string, contentType = 'application/json'): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const headers = body === undefined ? {} : { 'content-type': contentType };
      const base = 'socketPath' in target ? { socketPath: target.socketPath } : { host: '127.0.0.1', port: target.port };
      const req = request({ ...base, method, path, headers }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
}

function contract(name: string, setup: () => Promise<{ env: ContractEnv; teardown: () => Promise<void> }>, skip?: string): void {
  describe.skipIf(skip !== undefined)(`fleet API contract: ${name}${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let env: ContractEnv;
    let teardown: (() => Promise<void>) | undefined;
    let seq = 0;
    const vol = (): string => `vol-0c0ffee${String(++seq).padStart(10, '0')}`;

    beforeAll(async () => {
      ({ env, teardown } = await setup());
    }, 180_000);
    afterAll(async () => {
      await teardown?.();
    }, 60_000);

    it('lists the registered machine with its config metadata and address', async () => {
      const machines = await env.client.listMachines();
      const me = machines.find((m) => m.id === env.machineId);
      expect(me?.metadata).toMatchObject({ az: 'us-east-1a' });
      expect(me?.primaryIP).toMatch(/^127\.0\.0\.\d+$/);
    });

    it('metadata add, replace and remove take effect (awaited); remove of an absent key and a PATCH for an unregistered machine succeed', async () => {
      const c = env.client;
      const v1 = vol();
      const v2 = vol();
      await c.setMetadata(env.machineId, 'postgres', v1);
      await c.waitForMetadata(env.machineId, 'postgres', v1, { timeoutMs: ACT_MS });
      await c.setMetadata(env.machineId, 'postgres', v2);
      await c.waitForMetadata(env.machineId, 'postgres', v2, { timeoutMs: ACT_MS });
      await c.removeMetadata(env.machineId, 'postgres');
      await c.waitForMetadata(env.machineId, 'postgres', undefined, { timeoutMs: ACT_MS });
      // A removed key is gone from the listing (real fleet keeps an empty tombstone in etcd, not in the API).
      expect(Object.keys((await c.listMachines()).find((m) => m.id === env.machineId)?.metadata ?? {})).not.toContain('postgres');
      await expect(c.removeMetadata(env.machineId, 'never-set')).resolves.toBeUndefined();
      // fleet stores metadata for a machine that is not (or no longer) registered: a dead holder's key
      // must be REMOVED while it is away, or its unit can come back there when it rejoins.
      await expect(c.setMetadata('0123456789abcdef0123456789abcdef', 'postgres', v1)).resolves.toBeUndefined();
      await expect(c.removeMetadata('0123456789abcdef0123456789abcdef', 'postgres')).resolves.toBeUndefined();
    });

    it('refuses bad metadata paths and bodies with fleet error entities', async () => {
      const bad = await env.raw('PATCH', '/fleet/v1/machines', JSON.stringify([{ op: 'add', path: `/${env.machineId}/metadata/a b`, value: { value: 'x' } }]));
      expect(bad.status).toBe(400);
      expect(JSON.parse(bad.body)).toMatchObject({ error: { code: 400 } });
      const bare = await env.raw('PATCH', '/fleet/v1/machines', JSON.stringify([{ op: 'add', path: `/${env.machineId}/metadata/k`, value: 'x' }]));
      expect(bare.status).toBe(400);
      await expect(env.client.setMetadata(env.machineId, 'a b', 'x')).rejects.toThrow(/metadata key/);
    });

    it('units: submit creates inactive, a second submit is 409, unknown unit without options is 409, non-JSON is 415, unknown GET is undefined', async () => {
      const c = env.client;
      const unit = `contract-submit-${seq++}.service`;
      await c.submitUnit(unit, [SLEEPER]);
      expect(await c.getUnit(unit)).toMatchObject({ name: unit, desiredState: 'inactive', currentState: 'inactive' });
      const again = await c.submitUnit(unit, [SLEEPER]).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(FleetApiError);
      expect((again as FleetApiError).status).toBe(409);
      const none = await c.putUnit(`contract-none-${seq++}.service`, 'launched').catch((e: unknown) => e);
      expect((none as FleetApiError).status).toBe(409);
      const text = await env.raw('PUT', `/fleet/v1/units/${unit}`, JSON.stringify({ desiredState: 'loaded' }), 'text/plain');
      expect(text.status).toBe(415);
      expect(await c.getUnit('contract-does-not-exist.service')).toBeUndefined();
    });

    it('schedules by MachineMetadata with %i only after fleet acts, and unschedules after the key is removed', async () => {
      const c = env.client;
      const v = vol();
      const unit = `contract@${v}.service`;
      await c.putUnit(unit, 'launched', [
        SLEEPER,
        { section: 'X-Fleet', name: 'MachineMetadata', value: 'postgres=%i' },
        { section: 'X-Fleet', name: 'MachineMetadata', value: 'az=us-east-1a' },
      ]);
      await c.setMetadata(env.machineId, 'postgres', v);
      // The PATCH returned: fleet has NOT acted yet (real: ~2.4 s to schedule, ~3.9 s to run).
      expect(await c.getState({ unitName: unit })).toEqual([]);
      const running = await c.waitForUnitOn(unit, env.machineId, { timeoutMs: ACT_MS });
      expect(running[0]).toMatchObject({ machineID: env.machineId, systemdActiveState: 'active', systemdSubState: 'running' });
      expect((await c.getUnit(unit))?.machineID).toBe(env.machineId);
      await c.removeMetadata(env.machineId, 'postgres');
      await c.waitForUnitOn(unit, null, { timeoutMs: ACT_MS });
      await c.putUnit(unit, 'inactive');
    });

    it('ORs MachineMetadata lines of one key', async () => {
      const c = env.client;
      const [a, b] = [vol(), vol()];
      const unit = `contract-or-${seq++}.service`;
      await c.setMetadata(env.machineId, 'postgres', b);
      await c.putUnit(unit, 'launched', [
        SLEEPER,
        { section: 'X-Fleet', name: 'MachineMetadata', value: `postgres=${a}` },
        { section: 'X-Fleet', name: 'MachineMetadata', value: `postgres=${b}` },
      ]);
      await c.waitForUnitOn(unit, env.machineId, { timeoutMs: ACT_MS });
      await c.removeMetadata(env.machineId, 'postgres');
      await c.waitForUnitOn(unit, null, { timeoutMs: ACT_MS });
      await c.putUnit(unit, 'inactive');
    });

    it('pages with opaque tokens: every full page carries one, the page after a full last page is empty', async () => {
      const c = env.client;
      for (let i = 0; i < env.pageSize + 1; i++) await c.submitUnit(`contract-page-${seq++}.service`, [SLEEPER]);
      if ((await c.listUnits()).length % env.pageSize !== 0) await c.submitUnit(`contract-page-${seq++}.service`, [SLEEPER]);
      const all = await c.listUnits();
      expect(all.length % env.pageSize).toBe(0);
      const pages: { units: number; token: string | undefined }[] = [];
      let token: string | undefined;
      do {
        const r = await env.raw('GET', `/fleet/v1/units${token ? `?nextPageToken=${encodeURIComponent(token)}` : ''}`);
        expect(r.status).toBe(200);
        const body = JSON.parse(r.body) as { units?: unknown[]; nextPageToken?: string };
        token = body.nextPageToken;
        pages.push({ units: body.units?.length ?? 0, token });
        if (token !== undefined) expect(token).not.toMatch(/^\d+$/); // opaque, not an offset
      } while (token !== undefined && pages.length < 1_000);
      expect(pages.slice(0, -1).every((p) => p.units === env.pageSize && p.token !== undefined)).toBe(true);
      expect(pages.at(-1)).toEqual({ units: 0, token: undefined });
      expect(pages.reduce((n, p) => n + p.units, 0)).toBe(all.length);
      expect((await env.raw('GET', '/fleet/v1/units?nextPageToken=%21%21')).status).toBe(400);
    });

    it('retries 503 while the server (re)connects to etcd, instead of failing', async () => {
      await env.makeUnavailable();
      const machines = await env.client.listMachines();
      expect(machines.map((m) => m.id)).toContain(env.machineId);
    });
  });
}

contract('stand-in (src/sim/fleet)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-contract-'));
  const socketPath = join(dir, 'fleet.sock');
  // actDelayMs 1500: the stand-in acts late, as fleetd does, so "assumed the PATCH took effect" fails here too.
  const server: FleetServer = await startFleetServer({ socketPath, pageSize: 2, actDelayMs: 1_500 });
  const machineId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  server.state.addMachine(machineId, { primaryIP: '127.0.0.9', metadata: { az: 'us-east-1a' } });
  const raw = rawOver({ socketPath });
  const env: ContractEnv = {
    client: new FleetClient({ socketPath }),
    machineId,
    raw,
    pageSize: 2,
    makeUnavailable: async () => {
      expect((await raw('POST', '/_sim/unavailable', JSON.stringify({ ms: 1_500 }))).status).toBe(204);
      // Without retries the 503 surfaces: the stand-in really is unavailable now.
      const once = await new FleetClient({ socketPath, unavailableRetryMs: 0 }).listMachines().catch((e: unknown) => e);
      expect((once as FleetApiError).status).toBe(503);
    },
  };
  return {
    env,
    teardown: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const realSkip = realHostsAvailable() ?? realFleetAvailable();
contract(
  'real fleetd v1.0.0 in a systemd host',
  async () => {
    const etcd: EtcdServer = await startEtcd({ extraArgs: ['--enable-v2=true'] });
    let host: RealHost | undefined;
    try {
      host = await bootRealHost({
        name: 'fleet-contract',
        ipIndex: 40,
        fleet: { etcdServers: [etcd.endpoint], metadata: 'az=us-east-1a', tokenLimit: 2 },
      });
      const h = host;
      const socketPath = h.fleetSocket as string;
      const client = new FleetClient({ socketPath, unavailableRetryMs: ACT_MS });
      // Registration is asynchronous too: wait for this host's machine to be listed.
      await client.waitForMetadata(h.machineId, 'az', 'us-east-1a', { timeoutMs: ACT_MS });
      const env: ContractEnv = {
        client,
        machineId: h.machineId,
        raw: rawOver({ socketPath }),
        pageSize: 2,
        // Stopping fleetd (no fleet unit runs at this point) and letting the socket start it again:
        // the new fleetd answers 503 until it has reached etcd.
        makeUnavailable: async () => {
          await h.systemctl('stop', 'fleet.service');
        },
      };
      return {
        env,
        teardown: async () => {
          await h.stop();
          await etcd.stop();
        },
      };
    } catch (err) {
      await host?.stop();
      await etcd.stop();
      throw err;
    }
  },
  realSkip,
);
