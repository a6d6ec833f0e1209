import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DeviceNotFoundError,
  findDevice,
  nvmeByIdName,
  readExtLabel,
  requestedCandidates,
  verifyDevice,
  volumeIdFromByIdName,
  waitForDevice,
  WrongVolumeError,
} from './device.js';

const VOLUME_ID = 'vol-0abc12345def67890';
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'device-test-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A fake ext superblock: magic at 1024+56, label at 1024+120. */
function extImage(label: string | undefined): Buffer {
  const buf = Buffer.alloc(4096);
  if (label !== undefined) {
    buf.writeUInt16LE(0xef53, 1024 + 56);
    buf.write(label, 1024 + 120, 16, 'utf8');
  }
  return buf;
}

function nitroLink(volumeId: string, node: string): void {
  mkdirSync(join(root, 'disk/by-id'), { recursive: true });
  symlinkSync(`../../${node}`, join(root, 'disk/by-id', nvmeByIdName(volumeId)));
}

describe('names', () => {
  it('NVMe by-id names have no dash after vol, and parse back', () => {
    expect(nvmeByIdName(VOLUME_ID)).toBe('nvme-Amazon_Elastic_Block_Store_vol0abc12345def67890');
    expect(volumeIdFromByIdName(nvmeByIdName(VOLUME_ID))).toBe(VOLUME_ID);
    expect(volumeIdFromByIdName('nvme-Amazon_Elastic_Block_Store_vol0abc12345def67890-part1')).toBeUndefined();
    expect(volumeIdFromByIdName('nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1')).toBeUndefined();
  });

  it.each([
    ['/dev/xvdf', ['xvdf', 'sdf']],
    ['/dev/sdg', ['sdg', 'xvdg']],
    ['/dev/nvme1n1', ['nvme1n1']],
  ])('%s may appear as %j', (requested, names) => {
    expect(requestedCandidates(requested)).toEqual(names);
  });
});

describe('findDevice', () => {
  it('prefers the NVMe serial link and resolves it to the node', async () => {
    writeFileSync(join(root, 'nvme1n1'), '');
    writeFileSync(join(root, 'xvdf'), ''); // a stale name must not win over the serial
    nitroLink(VOLUME_ID, 'nvme1n1');
    expect(await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: root })).toEqual({
      volumeId: VOLUME_ID,
      path: join(root, 'nvme1n1'),
      relPath: 'nvme1n1',
      via: 'nvme-serial',
    });
  });

  it('falls back to the requested name, then to its alias', async () => {
    expect(await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/sdf', deviceRoot: root })).toBeUndefined();
    writeFileSync(join(root, 'xvdf'), '');
    expect(await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/sdf', deviceRoot: root })).toMatchObject({ relPath: 'xvdf', via: 'alias' });
    writeFileSync(join(root, 'sdf'), '');
    expect(await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/sdf', deviceRoot: root })).toMatchObject({ relPath: 'sdf', via: 'requested' });
  });

  it('follows absolute /dev/ links inside the device root, and ignores dangling ones', async () => {
    writeFileSync(join(root, 'nvme2n1'), '');
    symlinkSync('/dev/nvme2n1', join(root, 'sdf'));
    expect(await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/sdf', deviceRoot: root })).toMatchObject({ relPath: 'nvme2n1', path: join(root, 'nvme2n1') });
    nitroLink(VOLUME_ID, 'nvme9n1'); // dangling: the volume was detached
    expect(await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/sdf', deviceRoot: root })).toMatchObject({ via: 'requested' });
  });
});

describe('waitForDevice', () => {
  it('resolves when the node appears after the wait began', async () => {
    const waiting = waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: root, timeoutMs: 10_000 });
    setTimeout(() => writeFileSync(join(root, 'xvdf'), ''), 50);
    expect(await waiting).toMatchObject({ relPath: 'xvdf' });
  });

  it('finds a by-id link whose directory did not exist when the wait began (slow poll)', async () => {
    const waiting = waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: root, timeoutMs: 10_000, pollIntervalMs: 50 });
    setTimeout(() => {
      writeFileSync(join(root, 'nvme1n1'), '');
      nitroLink(VOLUME_ID, 'nvme1n1');
    }, 50);
    expect(await waiting).toMatchObject({ relPath: 'nvme1n1', via: 'nvme-serial' });
  });

  it('fails with DeviceNotFoundError at the deadline', async () => {
    const err = await waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: root, timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceNotFoundError);
    expect(err).toMatchObject({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: root, timeoutMs: 100 });
  });

  it('rejects with the abort reason', async () => {
    const ac = new AbortController();
    const waiting = waitForDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: root, timeoutMs: 10_000, signal: ac.signal });
    const reason = new Error('leadership lost');
    ac.abort(reason);
    await expect(waiting).rejects.toBe(reason);
  });
});

describe('identity', () => {
  it('reads the ext label from the superblock; none without the magic', async () => {
    writeFileSync(join(root, 'good'), extImage('postgres-data'));
    writeFileSync(join(root, 'zeros'), extImage(undefined));
    writeFileSync(join(root, 'short'), 'x');
    expect(await readExtLabel(join(root, 'good'))).toBe('postgres-data');
    expect(await readExtLabel(join(root, 'zeros'))).toBeUndefined();
    expect(await readExtLabel(join(root, 'short'))).toBeUndefined();
  });

  it('accepts the right label and serial; refuses a wrong label, no filesystem, or another volume\'s serial', async () => {
    writeFileSync(join(root, 'nvme1n1'), extImage('postgres-data'));
    nitroLink(VOLUME_ID, 'nvme1n1');
    const device = (await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdf', deviceRoot: root }))!;
    await expect(verifyDevice({ device, deviceRoot: root, fsLabel: 'postgres-data' })).resolves.toBeUndefined();
    await expect(verifyDevice({ device, deviceRoot: root, fsLabel: 'other' })).rejects.toMatchObject({
      name: 'WrongVolumeError',
      reason: 'label-mismatch',
      found: 'postgres-data',
    });

    writeFileSync(join(root, 'xvdg'), extImage(undefined));
    const bare = (await findDevice({ volumeId: VOLUME_ID, requestedDevice: '/dev/xvdg', deviceRoot: root }))!;
    // (The serial link wins in findDevice; build the requested-name view by hand.)
    const xvdg = { ...bare, path: join(root, 'xvdg'), relPath: 'xvdg', via: 'requested' as const };
    await expect(verifyDevice({ device: xvdg, deviceRoot: root })).resolves.toBeUndefined();
    await expect(verifyDevice({ device: xvdg, deviceRoot: root, fsLabel: 'postgres-data' })).rejects.toMatchObject({ reason: 'no-filesystem' });

    nitroLink('vol-0fff00000000000ff', 'xvdg');
    const err = await verifyDevice({ device: xvdg, deviceRoot: root }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrongVolumeError);
    expect(err).toMatchObject({ volumeId: VOLUME_ID, reason: 'serial-mismatch', found: 'vol-0fff00000000000ff' });
  });
});
