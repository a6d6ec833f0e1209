import { EC2Client, EC2ServiceException, AttachVolumeCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createEc2 } from '../ec2/client.js';
import { withGuard } from '../ec2/gate.js';
import type { Ec2Port, MutationGuard } from '../ec2/types.js';
import { silentLogger } from '../log/logger.js';
import { act, DeviceTakenError, TargetNotRunningError } from './act.js';
import type { Decision } from './decision.js';
import { MemoryStore } from './memory.js';
import { advance } from './state.js';
import { journal } from '../testing/controller-builders.js';

const VOL = 'vol-0123456789abcdef0';
const I2 = 'i-0123456789abcdef2';
const ec2Client = new EC2Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
const mock = mockClient(ec2Client);

const guard: MutationGuard = { caller: 'c1', term: '77', assert: () => undefined, remainingMs: () => 5_000 };

function ec2(): Ec2Port {
  return withGuard(createEc2({ client: ec2Client, timing: { retryMinMs: 1, retryMaxMs: 2, pollInitialMs: 1, pollMaxMs: 2 } }), guard);
}

function sdkError(name: string, message: string): EC2ServiceException {
  return new EC2ServiceException({ name, message, $fault: 'client', $metadata: { httpStatusCode: 400 } });
}

/** A store holding the volume's journal at `attaching` to I2 as /dev/xvdf. */
function storeAttaching(): MemoryStore {
  const store = new MemoryStore();
  const j = advance(advance(journal({ volumeId: VOL }), 'detaching', 1, 'detach'), 'attaching', 2, 'attach', { toInstanceId: I2, device: '/dev/xvdf' });
  store.journals.set(VOL, j);
  return store;
}

const attach: Decision = { kind: 'attach', volumeId: VOL, instanceId: I2, device: '/dev/xvdf', reason: 'test' };

function deps(store: MemoryStore, port: Ec2Port) {
  return { store, ec2: port, log: silentLogger(), signal: new AbortController().signal, now: () => 1_000 };
}

beforeEach(() => mock.reset());

describe('act: EC2 mutations', () => {
  it('records the intent (action, instance, device, the gate\'s term) in the journal before the call', async () => {
    const store = storeAttaching();
    let journalAtCall: unknown;
    mock.on(AttachVolumeCommand).callsFake(() => {
      journalAtCall = store.journals.get(VOL)?.intent;
      return {};
    });
    await act(deps(store, ec2()), attach, 'postgres@x');
    expect(journalAtCall).toEqual({ action: 'attach', instanceId: I2, force: false, device: '/dev/xvdf', term: '77', at: 1_000 });
  });

  it.each([
    ['InvalidDevice.InUse', "Invalid value '/dev/xvdf' for unixDevice. Attachment point /dev/xvdf is already in use"],
    // Real EC2's other answer for a taken name: the controller must choose another device here too.
    ['InvalidParameterValue', "Invalid value '/dev/xvdf' for unixDevice. Attachment point /dev/xvdf is already in use"],
  ])('AttachVolume refused with %s → DeviceTakenError (the loop marks the name taken and picks another)', async (code, message) => {
    mock.on(AttachVolumeCommand).rejects(sdkError(code, message));
    const err = await act(deps(storeAttaching(), ec2()), attach, undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceTakenError);
    expect(err).toMatchObject({ volumeId: VOL, instanceId: I2, device: '/dev/xvdf' });
  });

  it.each([
    ['IncorrectInstanceState', `The instance '${I2}' is not in a valid state for this operation.`],
    ['IncorrectState', `The instance '${I2}' is not 'running'.`],
  ])('AttachVolume refused with %s about the instance → TargetNotRunningError, not a race to retry', async (code, message) => {
    mock.on(AttachVolumeCommand).rejects(sdkError(code, message));
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [] });
    const err = await act(deps(storeAttaching(), ec2()), attach, undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TargetNotRunningError);
    expect(err).toMatchObject({ volumeId: VOL, instanceId: I2 });
  });

  it('a volume IncorrectState (the attachment moved on) stays a race: no error, the next look decides', async () => {
    mock.on(AttachVolumeCommand).rejects(sdkError('IncorrectState', `Volume '${VOL}' is in the 'detaching' state.`));
    await expect(act(deps(storeAttaching(), ec2()), attach, undefined)).resolves.toBeNull();
  });
});
