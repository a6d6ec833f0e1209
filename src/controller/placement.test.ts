import { describe, expect, it } from 'vitest';
import { chooseTarget, freeDevice } from './placement.js';
import { AZ, I1, I2, I3, IB, UNIT, host, instance, journal, observed, placement, service, type Spec } from '../testing/controller-builders.js';

const OTHER = service({ unit: 'postgres@vol-0000000000000000f', volumeId: 'vol-0000000000000000f' });
const otherOn = (instanceId: string) => placement(instanceId, 1, { volumeId: OTHER.volumeId, unit: OTHER.unit });

describe('chooseTarget', () => {
  it.each<[string, Spec, string | null, string]>([
    ['least loaded, tie broken by instance id', { hosts: [host(I3), host(I2)] }, I2, `least loaded live host in ${AZ} (0 volumes)`],
    ['never cross-AZ', { hosts: [host(IB, { az: 'us-east-1b' })] }, null, `no live host in ${AZ} can take ${UNIT}`],
    [
      'conflict group: one postgres per host',
      { hosts: [host(I2), host(I3)], services: [service(), OTHER], placements: [otherOn(I2)] },
      I3, `least loaded live host in ${AZ} (0 volumes)`,
    ],
    [
      'conflict group with every host taken: blocked with per-host reasons',
      { hosts: [host(I2)], services: [service(), OTHER], placements: [otherOn(I2)] },
      null, `no live host in ${AZ} can take ${UNIT}: ${I2} already holds ${OTHER.unit} of conflict group postgres`,
    ],
    [
      'an incoming failover counts as a conflict',
      { hosts: [host(I2)], services: [service(), OTHER], journals: [journal({ volumeId: OTHER.volumeId, unit: OTHER.unit, step: 'attaching', toInstanceId: I2 })] },
      null, `no live host in ${AZ} can take ${UNIT}: ${I2} already holds ${OTHER.unit} of conflict group postgres`,
    ],
    [
      'instance stopped or stopping in EC2: never chosen',
      { hosts: [host(I2), host(I3)], instances: [instance(I2, { state: 'stopped' }), instance(I3, { state: 'stopping' })] },
      null, `no live host in ${AZ} can take ${UNIT}: ${I2} is stopped in EC2; ${I3} is stopping in EC2`,
    ],
    ['a stopped instance is skipped for a running one', { hosts: [host(I2), host(I3)], instances: [instance(I2, { state: 'stopped' })] }, I3, `least loaded live host in ${AZ} (0 volumes)`],
    [
      'instance EC2 does not describe: not eligible',
      { hosts: [host(I2)], instances: [] },
      null, `no live host in ${AZ} can take ${UNIT}: ${I2} is not described by EC2 (instance state unknown)`,
    ],
    ['required labels', { hosts: [host(I2), host(I3, { labels: { role: 'db' } })], services: [service({ requiredLabels: { role: 'db' } })] }, I3, `least loaded live host in ${AZ} (0 volumes)`],
    [
      'no free device name',
      { hosts: [host(I2)], instances: [{ instanceId: I2, az: AZ, state: 'running', privateIp: null, devices: 'fghijklmnop'.split('').map((l) => `/dev/sd${l}`), tags: {} }], config: { maxAttachmentsPerInstance: 40 } },
      null, `no live host in ${AZ} can take ${UNIT}: ${I2} has no free device name in /dev/xvd[f-p]`,
    ],
    [
      'attachment limit',
      { hosts: [host(I2)], instances: [{ instanceId: I2, az: AZ, state: 'running', privateIp: null, devices: ['/dev/xvda', '/dev/xvdf'], tags: {} }], config: { maxAttachmentsPerInstance: 2 } },
      null, `no live host in ${AZ} can take ${UNIT}: ${I2} at its limit of 2 attachments`,
    ],
  ])('%s', (name, spec, instanceId, reason) => {
    const o = observed(spec);
    if (name.startsWith('instance EC2 does not describe')) o.instances = new Map();
    const choice = chooseTarget(o, o.services.get(UNIT) ?? service(), AZ, new Set([I1]));
    expect(choice).toEqual(instanceId === null ? { ok: false, reason } : { ok: true, instanceId, device: '/dev/xvdf', reason });
  });

  it('never a host in exclude (the old holder, hosts this failover gave up)', () => {
    const o = observed({ hosts: [host(I2), host(I3)] });
    expect(chooseTarget(o, service(), AZ, new Set([I1, I2]))).toEqual({ ok: true, instanceId: I3, device: '/dev/xvdf', reason: `least loaded live host in ${AZ} (0 volumes)` });
  });

  it('prefers the host with fewer volumes', () => {
    const o = observed({ hosts: [host(I2), host(I3)], services: [service({ conflictGroup: undefined }), OTHER], placements: [otherOn(I2)] });
    expect(chooseTarget(o, service({ conflictGroup: undefined }), AZ, new Set())).toMatchObject({ ok: true, instanceId: I3 });
  });
});

describe('freeDevice', () => {
  it('skips letters used under either name and letters promised to incoming failovers', () => {
    const o = observed({
      instances: [{ instanceId: I2, az: AZ, state: 'running', privateIp: null, devices: ['/dev/xvda', '/dev/sdf'], tags: {} }],
      journals: [journal({ volumeId: 'vol-0000000000000000e', step: 'attaching', toInstanceId: I2, device: '/dev/xvdg' })],
    });
    expect(freeDevice(o, I2)).toBe('/dev/xvdh');
  });
});
