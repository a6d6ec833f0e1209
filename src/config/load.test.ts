import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index.js';

function tempFile(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'ebs-failover-config-'));
  const file = join(dir, 'config.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const ENDPOINTS = { etcd: { endpoints: ['http://127.0.0.1:2379'] } };

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('fills defaults for every section', () => {
    const config = loadConfig({ env: {}, flags: ENDPOINTS });
    expect(config.prefix).toBe('/ebs-failover/');
    expect(config.lease).toEqual({ ttlMs: 10_000, fenceMarginMs: 3_000 });
    expect(config.controller).toEqual({ forceDetachAfterMs: 30_000, parallelism: 16, stopInstanceOnFence: false, metricsListen: '127.0.0.1:9642' });
    expect(config.agent.leaseStateFile).toBe('/run/ebs-failover/lease');
    expect(config.agent.mode).toBe('fleet');
    expect(config.agent.labels).toEqual({});
  });

  it('applies flags > env > file > defaults field by field', () => {
    const file = tempFile({ etcd: { endpoints: ['https://10.0.0.5:2379'] }, prefix: '/from-file/', lease: { ttlMs: 20_000 }, controller: { parallelism: 2 } });
    const config = loadConfig({
      file,
      env: { EBS_FAILOVER_PREFIX: '/from-env/', EBS_FAILOVER_PARALLELISM: '8', EBS_FAILOVER_LABELS: 'role=db, tier=1' },
      flags: { controller: { parallelism: 24 } },
    });
    expect(config.etcd.endpoints).toEqual(['https://10.0.0.5:2379']); // file
    expect(config.lease.ttlMs).toBe(20_000); // file
    expect(config.lease.fenceMarginMs).toBe(3_000); // default
    expect(config.prefix).toBe('/from-env/'); // env beats file
    expect(config.controller.parallelism).toBe(24); // flags beat env
    expect(config.agent.labels).toEqual({ role: 'db', tier: '1' });
  });

  it('splits a comma list of endpoints from the environment', () => {
    const config = loadConfig({ env: { EBS_FAILOVER_ETCD_ENDPOINTS: 'http://127.0.0.1:1,http://127.0.0.1:2' } });
    expect(config.etcd.endpoints).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
  });

  it.each([
    [{ etcd: { endpoints: ['10.0.0.5:2379'] } }, 'config error: etcd.endpoints[0]: expected a URL like https://10.0.0.5:2379 (from flags)'],
    [{ etcd: { endpoints: [] } }, 'config error: etcd.endpoints: at least one etcd endpoint is needed (from flags)'],
    [{ ...ENDPOINTS, lease: { ttlMs: 5000, fenceMarginMs: 6000 } }, 'config error: lease.fenceMarginMs: fenceMarginMs must be smaller than ttlMs'],
    [{ ...ENDPOINTS, agent: { mode: 'docker' } }, 'config error: agent.mode:'],
    [{ ...ENDPOINTS, agent: { instanceId: 'host-1' } }, 'config error: agent.instanceId: expected an EC2 instance id'],
    [{ ...ENDPOINTS, controller: { metricsListen: 'nowhere' } }, 'config error: controller.metricsListen: expected host:port'],
    [{ ...ENDPOINTS, etcd: { endpoints: ['http://127.0.0.1:2379'], certFile: '/c.pem' } }, 'config error: etcd.certFile: certFile and keyFile go together'],
    [{ ...ENDPOINTS, typo: 1 }, 'config error: (root):'],
  ])('names the bad field: %j', (flags, message) => {
    expect(errorOf(() => loadConfig({ env: {}, flags })).message).toContain(message);
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig({ env: { EBS_FAILOVER_ETCD_ENDPOINTS: 'http://127.0.0.1:2379', EBS_FAILOVER_PREFIX: '' } });
    expect(config.prefix).toBe('/ebs-failover/');
  });

  it('names the env variable that held a bad value', () => {
    const err = errorOf(() => loadConfig({ env: { EBS_FAILOVER_ETCD_ENDPOINTS: 'http://127.0.0.1:2379', EBS_FAILOVER_LEASE_TTL_MS: 'ten' } }));
    expect(err.field).toBe('lease.ttlMs');
    expect(err.message).toBe('config error: lease.ttlMs: expected a whole number, got "ten" (from env EBS_FAILOVER_LEASE_TTL_MS)');
  });

  it('names the file for a bad value that came from it', () => {
    const file = tempFile({ etcd: { endpoints: ['ftp://x'] } });
    expect(errorOf(() => loadConfig({ file, env: {} })).message).toBe(`config error: etcd.endpoints[0]: expected a URL like https://10.0.0.5:2379 (from file ${file})`);
  });

  it('reports an unreadable or non-JSON file', () => {
    expect(errorOf(() => loadConfig({ file: '/nonexistent/ebs.json', env: {} })).message).toContain('cannot read /nonexistent/ebs.json: ENOENT');
    expect(errorOf(() => loadConfig({ file: tempFile('{ nope'), env: {} })).message).toContain('is not valid JSON');
  });
});

describe('loadConfig: every problem at once (issue 13)', () => {
  it('lists each bad value with its own source: file, env variable, flags', () => {
    const file = tempFile({ etcd: { endpoints: ['ftp://x'] }, typo: 1, lease: { ttlMs: -5 } });
    const err = errorOf(() => loadConfig({ file, env: { EBS_FAILOVER_PARALLELISM: 'many', EBS_FAILOVER_STOP_INSTANCE_ON_FENCE: 'maybe' }, flags: { controller: { metricsListen: 'nowhere' } } }));
    expect(err.problems.map((p) => [p.field, p.source])).toEqual(
      expect.arrayContaining([
        ['controller.parallelism', 'env EBS_FAILOVER_PARALLELISM'],
        ['controller.stopInstanceOnFence', 'env EBS_FAILOVER_STOP_INSTANCE_ON_FENCE'],
        ['etcd.endpoints[0]', `file ${file}`],
        ['(root)', `file ${file}`],
        ['lease.ttlMs', `file ${file}`],
        ['controller.metricsListen', 'flags'],
      ]),
    );
    expect(err.problems).toHaveLength(8); // and lease.ttlMs twice (sign, floor), lease.fenceMarginMs (a default, no source)
    expect(err.message.split('\n')[0]).toBe('8 config errors:');
    expect(err.message).toContain(`(root): unknown key "typo" (from file ${file})`);
  });

  it('an unknown key in the file is blamed on the file, not the flags', () => {
    const file = tempFile({ ...ENDPOINTS, etcd: { ...ENDPOINTS.etcd, endpionts: [] } });
    expect(errorOf(() => loadConfig({ file, env: {}, flags: { prefix: '/x/' } })).message).toBe(`config error: etcd: unknown key "endpionts" (from file ${file})`);
  });

  it('no config at all says how to give the etcd endpoints', () => {
    const err = errorOf(() => loadConfig({ env: {} }));
    expect(err.message).toMatch(/^config error: etcd\.endpoints: no etcd endpoints configured: pass --etcd .*EBS_FAILOVER_ETCD_ENDPOINTS.*--config FILE/);
    expect(err.message).not.toContain('expected object');
  });
});
