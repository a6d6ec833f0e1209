import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from './clock.js';
import { Ec2Sim } from './sim.js';

const LAT = { attachMs: 1_000, detachMs: 2_000, snapshotMs: 10_000, stopMs: 3_000, forceStopMs: 500, terminateMs: 1_000 };

function setup(opts: { nitro?: boolean; eniCount?: number } = {}) {
  const clock = new ManualClock();
  const sim = new Ec2Sim({ clock, latencies: LAT });
  const instanceId = sim.addInstance({ az: 'us-east-1a', nitro: opts.nitro ?? true, eniCount: opts.eniCount ?? 1 }).instanceId;
  const volumeId = sim.addVolume({ az: 'us-east-1a', volumeId: 'vol-0abc12345def67890' }).volumeId;
  const state = () => sim.volume(volumeId)?.attachment?.state ?? 'none';
  return { clock, sim, instanceId, volumeId, state };
}

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ec2sim-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('attachment state machine', () => {
  it('attaching → attached after attachMs, detaching → gone after detachMs', () => {
    const { clock, sim, instanceId, volumeId, state } = setup();
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    expect([state(), sim.volume(volumeId)?.state]).toEqual(['attaching', 'in-use']);
    clock.advance(999);
    expect(state()).toBe('attaching');
    clock.advance(1);
    expect(state()).toBe('attached');
    sim.detachVolume({ volumeId, instanceId, force: false });
    expect(state()).toBe('detaching');
    clock.advance(2_000);
    expect([state(), sim.volume(volumeId)?.state]).toEqual(['none', 'available']);
    expect(sim.history.map((h) => h.state)).toEqual(['attaching', 'attached', 'detaching', 'detached']);
  });

  it('a graceful detach of an in-use device stays busy until released', () => {
    const { clock, sim, instanceId, volumeId, state } = setup();
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    clock.advance(1_000);
    sim.setInUse(volumeId, true);
    sim.detachVolume({ volumeId, force: false });
    clock.advance(60_000);
    expect(state()).toBe('busy');
    sim.setInUse(volumeId, false);
    expect(state()).toBe('detaching');
    clock.advance(2_000);
    expect(state()).toBe('none');
  });

  it('a marker left by a stopped instance does not make the detach busy', () => {
    const { clock, sim, instanceId, volumeId, state } = setup();
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    clock.advance(1_000);
    sim.setInUse(volumeId, true);
    sim.stopInstances([instanceId], true);
    clock.advance(500);
    sim.detachVolume({ volumeId, force: false });
    expect(state()).toBe('detaching');
  });

  it('a stuck detach hangs in detaching until forced, then the fault is spent', () => {
    const { clock, sim, instanceId, volumeId, state } = setup();
    sim.injectFault({ kind: 'stuck-detach', volumeId });
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    clock.advance(1_000);
    sim.detachVolume({ volumeId, force: false });
    clock.advance(600_000);
    expect(state()).toBe('detaching');
    sim.detachVolume({ volumeId, force: true });
    clock.advance(2_000);
    expect(state()).toBe('none');
    expect(sim.history.at(-1)).toMatchObject({ state: 'detached', forced: true });
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    clock.advance(1_000);
    sim.detachVolume({ volumeId, force: false });
    clock.advance(2_000);
    expect(state()).toBe('none');
  });

  it('refuses a graceful detach while attaching, allows a forced one', () => {
    const { clock, sim, instanceId, volumeId, state } = setup();
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    expect(() => sim.detachVolume({ volumeId, force: false })).toThrow(expect.objectContaining({ code: 'IncorrectState' }));
    sim.detachVolume({ volumeId, force: true });
    clock.advance(5_000);
    expect(state()).toBe('none');
  });

  it('keeps attachments on stop, drops them on terminate', () => {
    const { clock, sim, instanceId, volumeId, state } = setup();
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    clock.advance(1_000);
    expect(sim.stopInstances([instanceId])[0]).toMatchObject({ previous: 'running', current: 'stopping' });
    clock.advance(3_000);
    expect([sim.instance(instanceId)?.state, state()]).toEqual(['stopped', 'attached']);
    sim.setInUse(volumeId, true); // a dead host cannot release its device; termination detaches anyway
    sim.terminateInstance(instanceId);
    expect(state()).toBe('detaching');
    clock.advance(2_000);
    expect([sim.instance(instanceId)?.state, state()]).toEqual(['terminated', 'none']);
  });

  it('counts Nitro attachment slots shared with network interfaces', () => {
    const { clock, sim, instanceId } = setup({ eniCount: 25 }); // 28 − 25 ENIs − root = 2 volumes
    const letters = ['f', 'g', 'h'];
    const volumeIds = letters.map(() => sim.addVolume({ az: 'us-east-1a' }).volumeId);
    sim.attachVolume(volumeIds[0] as string, instanceId, '/dev/xvdf');
    sim.attachVolume(volumeIds[1] as string, instanceId, '/dev/xvdg');
    expect(() => sim.attachVolume(volumeIds[2] as string, instanceId, '/dev/xvdh')).toThrow(expect.objectContaining({ code: 'AttachmentLimitExceeded' }));
    clock.advance(1_000);
  });
});

describe('device files', () => {
  it('creates nvme<N>n1 and the by-id link on attach, removes them on detach', () => {
    const { clock, sim, instanceId, volumeId } = setup({ nitro: true });
    const dir = tempDir();
    sim.setDeviceDir(instanceId, dir);
    const other = sim.addVolume({ az: 'us-east-1a' }).volumeId;
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    sim.attachVolume(other, instanceId, '/dev/xvdg');
    expect(existsSync(join(dir, 'nvme1n1'))).toBe(false);
    clock.advance(1_000);
    const link = join(dir, 'disk', 'by-id', 'nvme-Amazon_Elastic_Block_Store_vol0abc12345def67890');
    expect(readlinkSync(link)).toMatch(/^\.\.\/\.\.\/nvme[12]n1$/);
    expect(existsSync(join(dir, 'nvme1n1')) && existsSync(join(dir, 'nvme2n1'))).toBe(true);
    // The in-use marker written by whoever mounts the device makes a graceful detach busy.
    const device = join(dir, readlinkSync(link).slice('../../'.length));
    writeFileSync(`${device}.in-use`, '');
    sim.detachVolume({ volumeId, force: false });
    clock.advance(60_000);
    expect(sim.volume(volumeId)?.attachment?.state).toBe('busy');
    rmSync(`${device}.in-use`);
    clock.advance(20);
    clock.advance(2_000);
    expect(sim.volume(volumeId)?.attachment).toBeNull();
    expect(existsSync(device) || existsSync(link)).toBe(false);
  });

  it('names Xen devices after the requested device', () => {
    const { clock, sim, instanceId, volumeId } = setup({ nitro: false });
    const dir = tempDir();
    sim.setDeviceDir(instanceId, dir);
    sim.attachVolume(volumeId, instanceId, '/dev/xvdf');
    clock.advance(1_000);
    expect(existsSync(join(dir, 'xvdf'))).toBe(true);
  });
});

describe('snapshots', () => {
  it('rises from 0% to completed/100% over snapshotMs', () => {
    const { clock, sim, volumeId } = setup();
    const snap = sim.createSnapshot(volumeId, 'nightly', { k: 'v' });
    expect([snap.state, snap.progress, snap.volumeSize]).toEqual(['pending', '0%', 8]);
    clock.advance(5_000);
    expect(sim.snapshotView(sim.internals.snapshots.get(snap.snapshotId)!).progress).toBe('50%');
    clock.advance(5_000);
    expect(sim.state().snapshots[0]).toMatchObject({ state: 'completed', progress: '100%', tags: { k: 'v' } });
  });
});
