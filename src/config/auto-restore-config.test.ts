import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index.js';

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

describe('controller.autoRestore', () => {
  it('is absent (off) unless configured', () => {
    expect(loadConfig({ env: {}, flags: ENDPOINTS }).controller.autoRestore).toBeUndefined();
  });

  it('fills its defaults: off, 15 min, any snapshot age', () => {
    const config = loadConfig({ env: {}, flags: { ...ENDPOINTS, controller: { autoRestore: {} } } });
    expect(config.controller.autoRestore).toEqual({ enabled: false, afterMs: 900_000 });
  });

  it('from the environment', () => {
    const env = { EBS_FAILOVER_AUTO_RESTORE: 'true', EBS_FAILOVER_AUTO_RESTORE_AFTER_MS: '60000', EBS_FAILOVER_AUTO_RESTORE_SNAPSHOT_MAX_AGE_MS: '86400000' };
    expect(loadConfig({ env, flags: ENDPOINTS }).controller.autoRestore).toEqual({ enabled: true, afterMs: 60_000, snapshotMaxAgeMs: 86_400_000 });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['afterMs below a second', { enabled: true, afterMs: 500 }, 'controller.autoRestore.afterMs'],
    ['a negative max age', { enabled: true, snapshotMaxAgeMs: -1 }, 'controller.autoRestore.snapshotMaxAgeMs'],
    ['an unknown key (a typo must not silently disable it)', { enable: true }, 'controller.autoRestore'],
    ['enabled not a boolean', { enabled: 'yes' }, 'controller.autoRestore.enabled'],
  ])('refuses %s', (_name, autoRestore, field) => {
    const err = errorOf(() => loadConfig({ env: {}, flags: { ...ENDPOINTS, controller: { autoRestore } } }));
    expect(err.message).toContain(field);
  });
});
