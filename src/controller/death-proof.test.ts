import { describe, expect, it } from 'vitest';
import type { Ec2Port, InstanceInfo, InstanceState, InstanceStatusInfo, StatusCheck } from '../ec2/types.js';
import { deathProof, lookForDeathProof } from './death-proof.js';

const ID = 'i-0000000000000000a';
const info = (state: InstanceState, instanceId = ID): InstanceInfo => ({ instanceId, az: 'us-east-1a', state, privateIp: null, devices: [], tags: {} });
const status = (state: InstanceState, systemStatus: StatusCheck, instanceStatus: StatusCheck, instanceId = ID): InstanceStatusInfo => ({ instanceId, state, systemStatus, instanceStatus });

describe('deathProof', () => {
  it.each<[string, InstanceInfo | undefined, InstanceStatusInfo | undefined, string | null]>([
    ['stopped', info('stopped'), undefined, 'EC2 reports the instance stopped'],
    ['stopping', info('stopping'), undefined, 'EC2 reports the instance stopping'],
    ['shutting-down', info('shutting-down'), undefined, 'EC2 reports the instance shutting-down'],
    ['terminated', info('terminated'), undefined, 'EC2 reports the instance terminated'],
    ['running, no status read: no proof', info('running'), undefined, null],
    ['running, checks ok: no proof (what an etcd artifact looks like)', info('running'), status('running', 'ok', 'ok'), null],
    ['running, system check impaired', info('running'), status('running', 'impaired', 'ok'), 'EC2 status check(s) impaired: system'],
    ['running, instance check impaired', info('running'), status('running', 'ok', 'impaired'), 'EC2 status check(s) impaired: instance'],
    ['running, both impaired', info('running'), status('running', 'impaired', 'impaired'), 'EC2 status check(s) impaired: system, instance'],
    ['running, checks initializing: no proof', info('running'), status('running', 'initializing', 'initializing'), null],
    ['running, insufficient data: no proof', info('running'), status('running', 'insufficient-data', 'insufficient-data'), null],
    ['pending (booting): no proof', info('pending'), undefined, null],
    ['unknown to EC2: no proof', undefined, undefined, null],
    ['stopped since the DescribeInstances (status is newer)', info('running'), status('stopped', 'not-applicable', 'not-applicable'), 'EC2 reports the instance stopped'],
  ])('%s', (_name, i, s, expected) => {
    expect(deathProof(i, s)).toBe(expected);
  });
});

describe('lookForDeathProof', () => {
  const ids = ['i-0000000000000000a', 'i-0000000000000000b', 'i-0000000000000000c', 'i-0000000000000000d'];
  function port(calls: string[][], statusFails = false): Ec2Port {
    const states: Record<string, InstanceState> = { [ids[0] as string]: 'stopped', [ids[1] as string]: 'running', [ids[2] as string]: 'running', [ids[3] as string]: 'terminated' };
    return {
      describeInstances: async (asked: string[]) => {
        calls.push(['DescribeInstances', ...asked]);
        return asked.map((id) => info(states[id] ?? 'running', id));
      },
      describeInstanceStatus: async (asked: string[]) => {
        calls.push(['DescribeInstanceStatus', ...asked]);
        if (statusFails) throw new Error('throttled');
        return asked.map((id) => status('running', id === ids[1] ? 'impaired' : 'ok', 'ok', id));
      },
    } as unknown as Ec2Port; // only the two describes are called
  }

  it('one DescribeInstances for all, one DescribeInstanceStatus for the running ones; proofs with reasons', async () => {
    const calls: string[][] = [];
    const found = await lookForDeathProof(port(calls), ids);
    expect(calls).toEqual([['DescribeInstances', ...ids], ['DescribeInstanceStatus', ids[1], ids[2]]]);
    expect(Object.fromEntries(found)).toEqual({
      [ids[0] as string]: 'EC2 reports the instance stopped',
      [ids[1] as string]: 'EC2 status check(s) impaired: system',
      [ids[3] as string]: 'EC2 reports the instance terminated',
    });
  });

  it('no hosts: no call', async () => {
    const calls: string[][] = [];
    expect((await lookForDeathProof(port(calls), [])).size).toBe(0);
    expect(calls).toEqual([]);
  });

  it('a failed status call keeps the instance-state proofs and is reported', async () => {
    const calls: string[][] = [];
    const errors: unknown[] = [];
    const found = await lookForDeathProof(port(calls, true), ids, undefined, (e) => errors.push(e));
    expect([...found.keys()]).toEqual([ids[0], ids[3]]);
    expect(errors).toHaveLength(1);
  });
});
