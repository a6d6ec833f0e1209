import { z } from 'zod';
import { Ec2SimError } from './errors.js';
import { Fault } from './faults.js';
import { AddInstanceInput, AddVolumeInput, LatenciesInput, ThrottleInput } from './schemas.js';
import type { Ec2Sim } from './sim.js';

/**
 * JSON control routes under `/_sim/`, so other processes (demo, CLI tests, agents) can seed and
 * steer the simulator exactly as in-process callers do with `Ec2Sim` methods.
 */
export interface ControlResult {
  status: number;
  body: unknown;
}

const InUseInput = z.object({ volumeId: z.string(), inUse: z.boolean() }).strict();
const InstanceRef = z.object({ instanceId: z.string() }).strict();
const DeviceDirInput = z.object({ instanceId: z.string(), dir: z.string().min(1) }).strict();
const TimeScaleInput = z.object({ timeScale: z.number().positive() }).strict();
const Check = z.enum(['ok', 'impaired']);
const StatusChecksInput = z.object({ instanceId: z.string(), system: Check, instance: Check }).strict();
const SnapshotStartInput = z.object({ snapshotId: z.string(), startTime: z.number().int() }).strict();

type Route = (sim: Ec2Sim, body: unknown) => unknown;

const ROUTES: Record<string, Route> = {
  'GET /_sim/state': (sim) => sim.state(),
  'GET /_sim/history': (sim) => sim.history,
  'GET /_sim/requests': (sim) => sim.requests,
  'GET /_sim/stats': (sim) => sim.stats(),
  'GET /_sim/throttle': (sim) => sim.throttle.settings(),
  'POST /_sim/stats/reset': (sim) => {
    sim.resetStats();
    return { ok: true };
  },
  'POST /_sim/instances': (sim, body) => sim.addInstance(AddInstanceInput.parse(body)),
  'POST /_sim/volumes': (sim, body) => sim.addVolume(AddVolumeInput.parse(body)),
  'POST /_sim/latencies': (sim, body) => sim.setLatencies(LatenciesInput.parse(body)),
  'POST /_sim/time-scale': (sim, body) => {
    sim.setTimeScale(TimeScaleInput.parse(body).timeScale);
    return { ok: true };
  },
  'POST /_sim/throttle': (sim, body) => {
    sim.setThrottle(ThrottleInput.parse(body));
    return sim.throttle.settings();
  },
  'POST /_sim/faults': (sim, body) => {
    sim.injectFault(Fault.parse(body));
    return { ok: true };
  },
  'DELETE /_sim/faults': (sim) => {
    sim.clearFaults();
    return { ok: true };
  },
  'POST /_sim/in-use': (sim, body) => {
    const input = InUseInput.parse(body);
    sim.setInUse(input.volumeId, input.inUse);
    return { ok: true };
  },
  'POST /_sim/terminate': (sim, body) => sim.terminateInstance(InstanceRef.parse(body).instanceId),
  'POST /_sim/start': (sim, body) => sim.startInstance(InstanceRef.parse(body).instanceId),
  'POST /_sim/status-checks': (sim, body) => {
    const { instanceId, ...checks } = StatusChecksInput.parse(body);
    sim.setStatusChecks(instanceId, checks);
    return { ok: true };
  },
  'POST /_sim/snapshot-start-time': (sim, body) => {
    const input = SnapshotStartInput.parse(body);
    return sim.setSnapshotStartTime(input.snapshotId, input.startTime);
  },
  'POST /_sim/device-dir': (sim, body) => {
    const input = DeviceDirInput.parse(body);
    sim.setDeviceDir(input.instanceId, input.dir);
    return { ok: true };
  },
};

export function handleControl(sim: Ec2Sim, method: string, path: string, rawBody: string): ControlResult {
  const route = ROUTES[`${method} ${path}`];
  if (route === undefined) return { status: 404, body: { error: `no control route ${method} ${path}` } };
  try {
    const body: unknown = rawBody.trim() === '' ? {} : JSON.parse(rawBody);
    return { status: 200, body: route(sim, body) ?? { ok: true } };
  } catch (err) {
    if (err instanceof z.ZodError) return { status: 400, body: { error: 'invalid input', issues: err.issues } };
    if (err instanceof SyntaxError) return { status: 400, body: { error: `invalid JSON: ${err.message}` } };
    if (err instanceof Ec2SimError) return { status: err.httpStatus, body: { error: err.message, code: err.code } };
    throw err;
  }
}
