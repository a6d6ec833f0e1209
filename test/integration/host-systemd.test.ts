import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitForDevice, WrongVolumeError } from '../../src/host/device.js';
import { DROP_IN_NAME, mountVolume, unmountVolume } from '../../src/host/mount.js';
import { DbusSystemd, UnitFailedError, UnitNotFoundError, UnitTimeoutError } from '../../src/host/systemd/index.js';
import { bootHost, makeVolumeImage, type SdHost } from '../helpers/sdhost.js';

/**
 * The host side against a REAL systemd 252 (PID 1 in its own namespaces over an overlay of the test
 * rootfs; see test/helpers/sdhost.ts). One host is booted for the whole file. Needs root: without it
 * bootHost fails with a message saying so — these tests are never skipped.
 */

const VOLUME_ID = 'vol-0abc12345def67890';
const LABEL = 'postgres-data';
const MOUNT = 'data-postgres.mount';
const SERVICE = `postgres@${VOLUME_ID}.service`;
/** 30 s per job: a mount of a loop device takes ~50 ms; the margin is for a shared, loaded machine. */
const JOB_TIMEOUT_MS = 30_000;

const MOUNT_UNIT = `[Unit]
Description=PostgreSQL data volume (test)
[Mount]
What=/dev/disk/by-label/${LABEL}
Where=/data/postgres
Type=ext4
Options=noatime
`;
const SERVICE_UNIT = `[Unit]
Requires=${MOUNT}
After=${MOUNT}
[Service]
Type=simple
ExecStart=/bin/sh -c 'cat /data/postgres/PG_VERSION; sleep infinity'
`;
const SLOW_UNIT = `[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sleep 60
`;
const FAILING_UNIT = `[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo failing on purpose; exit 3'
`;

let host: SdHost;
let systemd: DbusSystemd;
let imgDir: string;
const attached: string[] = [];

beforeAll(async () => {
  imgDir = mkdtempSync(join(tmpdir(), 'ebs-failover-imgs-'));
  host = await bootHost('hostsd1');
  console.log(`[host-systemd] bus ready ${host.busReadyMs.toFixed(0)} ms after spawn, boot finished ${host.bootedMs.toFixed(0)} ms`);
  await host.writeFile(`run/systemd/system/${MOUNT}`, MOUNT_UNIT);
  await host.writeFile('run/systemd/system/postgres@.service', SERVICE_UNIT);
  await host.writeFile('run/systemd/system/failing.service', FAILING_UNIT);
  await host.writeFile('run/systemd/system/slow.service', SLOW_UNIT);
  systemd = await DbusSystemd.connect({ busAddress: host.busAddress, journal: (unit) => host.journal(unit) });
  await systemd.reload();
});

afterAll(async () => {
  await systemd?.close();
  await host?.stop();
  if (imgDir) rmSync(imgDir, { recursive: true, force: true });
});

/** "Detach": units down first (a removed node does not stop an active mount), then the disk. */
afterEach(async () => {
  await systemd.stopUnit(MOUNT, { timeoutMs: JOB_TIMEOUT_MS });
  while (attached.length > 0) await host.removeDisk(attached.pop() as string);
});

async function attach(img: string, devName = 'xvdf'): Promise<void> {
  await host.addDisk(img, devName);
  attached.push(devName);
}

function mountOpts(device: Awaited<ReturnType<typeof waitForDevice>>, fsLabel?: string) {
  return {
    systemd,
    mountUnit: MOUNT,
    volumeId: VOLUME_ID,
    device,
    fsLabel,
    deviceRoot: `${host.rootDir}/dev`,
    runDir: `${host.rootDir}/run/systemd/system`,
    timeoutMs: JOB_TIMEOUT_MS,
  };
}

describe('host side against a real systemd', () => {
  it('attach → device → mount unit active → service active with the data; release → both inactive', async () => {
    const img = await makeVolumeImage({ dir: imgDir, label: LABEL, files: { PG_VERSION: '16\n' } });
    const devicePromise = waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/sdf', deviceRoot: `${host.rootDir}/dev`, timeoutMs: 10_000 });
    await attach(img, 'xvdf'); // requested sdf, the kernel names it xvdf: found via the alias
    const device = await devicePromise;
    expect(device).toMatchObject({ relPath: 'xvdf', via: 'alias' });

    const t0 = performance.now();
    const mounted = await mountVolume(mountOpts(device, LABEL));
    const prepMs = performance.now() - t0 - mounted.startMs; // identity check + drop-in + daemon-reload
    expect(mounted.what).toBe('/dev/xvdf');
    expect(mounted.state).toMatchObject({ activeState: 'active', subState: 'mounted' });
    const dropIn = await host.readFile(`run/systemd/system/${MOUNT}.d/${DROP_IN_NAME}`);
    expect(dropIn).toContain('What=/dev/xvdf');

    const t1 = performance.now();
    const svc = await systemd.startUnit(SERVICE, { timeoutMs: JOB_TIMEOUT_MS });
    const serviceMs = performance.now() - t1;
    console.log(
      `[host-systemd] StartUnit(mount) → service active: ${(mounted.startMs + serviceMs).toFixed(1)} ms ` +
        `(mount job ${mounted.startMs.toFixed(1)} ms, service job ${serviceMs.toFixed(1)} ms; before it: check + drop-in + daemon-reload ${prepMs.toFixed(1)} ms)`,
    );
    expect(svc).toMatchObject({ activeState: 'active', subState: 'running', result: 'success' });
    expect(await host.readFile('data/postgres/PG_VERSION')).toBe('16\n');
    const journal = await host.journal(SERVICE);
    expect(journal).toContain('16');

    // A second mountVolume with the same device is idempotent: no reload, still active.
    const again = await mountVolume(mountOpts(device, LABEL));
    expect(again.reloaded).toBe(false);

    const released = await unmountVolume({ systemd, mountUnit: MOUNT, timeoutMs: JOB_TIMEOUT_MS });
    expect(released.activeState).toBe('inactive');
    expect((await systemd.unitState(SERVICE)).activeState).toBe('inactive');
    await expect(host.readFile('data/postgres/PG_VERSION')).rejects.toThrow(/ENOENT/);
  });

  it('waitForState follows a unit through stop without polling', async () => {
    const img = await makeVolumeImage({ dir: imgDir, label: LABEL, files: { PG_VERSION: '16\n' } });
    await attach(img);
    const device = await waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: `${host.rootDir}/dev`, timeoutMs: 10_000 });
    await mountVolume(mountOpts(device, LABEL));
    await systemd.startUnit(SERVICE, { timeoutMs: JOB_TIMEOUT_MS });
    const inactive = systemd.waitForState(SERVICE, ['inactive', 'failed'], { timeoutMs: JOB_TIMEOUT_MS });
    await systemd.stopUnit(MOUNT, { timeoutMs: JOB_TIMEOUT_MS });
    expect((await inactive).activeState).toBe('inactive');
    await expect(systemd.waitForState(SERVICE, ['active'], { timeoutMs: 300 })).rejects.toBeInstanceOf(UnitTimeoutError);
  });

  it('a corrupt image: the mount fails with a typed error carrying the Result, the service is not started', async () => {
    const img = await makeVolumeImage({ dir: imgDir, corrupt: true });
    await attach(img);
    const device = await waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: `${host.rootDir}/dev`, timeoutMs: 10_000 });
    // Without a label to check, systemd tries and mount(8) refuses the filesystem.
    const err = await mountVolume(mountOpts(device)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnitFailedError);
    expect(err).toMatchObject({ unit: MOUNT, result: 'exit-code', jobResult: 'failed' });
    expect((err as UnitFailedError).journal.join('\n')).toMatch(/mount|Mount/);
    // With the label check, it never gets that far.
    await expect(mountVolume(mountOpts(device, LABEL))).rejects.toMatchObject({ name: 'WrongVolumeError', reason: 'no-filesystem' });
    // The service's start pulls the failed mount in again and fails on the dependency; it never runs.
    const svcErr = await systemd.startUnit(SERVICE, { timeoutMs: JOB_TIMEOUT_MS }).catch((e: unknown) => e);
    expect(svcErr).toMatchObject({ name: 'UnitFailedError', unit: SERVICE, jobResult: 'dependency' });
    expect((await systemd.unitState(SERVICE)).activeState).not.toBe('active');
  });

  it('a wrong-label image: WrongVolumeError, nothing written, nothing started', async () => {
    const img = await makeVolumeImage({ dir: imgDir, label: 'other-data', files: { PG_VERSION: '15\n' } });
    await attach(img);
    const device = await waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: `${host.rootDir}/dev`, timeoutMs: 10_000 });
    const err = await mountVolume(mountOpts(device, LABEL)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrongVolumeError);
    expect(err).toMatchObject({ volumeId: VOLUME_ID, reason: 'label-mismatch', found: 'other-data' });
    expect((await systemd.unitState(MOUNT)).activeState).not.toBe('active');
    expect((await systemd.unitState(SERVICE)).activeState).not.toBe('active');
  });

  it('an NVMe serial link naming another volume: WrongVolumeError', async () => {
    const img = await makeVolumeImage({ dir: imgDir, label: LABEL });
    await attach(img, 'nvme1n1');
    await host.symlink('dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0fff00000000000ff', '../../nvme1n1');
    try {
      // The requested name exists as an alias link to the same node, as udev rules create on Nitro.
      await host.symlink('dev/xvdf', 'nvme1n1');
      const device = await waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: `${host.rootDir}/dev`, timeoutMs: 10_000 });
      expect(device).toMatchObject({ relPath: 'nvme1n1', via: 'requested' });
      await expect(mountVolume(mountOpts(device, LABEL))).rejects.toMatchObject({ reason: 'serial-mismatch', found: 'vol-0fff00000000000ff' });
    } finally {
      await host.exec(['rm', '-rf', '/dev/disk', '/dev/xvdf']);
    }
  });

  it('a unit that fails to start: UnitFailedError with its Result and journal lines', async () => {
    const err = await systemd.startUnit('failing.service', { timeoutMs: JOB_TIMEOUT_MS }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnitFailedError);
    expect(err).toMatchObject({ unit: 'failing.service', result: 'exit-code', jobResult: 'failed' });
    expect((err as UnitFailedError).journal).toContain('failing on purpose');
    expect(await systemd.unitState('failing.service')).toMatchObject({ activeState: 'failed', result: 'exit-code' });
  });

  it('a start past its deadline: UnitTimeoutError and the job is cancelled (the unit does not come up later)', async () => {
    const err = await systemd.startUnit('slow.service', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnitTimeoutError);
    expect(err).toMatchObject({ unit: 'slow.service', operation: 'start', timeoutMs: 300 });
    const state = await systemd.waitForState('slow.service', ['inactive', 'failed'], { timeoutMs: JOB_TIMEOUT_MS });
    expect(state.activeState).not.toBe('active');
  });

  it('an aborted start rejects with the abort reason', async () => {
    const ac = new AbortController();
    const starting = systemd.startUnit('slow.service', { timeoutMs: JOB_TIMEOUT_MS, signal: ac.signal });
    const reason = new Error('placement changed');
    setTimeout(() => ac.abort(reason), 100);
    await expect(starting).rejects.toBe(reason);
    expect((await systemd.waitForState('slow.service', ['inactive', 'failed'], { timeoutMs: JOB_TIMEOUT_MS })).activeState).not.toBe('active');
  });

  it('an unknown unit: UnitNotFoundError', async () => {
    await expect(systemd.startUnit('no-such-thing.service', { timeoutMs: JOB_TIMEOUT_MS })).rejects.toBeInstanceOf(UnitNotFoundError);
  });
});
