import { z } from 'zod';
import { Ec2SimError } from './errors.js';

/**
 * Injectable faults:
 * - `server-error`: the next `count` calls of `action` (or of any action when `*`) fail with
 *   500 InternalError or 503 Unavailable, before touching any state (like a real 5xx).
 * - `throttle`: the next `count` calls of `action` fail with RequestLimitExceeded.
 * - `stuck-detach`: a graceful detach of the volume hangs in `detaching` until a forced detach.
 * - `stuck-attach`: an attach of the volume hangs in `attaching` until a forced detach.
 * - `slow-attach`: attaches of the volume take `ms` (before timeScale) instead of `attachMs`.
 * - `device-busy`: AttachVolume to `instanceId` as `device` fails with `InvalidParameterValue … is
 *   already in use` (as real EC2 answers for a name the OS still holds) until cleared.
 */
export const Fault = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('server-error'),
    action: z.string().min(1),
    count: z.number().int().positive().default(1),
    status: z.union([z.literal(500), z.literal(503)]).default(500),
  }),
  z.object({ kind: z.literal('throttle'), action: z.string().min(1), count: z.number().int().positive().default(1) }),
  z.object({ kind: z.literal('stuck-detach'), volumeId: z.string() }),
  z.object({ kind: z.literal('stuck-attach'), volumeId: z.string() }),
  z.object({ kind: z.literal('slow-attach'), volumeId: z.string(), ms: z.number().min(0) }),
  z.object({ kind: z.literal('device-busy'), instanceId: z.string(), device: z.string() }),
]);
export type Fault = z.input<typeof Fault>;

interface CountedFault {
  action: string;
  remaining: number;
  error: () => Ec2SimError;
}

export class FaultBook {
  private counted: CountedFault[] = [];
  private readonly stuckDetach = new Set<string>();
  private readonly stuckAttach = new Set<string>();
  private readonly slowAttach = new Map<string, number>();
  private readonly deviceBusy = new Set<string>();

  inject(input: Fault): void {
    const fault = Fault.parse(input);
    switch (fault.kind) {
      case 'server-error':
        this.counted.push({
          action: fault.action,
          remaining: fault.count,
          error: () =>
            fault.status === 503
              ? new Ec2SimError('Unavailable', 'The service is unavailable. Please try again shortly.', 503, { action: fault.action })
              : new Ec2SimError('InternalError', 'An internal error has occurred.', 500, { action: fault.action }),
        });
        break;
      case 'throttle':
        this.counted.push({ action: fault.action, remaining: fault.count, error: () => requestLimitExceeded(fault.action) });
        break;
      case 'stuck-detach':
        this.stuckDetach.add(fault.volumeId);
        break;
      case 'stuck-attach':
        this.stuckAttach.add(fault.volumeId);
        break;
      case 'slow-attach':
        this.slowAttach.set(fault.volumeId, fault.ms);
        break;
      case 'device-busy':
        this.deviceBusy.add(`${fault.instanceId} ${fault.device}`);
        break;
    }
  }

  clear(): void {
    this.counted = [];
    this.stuckDetach.clear();
    this.stuckAttach.clear();
    this.slowAttach.clear();
    this.deviceBusy.clear();
  }

  slowAttachMs(volumeId: string): number | undefined {
    return this.slowAttach.get(volumeId);
  }

  isDeviceBusy(instanceId: string, device: string): boolean {
    return this.deviceBusy.has(`${instanceId} ${device}`);
  }

  /** Consumes one pending counted fault for `action`, returning the error to answer with. */
  take(action: string): Ec2SimError | undefined {
    const fault = this.counted.find((f) => f.action === action || f.action === '*');
    if (fault === undefined) return undefined;
    fault.remaining--;
    if (fault.remaining <= 0) this.counted = this.counted.filter((f) => f !== fault);
    return fault.error();
  }

  isDetachStuck(volumeId: string): boolean {
    return this.stuckDetach.has(volumeId);
  }

  isAttachStuck(volumeId: string): boolean {
    return this.stuckAttach.has(volumeId);
  }

  /** A volume's stuck fault is spent once a forced detach clears it, as on AWS. */
  clearStuck(volumeId: string): void {
    this.stuckDetach.delete(volumeId);
    this.stuckAttach.delete(volumeId);
  }
}

/** EC2 answers throttled calls with HTTP 503 and this code; the SDK treats it as a throttling error. */
export function requestLimitExceeded(action: string): Ec2SimError {
  return new Ec2SimError('RequestLimitExceeded', 'Request limit exceeded.', 503, { action });
}
