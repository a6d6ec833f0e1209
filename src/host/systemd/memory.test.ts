import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeDropIn } from '../mount.js';
import { UnitFailedError, UnitNotFoundError, UnitTimeoutError } from './errors.js';
import { MemorySystemd } from './memory.js';

const MOUNT = 'data-postgres.mount';
const SERVICE = 'postgres@vol-0abc12345def67890.service';
const OPTS = { timeoutMs: 5_000 };
let dir: string;
let runDir: string;
let systemd: MemorySystemd;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'memsd-'));
  runDir = join(dir, 'run');
  systemd = new MemorySystemd({ runDir });
  systemd.defineUnit({ name: MOUNT, what: join(dir, 'xvdf') });
  systemd.defineUnit({ name: SERVICE, requires: [MOUNT] });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('MemorySystemd', () => {
  it('starting the service mounts the device first and holds the in-use marker while mounted', async () => {
    writeFileSync(join(dir, 'xvdf'), '');
    expect(await systemd.startUnit(SERVICE, OPTS)).toEqual({ activeState: 'active', subState: 'running', result: 'success', loadState: 'loaded' });
    expect(await systemd.unitState(MOUNT)).toMatchObject({ activeState: 'active', subState: 'mounted' });
    expect(existsSync(join(dir, 'xvdf.in-use'))).toBe(true);
    expect(systemd.history.map((h) => [h.unit, h.operation, h.jobResult])).toEqual([[SERVICE, 'start', 'done']]);
  });

  it('stopping the mount stops the service that requires it and removes the marker', async () => {
    writeFileSync(join(dir, 'xvdf'), '');
    await systemd.startUnit(SERVICE, OPTS);
    expect(await systemd.stopUnit(MOUNT, OPTS)).toMatchObject({ activeState: 'inactive', subState: 'dead' });
    expect((await systemd.unitState(SERVICE)).activeState).toBe('inactive');
    expect(existsSync(join(dir, 'xvdf.in-use'))).toBe(false);
  });

  it('a missing device fails the mount (exit-code) and the service with dependency', async () => {
    const mountErr = await systemd.startUnit(MOUNT, OPTS).catch((e: unknown) => e);
    expect(mountErr).toBeInstanceOf(UnitFailedError);
    expect(mountErr).toMatchObject({ unit: MOUNT, result: 'exit-code', jobResult: 'failed' });
    const svcErr = await systemd.startUnit(SERVICE, OPTS).catch((e: unknown) => e);
    expect(svcErr).toMatchObject({ unit: SERVICE, jobResult: 'dependency' });
    expect((await systemd.unitState(SERVICE)).activeState).toBe('inactive');
    expect((await systemd.unitState(MOUNT)).activeState).toBe('failed');
  });

  it('reload() takes What= from the drop-ins, the later file winning', async () => {
    writeFileSync(join(dir, 'nvme1n1'), '');
    await writeDropIn(MOUNT, '10-a.conf', '[Mount]\nWhat=/nonexistent\n', { runDir });
    await writeDropIn(MOUNT, '50-ebs-failover.conf', `[Mount]\nWhat=${join(dir, 'nvme1n1')}\n`, { runDir });
    await systemd.reload();
    await systemd.startUnit(MOUNT, OPTS);
    expect(existsSync(join(dir, 'nvme1n1.in-use'))).toBe(true);
  });

  it('units can be made to fail, and crash while running', async () => {
    writeFileSync(join(dir, 'xvdf'), '');
    systemd.setFailure(SERVICE, 'exit-code');
    await expect(systemd.startUnit(SERVICE, OPTS)).rejects.toMatchObject({ result: 'exit-code', jobResult: 'failed' });
    expect((await systemd.unitState(SERVICE)).activeState).toBe('failed');
    systemd.setFailure(SERVICE, undefined);
    await systemd.restartUnit(SERVICE, OPTS);
    const failed = systemd.waitForState(SERVICE, ['failed'], OPTS);
    systemd.crash(SERVICE, 'signal');
    expect(await failed).toMatchObject({ activeState: 'failed', result: 'signal' });
    expect((await systemd.unitState(MOUNT)).activeState).toBe('active');

    // The mount going away takes the service down with it, and releases the device.
    await systemd.startUnit(SERVICE, OPTS);
    const down = systemd.waitForState(SERVICE, ['inactive', 'failed'], OPTS);
    systemd.crash(MOUNT, 'signal');
    expect((await down).activeState).toBe('inactive');
    expect(await systemd.unitState(MOUNT)).toMatchObject({ activeState: 'failed', result: 'signal' });
    expect(existsSync(join(dir, 'xvdf.in-use'))).toBe(false);
  });

  it('waitForState resolves on the change, times out with UnitTimeoutError', async () => {
    writeFileSync(join(dir, 'xvdf'), '');
    const active = systemd.waitForState(SERVICE, ['active'], OPTS);
    await systemd.startUnit(SERVICE, OPTS);
    expect((await active).activeState).toBe('active');
    await expect(systemd.waitForState(SERVICE, ['failed'], { timeoutMs: 20 })).rejects.toBeInstanceOf(UnitTimeoutError);
  });

  it('unknown units: not-found state, UnitNotFoundError on start', async () => {
    expect(await systemd.unitState('nope.service')).toMatchObject({ loadState: 'not-found' });
    await expect(systemd.startUnit('nope.service', OPTS)).rejects.toBeInstanceOf(UnitNotFoundError);
  });

  it('a job slower than its deadline fails with UnitTimeoutError', async () => {
    const slow = new MemorySystemd({ jobDelayMs: 50 });
    slow.defineUnit({ name: 'x.service' });
    await expect(slow.startUnit('x.service', { timeoutMs: 10 })).rejects.toBeInstanceOf(UnitTimeoutError);
    expect(await slow.startUnit('x.service', { timeoutMs: 5_000 })).toMatchObject({ activeState: 'active' });
  });
});
