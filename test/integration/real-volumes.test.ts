import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttachVolumeCommand, DescribeVolumesCommand, DetachVolumeCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEc2Endpoint, type Ec2Endpoint } from '../../src/sim/ec2/index.js';
import { isYanked, loopsOf, RealBlockDevices } from '../../src/sim/ec2/real-volumes.js';
import { bootRealHost, realHostsAvailable, type RealHost } from '../helpers/realhost.js';
import { until } from '../helpers/realworld.js';

/**
 * The EC2 endpoint's real-volume mode through the real SDK, with two real systemd hosts: an attached
 * volume is a real block device under EC2's Nitro names in the host's /dev; a graceful detach of a
 * mounted disk stays busy; a forced one fails the host's I/O; and an image still bound to a loop that
 * was not yanked (a lingering mount namespace) is not exposed to another host until that loop is gone.
 */
const skip = realHostsAvailable();
const VOL = 'vol-0abc12345def67890';

describe.skipIf(skip !== undefined)(`EC2 endpoint real volumes${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  let devices: RealBlockDevices;
  let endpoint: Ec2Endpoint;
  let ec2: EC2Client;
  let h1: RealHost;
  let h2: RealHost;
  const instance = { h1: 'i-0aaaaaaaaaaaaaaa1', h2: 'i-0aaaaaaaaaaaaaaa2' };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'real-volumes-'));
    devices = new RealBlockDevices({ imagesDir: dir, fsLabel: 'postgres-data' });
    endpoint = await startEc2Endpoint({ devices, latencies: { attachMs: 100, detachMs: 100 } });
    endpoint.sim.setThrottle({ enabled: false });
    ec2 = new EC2Client({ endpoint: endpoint.url, region: 'us-east-1', credentials: { accessKeyId: 'AKIDSIMULATOR', secretAccessKey: 'simulator-secret' } });
    h1 = await bootRealHost({ name: 'realvol-1', ipIndex: 42 });
    h2 = await bootRealHost({ name: 'realvol-2', ipIndex: 43 });
    for (const [id, h] of [[instance.h1, h1], [instance.h2, h2]] as const) {
      endpoint.sim.addInstance({ instanceId: id, az: 'us-east-1a', nitro: true });
      endpoint.sim.setDeviceDir(id, `${h.rootDir}/dev`);
    }
    endpoint.sim.addVolume({ volumeId: VOL, az: 'us-east-1a' });
  }, 180_000);
  afterAll(async () => {
    ec2?.destroy();
    await h1?.stop();
    await h2?.stop();
    devices?.close();
    await endpoint?.close();
    for (const loop of dir ? loopsOf(join(dir, `${VOL}.img`)) : []) execFileSync('losetup', ['-d', loop]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const attachment = async (): Promise<string> => {
    const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [VOL] }));
    return out.Volumes?.[0]?.Attachments?.[0]?.State ?? 'detached';
  };
  const sh = async (h: RealHost, script: string): Promise<string> => (await h.exec(['sh', '-c', script])).stdout.trim();

  it('attach: a real block device as nvme1n1 with the xvdf and by-id links; graceful detach is busy while mounted', async () => {
    await ec2.send(new AttachVolumeCommand({ VolumeId: VOL, InstanceId: instance.h1, Device: '/dev/xvdf' }));
    await until(async () => (await attachment()) === 'attached' || undefined, 30_000, 'attached');
    const links = await sh(h1, 'test -b /dev/nvme1n1 && readlink /dev/xvdf /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc12345def67890');
    expect(links.split('\n')).toEqual(['nvme1n1', '../../nvme1n1']);
    expect(await sh(h1, 'blkid -o value -s LABEL /dev/nvme1n1')).toBe('postgres-data');
    await sh(h1, 'mkdir -p /mnt/v && mount /dev/nvme1n1 /mnt/v && echo first > /mnt/v/file && sync');

    await ec2.send(new DetachVolumeCommand({ VolumeId: VOL }));
    await until(async () => (await attachment()) === 'busy' || undefined, 30_000, 'busy while mounted');
    await sh(h1, 'umount /mnt/v');
    await until(async () => (await attachment()) === 'detached' || undefined, 30_000, 'detached once unmounted');
    expect(existsSync(`${h1.rootDir}/dev/nvme1n1`)).toBe(false);
    expect(loopsOf(join(dir, `${VOL}.img`))).toEqual([]);
  });

  it('forced detach of a mounted disk fails its I/O, as a yanked EBS disk', async () => {
    await ec2.send(new AttachVolumeCommand({ VolumeId: VOL, InstanceId: instance.h1, Device: '/dev/xvdf' }));
    await until(async () => (await attachment()) === 'attached' || undefined, 30_000, 'attached again');
    await sh(h1, 'mount /dev/nvme1n1 /mnt/v && cat /mnt/v/file');
    await ec2.send(new DetachVolumeCommand({ VolumeId: VOL, Force: true }));
    await until(async () => (await attachment()) === 'detached' || undefined, 30_000, 'force-detached');
    expect(devices.yanked.map((y) => y.instanceId)).toEqual([instance.h1]);
    const write = await h1.exec(['sh', '-c', 'echo after > /mnt/v/after && sync /mnt/v/after']).then(() => 'written', () => 'failed');
    expect(write).toBe('failed');
    // Still bound (the host has it mounted), but no block passes it: the kernel says so.
    expect(isYanked(devices.yanked[0]?.loop ?? '')).toBe(true);
    // The old host unmounts its dead filesystem; only then does the yanked loop go.
    await sh(h1, 'umount /mnt/v || umount -l /mnt/v');
    await until(() => loopsOf(join(dir, `${VOL}.img`)).length === 0 || undefined, 30_000, 'yanked loop released after the unmount');
  });

  it('never exposes an image still bound to a loop it did not yank (the lingering-namespace DANGER)', async () => {
    const image = join(dir, `${VOL}.img`);
    // A loop over the image that this endpoint does not know: what a dead host's lingering mount leaves.
    const stray = execFileSync('losetup', ['-f', '--show', image]).toString().trim();
    try {
      await ec2.send(new AttachVolumeCommand({ VolumeId: VOL, InstanceId: instance.h2, Device: '/dev/xvdf' }));
      await until(async () => (await attachment()) === 'attached' || undefined, 30_000, 'attached to h2 (EC2 view)');
      await until(() => devices.problems.some((p) => p.instanceId === instance.h2 && p.message.includes(stray)) || undefined, 30_000, 'the wait recorded');
      expect(existsSync(`${h2.rootDir}/dev/nvme1n1`)).toBe(false);
    } finally {
      execFileSync('losetup', ['-d', stray]);
    }
    await until(() => existsSync(`${h2.rootDir}/dev/nvme1n1`) || undefined, 30_000, 'exposed once the stray loop is gone');
    expect(await sh(h2, 'mkdir -p /mnt/v && mount /dev/nvme1n1 /mnt/v && cat /mnt/v/file && ls /mnt/v && umount /mnt/v')).toMatch(/^first\n/);
  });
});
