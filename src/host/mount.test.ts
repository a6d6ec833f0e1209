import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findDevice, type ResolvedDevice } from './device.js';
import { DROP_IN_NAME, MountConflictError, mountVolume, removeDropIn, unmountVolume, writeDropIn } from './mount.js';
import { MemorySystemd } from './systemd/memory.js';

const VOLUME_ID = 'vol-0abc12345def67890';
const MOUNT = 'data-postgres.mount';
let dir: string;
let devRoot: string;
let runDir: string;
let systemd: MemorySystemd;

function extImage(label: string): Buffer {
  const buf = Buffer.alloc(4096);
  buf.writeUInt16LE(0xef53, 1024 + 56);
  buf.write(label, 1024 + 120, 16, 'utf8');
  return buf;
}

async function device(name: string): Promise<ResolvedDevice> {
  return (await findDevice({ volumeId: VOLUME_ID, requestedDevice: `/dev/${name}`, deviceRoot: devRoot }))!;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mount-test-'));
  devRoot = join(dir, 'dev');
  runDir = join(dir, 'run');
  mkdirSync(devRoot);
  systemd = new MemorySystemd({ runDir });
  systemd.defineUnit({ name: MOUNT, what: '/dev/disk/by-label/postgres-data' });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const opts = (dev: ResolvedDevice, fsLabel?: string) => ({
  systemd,
  mountUnit: MOUNT,
  volumeId: VOLUME_ID,
  device: dev,
  fsLabel,
  deviceRoot: devRoot,
  unitDeviceRoot: devRoot, // MemorySystemd runs in this process: it sees the same paths
  runDir,
  timeoutMs: 5_000,
});

describe('drop-ins', () => {
  it('writes once, reports unchanged content, removes', async () => {
    expect(await writeDropIn(MOUNT, DROP_IN_NAME, 'a', { runDir })).toBe(true);
    expect(await writeDropIn(MOUNT, DROP_IN_NAME, 'a', { runDir })).toBe(false);
    expect(await writeDropIn(MOUNT, DROP_IN_NAME, 'b', { runDir })).toBe(true);
    expect(readFileSync(join(runDir, `${MOUNT}.d`, DROP_IN_NAME), 'utf8')).toBe('b');
    expect(await removeDropIn(MOUNT, DROP_IN_NAME, { runDir })).toBe(true);
    expect(await removeDropIn(MOUNT, DROP_IN_NAME, { runDir })).toBe(false);
  });
});

describe('mountVolume', () => {
  it('points the unit at the device, reloads only on change, mounts, unmounts', async () => {
    writeFileSync(join(devRoot, 'xvdf'), extImage('postgres-data'));
    const dev = await device('xvdf');
    const first = await mountVolume(opts(dev, 'postgres-data'));
    expect(first).toMatchObject({ what: join(devRoot, 'xvdf'), reloaded: true, state: { activeState: 'active' } });
    expect(readFileSync(join(runDir, `${MOUNT}.d`, DROP_IN_NAME), 'utf8')).toContain(`What=${join(devRoot, 'xvdf')}`);
    expect(existsSync(join(devRoot, 'xvdf.in-use'))).toBe(true);
    expect((await mountVolume(opts(dev, 'postgres-data'))).reloaded).toBe(false);
    expect((await unmountVolume({ systemd, mountUnit: MOUNT, timeoutMs: 5_000 })).activeState).toBe('inactive');
    expect(existsSync(join(devRoot, 'xvdf.in-use'))).toBe(false);
  });

  it('a wrong label: nothing written, nothing started', async () => {
    writeFileSync(join(devRoot, 'xvdf'), extImage('other'));
    await expect(mountVolume(opts(await device('xvdf'), 'postgres-data'))).rejects.toMatchObject({ name: 'WrongVolumeError', reason: 'label-mismatch' });
    expect(existsSync(join(runDir, `${MOUNT}.d`))).toBe(false);
    expect(systemd.history).toEqual([]);
  });

  it('refuses to repoint an active mount at another device', async () => {
    writeFileSync(join(devRoot, 'xvdf'), extImage('postgres-data'));
    writeFileSync(join(devRoot, 'xvdg'), extImage('postgres-data'));
    await mountVolume(opts(await device('xvdf')));
    const err = await mountVolume(opts(await device('xvdg'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MountConflictError);
    expect(readFileSync(join(runDir, `${MOUNT}.d`, DROP_IN_NAME), 'utf8')).toContain('xvdf');
  });
});
