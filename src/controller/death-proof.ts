import type { Ec2Port, InstanceInfo, InstanceStatusInfo } from '../ec2/types.js';
import { describeInstances } from './observe.js';

/**
 * EC2's proof that a host whose lease vanished is dead, not cut off by an etcd or network event. The
 * controller holds a lost host's failovers back while its death is in doubt (the host grace after an
 * election, a reconnect or a mass vanishing; the suspect pacing): these facts end the doubt for one host.
 *
 * Proof is what EC2 itself reports about the instance: it is not running (stopping, stopped,
 * shutting-down, terminated), or it runs but a status check failed (system: AWS's hardware, power or
 * network under it; instance: its OS does not answer). A running instance whose checks pass, or are
 * not known yet (initializing, insufficient-data), proves nothing: that is what an etcd artifact looks like.
 */
export function deathProof(info: InstanceInfo | undefined, status: InstanceStatusInfo | undefined): string | null {
  const state = status?.state ?? info?.state;
  if (state === 'stopping' || state === 'stopped' || state === 'shutting-down' || state === 'terminated') return `EC2 reports the instance ${state}`;
  if (state !== 'running' || status === undefined) return null;
  const failed = [status.systemStatus === 'impaired' ? 'system' : null, status.instanceStatus === 'impaired' ? 'instance' : null].filter((c) => c !== null);
  return failed.length > 0 ? `EC2 status check(s) impaired: ${failed.join(', ')}` : null;
}

/**
 * One look at EC2 for the given hosts (the caller bounds them: at most HOST_TIMING.proofBatch): one
 * DescribeInstances, then one DescribeInstanceStatus for those still running (when the port has it).
 * Returns the proven ones with their reason; an instance EC2 does not know proves nothing (wrong
 * region or account is likelier than death). DescribeInstances failing throws; a failed status
 * call leaves the instance-state proofs.
 */
export async function lookForDeathProof(
  ec2: Ec2Port,
  instanceIds: readonly string[],
  signal?: AbortSignal,
  onStatusError?: (err: unknown) => void,
): Promise<Map<string, string>> {
  const proven = new Map<string, string>();
  if (instanceIds.length === 0) return proven;
  const infos = await describeInstances(ec2, [...instanceIds], signal);
  const running: string[] = [];
  for (const [id, info] of infos) {
    const why = deathProof(info, undefined);
    if (why !== null) proven.set(id, why);
    else if (info.state === 'running') running.push(id);
  }
  if (running.length > 0 && ec2.describeInstanceStatus) {
    try {
      for (const status of await ec2.describeInstanceStatus(running, { signal })) {
        const why = deathProof(infos.get(status.instanceId), status);
        if (why !== null) proven.set(status.instanceId, why);
      }
    } catch (err) {
      onStatusError?.(err);
    }
  }
  return proven;
}
