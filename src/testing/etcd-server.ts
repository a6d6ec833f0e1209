/**
 * Starts a real etcd (the Debian `etcd-server` binary) on free loopback ports with a temp data dir: the
 * local world (src/testing/world.ts: demo, bench, chaos) runs on it, and the integration tests use it
 * through test/helpers/etcd.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real etcd 3.4 (`/usr/bin/etcd`) on loopback for integration tests: one member or a 3-member
 * cluster, each member killable and restartable on the same ports and data dir.
 */

const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
/** 30 s: a fresh member serves in well under a second, but the machine is shared by many test runs. */
const START_TIMEOUT_MS = 30_000;
/** 5 s: etcd exits on SIGTERM in milliseconds; after this a stuck member gets SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** 100 ms between readiness probes: cheap, and far below any timing a test relies on. */
const PROBE_INTERVAL_MS = 100;

export interface StartEtcdOptions {
  /** Member name (default `etcd0`). */
  name?: string;
  /** Reuse a data dir (kept on stop); by default a temp dir that stop() removes. */
  dataDir?: string;
  /** Raft heartbeat / election timeout in ms (etcd defaults 100 / 1000). */
  heartbeatMs?: number;
  electionMs?: number;
  /** Extra etcd 3.4 flags. */
  extraArgs?: string[];
  /**
   * Serve clients over TLS (`https://` endpoint) with this server certificate; with `clientCertAuth`
   * every client must present a certificate signed by `caFile` (`--client-cert-auth`), and when auth
   * is enabled its CN is the etcd user name. Readiness is then probed on a plain loopback
   * `--listen-metrics-urls` port (the client port would need a client certificate).
   */
  tls?: EtcdTlsOptions;
}

export interface EtcdTlsOptions {
  caFile: string;
  certFile: string;
  keyFile: string;
  clientCertAuth?: boolean;
}

export interface RestartOptions {
  /** 'healthy' (default): /health reports a leader; 'listening': the client port accepts HTTP (no quorum needed). */
  wait?: 'healthy' | 'listening';
}

export interface EtcdServer {
  /** `http://127.0.0.1:<clientPort>` */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly name: string;
  /** Whether the etcd process is currently running (it may be SIGSTOPped). */
  readonly running: boolean;
  /** Ends the process (SIGTERM, then SIGKILL) and removes the temp data dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Sends a signal to the member's process group without waiting (SIGKILL by default; SIGSTOP/SIGCONT work). */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the current process has exited. */
  exited(): Promise<void>;
  /** Ends the process if it still runs, then starts it again on the same ports and data dir. */
  restart(opts?: RestartOptions): Promise<void>;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: EtcdServer[];
  stop(): Promise<void>;
}

interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  ownsDataDir: boolean;
  initialCluster: string;
  clusterToken: string;
  heartbeatMs: number;
  electionMs: number;
  extraArgs: string[];
  tls?: EtcdTlsOptions;
  /** Plain-HTTP /health listener, used when the client port is TLS. */
  metricsPort?: number;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** A crashed test must not leave etcd processes behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

/** Reserves `count` distinct free loopback ports (all held open at once so none repeats). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i += 1) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no port assigned');
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function probe(endpoint: string, wait: 'healthy' | 'listening'): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(2_000) });
    if (wait === 'listening') return true;
    const body = (await res.json()) as { health?: string };
    return res.ok && body.health === 'true';
  } catch {
    return false;
  }
}

class Member implements EtcdServer {
  private child: ChildProcess | null = null;
  private exitPromise: Promise<void> = Promise.resolve();
  private stderrTail = '';
  private stopped = false;

  constructor(private readonly spec: MemberSpec) {}

  get endpoint(): string {
    return `${this.spec.tls ? 'https' : 'http'}://127.0.0.1:${this.spec.clientPort}`;
  }

  /** Where readiness is probed: the client endpoint, or the plain metrics listener under TLS. */
  private get healthEndpoint(): string {
    return this.spec.metricsPort !== undefined ? `http://127.0.0.1:${this.spec.metricsPort}` : this.endpoint;
  }
  get clientPort(): number {
    return this.spec.clientPort;
  }
  get peerPort(): number {
    return this.spec.peerPort;
  }
  get dataDir(): string {
    return this.spec.dataDir;
  }
  get name(): string {
    return this.spec.name;
  }
  get running(): boolean {
    return this.child !== null;
  }

  spawn(): void {
    const s = this.spec;
    const peerUrl = `http://127.0.0.1:${s.peerPort}`;
    const args = [
      '--name', s.name,
      '--data-dir', s.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', s.initialCluster,
      '--initial-cluster-token', s.clusterToken,
      '--initial-cluster-state', 'new',
      '--heartbeat-interval', String(s.heartbeatMs),
      '--election-timeout', String(s.electionMs),
      '--logger', 'zap',
      '--log-level', 'error',
      ...tlsArgs(s),
      ...s.extraArgs,
    ];
    installExitHook();
    const child = spawn(ETCD_BIN, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    live.add(child);
    this.stderrTail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4_000);
    });
    this.exitPromise = new Promise<void>((resolve) => {
      child.once('exit', () => {
        live.delete(child);
        if (this.child === child) this.child = null;
        resolve();
      });
    });
  }

  async waitReady(wait: 'healthy' | 'listening'): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.child === null) throw new Error(`etcd ${this.name} exited while starting: ${this.stderrTail}`);
      if (await probe(this.healthEndpoint, wait)) return;
      await sleep(PROBE_INTERVAL_MS);
    }
    throw new Error(`etcd ${this.name} not ${wait} at ${this.endpoint} after ${START_TIMEOUT_MS} ms: ${this.stderrTail}`);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // Already exited.
    }
  }

  exited(): Promise<void> {
    return this.exitPromise;
  }

  /** Ends the process, keeping the data dir. */
  async halt(): Promise<void> {
    if (this.child === null) return;
    this.kill('SIGCONT'); // a SIGSTOPped etcd cannot handle SIGTERM
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exitPromise;
    clearTimeout(timer);
  }

  async restart(opts: RestartOptions = {}): Promise<void> {
    if (this.stopped) throw new Error(`etcd ${this.name} was stopped; start a new one`);
    await this.halt();
    this.spawn();
    await this.waitReady(opts.wait ?? 'healthy');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.halt();
    if (this.spec.ownsDataDir) rmSync(this.spec.dataDir, { recursive: true, force: true });
  }
}

function tlsArgs(s: MemberSpec): string[] {
  if (!s.tls) return [];
  return [
    '--cert-file', s.tls.certFile,
    '--key-file', s.tls.keyFile,
    '--trusted-ca-file', s.tls.caFile,
    ...(s.tls.clientCertAuth ? ['--client-cert-auth'] : []),
    ...(s.metricsPort !== undefined ? ['--listen-metrics-urls', `http://127.0.0.1:${s.metricsPort}`] : []),
  ];
}

function tempDataDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `ebs-failover-etcd-${name}-`));
}

/** Starts one etcd member on free loopback ports and waits until it serves. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const name = opts.name ?? 'etcd0';
  const [clientPort, peerPort, metricsPort] = (await freePorts(opts.tls ? 3 : 2)) as [number, number, number | undefined];
  const member = new Member({
    name,
    clientPort,
    peerPort,
    dataDir: opts.dataDir ?? tempDataDir(name),
    ownsDataDir: opts.dataDir === undefined,
    initialCluster: `${name}=http://127.0.0.1:${peerPort}`,
    clusterToken: `ebs-failover-test-${clientPort}`,
    heartbeatMs: opts.heartbeatMs ?? 100,
    electionMs: opts.electionMs ?? 1_000,
    extraArgs: opts.extraArgs ?? [],
    ...(opts.tls ? { tls: opts.tls, metricsPort } : {}),
  });
  member.spawn();
  try {
    await member.waitReady('healthy');
  } catch (err) {
    await member.stop();
    throw err;
  }
  return member;
}

/** Starts an n-member cluster (default 3) on loopback and waits until every member reports a leader. */
export async function startEtcdCluster(n = 3, opts: Omit<StartEtcdOptions, 'name' | 'dataDir'> = {}): Promise<EtcdCluster> {
  // Under TLS each member also gets a plain /health port: all reserved at once so none repeats.
  const ports = await freePorts((opts.tls ? 3 : 2) * n);
  const names = Array.from({ length: n }, (_, i) => `etcd${i}`);
  const initialCluster = names.map((name, i) => `${name}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
  const members = names.map(
    (name, i) =>
      new Member({
        name,
        clientPort: ports[2 * i] as number,
        peerPort: ports[2 * i + 1] as number,
        dataDir: tempDataDir(name),
        ownsDataDir: true,
        initialCluster,
        clusterToken: `ebs-failover-test-${ports[0]}`,
        heartbeatMs: opts.heartbeatMs ?? 100,
        electionMs: opts.electionMs ?? 1_000,
        extraArgs: opts.extraArgs ?? [],
        ...(opts.tls ? { tls: opts.tls, metricsPort: ports[2 * n + i] } : {}),
      }),
  );
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all(members.map((m) => m.stop()));
  };
  for (const m of members) m.spawn();
  try {
    await Promise.all(members.map((m) => m.waitReady('healthy')));
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoints: members.map((m) => m.endpoint), members, stop };
}
