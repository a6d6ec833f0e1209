/**
 * `npm run demo:real` (root; after scripts/setup.sh, which builds the PostgreSQL root and fleet):
 * the real world on one machine. Real systemd hosts (containers booting systemd 252, each on its own
 * 127.0.0.N), real fleetd v1.0.0 in each (systemd mode when fleet is not built), the project's agent
 * inside each as failover-agent.service, Debian's PostgreSQL 15 on an ext4 volume attached as a real
 * loop device, the real controller. Writes rows, SIGKILLs the whole holder container, and prints the
 * failover timeline from the kill to PostgreSQL accepting connections on the new host, then
 * `rows before: N, rows after: N`. Lease TTL 5 s. Exit 0 when every committed row is back.
 *
 * The world lives in test/helpers/realworld.ts (the integration tests use the same one). It is loaded
 * by a computed path so that `npm run build` (rootDir src) does not pull test code into dist: this
 * script runs through tsx only.
 */
import type { FailoverJournal } from '../keyspace/index.js';

/** The part of test/helpers/realworld.ts this script uses (checked structurally at the call sites). */
interface WorldHost {
  name: string;
  instanceId: string;
  ip: string;
  machineId: string;
  host: { kill(): Promise<void>; systemctl(...args: string[]): Promise<string>; alive(): boolean };
}
interface World {
  hosts: WorldHost[];
  dbHosts: WorldHost[];
  ec2: { sim: { history: { at: number; volumeId: string; instanceId: string; state: string; forced?: boolean }[] } };
  addPostgres(): Promise<{ unit: string; volumeId: string }>;
  waitActive(volumeId: string, not?: string, ms?: number): Promise<WorldHost>;
  waitPostgres(h: WorldHost, ms?: number): Promise<void>;
  psql(h: WorldHost, sql: string, timeoutMs?: number): Promise<string>;
  journal(volumeId: string): Promise<FailoverJournal | undefined>;
  fleet(): { waitForUnitOn(unit: string, machineId: string | null, opts?: { timeoutMs?: number }): Promise<unknown> };
  dump(): Promise<string>;
  stop(): Promise<void>;
}
interface WorldModule {
  RealWorld: { start(opts: { name: string; mode: 'fleet' | 'systemd'; hosts: number; leaseTtlMs?: number; fenceMarginMs?: number; firstIp?: number; onEvent?: (e: string) => void }): Promise<World> };
}
interface HostModule {
  realHostsAvailable(): string | undefined;
  realFleetAvailable(): string | undefined;
}

const LEASE_TTL_MS = 5_000;
const FENCE_MARGIN_MS = 1_500;
const ROWS = 5_000;

const out = (line = ''): void => void process.stdout.write(`${line}\n`);
const rel = (at: number, t0: number): string => `${at >= t0 ? '+' : '-'}${(Math.abs(at - t0) / 1000).toFixed(3)}s`.padStart(9);

async function main(): Promise<number> {
  const helpers = new URL('../../test/helpers/', import.meta.url);
  const { realHostsAvailable, realFleetAvailable } = (await import(new URL('realhost.ts', helpers).href)) as HostModule;
  const why = realHostsAvailable();
  if (why) {
    out(`demo:real cannot run: ${why}`);
    return 2;
  }
  const mode = realFleetAvailable() === undefined ? 'fleet' : 'systemd';
  const { RealWorld } = (await import(new URL('realworld.ts', helpers).href)) as WorldModule;
  const t00 = Date.now();
  out(`ebs-failover demo:real (${mode} mode${mode === 'systemd' ? `: ${realFleetAvailable()}` : ', real fleetd v1.0.0'}), lease TTL ${LEASE_TTL_MS / 1000} s`);
  const world = await RealWorld.start({
    name: 'demo',
    mode,
    hosts: 3,
    leaseTtlMs: LEASE_TTL_MS,
    fenceMarginMs: FENCE_MARGIN_MS,
    firstIp: 90,
    onEvent: (e) => {
      if (e.startsWith('host')) out(`  ${e}`);
    },
  });
  try {
    out(`world up after ${((Date.now() - t00) / 1000).toFixed(1)} s: etcd, EC2 endpoint (real volumes), ${world.hosts.length} hosts, controller`);
    const service = await world.addPostgres();
    const holder = await world.waitActive(service.volumeId);
    await world.waitPostgres(holder);
    out(`${service.unit} active on ${holder.name} (${holder.instanceId}, PostgreSQL on ${holder.ip}:5432)`);
    await world.psql(holder, 'create table demo (id serial primary key, v text not null, at timestamptz default now())');
    await world.psql(holder, `insert into demo (v) select 'row ' || g from generate_series(1, ${ROWS}) g`);
    const before = Number(await world.psql(holder, 'select count(*) from demo'));
    out(`rows committed on ${holder.name}: ${before}`);

    out();
    out(`━━ SIGKILL of the whole ${holder.name} container (host death)`);
    const t0 = Date.now();
    await holder.host.kill();
    const events: { at: number; what: string }[] = [{ at: t0, what: `killed ${holder.name} (SIGKILL of its systemd, PID 1)` }];
    const next = await world.waitActive(service.volumeId, holder.instanceId);
    await world.waitPostgres(next);
    const accepting = Date.now();
    events.push({ at: accepting, what: `PostgreSQL on ${next.name} (${next.ip}:5432) accepts connections (psql select 1)` });
    let fleetAt: number | undefined;
    if (mode === 'fleet') {
      await world.fleet().waitForUnitOn(`${service.unit}.service`, next.machineId, { timeoutMs: 60_000 });
      fleetAt = Date.now();
    }
    const journal = await world.journal(service.volumeId);
    for (const h of journal?.history ?? []) if (h.at >= t0) events.push({ at: h.at, what: `controller ${h.step.padEnd(10)} ${h.note ?? ''}` });
    for (const e of world.ec2.sim.history) {
      if (e.volumeId === service.volumeId && e.at >= t0) {
        const who = world.hosts.find((h) => h.instanceId === e.instanceId)?.name ?? e.instanceId;
        events.push({ at: e.at, what: `ec2        ${e.state}${e.forced ? ' (forced)' : ''} ${who}` });
      }
    }
    // systemd's *Monotonic stamps are CLOCK_MONOTONIC µs, the same clock as process.hrtime here (the hosts
    // share this kernel and have no time namespace): converted to wall-clock ms without rounding to seconds.
    const stamp = async (unit: string, prop: string): Promise<number | undefined> => {
      const us = Number((await next.host.systemctl('show', '-p', `${prop}Monotonic`, unit)).trim().split('=')[1] ?? 0);
      return us > 0 ? Date.now() - (Number(process.hrtime.bigint() / 1000n) - us) / 1000 : undefined;
    };
    const mountAt = await stamp('data-postgres.mount', 'ActiveEnterTimestamp');
    const pgAt = await stamp(`${service.unit}.service`, 'ExecMainStartTimestamp');
    if (mountAt) events.push({ at: mountAt, what: `${next.name}  data-postgres.mount active (/dev/nvme1n1 on /data/postgres)` });
    if (pgAt) events.push({ at: pgAt, what: `${next.name}  ${service.unit}.service started by ${mode === 'fleet' ? 'fleet' : 'the agent'}` });
    if (fleetAt) events.push({ at: fleetAt, what: `fleet      reports ${service.unit}.service active on ${next.name} (polled)` });
    events.sort((a, b) => a.at - b.at);
    for (const e of events) out(`${rel(e.at, t0)}  ${e.what}`);
    const after = Number(await world.psql(next, 'select count(*) from demo'));
    out();
    out(`failover: host kill → PostgreSQL accepting connections on ${next.name} in ${((accepting - t0) / 1000).toFixed(1)} s (lease TTL ${LEASE_TTL_MS / 1000} s)`);
    out(`rows before: ${before}, rows after: ${after}`);
    return after === before ? 0 : 1;
  } catch (err) {
    out(`demo:real failed: ${(err as Error).message}`);
    out(await world.dump());
    return 1;
  } finally {
    await world.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo:real: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
