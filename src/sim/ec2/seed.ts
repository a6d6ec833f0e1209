import { readFile } from 'node:fs/promises';
import { SeedInput } from './schemas.js';
import type { Ec2Sim } from './sim.js';

/** Applies a seed (resources, latencies, throttle, faults, device dirs) to a simulator. */
export function applySeed(sim: Ec2Sim, input: SeedInput): void {
  const seed = SeedInput.parse(input);
  if (seed.latencies !== undefined) sim.setLatencies(seed.latencies);
  if (seed.timeScale !== undefined) sim.setTimeScale(seed.timeScale);
  if (seed.throttle !== undefined) sim.setThrottle(seed.throttle);
  for (const instance of seed.instances) sim.addInstance(instance);
  for (const volume of seed.volumes) sim.addVolume(volume);
  for (const [instanceId, dir] of Object.entries(seed.deviceDirs)) sim.setDeviceDir(instanceId, dir);
  for (const fault of seed.faults) sim.injectFault(fault);
}

export async function loadSeedFile(path: string): Promise<SeedInput> {
  return SeedInput.parse(JSON.parse(await readFile(path, 'utf8')));
}
