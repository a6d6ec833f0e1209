/**
 * Issue 9, finding 9 (CLI side): every CLI etcd call is bounded, and an unreachable etcd reads as one
 * line naming the endpoint and why, never gRPC's text. Against a closed port (connection refused)
 * and a loopback server that accepts connections and never answers (a black hole, which used to
 * hang `failover status` forever).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailoverCli, type CliResult } from '../fixtures/cli-harness.js';

const UNIT = 'postgres@vol-0aaa12345def67890';
/** The CLI gets a minute before the harness kills it: "hangs forever" fails, a slow start does not. */
const HARNESS_BUDGET_MS = 60_000;

let blackHole: Server;
const held: Socket[] = [];
let blackHolePort = 0;
let closedPort = 0;

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as { port: number }).port;
}

beforeAll(async () => {
  // Accepts, reads, never writes a byte: gRPC waits for HTTP/2 settings that never come.
  blackHole = createServer((socket) => {
    held.push(socket);
    socket.on('error', () => undefined);
    socket.resume();
  });
  blackHolePort = await listen(blackHole);
  // A port that was just free: nothing listens there, so connecting is refused.
  const probe = createServer();
  closedPort = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  for (const s of held) s.destroy();
  await new Promise<void>((resolve) => blackHole?.close(() => resolve()));
});

async function cli(port: number, args: string[], env: Record<string, string> = {}): Promise<CliResult & { ms: number }> {
  const t0 = Date.now();
  const result = await runFailoverCli(args, { EBS_FAILOVER_ETCD_ENDPOINTS: `http://127.0.0.1:${port}`, EBS_FAILOVER_PREFIX: '/cli-timeouts/', EBS_FAILOVER_AWS_ENDPOINT: 'http://127.0.0.1:1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', ...env }, HARNESS_BUDGET_MS);
  return { ...result, ms: Date.now() - t0 };
}

function expectReadable(result: CliResult, port: number, reason: string): void {
  expect(result.stderr).toContain(`error: cannot reach etcd at 127.0.0.1:${port} (${reason})`);
  expect(result.stderr).not.toMatch(/UNAVAILABLE|No connection established|DEADLINE/);
  expect(result.code).toBe(1);
}

describe('CLI against an etcd that cannot be reached', () => {
  it.each([['status'], ['status', '--json'], ['service', 'list'], ['cancel', UNIT], [UNIT, '--timeout', '30']].map((args) => [args.join(' '), args] as const))('closed port: failover %s → connection refused, exit 1', async (_name, args) => {
    const result = await cli(closedPort, [...args]);
    expectReadable(result, closedPort, 'connection refused');
  });
});

describe('CLI against an etcd that accepts connections and never answers', () => {
  it('status gives up after the default 5 s', async () => {
    const result = await cli(blackHolePort, ['status']);
    expectReadable(result, blackHolePort, 'no answer within 5 s');
    // Not a speed assertion: the bound is met when the process ends at all before the harness's minute.
    console.log(`status against a black hole exited after ${result.ms} ms (bound 5 s + process start)`);
  });

  it.each([
    ['--etcd-timeout flag', ['status', '--etcd-timeout', '1.5'], {}, '1.5 s'],
    ['EBS_FAILOVER_ETCD_TIMEOUT', ['service', 'list'], { EBS_FAILOVER_ETCD_TIMEOUT: '2' }, '2 s'],
    ['cancel', ['cancel', UNIT, '--etcd-timeout', '2'], {}, '2 s'],
    ['a manual failover', [UNIT, '--etcd-timeout', '2'], {}, '2 s'],
  ])('%s → no answer within the bound, exit 1', async (_name, args, env, bound) => {
    const result = await cli(blackHolePort, args, env);
    expectReadable(result, blackHolePort, `no answer within ${bound}`);
  });

  it('a bad --etcd-timeout is bad usage (exit 2)', async () => {
    const result = await cli(blackHolePort, ['status', '--etcd-timeout', 'soon']);
    expect(result.stderr).toContain('bad --etcd-timeout "soon": expected seconds > 0');
    expect(result.code).toBe(2);
  });
});
