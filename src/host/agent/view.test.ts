import { describe, expect, it } from 'vitest';
import { keyspace } from '../../keyspace/index.js';
import { silentLogger } from '../../log/logger.js';
import { FakeMirror } from '../../testing/fake-mirror.js';
import { MirrorView } from './view.js';

const ks = keyspace('/t/');
const service = (n: number, volumeId = `vol-0000000${n}a`): { key: string; raw: string; volumeId: string; unit: string } => {
  const unit = `db${n}@${volumeId}`;
  return { key: ks.service(unit), unit, volumeId, raw: JSON.stringify({ unit, volumeId, mountUnit: `data-${n}.mount`, mountPoint: `/data/${n}`, metadataKey: `db${n}` }) };
};

function world(): { placements: FakeMirror; services: FakeMirror; view: MirrorView; told: (string[] | 'all')[] } {
  const placements = new FakeMirror();
  const services = new FakeMirror();
  const told: (string[] | 'all')[] = [];
  const view = new MirrorView(ks, placements, services, silentLogger(), (v) => told.push(v));
  return { placements, services, view, told };
}

describe('MirrorView', () => {
  it('names only the volumes a service change touched: old and new volume of a changed key, the volume of a removed one', () => {
    const { services, view, told } = world();
    const a = service(1);
    const b = service(2);
    services.map.set(a.key, a.raw).set(b.key, b.raw);
    services.emit('change', [a.key, b.key]);
    expect(told.at(-1)).toEqual([a.volumeId, b.volumeId]);

    // The same unit key now names another volume: both are affected.
    const moved = service(1, 'vol-0000009f');
    services.map.set(a.key, moved.raw.replace(moved.unit, a.unit));
    services.emit('change', [a.key]);
    expect(told.at(-1)).toEqual([a.volumeId, 'vol-0000009f']);

    services.map.delete(b.key);
    services.emit('change', [b.key]);
    expect(told.at(-1)).toEqual([b.volumeId]);
    expect(view.service(b.volumeId)).toBeUndefined();

    services.emit('change', 'reset');
    expect(told.at(-1)).toBe('all');
  });

  it('reads each record once per change of its value and keeps the index current', () => {
    const { services, placements, view } = world();
    const a = service(1);
    const b = service(2);
    services.map.set(a.key, a.raw);
    services.emit('change', [a.key]);
    const first = view.service(a.volumeId);
    expect(first?.unit).toBe(a.unit);
    services.map.set(b.key, b.raw);
    services.emit('change', [b.key]);
    // Another key changed: a's record is the same object (not decoded again), b is found by volume.
    expect(view.service(a.volumeId)).toBe(first);
    expect(view.service(b.volumeId)?.unit).toBe(b.unit);
    expect(view.service(a.volumeId, a.unit)).toBe(first);
    // A record stored under another unit's key is found by volume, but is not one of allServices().
    const stray = service(3);
    services.map.set(ks.service('elsewhere@vol-00000001'), stray.raw);
    services.emit('change', [ks.service('elsewhere@vol-00000001')]);
    expect(view.service(stray.volumeId)?.unit).toBe(stray.unit);
    expect(view.allServices().map((s) => s.unit).sort()).toEqual([a.unit, b.unit]);

    placements.map.set(ks.placement('vol-00000042'), JSON.stringify({ volumeId: 'vol-00000042', unit: a.unit, instanceId: null, device: null, generation: 4, updatedAt: 1 }));
    expect(view.placement('vol-00000042')?.generation).toBe(4);
    expect(view.volumeIds().sort()).toEqual([a.volumeId, b.volumeId, stray.volumeId, 'vol-00000042'].sort());
    placements.map.delete(ks.placement('vol-00000042'));
    expect(view.placement('vol-00000042')).toBeUndefined();
  });
});
