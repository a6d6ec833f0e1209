import { spawn } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, FailoverJournal, ManualRequest, type Keyspace, type Placement } from '../../src/keyspace/index.js';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { dumpKeys, eventually, freshKeyspace, postgresService, registerLiveHost, runFailoverCli, startFailoverCli, type CliResult } from '../fixtures/cli-harness.js';

// Issue 13, manual moves: --dry-run, the confirmation prompt on a terminal (--yes skips it), --force-detach
// (--force a warned alias), and what Ctrl-C says about a move that has started.
const VOL = 'vol-0aaa12345def67890';
const UNIT = `postgres@${VOL}`;
const HOST_1 = 'i-0111111111111111a';
const HOST_2 = 'i-0222222222222222a';
const REPO = new URL('../../', import.meta.url).pathname;

let etcdServer: EtcdServer;
let ec2: Ec2Endpoint;
let client: Etcd3;
let ks: Keyspace;
const leases: Array<{ revoke(): Promise<void> }> = [];

beforeAll(async () => {
  [etcdServer, ec2] = await Promise.all([startEtcd(), startEc2Endpoint()]);
  client = new Etcd3({ hosts: etcdServer.endpoint });
  ec2.sim.addInstance({ instanceId: HOST_1, az: 'us-east-1a' });
  ec2.sim.addInstance({ instanceId: HOST_2, az: 'us-east-1a' });
  ec2.sim.addVolume({ volumeId: VOL, az: 'us-east-1a' });
});

afterAll(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  client?.close();
  await Promise.all([etcdServer?.stop(), ec2?.close()]);
});

beforeEach(async () => {
  await Promise.all(leases.splice(0).map((l) => l.revoke().catch(() => undefined)));
  ks = freshKeyspace();
  for (const instanceId of [HOST_1, HOST_2]) leases.push(await registerLiveHost(client, ks, { instanceId, az: 'us-east-1a' }));
  const placement: Placement = { volumeId: VOL, unit: UNIT, instanceId: HOST_1, device: '/dev/xvdf', generation: 4, updatedAt: Date.now() };
  await client.put(ks.service(UNIT)).value(encodeRecord(postgresService(VOL)));
  await client.put(ks.placement(VOL)).value(encodeRecord(placement));
});

const env = (): Record<string, string> => ({ EBS_FAILOVER_ETCD_ENDPOINTS: etcdServer.endpoint, EBS_FAILOVER_PREFIX: ks.prefix, EBS_FAILOVER_AWS_ENDPOINT: ec2.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', LOG_LEVEL: 'warn' });
const cli = (args: string[]): Promise<CliResult> => runFailoverCli(args, env());

/** Runs the CLI on a pseudo-terminal (util-linux `script`), typing `answer` into it. */
function cliOnTty(args: string[], answer: string): Promise<{ code: number | null; output: string }> {
  const cmd = [process.execPath, '--import', 'tsx', 'src/cli/main.ts', ...args].map((a) => `'${a}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', cmd, '/dev/null'], { cwd: REPO, env: { ...process.env, ...env() }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let answered = false;
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (!answered && output.includes('[y/N]')) {
        answered = true;
        child.stdin.write(`${answer}\n`);
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no exit; output: ${output}`));
    }, 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const pendingRequest = async (): Promise<ManualRequest | undefined> => decodeRecord(ManualRequest, ks.request(VOL), await client.get(ks.request(VOL)).buffer());

describe('failover <unit> --dry-run', () => {
  it('prints the plan (source, device, target, fencing) and writes nothing', async () => {
    const before = await dumpKeys(client, ks);
    const result = await cli([UNIT, '--dry-run']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`plan for ${UNIT} (volume ${VOL} in us-east-1a):`);
    expect(result.stdout).toContain(`from:    ${HOST_1}`);
    expect(result.stdout).toContain(`to:      the controller chooses among ${HOST_2}`);
    expect(result.stdout).toMatch(/release: i-0111111111111111a stops postgres@vol-0aaa12345def67890, unmounts data-postgres.mount/);
    expect(result.stdout).toContain('graceful only (add --force-detach to allow a forced detach)');
    expect(result.stdout).toContain('placement generation 5');
    expect(result.stdout).toContain('dry run: nothing written, nothing changed');
    expect(await dumpKeys(client, ks)).toEqual(before);
  });

  it('--force-detach shows the forced detach; --force still works but warns that it is not --yes', async () => {
    const detach = await cli([UNIT, '--to', HOST_2, '--force-detach', '--dry-run']);
    expect(detach.stdout).toContain(`to:      ${HOST_2}`);
    expect(detach.stdout).toContain('then FORCED if it does not finish');
    expect(detach.stderr).toBe('');
    const alias = await cli([UNIT, '--force', '--dry-run']);
    expect(alias.code).toBe(0);
    expect(alias.stdout).toContain('then FORCED if it does not finish');
    expect(alias.stderr).toMatch(/warning: --force is deprecated and means --force-detach .* use --yes/);
  });

  it('a refused move is refused in a dry run too (exit 1)', async () => {
    const result = await cli([UNIT, '--to', HOST_1, '--dry-run']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`already runs on ${HOST_1}`);
  });
});

describe('confirmation on a terminal', () => {
  it('asks with the plan; "n" changes nothing (exit 1)', async () => {
    const before = await dumpKeys(client, ks);
    const result = await cliOnTty([UNIT, '--to', HOST_2], 'n');
    expect(result.output).toContain(`to:      ${HOST_2}`);
    expect(result.output).toContain(`Move ${UNIT} now? [y/N]`);
    expect(result.output).toContain('not confirmed; nothing changed');
    expect(result.code).toBe(1);
    expect(await dumpKeys(client, ks)).toEqual(before);
  });

  it('"y" writes the request (which a missing controller never starts: withdrawn at the timeout)', async () => {
    const run = cliOnTty([UNIT, '--to', HOST_2, '--timeout', '3'], 'y');
    const request = await eventually(pendingRequest, 'the request after "y"');
    expect(request).toMatchObject({ toInstanceId: HOST_2, force: false });
    const result = await run;
    expect(result.output).toContain('request withdrawn, nothing changed');
  });

  it('--yes does not ask; without a terminal nothing asks either', async () => {
    const run = cliOnTty([UNIT, '--to', HOST_2, '--timeout', '3', '--yes'], 'n');
    await eventually(pendingRequest, 'the request with --yes');
    const result = await run;
    expect(result.output).not.toContain('[y/N]');
    const piped = await cli([UNIT, '--to', HOST_2, '--timeout', '2']);
    expect(piped.stderr).not.toContain('[y/N]');
    expect(piped.stderr).toContain('request withdrawn, nothing changed');
  });
});

describe('Ctrl-C during a started move', () => {
  it('says where the move stands, that it continues, and how to follow it; nothing is withdrawn', async () => {
    const child = startFailoverCli([UNIT, '--to', HOST_2, '--timeout', '120'], env());
    const request = await eventually(pendingRequest, 'the request');
    // Act as the controller: take the request (delete it) and start the journal in one transaction.
    const journal = FailoverJournal.parse({ volumeId: VOL, unit: UNIT, kind: 'manual', step: 'detaching', fromInstanceId: HOST_1, toInstanceId: HOST_2, device: '/dev/xvdf', startedAt: Date.now(), stepStartedAt: Date.now(), requestId: request.requestId, history: [{ step: 'detected', at: Date.now() }, { step: 'releasing', at: Date.now() }, { step: 'detaching', at: Date.now(), note: 'graceful detach' }] });
    await client.if(ks.request(VOL), 'Create', '>', 0).then(client.delete().key(ks.request(VOL)), client.put(ks.journal(VOL)).value(encodeRecord(journal))).commit();
    await eventually(async () => (child.output().stderr.includes('detaching: graceful detach') ? true : undefined), 'the CLI to print the step');
    child.signal('SIGINT');
    const exit = await child.exited;
    const { stderr } = child.output();
    expect(exit.code, stderr).toBe(1);
    expect(stderr).toContain(`interrupted (SIGINT) while waiting for ${UNIT}; the move has started (now at step detaching) and continues without this command; follow it with: failover history ${UNIT}`);
    const still = decodeRecord(FailoverJournal, ks.journal(VOL), await client.get(ks.journal(VOL)).buffer());
    expect(still?.step).toBe('detaching');
  });
});
