import type { FailoverJournal, ManualRequest, Placement, ServiceRecord } from '../keyspace/records.js';
import type { VolumeAttachment, VolumeInfo } from '../ec2/types.js';
import type { Decision } from './decision.js';
import { isActiveJournal, reportKey, serviceOfVolume, type Observed } from './observed.js';
import { chooseTarget, deviceTakenOnInstance, freeDevice, hostProblem } from './placement.js';
import { advance, newJournal } from './state.js';

/**
 * The pure decision core: one observed snapshot and one volume in, one decision out. No I/O and no
 * clock reads (`observed.now`). Level-based: it acts on what etcd and EC2 show now, so a new leader
 * resumes a half-done failover from the journal and EC2's real state alike.
 */
export function decide(o: Observed, volumeId: string): Decision {
  const service = serviceOfVolume(o, volumeId);
  const journal = o.journals.get(volumeId);
  const request = o.requests.get(volumeId);
  if (request && request.refusedReason !== null && o.now - (request.refusedAt ?? request.requestedAt) >= o.config.refusedRequestKeepMs) {
    return { kind: 'dropRequest', volumeId, requestId: request.requestId, reason: `dropping request ${request.requestId}, refused: ${request.refusedReason}` };
  }
  if (isActiveJournal(journal)) {
    if (request && request.refusedReason === null && request.requestId !== journal.requestId) {
      return refuse(o, volumeId, request, `a ${journal.kind} failover of ${volumeId} is already at step ${journal.step}`);
    }
    if (!service) return fail(o, journal, `service ${journal.unit} was removed during the failover`);
    const volume = o.volumes.get(volumeId);
    if (!volume) return { kind: 'wait', volumeId, requeueAfterMs: o.config.pollMs * 4, reason: `EC2 did not describe ${volumeId}` };
    return decideStep(o, journal, service, volume);
  }
  if (!service) {
    if (request && request.refusedReason === null) return refuse(o, volumeId, request, `unknown service ${request.unit}: no services/ record for ${volumeId}`);
    return { kind: 'noop', volumeId, reason: 'no service is registered on this volume' };
  }
  const volume = o.volumes.get(volumeId);
  if (!volume) return { kind: 'wait', volumeId, requeueAfterMs: o.config.pollMs * 4, reason: `EC2 did not describe ${volumeId}` };
  if (request && request.refusedReason === null) return decideRequest(o, service, volume, request);
  return decideSteady(o, service, volume, journal);
}

function refuse(o: Observed, volumeId: string, request: ManualRequest, reason: string): Decision {
  return { kind: 'refuseRequest', volumeId, request: { ...request, refusedReason: reason, refusedAt: o.now }, reason: `refused request ${request.requestId}: ${reason}` };
}

function fail(o: Observed, journal: FailoverJournal, reason: string): Decision {
  return { kind: 'fail', volumeId: journal.volumeId, journal: advance(journal, 'failed', o.now, reason, { error: reason }), reason };
}

function wait(o: Observed, volumeId: string, reason: string, requeueAfterMs = o.config.pollMs): Decision {
  return { kind: 'wait', volumeId, requeueAfterMs, reason };
}

/** The volume's one attachment in any state (EBS volumes here are never multi-attach). */
function attachmentOf(volume: VolumeInfo): VolumeAttachment | undefined {
  return volume.attachments[0];
}

function placementFor(service: ServiceRecord, previous: Placement | undefined, instanceId: string | null, device: string | null, now: number): Placement {
  return { volumeId: service.volumeId, unit: service.unit, instanceId, device, generation: (previous?.generation ?? 0) + 1, updatedAt: now };
}

/** No failover running: is the volume where its placement says, on a live host? */
function decideSteady(o: Observed, service: ServiceRecord, volume: VolumeInfo, last: FailoverJournal | undefined): Decision {
  const { volumeId } = service;
  const placement = o.placements.get(volumeId);
  const holder = placement?.instanceId ?? null;
  const attachment = attachmentOf(volume);
  const startAuto = (fromInstanceId: string | null, why: string): Decision => {
    if (last?.step === 'failed' && last.finishedAt !== null && o.now - last.finishedAt < o.config.retryFailedAfterMs) {
      return wait(o, volumeId, `${why}; last failover failed (${last.error ?? 'no error recorded'}), retrying later`, o.config.retryFailedAfterMs - (o.now - last.finishedAt));
    }
    const journal = newJournal({ volumeId, unit: service.unit, kind: 'auto', fromInstanceId, note: why }, o.now);
    return { kind: 'startFailover', volumeId, journal, deleteRequest: false, reason: why };
  };

  if (holder !== null) {
    if (!o.hosts.has(holder)) return startAuto(holder, `holder ${holder}'s lease is gone`);
    if (attachment === undefined) {
      const device = placement?.device ?? freeDevice(o, holder);
      if (device === null) return { kind: 'noop', volumeId, reason: `placed on ${holder} but not attached, and ${holder} has no free device` };
      return { kind: 'attach', volumeId, instanceId: holder, device, reason: `placed on live ${holder} but not attached: attaching it there` };
    }
    if (attachment.instanceId !== holder) {
      return { kind: 'noop', volumeId, reason: `placed on ${holder} but attached to ${attachment.instanceId}: needs a human (never attached twice)` };
    }
    return { kind: 'noop', volumeId, reason: `held by ${holder} (generation ${placement?.generation ?? 0})` };
  }
  if (attachment === undefined) {
    if (volume.state !== 'available') return wait(o, volumeId, `volume is ${volume.state}`);
    return startAuto(null, 'volume is placed nowhere and attached nowhere: choosing a host');
  }
  if (!o.hosts.has(attachment.instanceId)) return startAuto(attachment.instanceId, `placed nowhere, attached to ${attachment.instanceId} which has no live agent`);
  if (attachment.state !== 'attached') return wait(o, volumeId, `attachment to ${attachment.instanceId} is ${attachment.state}`);
  const next = placementFor(service, placement, attachment.instanceId, attachment.device, o.now);
  return {
    kind: 'place', volumeId, instanceId: attachment.instanceId, device: attachment.device, generation: next.generation, placement: next, journal: null,
    reason: `adopting: attached to live ${attachment.instanceId}`,
  };
}

/** A manual request and no failover running: validate it (refuse and change nothing), or start it. */
function decideRequest(o: Observed, service: ServiceRecord, volume: VolumeInfo, request: ManualRequest): Decision {
  const { volumeId } = service;
  if (request.unit !== service.unit) return refuse(o, volumeId, request, `unknown service ${request.unit}: ${volumeId} belongs to ${service.unit}`);
  const holder = o.placements.get(volumeId)?.instanceId ?? attachmentOf(volume)?.instanceId ?? null;
  const target = request.toInstanceId;
  if (target !== null) {
    if (target === holder) return refuse(o, volumeId, request, `${service.unit} already runs on ${target}`);
    const host = o.hosts.get(target);
    if (!host) return refuse(o, volumeId, request, `target ${target} is not live (no agent lease in etcd)`);
    const problem = hostProblem(o, service, volume.az, host);
    if (problem !== null) return refuse(o, volumeId, request, `target ${target} ${problem}`);
  } else {
    const choice = chooseTarget(o, service, volume.az, new Set(holder === null ? [] : [holder]));
    if (!choice.ok) return refuse(o, volumeId, request, choice.reason);
  }
  const note = `manual request ${request.requestId}${target ? ` to ${target}` : ''}${request.force ? ' (force allowed)' : ''}`;
  const journal = newJournal(
    { volumeId, unit: service.unit, kind: 'manual', fromInstanceId: holder, toInstanceId: target, force: request.force, requestId: request.requestId, note },
    o.now,
  );
  return { kind: 'startFailover', volumeId, journal, deleteRequest: true, reason: note };
}

function decideStep(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo): Decision {
  switch (j.step) {
    case 'detected':
      return decideDetected(o, j, service);
    case 'fencing':
      return decideFencing(o, j, service);
    case 'releasing':
      return decideReleasing(o, j, service);
    case 'detaching':
      return decideDetaching(o, j, service, volume);
    case 'attaching':
    case 'blocked':
      return decideAttaching(o, j, service, volume);
    case 'starting':
      return decideStarting(o, j);
    default:
      return { kind: 'noop', volumeId: j.volumeId, reason: `failover is ${j.step}` };
  }
}

/** Placement → nobody (when it names someone), persisted together with the next step. */
function releaseOr(o: Observed, j: FailoverJournal, service: ServiceRecord, step: 'fencing' | 'releasing', note: string): Decision {
  const placement = o.placements.get(j.volumeId);
  const journal = advance(j, step, o.now, note);
  if (placement === undefined || placement.instanceId === null) return { kind: 'advance', volumeId: j.volumeId, journal, reason: note };
  const next = placementFor(service, placement, null, null, o.now);
  return { kind: 'release', volumeId: j.volumeId, generation: next.generation, placement: next, journal, reason: note };
}

function decideDetected(o: Observed, j: FailoverJournal, service: ServiceRecord): Decision {
  const from = j.fromInstanceId;
  if (from === null) return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'detaching', o.now, 'no previous holder'), reason: 'no previous holder: nothing to fence or release' };
  if (j.kind === 'auto' || !o.hosts.has(from)) {
    // Its lease is gone, so its self-fence (last keepalive + TTL − margin) has already fired; the
    // placement → nobody keeps it down should it come back before the volume has moved.
    return releaseOr(o, j, service, 'fencing', `${from}'s lease is gone, so it has fenced itself: fencing it in fleet`);
  }
  return releaseOr(o, j, service, 'releasing', `asking ${from} to stop ${service.unit} and unmount`);
}

function decideFencing(o: Observed, j: FailoverJournal, service: ServiceRecord): Decision {
  const from = j.fromInstanceId as string; // fencing is only entered with a previous holder
  const stop = o.config.stopInstanceOnFence && j.kind === 'auto';
  const journal = advance(j, 'detaching', o.now, `fenced ${from}${stop ? ' (StopInstances)' : ''}`);
  return {
    kind: 'fence', volumeId: j.volumeId, instanceId: from, machineId: o.knownHosts.get(from)?.machineId ?? null, metadataKey: service.metadataKey,
    stopInstance: stop, journal, reason: `dropping ${service.metadataKey} from ${from}'s fleet metadata${stop ? ' and stopping the instance' : ''}`,
  };
}

function decideReleasing(o: Observed, j: FailoverJournal, service: ServiceRecord): Decision {
  const from = j.fromInstanceId as string; // releasing is only entered with a previous holder
  const generation = o.placements.get(j.volumeId)?.generation ?? 0;
  const report = o.reports.get(reportKey(from, j.volumeId));
  if (report && report.generation >= generation && report.phase === 'released') {
    return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'detaching', o.now, `${from} released ${service.unit}`), reason: `${from} released ${service.unit}` };
  }
  if (!o.hosts.has(from)) return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'fencing', o.now, `${from} died while releasing`), reason: `${from} died while releasing: fencing it` };
  if (report && report.generation >= generation && report.phase === 'failed') return fail(o, j, `${from} failed to release ${service.unit}: ${report.error ?? 'no error given'}`);
  if (o.now - j.stepStartedAt > o.config.releaseTimeoutMs) return fail(o, j, `${from} did not release ${service.unit} within ${o.config.releaseTimeoutMs} ms`);
  return wait(o, j.volumeId, `waiting for ${from} to release ${service.unit} (generation ${generation})`);
}

function decideDetaching(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo): Decision {
  const attachment = attachmentOf(volume);
  if (attachment === undefined) {
    if (volume.state !== 'available') return wait(o, j.volumeId, `volume is ${volume.state}`);
    return toAttaching(o, j, service, volume, 'volume is detached');
  }
  const from = j.fromInstanceId;
  if (attachment.instanceId !== from) {
    return fail(o, j, `volume is attached to unexpected ${attachment.instanceId} (expected ${from ?? 'nothing'}): refusing to continue`);
  }
  const mayForce = j.kind === 'auto' || j.force;
  const elapsed = o.now - (j.detachStartedAt ?? j.stepStartedAt);
  const overdue = elapsed >= o.config.forceDetachAfterMs;
  switch (attachment.state) {
    case 'attached':
      // Auto: `from` lost its lease, so it has fenced itself (its deadline is last keepalive + TTL − margin,
      // before etcd could expire the lease) or is dead; nobody will unmount, so a graceful detach would
      // only end up `busy`. Forcing at once saves a DetachVolume round and the detach latency.
      if (j.kind === 'auto') return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `detaching from fenced ${from} (forced)` };
      return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: mayForce && overdue, reason: `detaching from ${from}${mayForce && overdue ? ' (forced: overdue)' : ''}` };
    case 'busy':
      // Busy means the OS on `from` still has the device open. In an auto failover `from` has lost
      // its lease and so has fenced itself (or is dead): forcing is safe.
      if (j.kind === 'auto') return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `detach from fenced ${from} is busy: forcing` };
      if (j.force && overdue) return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `detach from ${from} busy for ${elapsed} ms: forcing (request allows it)` };
      if (overdue) return fail(o, j, `detach from ${from} still busy after ${elapsed} ms and the request does not allow force (retry with --force)`);
      return wait(o, j.volumeId, `detach from ${from} is busy`);
    case 'detaching':
      if (mayForce && overdue) return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `stuck detaching from ${from} for ${elapsed} ms: forcing` };
      return wait(o, j.volumeId, `detaching from ${from}`);
    default:
      return wait(o, j.volumeId, `attachment to ${from} is ${attachment.state}`);
  }
}

/**
 * A manual failover's target, once named (by the operator, or chosen at `attaching`), is kept: if it
 * becomes unusable the failover fails rather than moving the service somewhere nobody asked for.
 */
function explicitTarget(j: FailoverJournal): boolean {
  return j.kind === 'manual' && j.toInstanceId !== null;
}

/** Choose (or confirm) the target and persist `attaching`, or `blocked` with the reason. */
function toAttaching(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo, why: string): Decision {
  if (explicitTarget(j)) {
    const target = j.toInstanceId as string;
    const host = o.hosts.get(target);
    if (!host) return fail(o, j, `requested target ${target} is no longer live`);
    const problem = hostProblem(o, service, volume.az, host);
    if (problem !== null) return fail(o, j, `requested target ${target} ${problem}`);
    const device = freeDevice(o, target) as string; // hostProblem checked a device is free
    const note = `${why}: attaching to requested ${target} as ${device}`;
    return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'attaching', o.now, note, { toInstanceId: target, device }), reason: note };
  }
  const exclude = new Set(j.fromInstanceId === null ? [] : [j.fromInstanceId]);
  const choice = chooseTarget(o, service, volume.az, exclude);
  if (!choice.ok) {
    if (j.step === 'blocked' && j.blockedReason === choice.reason) return wait(o, j.volumeId, `blocked: ${choice.reason}`, o.config.pollMs * 8);
    return { kind: 'block', volumeId: j.volumeId, journal: advance(j, 'blocked', o.now, choice.reason, { blockedReason: choice.reason, toInstanceId: null, device: null }), reason: choice.reason };
  }
  const note = `${why}: attaching to ${choice.instanceId} as ${choice.device} (${choice.reason})`;
  const journal = advance(j, 'attaching', o.now, note, { toInstanceId: choice.instanceId, device: choice.device });
  return { kind: 'advance', volumeId: j.volumeId, journal, reason: note };
}

function decideAttaching(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo): Decision {
  const attachment = attachmentOf(volume);
  const target = j.toInstanceId;
  if (attachment !== undefined) {
    if (attachment.instanceId !== target) {
      return fail(o, j, `volume is attached to unexpected ${attachment.instanceId} (target ${target ?? 'none'}): refusing to attach twice`);
    }
    if (attachment.state === 'attached') {
      const placement = placementFor(service, o.placements.get(j.volumeId), target, attachment.device, o.now);
      const journal = advance(j, 'starting', o.now, `attached to ${target} as ${attachment.device}; placement generation ${placement.generation}`, {
        generation: placement.generation,
        device: attachment.device,
      });
      return { kind: 'place', volumeId: j.volumeId, instanceId: target, device: attachment.device, generation: placement.generation, placement, journal, reason: `attached to ${target}: placing it there` };
    }
    if (attachment.state === 'attaching') {
      if (o.now - j.stepStartedAt > o.config.attachTimeoutMs) return fail(o, j, `attach to ${target} did not finish within ${o.config.attachTimeoutMs} ms`);
      return wait(o, j.volumeId, `attaching to ${target}`);
    }
    return wait(o, j.volumeId, `attachment to ${target} is ${attachment.state}`);
  }
  if (volume.state !== 'available') return wait(o, j.volumeId, `volume is ${volume.state}`);
  if (j.step === 'blocked' || target === null || j.device === null) return toAttaching(o, j, service, volume, 'retrying placement');
  const host = o.hosts.get(target);
  if (!host || host.az !== volume.az) {
    if (explicitTarget(j)) return fail(o, j, `requested target ${target} is no longer live`);
    return toAttaching(o, j, service, volume, `target ${target} is gone`);
  }
  if (o.now - j.stepStartedAt > o.config.attachTimeoutMs) return fail(o, j, `attach to ${target} did not finish within ${o.config.attachTimeoutMs} ms`);
  if (deviceTakenOnInstance(o, target, j.device, j.volumeId)) {
    // EC2 says the name is in use (InvalidDevice.InUse, or it shows in the instance's mappings): pick another.
    const device = freeDevice(o, target);
    if (device === null) return toAttaching(o, { ...j, toInstanceId: explicitTarget(j) ? target : null }, service, volume, `${j.device} is in use on ${target} and it has no other free device`);
    const note = `${j.device} is in use on ${target}: attaching as ${device} instead`;
    return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'attaching', o.now, note, { device }), reason: note };
  }
  return { kind: 'attach', volumeId: j.volumeId, instanceId: target, device: j.device, reason: `attaching to ${target} as ${j.device}` };
}

function decideStarting(o: Observed, j: FailoverJournal): Decision {
  const target = j.toInstanceId as string; // starting is only entered with a target
  const generation = j.generation ?? 0;
  const report = o.reports.get(reportKey(target, j.volumeId));
  if (report && report.generation === generation && report.phase === 'active') {
    const note = `${j.unit} active on ${target} (generation ${generation})`;
    return { kind: 'complete', volumeId: j.volumeId, journal: advance(j, 'done', o.now, note), reason: note };
  }
  if (report && report.generation === generation && report.phase === 'failed') return fail(o, j, `agent on ${target} failed: ${report.error ?? 'no error given'}`);
  if (!o.hosts.has(target)) return fail(o, j, `target ${target} lost its lease before reporting active`);
  if (o.now - j.stepStartedAt > o.config.reportTimeoutMs) return fail(o, j, `${target} did not report active within ${o.config.reportTimeoutMs} ms`);
  return wait(o, j.volumeId, `waiting for ${target} to report active (generation ${generation}, now ${report ? `${report.phase}@${report.generation}` : 'no report'})`);
}
