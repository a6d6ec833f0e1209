import type { Logger } from '../log/logger.js';
import { Ec2Error, Ec2WaitTimeoutError, IncorrectStateError, UnexpectedAttachmentError, VolumeNotFoundError } from './errors.js';
import type { Ec2Timing } from './timing.js';
import type { Clock } from './token-bucket.js';
import type { MutationGuard, VolumeInfo } from './types.js';

export interface WaitDeps {
  observe(volumeId: string, signal?: AbortSignal): Promise<VolumeInfo | null>;
  detach(volumeId: string, instanceId: string, force: boolean, signal?: AbortSignal, guard?: MutationGuard): Promise<void>;
  clock: Clock;
  timing: Pick<Ec2Timing, 'pollInitialMs' | 'pollFactor' | 'pollMaxMs'>;
  log: Logger;
  /**
   * When this process first saw each volume's attachment in `detaching`/`busy`. Kept across calls
   * so a detach retried by a later controller cycle knows how long the volume has been stuck.
   */
  stuckSince: Map<string, number>;
}

interface PollOpts {
  timeoutMs: number;
  signal?: AbortSignal;
}

type Step = { done: VolumeInfo } | { wanted: string; seen: string };

/** Describes a volume's attachments for messages, e.g. `attached to i-1 (busy)`. */
function describeState(v: VolumeInfo | null): string {
  if (v === null) return 'not found';
  if (v.attachments.length === 0) return v.state;
  return v.attachments.map((a) => `${a.state} to ${a.instanceId}`).join(', ');
}

/**
 * The poll loop shared by every wait: observe (batched), let `step` decide, back off from
 * `pollInitialMs` ×`pollFactor` up to `pollMaxMs`, never sleeping past the deadline. Retryable EC2
 * errors (throttling, 5xx that outlived the call's retries) only cost a poll; the rest end the wait.
 */
async function poll(deps: WaitDeps, volumeId: string, opts: PollOpts, step: (v: VolumeInfo | null, elapsedMs: number) => Promise<Step>): Promise<VolumeInfo> {
  const start = deps.clock.now();
  const deadline = start + opts.timeoutMs;
  let delay: number = deps.timing.pollInitialMs;
  let lastSeen = 'not observed yet';
  let wanted = 'ready';
  for (;;) {
    try {
      const v = await deps.observe(volumeId, opts.signal);
      const result = await step(v, deps.clock.now() - start);
      if ('done' in result) return result.done;
      lastSeen = result.seen;
      wanted = result.wanted;
    } catch (err) {
      if (!(err instanceof Ec2Error && err.retryable) || opts.signal?.aborted) throw err;
      lastSeen = `${err.code} from EC2`;
      deps.log.debug({ volumeId, code: err.code }, 'poll failed transiently; still waiting');
    }
    const remaining = deadline - deps.clock.now();
    if (remaining <= 0) throw new Ec2WaitTimeoutError({ volumeId }, wanted, lastSeen, opts.timeoutMs);
    await deps.clock.sleep(Math.min(delay, remaining), opts.signal);
    delay = Math.min(delay * deps.timing.pollFactor, deps.timing.pollMaxMs);
  }
}

function assertSingle(v: VolumeInfo, instanceId: string | undefined): void {
  const others = v.attachments.filter((a) => instanceId === undefined || a.instanceId !== instanceId);
  if (v.attachments.length > 1 || others.length > 0) {
    throw new UnexpectedAttachmentError({ volumeId: v.volumeId, instanceId, az: v.az }, v.attachments.map((a) => `${a.instanceId} (${a.state})`));
  }
}

/** Until the volume is `attached` to `instanceId`; an attachment elsewhere (or several) is an error. */
export function waitAttached(deps: WaitDeps, volumeId: string, instanceId: string, opts: PollOpts): Promise<VolumeInfo> {
  return poll(deps, volumeId, opts, async (v) => {
    if (v === null) throw new VolumeNotFoundError(volumeId, { instanceId });
    if (v.attachments.length > 0) assertSingle(v, instanceId);
    if (v.attachments[0]?.state === 'attached') return { done: v };
    return { wanted: `attached to ${instanceId}`, seen: describeState(v) };
  });
}

/** Until the volume has no attachment. More than one attachment (multi-attach) is an error. */
export function waitAvailable(deps: WaitDeps, volumeId: string, opts: PollOpts): Promise<VolumeInfo> {
  return poll(deps, volumeId, opts, async (v) => {
    if (v === null) throw new VolumeNotFoundError(volumeId);
    if (v.attachments.length > 1) assertSingle(v, undefined);
    if (v.attachments.length === 0 && v.state === 'available') return { done: v };
    return { wanted: 'available', seen: describeState(v) };
  });
}

export interface DetachAndWaitOpts extends PollOpts {
  forceAfterMs: number;
  allowForce: boolean;
  guard?: MutationGuard;
}

/** A detach that lost a race (IncorrectState: the attachment moved on) is fine: the next poll sees why. */
async function detachTolerant(deps: WaitDeps, volumeId: string, instanceId: string, force: boolean, signal?: AbortSignal, guard?: MutationGuard): Promise<void> {
  try {
    await deps.detach(volumeId, instanceId, force, signal, guard);
  } catch (err) {
    if (!(err instanceof IncorrectStateError)) throw err;
    deps.log.info({ volumeId, instanceId, force }, 'detach raced a state change; re-observing');
  }
}

/**
 * Graceful detach, then forced when the volume is not free within `forceAfterMs`, or at once when
 * this process has already seen it stuck in `detaching`/`busy` for longer than that. Forcing is only
 * ever done with `allowForce` (the caller has fenced the old host: a forced detach under a live
 * writer can corrupt the filesystem). An attachment to another instance is never touched.
 */
export async function detachAndWait(deps: WaitDeps, volumeId: string, instanceId: string, opts: DetachAndWaitOpts): Promise<{ forced: boolean; volume: VolumeInfo }> {
  let forced = false;
  let gracefulSent = false;
  const log = deps.log.child({ volumeId, instanceId });
  const volume = await poll(deps, volumeId, opts, async (v, elapsedMs) => {
    if (v === null) throw new VolumeNotFoundError(volumeId, { instanceId, action: 'DetachVolume' });
    if (v.attachments.length === 0) {
      deps.stuckSince.delete(volumeId);
      return { done: v };
    }
    assertSingle(v, instanceId);
    const state = v.attachments[0]?.state ?? 'detached';
    const now = deps.clock.now();
    let stuckForMs = 0;
    if (state === 'attached' || state === 'attaching') deps.stuckSince.delete(volumeId);
    if (state === 'detaching' || state === 'busy') {
      const since = deps.stuckSince.get(volumeId) ?? now;
      deps.stuckSince.set(volumeId, since);
      stuckForMs = now - since;
    }
    if (!forced && opts.allowForce && (elapsedMs >= opts.forceAfterMs || stuckForMs >= opts.forceAfterMs)) {
      log.warn({ state, elapsedMs, stuckForMs, forceAfterMs: opts.forceAfterMs }, 'volume not free within the bound; forcing the detach');
      await detachTolerant(deps, volumeId, instanceId, true, opts.signal, opts.guard);
      forced = true;
    } else if (!gracefulSent && state === 'attached') {
      // A graceful detach while `attaching` fails with IncorrectState: wait for `attached` first.
      await detachTolerant(deps, volumeId, instanceId, false, opts.signal, opts.guard);
      gracefulSent = true;
    }
    return { wanted: 'available', seen: describeState(v) };
  });
  return { forced, volume };
}
