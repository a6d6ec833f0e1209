import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { FleetClient, type UnitOption } from '../../src/fleet/index.js';
import { decodeRecord, encodeRecord, FailoverJournal, keyspace, Placement, type Keyspace, type ManualRequest, type ServiceRecord } from '../../src/keyspace/index.js';
import { connectEtcd } from '../../src/locks/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { RealBlockDevices } from '../../src/sim/ec2/real-volumes.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { bootRealHost, PROJECT_IN_HOST, REPO, type RealHost } from './realhost.js';

/**
 * The whole production picture on one machine (issue 11): real etcd (v2 API on for fleet), the EC2
 * endpoint in real-volume mode (ext4 images, loop devices in the hosts' /dev), N real hosts (systemd
 * as PID 1, fleetd in fleet mode, the project's agent running INSIDE as units/failover-agent.service,
 * Debian's PostgreSQL 15 as units/postgres@.service on 127.0.0.N:5432) and the project's controller
 * (`failover controller`, the real CLI) outside the hosts.
 */

export const AZ = 'us-east-1a';
const UNITS = join(REPO, 'units');
const FLEET_TCP_PORT = 49153;
/** 120 s: a child (tsx) or a host boot is slow on a loaded 2-core machine, never this slow. */
export const BUDGET_MS = 120_000;
const FS_LABEL = 'postgres-data';

export type Mode = 'fleet' | 'systemd';

export interface RealWorldOptions {
  name: string;
  mode: Mode;
  hosts: number;
  /** Host lease TTL (the demo uses 5 s). */
  leaseTtlMs?: number;
  fenceMarginMs?: number;
  /** First N of 127.0.0.N (hosts get N, N+1, …). */
  firstIp?: number;
  nitro?: boolean;
  /**
   * One more host that never holds a volume (no `role=db` label) and serves fleet's API to the
   * controller and the tests, so killing a database host never takes the controller's fleet away.
   * Default: on in fleet mode.
   */
  opsHost?: boolean;
  /** Every line the world prints about itself (demo timeline). */
  onEvent?: (what: string) => void;
}

export interface WorldHost {
  name: string;
  instanceId: string;
  ip: string;
  ipIndex: number;
  machineId: string;
  host: RealHost;
}

export const hex = (n: number): string => randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function until<T>(check: () => Promise<T | undefined | false> | T | undefined | false, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    let v: T | undefined | false;
    try {
      v = await check();
    } catch {
      v = undefined;
    }
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(100);
  }
}

/** A unit file's options as fleet's API carries them (section, name, value; continuation lines joined). */
export function unitOptions(text: string): UnitOption[] {
  const out: UnitOption[] = [];
  let section = '';
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = pending + raw.trim();
    pending = '';
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec?.[1]) {
      section = sec[1];
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0) out.push({ section, name: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  }
  return out;
}

export class RealWorld {
  readonly hosts: WorldHost[] = [];
  readonly ks: Keyspace;
  readonly client: Etcd3;
  controller: ChildProcess | undefined;
  controllerLog = '';
  private readonly cleanups: (() => Promise<void> | void)[] = [];

  private constructor(
    readonly opts: Required<Omit<RealWorldOptions, 'onEvent'>> & Pick<RealWorldOptions, 'onEvent'>,
    readonly etcd: EtcdServer,
    readonly ec2: Ec2Endpoint,
    readonly devices: RealBlockDevices,
    readonly dir: string,
  ) {
    this.ks = keyspace(`/real-${opts.name}-${hex(6)}/`);
    this.client = connectEtcd({ endpoints: [etcd.endpoint] });
  }

  static async start(input: RealWorldOptions): Promise<RealWorld> {
    const opts = { leaseTtlMs: 5_000, fenceMarginMs: 1_500, firstIp: 50, nitro: true, opsHost: input.mode === 'fleet', ...input };
    const dir = mkdtempSync(join(tmpdir(), `realworld-${opts.name}-`));
    const etcd = await startEtcd({ extraArgs: ['--enable-v2=true'] });
    const devices = new RealBlockDevices({ imagesDir: join(dir, 'images'), fsLabel: FS_LABEL, log: (msg, f) => opts.onEvent?.(`ec2-dev  ${msg} ${JSON.stringify(f)}`) });
    // EBS-like attach/detach in hundreds of ms: the ordering matters here, not AWS's seconds.
    const ec2 = await startEc2Endpoint({ devices, latencies: { attachMs: 300, detachMs: 300 } });
    ec2.sim.setThrottle({ enabled: false });
    // A test process that exits without stop() must not leave loop devices bound to the images.
    const releaseLoops = (): void => devices.close();
    process.once('exit', releaseLoops);
    const world = new RealWorld(opts, etcd, ec2, devices, dir);
    world.cleanups.push(() => void process.off('exit', releaseLoops));
    try {
      const total = opts.hosts + (opts.opsHost ? 1 : 0);
      for (let i = 0; i < total; i++) await world.bootHost(i);
      await world.startController();
      await until(async () => (await world.client.getAll().prefix(world.ks.prefix).keys()).filter((k) => k.includes('/hosts/')).length >= total || undefined, BUDGET_MS, 'every agent registered');
    } catch (err) {
      await world.stop();
      throw err;
    }
    return world;
  }

  /** Database hosts (the ops host, if any, is last and not among them). */
  get dbHosts(): WorldHost[] {
    return this.hosts.slice(0, this.opts.hosts);
  }

  private hostFiles(h: { instanceId: string; ip: string; db: boolean }): Record<string, string> {
    const config = {
      etcd: { endpoints: [this.etcd.endpoint] },
      prefix: this.ks.prefix,
      lease: { ttlMs: this.opts.leaseTtlMs, fenceMarginMs: this.opts.fenceMarginMs },
      agent: {
        instanceId: h.instanceId,
        az: AZ,
        privateIp: h.ip,
        mode: this.opts.mode,
        fleetSocket: '/run/fleet.sock',
        peerListen: `${h.ip}:9643`,
        verifyEveryMs: 1_000,
        labels: h.db ? { role: 'db' } : { role: 'ops' },
      },
    };
    // units/failover-agent.service as shipped; only ExecStart differs: the project runs from source
    // (read-only at /opt/ebs-failover) with the machine's node bound at its own path.
    const dropIn = [
      '[Service]',
      'ExecStart=',
      `ExecStart=${process.execPath} --import tsx ${PROJECT_IN_HOST}/src/cli/main.ts agent --config /etc/ebs-failover/config.json`,
      `WorkingDirectory=${PROJECT_IN_HOST}`,
      'Environment=LOG_LEVEL=info',
      '',
    ].join('\n');
    return {
      '/etc/systemd/system/failover-agent.service': readFileSync(join(UNITS, 'failover-agent.service'), 'utf8'),
      '/etc/systemd/system/failover-agent.service.d/50-test.conf': dropIn,
      '/etc/systemd/system/data-postgres.mount': readFileSync(join(UNITS, 'data-postgres.mount'), 'utf8'),
      '/etc/systemd/system/postgres@.service': readFileSync(join(UNITS, 'postgres@.service'), 'utf8'),
      '/etc/postgres/env': `PGLISTEN=${h.ip}\n`,
      '/etc/ebs-failover/config.json': `${JSON.stringify(config, null, 2)}\n`,
    };
  }

  /** Boots host `i` (or boots it again after it died: same name, address, machine id, instance id). */
  async bootHost(i: number): Promise<WorldHost> {
    const previous = this.hosts[i];
    const ipIndex = this.opts.firstIp + i;
    const ip = `127.0.0.${ipIndex}`;
    const name = `${this.opts.name}-h${i + 1}`.slice(0, 31);
    const instanceId = previous?.instanceId ?? `i-${String(i + 1).padStart(2, '0')}${hex(15)}`;
    if (!previous) this.ec2.sim.addInstance({ instanceId, az: AZ, nitro: this.opts.nitro });
    const host = await bootRealHost({
      name,
      ipIndex,
      ...(previous ? { machineId: previous.machineId } : {}),
      ...(this.opts.mode === 'fleet' ? { fleet: { etcdServers: [this.etcd.endpoint], metadata: `az=${AZ}`, tcpPort: FLEET_TCP_PORT } } : {}),
      files: this.hostFiles({ instanceId, ip, db: i < this.opts.hosts }),
      enable: ['failover-agent.service'],
    });
    this.ec2.sim.setDeviceDir(instanceId, `${host.rootDir}/dev`);
    const wh: WorldHost = { name, instanceId, ip, ipIndex, machineId: host.machineId, host };
    this.hosts[i] = wh;
    this.opts.onEvent?.(`host     ${name} booted (${instanceId}, ${ip}, machine ${host.machineId.slice(0, 8)}) in ${(host.bootedMs / 1000).toFixed(1)} s`);
    return wh;
  }

  /** fleet's API as the controller and the tests use it: the last host's fleetd over TCP. */
  fleetUrl(): string {
    const h = this.hosts.at(-1);
    if (!h) throw new Error('no hosts');
    return `http://${h.ip}:${FLEET_TCP_PORT}`;
  }

  fleet(): FleetClient {
    return new FleetClient({ url: this.fleetUrl() });
  }

  async startController(): Promise<void> {
    const config = {
      etcd: { endpoints: [this.etcd.endpoint] },
      prefix: this.ks.prefix,
      aws: { region: 'us-east-1', endpoint: this.ec2.url },
      lease: { ttlMs: this.opts.leaseTtlMs, fenceMarginMs: this.opts.fenceMarginMs },
      controller: { forceDetachAfterMs: 5_000, metricsListen: '127.0.0.1:0' },
      agent: { mode: this.opts.mode, fleetSocket: this.opts.mode === 'fleet' ? this.fleetUrl() : '/nonexistent' },
    };
    const file = join(this.dir, 'controller.json');
    writeFileSync(file, JSON.stringify(config));
    const args = ['--import', 'tsx', join(REPO, 'src/cli/main.ts'), 'controller', '--config', file, '--candidate-id', `ctl-${this.opts.name}`];
    if (this.opts.mode === 'systemd') args.push('--no-fleet');
    const child = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer): void => {
      this.controllerLog += b.toString();
      if (this.controllerLog.length > 200_000) this.controllerLog = this.controllerLog.slice(-100_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.controller = child;
  }

  /** Registers postgres on a new volume; in fleet mode also submits the unit to fleet (launched). */
  async addPostgres(): Promise<ServiceRecord> {
    const volumeId = `vol-${hex(17)}`;
    this.ec2.sim.addVolume({ volumeId, az: AZ });
    const service: ServiceRecord = {
      unit: `postgres@${volumeId}`,
      volumeId,
      mountUnit: 'data-postgres.mount',
      mountPoint: '/data/postgres',
      metadataKey: 'postgres',
      conflictGroup: 'postgres',
      requiredLabels: { role: 'db' },
      fsLabel: FS_LABEL,
    };
    if (this.opts.mode === 'fleet') {
      const options = unitOptions(readFileSync(join(UNITS, 'postgres@.service'), 'utf8'));
      await this.fleet().putUnit(`${service.unit}.service`, 'launched', options);
    }
    await this.client.put(this.ks.service(service.unit)).value(encodeRecord(service));
    return service;
  }

  async placement(volumeId: string): Promise<Placement | undefined> {
    return decodeRecord(Placement, 'placement', await this.client.get(this.ks.placement(volumeId)).string());
  }

  async journal(volumeId: string): Promise<FailoverJournal | undefined> {
    return decodeRecord(FailoverJournal, 'journal', await this.client.get(this.ks.journal(volumeId)).string());
  }

  hostOf(instanceId: string | null | undefined): WorldHost | undefined {
    return this.hosts.find((h) => h.instanceId === instanceId);
  }

  /** psql on the host itself (its own client, its own address). */
  async psql(h: WorldHost, sql: string, timeoutMs = 30_000): Promise<string> {
    const { stdout } = await h.host.exec(['psql', '-h', h.ip, '-U', 'postgres', '-v', 'ON_ERROR_STOP=1', '-Atc', sql], timeoutMs);
    return stdout.trim();
  }

  /** Waits until `h`'s PostgreSQL accepts connections and answers. */
  async waitPostgres(h: WorldHost, ms = BUDGET_MS): Promise<void> {
    await until(async () => (await this.psql(h, 'select 1', 5_000)) === '1' || undefined, ms, `PostgreSQL answering on ${h.name} (${h.ip})`);
  }

  /** Waits for the volume's placement to be `done` on some host and returns that host. */
  async waitActive(volumeId: string, not?: string, ms = BUDGET_MS): Promise<WorldHost> {
    return until(async () => {
      const j = await this.journal(volumeId);
      const p = await this.placement(volumeId);
      if (!p?.instanceId || p.instanceId === not) return undefined;
      if (j && j.step !== 'done') return undefined;
      return this.hostOf(p.instanceId);
    }, ms, `${volumeId} placed and done${not ? ` elsewhere than ${not}` : ''}`);
  }

  async requestMove(service: ServiceRecord, to: WorldHost): Promise<void> {
    const requestedAt = Date.now();
    const request: ManualRequest = { requestId: hex(12), unit: service.unit, volumeId: service.volumeId, toInstanceId: to.instanceId, force: false, requestedAt, refusedReason: null, deadline: requestedAt + BUDGET_MS };
    await this.client.put(this.ks.request(service.volumeId)).value(encodeRecord(request));
  }

  /** systemctl is-active of units on a (live) host. */
  async activeStates(h: WorldHost, ...units: string[]): Promise<string[]> {
    const out = await h.host.systemctl('is-active', ...units).catch((err: { stdout?: string }) => err.stdout ?? '');
    return out.trim().split('\n');
  }

  /** Pieces of evidence for a failed test. */
  async dump(): Promise<string> {
    const parts = [`--- controller\n${this.controllerLog.split('\n').slice(-40).join('\n')}`];
    for (const h of this.hosts) {
      if (!h.host.alive()) {
        parts.push(`--- ${h.name}: dead`);
        continue;
      }
      for (const unit of ['failover-agent.service', 'data-postgres.mount', 'postgres@*', 'fleet.service']) {
        const lines = await h.host.journal(unit, 25).catch((e: Error) => [e.message]);
        parts.push(`--- ${h.name} ${unit}\n${lines.join('\n')}`);
      }
    }
    parts.push(`--- ec2 problems ${JSON.stringify(this.devices.problems)}`);
    return parts.join('\n');
  }

  async stop(): Promise<void> {
    if (this.controller && this.controller.exitCode === null) {
      this.controller.kill('SIGTERM');
      await Promise.race([new Promise((r) => this.controller?.once('exit', r)), sleep(5_000)]);
      this.controller.kill('SIGKILL');
    }
    await Promise.all(this.hosts.map((h) => h.host.stop().catch(() => undefined)));
    this.devices.close();
    this.client.close();
    await this.ec2.close();
    await this.etcd.stop();
    for (const c of this.cleanups) await c();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
