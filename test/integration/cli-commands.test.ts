import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeRecord, FailoverJournal, ManualRequest, ServiceRecord, type AgentReport, type Keyspace, type Placement } from '../../src/keyspace/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { dumpKeys, freshKeyspace, postgresService, registerLiveHost, runFailoverCli, type CliResult } from '../fixtures/cli-harness.js';

const VOL_A = 'vol-0aaa12345def67890';
const VOL_B = 'vol-0bbb12345def67890';
const VOL_GHOST = 'vol-0ccc12345def67890'; // registered in etcd, unknown to EC2
const UNIT_A = `postgres@${VOL_A}`;
const UNIT_B = `postgres@${VOL_B}`;
const HOST_1 = 'i-0111111111111111a';
const HOST_2 = 'i-0222222222222222a';
const HOST_3 = 'i-0333333333333333a';
const HOST_B = 'i-0444444444444444b';
const HOST_DEAD = 'i-0999999999999999a';
const VOL_NEW = 'vol-0ddd12345def67890'; // known to EC2, registered by the `service add` tests

let etcdServer: EtcdServer;
let ec2: Ec2Endpoint;
let client: Etcd3;
let ks: Keyspace;
const hostLeases: Array<{ revoke(): Promise<void> }> = [];

beforeAll(async () => {
  [etcdServer, ec2] = await Promise.all([startEtcd(), startEc2Endpoint()]);
  client = new Etcd3({ hosts: etcdServer.endpoint });
  for (const [instanceId, az] of [[HOST_1, 'us-east-1a'], [HOST_2, 'us-east-1a'], [HOST_3, 'us-east-1a'], [HOST_B, 'us-east-1b'], [HOST_DEAD, 'us-east-1a']] as const) {
    ec2.sim.addInstance({ instanceId, az });
  }
  ec2.sim.addVolume({ volumeId: VOL_A, az: 'us-east-1a' });
  ec2.sim.addVolume({ volumeId: VOL_B, az: 'us-east-1a' });
  ec2.sim.addVolume({ volumeId: VOL_NEW, az: 'us-east-1a' });
});

afterAll(async () => {
  await Promise.all(hostLeases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  client?.close();
  await Promise.all([etcdServer?.stop(), ec2?.close()]);
});

/** Fresh prefix with: hosts 1,2,3 (1a) and B (1b) live; A on host 1, B on host 2; both postgres group. */
beforeEach(async () => {
  await Promise.all(hostLeases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  ks = freshKeyspace();
  for (const [instanceId, az] of [[HOST_1, 'us-east-1a'], [HOST_2, 'us-east-1a'], [HOST_3, 'us-east-1a'], [HOST_B, 'us-east-1b']] as const) {
    hostLeases.push(await registerLiveHost(client, ks, { instanceId, az }));
  }
  for (const [volumeId, holder] of [[VOL_A, HOST_1], [VOL_B, HOST_2]] as const) {
    const service = postgresService(volumeId);
    const placement: Placement = { volumeId, unit: service.unit, instanceId: holder, device: '/dev/xvdf', generation: 1, updatedAt: Date.now() };
    const report: AgentReport = { instanceId: holder, volumeId, unit: service.unit, generation: 1, phase: 'active', mountActive: true, unitActive: true, error: null, at: Date.now() };
    await client.put(ks.service(service.unit)).value(encodeRecord(service));
    await client.put(ks.placement(volumeId)).value(encodeRecord(placement));
    await client.put(ks.status(holder, volumeId)).value(encodeRecord(report));
  }
});

function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return runFailoverCli(args, { EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', ...extraEnv });
}

/** Runs a refused command and proves etcd is byte-for-byte unchanged under our prefix. */
async function expectRefusedWithoutWrites(args: string[], code: number, message: RegExp): Promise<void> {
  const before = await dumpKeys(client, ks);
  const result = await cli(args);
  expect(result.stderr).toMatch(message);
  expect(result.code).toBe(code);
  expect(await dumpKeys(client, ks)).toEqual(before);
}

describe('failover --help', () => {
  it('documents subcommands and exit codes, exit 0', async () => {
    const result = await cli(['--help']);
    expect(result.code).toBe(0);
    for (const word of ['controller', 'agent', 'service', 'status', 'snapshot', 'Exit codes:', '2  bad usage']) expect(result.stdout).toContain(word);
  });

  it.each(['status', 'cancel', 'snapshot', 'snapshot list', 'service add', 'service list', 'service remove', 'agent', 'controller'])('%s --help', async (words) => {
    const result = await cli([...words.split(' '), '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Exit codes:');
  });

  it('says in agent --help that SIGTERM leaves units running and keeps the lease', async () => {
    // Commander wraps long descriptions; compare with whitespace folded.
    expect((await cli(['agent', '--help'])).stdout.replace(/\s+/g, ' ')).toMatch(/SIGTERM exits WITHOUT stopping units or revoking the lease/);
  });

  it('an unknown flag is bad usage (exit 2)', async () => {
    const result = await cli(['status', '--bogus']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown option '--bogus'");
  });
});

describe('config errors (exit 2)', () => {
  it('names a bad field given by flag', async () => {
    const result = await cli(['status', '--etcd', '10.0.0.5:2379']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('config error: etcd.endpoints[0]: expected a URL like https://10.0.0.5:2379 (from flags)');
  });

  it('names a bad field in the config file', async () => {
    const file = new URL('../fixtures/cli-bad-config.json', import.meta.url).pathname;
    const result = await cli(['status', '--config', file], { EBS_FAILOVER_ETCD_ENDPOINTS: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('config error: lease.fenceMarginMs: fenceMarginMs must be smaller than ttlMs');
  });

  it('names the env variable holding a bad value', async () => {
    const result = await cli(['status'], { EBS_FAILOVER_PARALLELISM: 'many' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('(from env EBS_FAILOVER_PARALLELISM)');
  });
});

describe('failover <unit> refusals: nothing written', () => {
  it('malformed unit name → exit 2', () => expectRefusedWithoutWrites(['postgres@vol-XYZ'], 2, /bad unit name "postgres@vol-XYZ"/));
  it('malformed --to → exit 2', () => expectRefusedWithoutWrites([UNIT_A, '--to', 'host-3'], 2, /bad --to "host-3"/));
  it('unknown service → exit 1', () => expectRefusedWithoutWrites([`redis@${VOL_A}`, '--to', HOST_3], 1, /unknown service redis@vol-0aaa/));
  it('unknown volume → exit 1', async () => {
    await client.put(ks.service(`postgres@${VOL_GHOST}`)).value(encodeRecord(postgresService(VOL_GHOST)));
    await expectRefusedWithoutWrites([`postgres@${VOL_GHOST}`, '--to', HOST_3], 1, /unknown volume vol-0ccc12345def67890/);
  });
  it('dead target → exit 1', () => expectRefusedWithoutWrites([UNIT_A, '--to', HOST_DEAD], 1, /target i-0999999999999999a is not live/));
  it('cross-AZ target → exit 1', () => expectRefusedWithoutWrites([UNIT_A, '--to', HOST_B], 1, /is in us-east-1b, but volume vol-0aaa12345def67890 is in us-east-1a/));
  it('conflicting target → exit 1', () => expectRefusedWithoutWrites([UNIT_A, '--to', HOST_2], 1, /already holds postgres@vol-0bbb12345def67890 of conflict group postgres/));
  it('a failover already running → exit 1', async () => {
    const journal = FailoverJournal.parse({ volumeId: VOL_A, unit: UNIT_A, kind: 'auto', step: 'detaching', fromInstanceId: HOST_1, toInstanceId: null, device: null, startedAt: Date.now(), stepStartedAt: Date.now() });
    await client.put(ks.journal(VOL_A)).value(encodeRecord(journal));
    await expectRefusedWithoutWrites([UNIT_A, '--to', HOST_3], 1, /auto failover of vol-0aaa12345def67890 is already at step detaching/);
  });
});

/**
 * Plays the controller and the new holder's agent for one manual request: the CLI under test only
 * sees etcd, so this exercises exactly what it follows.
 */
async function actAsController(outcome: 'success' | 'failed' | 'refused', cliRun: Promise<CliResult>): Promise<ManualRequest> {
  let exited = false;
  void cliRun.finally(() => (exited = true));
  const deadline = Date.now() + 60_000;
  let raw: string | null = null;
  // Stop waiting if the CLI exits without writing a request (its own assertion then explains why).
  while (raw === null && !exited && Date.now() < deadline) {
    raw = await client.get(ks.request(VOL_A)).string();
    if (raw === null) await new Promise((r) => setTimeout(r, 100));
  }
  if (raw === null) throw new Error(`no request written: ${JSON.stringify(await cliRun)}`);
  const request = ManualRequest.parse(JSON.parse(raw));
  if (outcome === 'refused') {
    await client.put(ks.request(VOL_A)).value(encodeRecord({ ...request, refusedReason: 'target is draining' }));
    return request;
  }
  const t0 = Date.now();
  const history: FailoverJournal['history'] = [];
  const base = { volumeId: VOL_A, unit: UNIT_A, kind: 'manual' as const, fromInstanceId: HOST_1, toInstanceId: request.toInstanceId, device: '/dev/xvdf', startedAt: t0, requestId: request.requestId };
  const steps = outcome === 'success' ? (['detected', 'releasing', 'detaching', 'attaching', 'starting'] as const) : (['detected', 'releasing', 'detaching'] as const);
  for (const step of steps) {
    history.push({ step, at: Date.now(), note: `step ${step}` });
    await client.put(ks.journal(VOL_A)).value(encodeRecord(FailoverJournal.parse({ ...base, step, stepStartedAt: Date.now(), generation: 3, history })));
  }
  await client.delete().key(ks.request(VOL_A));
  if (outcome === 'failed') {
    history.push({ step: 'failed', at: Date.now(), note: 'detach timed out' });
    await client.put(ks.journal(VOL_A)).value(encodeRecord(FailoverJournal.parse({ ...base, step: 'failed', stepStartedAt: Date.now(), generation: 3, history, error: 'DetachVolume did not finish' })));
    return request;
  }
  const report: AgentReport = { instanceId: HOST_3, volumeId: VOL_A, unit: UNIT_A, generation: 3, phase: 'active', mountActive: true, unitActive: true, error: null, at: Date.now() };
  // A report for an older generation must not end the wait; the final one does.
  await client.put(ks.status(HOST_3, VOL_A)).value(encodeRecord({ ...report, generation: 2 }));
  await client.put(ks.status(HOST_3, VOL_A)).value(encodeRecord(report));
  history.push({ step: 'done', at: Date.now() });
  await client.put(ks.journal(VOL_A)).value(encodeRecord(FailoverJournal.parse({ ...base, step: 'done', stepStartedAt: Date.now(), generation: 3, history, finishedAt: Date.now() })));
  return request;
}

describe('failover <unit> accepted', () => {
  it('writes requests/<volumeId>, prints each step, exits 0 once active on the target', async () => {
    const run = cli([UNIT_A, '--to', HOST_3, '--force']);
    const [result, request] = await Promise.all([run, actAsController('success', run)]);
    expect(request).toMatchObject({ unit: UNIT_A, volumeId: VOL_A, toInstanceId: HOST_3, force: true, refusedReason: null });
    expect(result.stderr).toMatch(/requested postgres@vol-0aaa12345def67890 → i-0333333333333333a/);
    for (const step of ['detected', 'releasing', 'detaching', 'attaching', 'starting']) expect(result.stderr).toContain(`${step}: step ${step}`);
    expect(result.stdout).toContain(`${UNIT_A} is active on ${HOST_3} (generation 3)`);
    expect(result.code).toBe(0);
  });

  it('exits 1 with the reason when the failover fails', async () => {
    const run = cli([UNIT_A, '--to', HOST_3]);
    const [result] = await Promise.all([run, actAsController('failed', run)]);
    expect(result.stderr).toContain('failover of postgres@vol-0aaa12345def67890 failed: DetachVolume did not finish');
    expect(result.code).toBe(1);
  });

  it('exits 1 when the controller refuses the request', async () => {
    const run = cli([UNIT_A]);
    const [result] = await Promise.all([run, actAsController('refused', run)]);
    expect(result.stderr).toContain('controller refused: target is draining');
    expect(result.code).toBe(1);
  });

  it('exits 1 on timeout and withdraws its request when no controller started it', async () => {
    const before = await dumpKeys(client, ks);
    const result = await cli([UNIT_A, '--to', HOST_3, '--timeout', '1']);
    expect(result.stderr).toMatch(/requested postgres@vol-0aaa12345def67890 → i-0333333333333333a \(request [0-9a-f-]+, dropped unless started by \d\d:\d\d:\d\d\)/);
    expect(result.stderr).toMatch(/failed: timed out after 1s waiting for postgres@vol-0aaa12345def67890; the controller had not started it: request withdrawn, nothing changed/);
    expect(result.code).toBe(1);
    expect(await client.get(ks.request(VOL_A)).string()).toBeNull();
    expect(await dumpKeys(client, ks)).toEqual(before);
  });

  it('writes a deadline of requestedAt + --timeout into the request', async () => {
    const run = cli([UNIT_A, '--to', HOST_3, '--timeout', '30']);
    const request = await actAsController('refused', run);
    expect(request.deadline).toBe(request.requestedAt + 30_000);
    expect((await run).code).toBe(1);
  });
});

describe('failover cancel', () => {
  const request = (over: Partial<ManualRequest> = {}): ManualRequest => ManualRequest.parse({ requestId: 'req-1', unit: UNIT_A, volumeId: VOL_A, toInstanceId: HOST_3, requestedAt: Date.now(), deadline: Date.now() + 60_000, ...over });

  it('withdraws a pending request (exit 0)', async () => {
    await client.put(ks.request(VOL_A)).value(encodeRecord(request()));
    const result = await cli(['cancel', UNIT_A]);
    expect(result.stdout).toContain(`withdrawn: request req-1 to move ${UNIT_A} → ${HOST_3}; nothing changed`);
    expect(result.code).toBe(0);
    expect(await client.get(ks.request(VOL_A)).string()).toBeNull();
  });

  it('refuses when the failover has already started (exit 1, nothing written)', async () => {
    const journal = FailoverJournal.parse({ volumeId: VOL_A, unit: UNIT_A, kind: 'manual', step: 'releasing', fromInstanceId: HOST_1, toInstanceId: HOST_3, device: null, startedAt: Date.now(), stepStartedAt: Date.now(), requestId: 'req-1' });
    await client.put(ks.journal(VOL_A)).value(encodeRecord(journal));
    await expectRefusedWithoutWrites(['cancel', UNIT_A], 1, /refused: the failover of postgres@vol-0aaa12345def67890 has already started \(step releasing\); it cannot be withdrawn/);
  });

  it('refuses when there is no request, or only a refused one (exit 1, nothing written)', async () => {
    await expectRefusedWithoutWrites(['cancel', UNIT_A], 1, /refused: no pending request for postgres@vol-0aaa12345def67890 \(nothing to withdraw\)/);
    await client.put(ks.request(VOL_A)).value(encodeRecord(request({ refusedReason: 'target is draining' })));
    await expectRefusedWithoutWrites(['cancel', UNIT_A], 1, /no pending request for postgres@vol-0aaa12345def67890: the controller refused request req-1 \(target is draining\)/);
  });

  it('malformed unit → exit 2', () => expectRefusedWithoutWrites(['cancel', 'postgres@nope'], 2, /bad unit name/));
});

describe('failover service', () => {
  it('add, list (table and --json), duplicate refused, remove', async () => {
    const add = await cli(['service', 'add', `redis@${VOL_NEW}`, '--mount-unit', 'data-redis.mount', '--mount-point', '/data/redis', '--metadata-key', 'redis', '--label', 'role=cache', '--fs-label', 'redis-data']);
    expect(add.code).toBe(0);
    const stored = ServiceRecord.parse(JSON.parse((await client.get(ks.service(`redis@${VOL_NEW}`)).string()) ?? 'null'));
    expect(stored).toEqual({ unit: `redis@${VOL_NEW}`, volumeId: VOL_NEW, mountUnit: 'data-redis.mount', mountPoint: '/data/redis', metadataKey: 'redis', requiredLabels: { role: 'cache' }, fsLabel: 'redis-data' });

    const table = await cli(['service', 'list']);
    expect(table.stdout).toMatch(/^UNIT\s+VOLUME\s+MOUNT/);
    expect(table.stdout).toMatch(new RegExp(`redis@${VOL_NEW}\\s+${VOL_NEW}\\s+data-redis.mount\\s+/data/redis\\s+redis=${VOL_NEW}\\s+-\\s+role=cache`));
    const json = JSON.parse((await cli(['service', 'list', '--json'])).stdout) as ServiceRecord[];
    expect(json.map((s) => s.unit)).toEqual([UNIT_A, UNIT_B, `redis@${VOL_NEW}`]);

    await expectRefusedWithoutWrites(['service', 'add', `redis@${VOL_NEW}`, '--mount-unit', 'x.mount', '--mount-point', '/x', '--metadata-key', 'x'], 1, /already registered/);
    await expectRefusedWithoutWrites(['service', 'add', `pg2@${VOL_A}`, '--mount-unit', 'x.mount', '--mount-point', '/x', '--metadata-key', 'x'], 1, /volume vol-0aaa12345def67890 already belongs to postgres@vol-0aaa/);

    expect((await cli(['service', 'remove', `redis@${VOL_NEW}`])).code).toBe(0);
    expect(await client.get(ks.service(`redis@${VOL_NEW}`)).string()).toBeNull();
  });

  it('refuses a volume EC2 does not know (exit 1, nothing written)', async () => {
    await expectRefusedWithoutWrites(['service', 'add', `redis@${VOL_GHOST}`, '--mount-unit', 'r.mount', '--mount-point', '/r', '--metadata-key', 'redis'], 1, /refused: unknown volume vol-0ccc12345def67890 \(EC2 does not know it\); nothing written/);
  });

  it('refuses an EBS Multi-Attach volume (exit 1, nothing written)', async () => {
    const VOL_MULTI = 'vol-0eee12345def67890';
    ec2.sim.addVolume({ volumeId: VOL_MULTI, az: 'us-east-1a', multiAttachEnabled: true });
    await expectRefusedWithoutWrites(
      ['service', 'add', `pg@${VOL_MULTI}`, '--mount-unit', 'r.mount', '--mount-point', '/r', '--metadata-key', 'pg'],
      1,
      /refused: vol-0eee12345def67890 has EBS Multi-Attach enabled; ebs-failover's safety relies on a single attachment/,
    );
  });

  it('refuses bad fields (exit 2) and unknown services (exit 1)', async () => {
    await expectRefusedWithoutWrites(['service', 'add', `redis@${VOL_NEW}`, '--mount-unit', 'data-redis', '--mount-point', '/data/redis', '--metadata-key', 'redis'], 2, /mountUnit: expected a mount unit name/);
    await expectRefusedWithoutWrites(['service', 'add', `redis@${VOL_NEW}`, '--mount-unit', 'r.mount', '--mount-point', '/r', '--metadata-key', 'redis', '--label', 'nolabel'], 2, /expected key=value/);
    await expectRefusedWithoutWrites(['service', 'remove', `redis@${VOL_NEW}`], 1, /unknown service/);
  });
});

describe('failover status', () => {
  it('prints leader, hosts, services and failovers in progress as a table', async () => {
    await client.put(`${ks.electionPrefix()}/694d7b1c2a3e4f50`).value('ctl-7:4242');
    const journal = FailoverJournal.parse({ volumeId: VOL_B, unit: UNIT_B, kind: 'auto', step: 'attaching', fromInstanceId: HOST_2, toInstanceId: HOST_3, device: '/dev/xvdg', startedAt: Date.now(), stepStartedAt: Date.now() });
    await client.put(ks.journal(VOL_B)).value(encodeRecord(journal));
    const result = await cli(['status']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('leader: ctl-7:4242');
    expect(result.stdout).toMatch(new RegExp(`${HOST_1}\\s+us-east-1a\\s+10\\.0\\.0\\.9\\s+\\d+s\\s+\\d+s\\s+${VOL_A}`));
    expect(result.stdout).toMatch(new RegExp(`${UNIT_A}\\s+${VOL_A}\\s+${HOST_1}\\s+active`));
    expect(result.stdout).toMatch(new RegExp(`${VOL_B}\\s+${UNIT_B}\\s+auto\\s+attaching\\s+${HOST_2}\\s+${HOST_3}`));
  });

  it('--json gives the same data for scripts', async () => {
    const result = await cli(['status', '--json']);
    expect(result.code).toBe(0);
    const view = JSON.parse(result.stdout) as { leader: string | null; hosts: Array<{ instanceId: string; leaseTtlLeftMs: number; volumes: string[] }>; services: Array<{ unit: string; holder: string; state: string }>; failovers: unknown[] };
    expect(view.leader).toBeNull();
    expect(view.hosts.map((h) => h.instanceId)).toEqual([HOST_1, HOST_2, HOST_3, HOST_B]);
    expect(view.hosts[0]?.volumes).toEqual([VOL_A]);
    expect(view.hosts[0]?.leaseTtlLeftMs).toBeGreaterThan(0);
    expect(view.services).toEqual([
      expect.objectContaining({ unit: UNIT_A, holder: HOST_1, state: 'active' }),
      expect.objectContaining({ unit: UNIT_B, holder: HOST_2, state: 'active' }),
    ]);
    expect(view.failovers).toEqual([]);
  });
});
