import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { keyspace } from '../keyspace/index.js';
import { checkSecretFileMode, readPasswordFile } from './files.js';
import { isLoopbackListen } from './listen.js';
import { probeKey } from './probe.js';
import { COMPONENTS, componentGrants, etcdctlCommands } from './roles.js';
import { describeTlsFailure } from './tls.js';

const ks = keyspace('/p/');
const dir = mkdtempSync(join(tmpdir(), 'security-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string, mode: number): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

describe('roles', () => {
  const rw = (c: (typeof COMPONENTS)[number]): string[] => componentGrants(ks, c).filter((g) => g.access === 'readwrite').map((g) => g.prefix);
  const ro = (c: (typeof COMPONENTS)[number]): string[] => componentGrants(ks, c).filter((g) => g.access === 'read').map((g) => g.prefix);

  it('gives each component only the ranges it writes', () => {
    expect(rw('agent')).toEqual(['/p/hosts/', '/p/status/']);
    expect(ro('agent')).toEqual(['/p/services/', '/p/placements/']);
    expect(rw('controller').sort()).toEqual(['/p/election/', '/p/events/', '/p/journal/', '/p/locks/', '/p/placements/', '/p/requests/']);
    expect(ro('controller')).toEqual(['/p/']);
    expect(rw('operator')).toEqual(['/p/services/', '/p/requests/']);
    expect(componentGrants(ks, 'snapshot').map((g) => `${g.access} ${g.prefix}`)).toEqual(['read /p/services/', 'readwrite /p/locks/']);
  });

  it('never lets the agent or the operator write placements/ or journal/', () => {
    for (const c of ['agent', 'operator', 'snapshot'] as const) {
      expect(rw(c)).not.toContain(ks.placementsPrefix());
      expect(rw(c)).not.toContain(ks.journalPrefix());
    }
  });

  it('prints one etcdctl grant per range, under the role prefix', () => {
    const lines = etcdctlCommands(ks, 'x-');
    expect(lines).toContain('etcdctl role add x-agent');
    expect(lines.filter((l) => l.startsWith('etcdctl role grant-permission x-controller '))).toHaveLength(7);
    expect(lines).toContain('etcdctl user grant-role x-snapshot x-snapshot');
    expect(lines.some((l) => l.startsWith('etcdctl role grant-permission x-agent --prefix=true readwrite /p/status/'))).toBe(true);
  });

  it('probes writes on a key inside the range', () => {
    expect(probeKey('/p/hosts/')).toBe('/p/hosts/.permission-probe');
  });
});

describe('secret files', () => {
  it('refuses a file accessible by group or others, naming file, mode and fix', () => {
    const f = file('k1', 'x', 0o640);
    expect(() => checkSecretFileMode('etcd.keyFile', f, false)).toThrow(`etcd.keyFile ${f} is accessible by group/others (mode 0640); it must be readable only by its owner: run \`chmod 600 ${f}\``);
    expect(checkSecretFileMode('etcd.keyFile', file('k2', 'x', 0o600), false)).toBeNull();
    expect(checkSecretFileMode('etcd.keyFile', file('k3', 'x', 0o400), false)).toBeNull();
  });

  it('warns instead when told to start anyway', () => {
    const f = file('k4', 'x', 0o604);
    expect(checkSecretFileMode('etcd.keyFile', f, true)).toContain('started anyway because etcd.allowInsecureFileModes is set');
  });

  it('reads a password without its trailing newline, refuses an empty one, and never puts it in an error', () => {
    expect(readPasswordFile(file('p1', 's3cret-value\n', 0o600), false)).toEqual({ password: 's3cret-value', warning: null });
    expect(() => readPasswordFile(file('p2', '\n', 0o600), false)).toThrow('is empty');
    let message = '';
    try {
      readPasswordFile(file('p3', 's3cret-value', 0o644), false);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('mode 0644');
    expect(message).not.toContain('s3cret-value');
  });

  it('loads etcd.passwordFile into etcd.password through the config loader, and refuses a loose one as a config error', () => {
    const good = file('p4', 'from-file\n', 0o600);
    const config = loadConfig({ env: {}, flags: { etcd: { endpoints: ['http://127.0.0.1:2379'], username: 'u', passwordFile: good } } });
    expect(config.etcd.password).toBe('from-file');
    const loose = file('p5', 'from-file\n', 0o644);
    expect(() => loadConfig({ env: { EBS_FAILOVER_ETCD_ENDPOINTS: 'http://127.0.0.1:2379', EBS_FAILOVER_ETCD_USERNAME: 'u', EBS_FAILOVER_ETCD_PASSWORD_FILE: loose } })).toThrow(
      `config error: etcd.passwordFile: ${loose} is accessible by group/others (mode 0644)`,
    );
    expect(() => loadConfig({ env: {}, flags: { etcd: { endpoints: ['http://127.0.0.1:2379'], username: 'u' } } })).toThrow('a username needs a password (or passwordFile)');
    expect(() => loadConfig({ env: {}, flags: { etcd: { endpoints: ['http://127.0.0.1:2379'], password: 'a', passwordFile: good } } })).toThrow('password and passwordFile exclude each other');
  });
});

describe('TLS failures in words', () => {
  const cfg = { endpoints: ['https://127.0.0.1:2379'], caFile: '/etc/ca.pem', certFile: '/etc/c.pem', keyFile: '/etc/k.pem' };
  const err = (code: string | undefined, message: string): NodeJS.ErrnoException => Object.assign(new Error(message), code ? { code } : {});

  it('names the CA file when the server is not signed by it', () => {
    expect(describeTlsFailure(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), cfg)).toBe(
      "the server's certificate is not signed by a CA in etcd.caFile /etc/ca.pem (unable to verify the first certificate)",
    );
  });

  it('names the client certificate the server refused', () => {
    expect(describeTlsFailure(err('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ssl3_read_bytes:sslv3 alert bad certificate'), cfg)).toBe(
      'the server refused our client certificate etcd.certFile /etc/c.pem: alert bad certificate',
    );
  });

  it('treats an etcd that is not up as not a TLS error', () => {
    expect(describeTlsFailure(err('ECONNREFUSED', 'connect ECONNREFUSED'), cfg)).toBeNull();
    expect(describeTlsFailure(err('ECONNRESET', 'socket hang up'), cfg)).toBeNull();
  });
});

describe('metrics listener', () => {
  it('knows loopback from the rest', () => {
    expect(isLoopbackListen('127.0.0.1:9642')).toBe(true);
    expect(isLoopbackListen('[::1]:9642')).toBe(true);
    expect(isLoopbackListen('localhost:9642')).toBe(true);
    expect(isLoopbackListen('0.0.0.0:9642')).toBe(false);
    expect(isLoopbackListen('10.0.0.5:9642')).toBe(false);
  });
});
