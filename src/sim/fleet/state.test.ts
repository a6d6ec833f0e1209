import { describe, expect, it } from 'vitest';
import { FleetState, PatchError } from './state.js';

const unitOptions = (value: string) => [
  { section: 'Service', name: 'ExecStart', value: '/bin/true' },
  { section: 'X-Fleet', name: 'MachineMetadata', value },
];

describe('fleet stand-in scheduler', () => {
  it('schedules a launched unit where every MachineMetadata line matches, and keeps it there', () => {
    let t = 0;
    const state = new FleetState(() => ++t);
    state.addMachine('m1', { metadata: { role: 'db' } });
    state.addMachine('m2', { metadata: { role: 'db' } });
    state.putUnit('postgres@vol-00000001.service', 'launched', [...unitOptions('postgres=vol-00000001'), { section: 'X-Fleet', name: 'MachineMetadata', value: 'role=db' }]);
    expect(state.units.get('postgres@vol-00000001.service')?.machineId).toBeNull();
    state.applyPatch([{ op: 'add', path: '/m2/metadata/postgres', value: { value: 'vol-00000001' } }]);
    expect(state.units.get('postgres@vol-00000001.service')?.machineId).toBe('m2');
    // A second match elsewhere does not move it.
    state.applyPatch([{ op: 'add', path: '/m1/metadata/postgres', value: { value: 'vol-00000001' } }]);
    expect(state.units.get('postgres@vol-00000001.service')?.machineId).toBe('m2');
    state.applyPatch([{ op: 'remove', path: '/m2/metadata/postgres' }]);
    expect(state.units.get('postgres@vol-00000001.service')?.machineId).toBe('m1');
    expect(state.schedule.map((c) => [c.machineId, c.previous])).toEqual([['m2', null], ['m1', 'm2']]);
  });

  it('validates every op before applying any', () => {
    const state = new FleetState();
    expect(() =>
      state.applyPatch([
        { op: 'add', path: '/m1/metadata/a', value: { value: '1' } },
        { op: 'add', path: '/m1/nope', value: { value: '2' } },
      ]),
    ).toThrow(PatchError);
    expect(state.changes).toEqual([]);
  });

  it('an inactive unit is not scheduled', () => {
    const state = new FleetState();
    state.addMachine('m1', { metadata: { postgres: 'vol-00000001' } });
    state.putUnit('u.service', 'loaded', unitOptions('postgres=vol-00000001'));
    expect(state.units.get('u.service')?.machineId).toBeNull();
    expect(state.states({})).toEqual([]);
  });
});
