import { readFile } from 'node:fs/promises';
import type { Config } from '../config/index.js';
import { ConfigError } from '../config/index.js';
import { AvailabilityZone, InstanceId } from '../ec2/ids.js';
import { resolveInstanceIdentity, type ImdsOptions } from '../ec2/imds.js';

export interface AgentIdentity {
  instanceId: string;
  az: string;
  privateIp: string;
  /** fleet's machine id, from config or /etc/machine-id */
  machineId: string;
}

/** systemd's /etc/machine-id: 32 lowercase hex digits and a newline. */
export async function readMachineId(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError('agent.machineIdFile', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const machineId = text.trim();
  if (!/^[0-9a-f]{32}$/.test(machineId)) throw new ConfigError('agent.machineIdFile', `${file} does not hold a 32-hex-digit machine id`);
  return machineId;
}

/**
 * Who this agent is: config overrides first, IMDSv2 for whatever is missing, and the values checked
 * (a wrong AZ or instance id from a misconfigured stand-in must not register a bogus host).
 */
export async function resolveAgentIdentity(agent: Config['agent'], imds: ImdsOptions = {}): Promise<AgentIdentity> {
  const { instanceId, az, privateIp } = await resolveInstanceIdentity({ instanceId: agent.instanceId, az: agent.az, privateIp: agent.privateIp }, imds);
  if (!InstanceId.safeParse(instanceId).success) throw new ConfigError('agent.instanceId', `instance metadata returned "${instanceId}", not an instance id`);
  if (!AvailabilityZone.safeParse(az).success) throw new ConfigError('agent.az', `instance metadata returned "${az}", not an availability zone`);
  const machineId = agent.machineId ?? (await readMachineId(agent.machineIdFile));
  return { instanceId, az, privateIp, machineId };
}
