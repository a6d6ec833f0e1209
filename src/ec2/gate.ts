import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import type { NodeHttpHandler } from '@smithy/node-http-handler';
import type { NodeHttpHandlerOptions, RequestHandlerMetadata } from '@smithy/types';

type SdkRequest = Parameters<NodeHttpHandler['handle']>[0];
type SdkHandleOptions = Parameters<NodeHttpHandler['handle']>[1];
type SdkHandleResult = ReturnType<NodeHttpHandler['handle']>;
import type { Ec2ErrorIds } from './errors.js';
import type { Ec2Port, MutatingOpts, MutationGuard } from './types.js';

export type { MutationGuard } from './types.js';

/**
 * The mutation gate: every mutating EC2 call (AttachVolume, DetachVolume, StopInstances,
 * CreateSnapshot, DeleteSnapshot, CreateVolume) of a caller that holds a lease (the controller's leadership, the
 * snapshot job's volume lock) is checked SYNCHRONOUSLY against that lease as the last step before
 * its HTTP request is handed to Node, after signing (`GatedHttpHandler.handle`). A caller frozen
 * (SIGSTOP, a GC pause) anywhere before that point finds its lease's monotonic deadline passed when
 * it thaws and sends nothing, even over a connection kept alive from before the freeze.
 *
 * The window that remains: between that check and the kernel taking the bytes there is only
 * synchronous code and one `process.nextTick` (Node assigns a kept-alive socket on the next tick
 * and flushes the request there; no timer, no I/O wait). A freeze landing inside those few
 * microseconds still sends the request on thaw. See README "Safety model".
 */

/** The EC2 actions that change something: only these go through the gate. */
export const MUTATING_ACTIONS: ReadonlySet<string> = new Set(['AttachVolume', 'DetachVolume', 'StopInstances', 'CreateSnapshot', 'DeleteSnapshot', 'CreateVolume']);

/** Extra (unsigned) headers naming who sent a mutating request; EC2 ignores them, our endpoint records them. */
export const CALLER_HEADER = 'x-ebs-failover-caller';
export const TERM_HEADER = 'x-ebs-failover-term';

/**
 * `port` with every mutating call put through `guard` (a guard passed by the caller wins). The
 * controller makes one per term from its leadership, so no mutation of that term can skip the gate.
 */
export function withGuard(port: Ec2Port, guard: MutationGuard): Ec2Port {
  return {
    ...port,
    guard,
    attachVolume: (volumeId, instanceId, device, o) => port.attachVolume(volumeId, instanceId, device, { ...o, guard: o?.guard ?? guard }),
    detachVolume: (volumeId, instanceId, force, o) => port.detachVolume(volumeId, instanceId, force, { ...o, guard: o?.guard ?? guard }),
    detachAndWait: (volumeId, instanceId, o) => port.detachAndWait(volumeId, instanceId, { ...o, guard: o.guard ?? guard }),
    stopInstance: (instanceId, o) => port.stopInstance(instanceId, { ...o, guard: o?.guard ?? guard }),
    createSnapshot: (volumeId, description, tags, o) => port.createSnapshot(volumeId, description, tags, { ...o, guard: o?.guard ?? guard }),
    deleteSnapshot: (snapshotId, o) => port.deleteSnapshot(snapshotId, { ...o, guard: o?.guard ?? guard }),
    ...(port.createVolume ? { createVolume: (p: Parameters<NonNullable<Ec2Port['createVolume']>>[0], o?: MutatingOpts) => (port.createVolume as NonNullable<Ec2Port['createVolume']>)(p, { ...o, guard: o?.guard ?? guard }) } : {}),
  };
}

/** Test hooks; production leaves them unset. */
export interface GateHooks {
  /**
   * Called synchronously right before the gate's check of each mutating request (after signing, on
   * the request's way to the socket). The deposed-controller test freezes the process here.
   */
  onBeforeMutation?: (info: MutationInfo) => void;
}

export interface MutationInfo {
  action: string;
  caller: string;
  term: string;
  ids: Ec2ErrorIds;
}

/** The guard has no time left for a request: the lease's deadline is too close (or passed). */
export class MutationFencedError extends Error {
  override readonly name = 'MutationFencedError';
  constructor(
    readonly action: string,
    readonly caller: string,
    readonly term: string,
    readonly remainingMs: number,
    readonly ids: Ec2ErrorIds = {},
    reason = `not sent: ${Math.round(remainingMs)} ms of lease left, too little for a request`,
  ) {
    super(`${action}${ids.volumeId === undefined ? '' : ` of ${ids.volumeId}`} by ${caller} (term ${term}) ${reason}`);
  }
}

export interface GateContext {
  guard: MutationGuard;
  action: string;
  ids: Ec2ErrorIds;
  /**
   * The last check also wants this much lease left (not merely "not passed"): a request that leaves
   * with less is refused, so a stall inside the remaining window must outlast it, plus the step-down
   * margin and the successor's quiet period, before it can matter.
   */
  minRemainingMs: number;
  /**
   * Set when the gate refused the request: the SDK decorates errors that pass through its middleware
   * (`$metadata`), so the caller takes the refusal from here rather than from what `send` threw.
   */
  refused?: Error;
}

/**
 * Carries the current call's guard from `Ec2Caller.run` down to the request handler through the
 * SDK's middleware (which knows nothing of it). AsyncLocalStorage follows the awaits in between.
 */
const gateContext = new AsyncLocalStorage<GateContext>();

export function runGated<T>(ctx: GateContext, fn: () => Promise<T>): Promise<T> {
  return gateContext.run(ctx, fn);
}

export const monoNow = (): number => performance.now();

/**
 * Wraps the SDK's HTTP handler: for a request made inside `runGated`, calls the test hook, checks
 * the guard synchronously, tags the request with the caller's identity and term, and hands it on in
 * the same tick. Requests outside a gated call (describes, ungated callers) pass untouched.
 */
export class GatedHttpHandler {
  constructor(
    private readonly inner: NodeHttpHandler,
    private readonly hooks: GateHooks = {},
  ) {}

  get metadata(): RequestHandlerMetadata {
    return this.inner.metadata;
  }

  handle(request: SdkRequest, options?: SdkHandleOptions): SdkHandleResult {
    const ctx = gateContext.getStore();
    if (ctx !== undefined) {
      const info: MutationInfo = { action: ctx.action, caller: ctx.guard.caller, term: ctx.guard.term, ids: ctx.ids };
      this.hooks.onBeforeMutation?.(info);
      // From here to inner.handle's socket write: synchronous code and one nextTick (see the file comment).
      try {
        ctx.guard.assert();
        const remaining = ctx.guard.remainingMs();
        if (remaining < ctx.minRemainingMs) throw new MutationFencedError(ctx.action, ctx.guard.caller, ctx.guard.term, remaining, ctx.ids);
      } catch (err) {
        ctx.refused = err instanceof Error ? err : new Error(String(err));
        return Promise.reject(ctx.refused);
      }
      request.headers[CALLER_HEADER] = ctx.guard.caller;
      request.headers[TERM_HEADER] = ctx.guard.term;
    }
    return this.inner.handle(request, options);
  }

  updateHttpClientConfig(key: keyof NodeHttpHandlerOptions, value: NodeHttpHandlerOptions[typeof key]): void {
    this.inner.updateHttpClientConfig(key, value);
  }

  httpHandlerConfigs(): NodeHttpHandlerOptions {
    return this.inner.httpHandlerConfigs();
  }

  destroy(): void {
    this.inner.destroy();
  }
}
