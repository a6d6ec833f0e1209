import type { AgentReport } from '../keyspace/index.js';
import type { HistoryEntry } from '../sim/ec2/index.js';

/**
 * The demo's safety checks, the project's first rule: never two hosts holding one volume. Two views:
 * EC2's attachment history (the simulator refuses a second attachment, so a violation here means the
 * simulator itself broke) and the agents' reports, replayed in etcd revision order (a mount or unit
 * reported active on a second host while the first still reports it).
 */
export interface SafetyViolation {
  volumeId: string;
  at: number;
  holders: string[];
  what: string;
}

/** Replays attachment changes: a volume gets a new attachment only after the previous one is `detached`. */
export function checkAttachmentHistory(history: readonly HistoryEntry[]): SafetyViolation[] {
  const holder = new Map<string, string>();
  const violations: SafetyViolation[] = [];
  for (const h of history) {
    const current = holder.get(h.volumeId);
    if (h.state === 'detached') {
      if (current === h.instanceId) holder.delete(h.volumeId);
      continue;
    }
    if (current !== undefined && current !== h.instanceId) {
      violations.push({ volumeId: h.volumeId, at: h.at, holders: [current, h.instanceId], what: `EC2 ${h.state} on ${h.instanceId} while attached to ${current}` });
      continue;
    }
    holder.set(h.volumeId, h.instanceId);
  }
  return violations;
}

/** Whether a report says the host holds the volume (mounted, or the unit running). */
export function holds(report: AgentReport): boolean {
  return report.mountActive || report.unitActive;
}

/**
 * Feed it every status/ put and delete in revision order. A report key deleted (the agent's lease
 * expired, or it released) no longer holds anything.
 */
export class HoldTracker {
  /** volumeId → instanceId → the latest report that says it holds the volume. */
  private readonly holding = new Map<string, Map<string, AgentReport>>();
  readonly violations: SafetyViolation[] = [];

  report(report: AgentReport): SafetyViolation | null {
    const perHost = this.holding.get(report.volumeId) ?? new Map<string, AgentReport>();
    this.holding.set(report.volumeId, perHost);
    if (!holds(report)) {
      perHost.delete(report.instanceId);
      return null;
    }
    perHost.set(report.instanceId, report);
    if (perHost.size < 2) return null;
    const v: SafetyViolation = {
      volumeId: report.volumeId,
      at: report.at,
      holders: [...perHost.keys()],
      what: `${report.volumeId} reported mounted/active on ${[...perHost.keys()].join(' and ')} at once`,
    };
    this.violations.push(v);
    return v;
  }

  /** The key status/<instanceId>/<volumeId> was deleted. */
  removed(instanceId: string, volumeId: string): void {
    this.holding.get(volumeId)?.delete(instanceId);
  }

  /** Hosts currently reported as holding the volume. */
  holders(volumeId: string): string[] {
    return [...(this.holding.get(volumeId)?.keys() ?? [])];
  }
}
