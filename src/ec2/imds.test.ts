import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchInstanceIdentity, ImdsError, resolveInstanceIdentity } from './imds.js';

interface StandIn {
  endpoint: string;
  requests: Array<{ method: string; url: string; token?: string; ttl?: string }>;
  server: Server;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A loopback IMDSv2 stand-in: rejects GETs without the token it handed out. */
async function startImds(opts: { hang?: boolean } = {}): Promise<StandIn> {
  const requests: StandIn['requests'] = [];
  const values: Record<string, string> = {
    '/latest/meta-data/instance-id': 'i-0abc12345def67890',
    '/latest/meta-data/placement/availability-zone': 'us-east-1a',
    '/latest/meta-data/local-ipv4': '10.0.1.17',
  };
  const server = createServer((req: IncomingMessage, res) => {
    const token = req.headers['x-aws-ec2-metadata-token'] as string | undefined;
    const ttl = req.headers['x-aws-ec2-metadata-token-ttl-seconds'] as string | undefined;
    requests.push({ method: req.method ?? '', url: req.url ?? '', token, ttl });
    if (opts.hang) return; // never answers: the client's timeout must fire
    if (req.method === 'PUT' && req.url === '/latest/api/token' && ttl) return void res.end('tok-123');
    if (token !== 'tok-123') return void res.writeHead(401).end();
    const value = values[req.url ?? ''];
    if (value === undefined) return void res.writeHead(404).end();
    res.end(value);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

describe('IMDSv2', () => {
  it('takes a token, then reads id, AZ and IP with it', async () => {
    const imds = await startImds();
    const identity = await fetchInstanceIdentity({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint } });
    expect(identity).toEqual({ instanceId: 'i-0abc12345def67890', az: 'us-east-1a', privateIp: '10.0.1.17' });
    expect(imds.requests[0]).toMatchObject({ method: 'PUT', url: '/latest/api/token', ttl: '60' });
    expect(imds.requests.slice(1).every((r) => r.method === 'GET' && r.token === 'tok-123')).toBe(true);
  });

  it('fails with a typed error naming the path on an HTTP error', async () => {
    const imds = await startImds();
    // Without the PUT the stand-in would refuse; point at a path that does not exist via a bad base.
    const err = await fetchInstanceIdentity({ endpoint: `${imds.endpoint}/nope` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImdsError);
    expect((err as ImdsError).path).toBe('/latest/api/token');
  });

  it('gives up after its timeout when nothing answers', async () => {
    const imds = await startImds({ hang: true });
    const err = await fetchInstanceIdentity({ endpoint: imds.endpoint, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImdsError);
    expect((err as Error).message).toContain('no answer within 200 ms');
  });

  it('never asks IMDS when config gives all three values', async () => {
    const imds = await startImds();
    const identity = await resolveInstanceIdentity(
      { instanceId: 'i-0fff12345def67890', az: 'us-east-1b', privateIp: '10.0.2.2' },
      { endpoint: imds.endpoint },
    );
    expect(identity.instanceId).toBe('i-0fff12345def67890');
    expect(imds.requests).toHaveLength(0);
  });

  it('fills only the missing values from IMDS', async () => {
    const imds = await startImds();
    const identity = await resolveInstanceIdentity({ az: 'us-east-1c' }, { endpoint: imds.endpoint });
    expect(identity).toEqual({ instanceId: 'i-0abc12345def67890', az: 'us-east-1c', privateIp: '10.0.1.17' });
  });
});
