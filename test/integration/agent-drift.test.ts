/**
 * Issue 9, finding 2 (agent side): the agent re-verifies what it reported `active`, it does not trust it.
 * Real processes: an agent process (test/fixtures/controller-agent.ts over the in-memory systemd), real
 * etcd, the EC2 endpoint. No controller: the test writes the placements and does the EC2 calls a
 * controller would, so that only the agent's behaviour is under test.
 *
 * (a) the unit crashes after `active` → the agent reports `drift` (unit-inactive), starts it again, and
 *     reports `active` for the same generation; the ledger shows the restart.
 * (b) the volume is detached behind the agent's back → `drift` (device-missing), unit and mount stop
 *     (the disk is gone), `waiting-device`; once re-attached under a new generation → `active` again.
 * (c) the same while etcd does not answer (SIGSTOP): the unit and mount stop all the same, before the drift
 *     report can be written (chaos seed 119: the stop waited 6.3 s behind a report to a black-holed member).
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Watcher } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentReport, decodeRecord, encodeRecord, type Placement } from '../../src/keyspace/index.js';
import { AZ, Scenario, readLedger, startWorld, until, type Host, type World } from '../fixtures/controller-harness.js';

/** Re-verification period of the agent under test: short so a drift is seen within a second. */
const VERIFY_EVERY_MS = 500;
/** Generous: a shared 2-core machine; each step takes well under a second when idle. */
const WAIT_MS = 30_000;
const DEVICE = '/dev/xvdf';

interface Seen {
  phase: AgentReport['phase'];
  generation: number;
  error: string | null;
}

let world: World;
let s: Scenario;
let host: Host;
let controlFile: string;
let watcher: Watcher;
/** Every report the agent wrote for the volume, in order (a watch sees each write). */
const reports: Seen[] = [];

const service = (): Scenario['services'][number] => {
  const first = s.services[0];
  if (!first) throw new Error('no service');
  return first;
};

async function place(generation: number): Promise<void> {
  const p: Placement = { volumeId: service().volumeId, unit: service().unit, instanceId: host.instanceId, device: DEVICE, generation, updatedAt: Date.now() };
  await world.client.put(s.ks.placement(p.volumeId)).value(encodeRecord(p));
}

/** What a controller does for a placement on a host: attach and wait until EC2 says attached. */
async function attach(): Promise<void> {
  world.ec2.sim.attachVolume(service().volumeId, host.instanceId, DEVICE);
  await until(attachedNow, WAIT_MS, 'EC2 attachment attached');
}

function attachedNow(): boolean {
  const last = world.ec2.sim.history.filter((e) => e.volumeId === service().volumeId).at(-1);
  return last?.state === 'attached';
}

/** Index of the first report at or after `from` matching, or -1. */
function findReport(from: number, match: (r: Seen) => boolean): number {
  for (let i = from; i < reports.length; i += 1) {
    const r = reports[i];
    if (r && match(r)) return i;
  }
  return -1;
}

async function waitReport(what: string, from: number, match: (r: Seen) => boolean): Promise<number> {
  await until(() => findReport(from, match) !== -1, WAIT_MS, what);
  return findReport(from, match);
}

/** The ledger lines of this host about the unit (active) or its mount (mounted), after `since`. */
function ledgerStates(since: number): { unit: boolean[]; mount: boolean[] } {
  const lines = readLedger(s.ledger).filter((e) => e.instanceId === host.instanceId && e.at >= since);
  return {
    unit: lines.flatMap((e) => (e.unit === service().unit && e.active !== undefined ? [e.active] : [])),
    mount: lines.flatMap((e) => (e.mountUnit === service().mountUnit && e.mounted !== undefined ? [e.mounted] : [])),
  };
}

beforeAll(async () => {
  world = await startWorld();
  s = new Scenario(world, 'drift');
  await s.addServices(1);
  controlFile = join(world.dir, 'drift-control');
  appendFileSync(controlFile, '');
  host = await s.addHost(AZ, { agent: { controlFile, verifyEveryMs: VERIFY_EVERY_MS } });
  watcher = await world.client.watch().key(s.ks.status(host.instanceId, service().volumeId)).create();
  watcher.on('put', (kv) => {
    const r = decodeRecord(AgentReport, 'status', kv.value.toString());
    if (r) reports.push({ phase: r.phase, generation: r.generation, error: r.error });
  });
  await attach();
  await place(1);
  await waitReport('active (generation 1)', 0, (r) => r.phase === 'active' && r.generation === 1);
});

afterAll(async () => {
  if (reports.length) console.log(`reports: ${reports.map((r) => `${r.phase}@${r.generation}${r.error ? `(${r.error})` : ''}`).join(' → ')}`);
  await watcher?.cancel();
  await s?.stop();
  await world?.stop();
});

describe('agent re-verification (real agent process, etcd, EC2 endpoint)', () => {
  it('(a) the unit crashes after active: drift reported, the unit started again, active again (same generation)', async () => {
    const from = reports.length;
    const crashedAt = Date.now();
    appendFileSync(controlFile, `${JSON.stringify({ crash: service().unit })}\n`);

    const drift = await waitReport('drift report', from, (r) => r.phase === 'drift');
    expect(reports[drift]).toMatchObject({ generation: 1, error: expect.stringContaining('unit-inactive') });
    const again = await waitReport('active again', drift, (r) => r.phase === 'active');
    expect(reports[again]).toMatchObject({ generation: 1, error: null });
    // The ledger (sampled every 20 ms) shows the crash and the restart on this host.
    await until(() => ledgerStates(crashedAt).unit.join(',') === 'false,true', WAIT_MS, 'ledger: unit down, then up again');
    expect(ledgerStates(crashedAt).mount).toEqual([]); // the mount never went down
    console.log(`unit crash → active again: ${Date.now() - crashedAt} ms (verify every ${VERIFY_EVERY_MS} ms)`);
  });

  it('(b) the volume is detached behind its back: drift reported, unit and mount stopped, waits for the device; re-attached → active', async () => {
    const from = reports.length;
    const detachedAt = Date.now();
    world.ec2.sim.detachVolume({ volumeId: service().volumeId, instanceId: host.instanceId, force: true });

    const drift = await waitReport('drift report', from, (r) => r.phase === 'drift');
    expect(reports[drift]).toMatchObject({ generation: 1, error: expect.stringContaining('device-missing') });
    await waitReport('waiting-device', drift, (r) => r.phase === 'waiting-device' && r.generation === 1);
    // The disk is gone: the unit and the mount were stopped, and stay stopped while it is.
    await until(() => {
      const l = ledgerStates(detachedAt);
      return l.unit.at(-1) === false && l.mount.at(-1) === false;
    }, WAIT_MS, 'ledger: unit and mount stopped');
    expect(findReport(drift, (r) => r.phase === 'active')).toBe(-1);

    // What the controller does about it: re-attach, and a new generation for the same host.
    await attach();
    await place(2);
    await waitReport('active (generation 2)', drift, (r) => r.phase === 'active' && r.generation === 2);
    await until(() => ledgerStates(detachedAt).unit.at(-1) === true && ledgerStates(detachedAt).mount.at(-1) === true, WAIT_MS, 'ledger: mounted and running again');
    console.log(`forced detach → drift reported → re-attached → active: ${Date.now() - detachedAt} ms`);
  });

  it('(c) etcd does not answer: the unit on a disk detached behind its back stops all the same (chaos seed 119)', async () => {
    const from = reports.length;
    world.etcd.kill('SIGSTOP');
    let stoppedAfterMs: number;
    try {
      const detachedAt = Date.now();
      world.ec2.sim.detachVolume({ volumeId: service().volumeId, instanceId: host.instanceId, force: true });
      // No etcd write can land now; the agent must not wait for its drift report before stopping.
      await until(() => {
        const l = ledgerStates(detachedAt);
        return l.unit.at(-1) === false && l.mount.at(-1) === false;
      }, WAIT_MS, 'ledger: unit and mount stopped while etcd is stopped');
      stoppedAfterMs = Date.now() - detachedAt;
      expect(findReport(from, () => true)).toBe(-1); // nothing reached etcd meanwhile
    } finally {
      world.etcd.kill('SIGCONT');
    }
    // etcd back: the agent reports where it stands (its lease may have expired meanwhile, and the
    // re-sent report is then its latest, waiting-device), and takes the volume again once re-attached.
    await waitReport('drift or waiting-device after etcd is back', from, (r) => r.generation === 2 && (r.phase === 'drift' || r.phase === 'waiting-device'));
    await attach();
    await place(3);
    await waitReport('active (generation 3)', from, (r) => r.phase === 'active' && r.generation === 3);
    console.log(`forced detach while etcd is stopped → unit and mount stopped: ${stoppedAfterMs} ms`);
  });
});
