import type { FailoverJournal, ManualRequest, ServiceRecord } from '../keyspace/records.js';
import type { VolumeInfo } from '../ec2/types.js';
import { decideAutoRestore } from './auto-restore.js';
import { attachmentOf, decideStep, fail, graceWait, placementFor, wait } from './decide-steps.js';
import type { Decision } from './decision.js';
import { isActiveJournal, liveness, reportKey, serviceOfVolume, type Observed } from './observed.js';
import { chooseTarget, hostProblem } from './placement.js';
import { causeOf, newJournal, type FailoverCause } from './state.js';

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
  // The CLI that made it has given up: starting it now would move a service nobody is watching.
  if (request && request.refusedReason === null && request.deadline !== undefined && o.now > request.deadline && request.requestId !== journal?.requestId) {
    return { kind: 'dropRequest', volumeId, requestId: request.requestId, reason: `dropping request ${request.requestId}: its deadline passed ${o.now - request.deadline} ms ago before it started` };
  }
  if (isActiveJournal(journal)) {
    if (request && request.refusedReason === null && request.requestId !== journal.requestId) {
      return refuse(o, volumeId, request, `a ${journal.kind} failover of ${volumeId} is already at step ${journal.step}`);
    }
    if (!service) return fail(o, journal, `service ${journal.unit} was removed during the failover`);
    const volume = o.volumes.get(volumeId);
    if (!volume) return { kind: 'wait', volumeId, requeueAfterMs: o.config.pollMs * 4, reason: `EC2 did not describe ${volumeId}` };
    if (volume.multiAttachEnabled === true) return { kind: 'noop', volumeId, reason: multiAttachReason(volumeId) };
    // controller.autoRestore (opt-in): a volume whose whole AZ is gone, restored from a snapshot elsewhere.
    return decideAutoRestore(o, journal, service, volume) ?? decideStep(o, journal, service, volume);
  }
  if (!service) {
    if (request && request.refusedReason === null) return refuse(o, volumeId, request, `unknown service ${request.unit}: no services/ record for ${volumeId}`);
    return { kind: 'noop', volumeId, reason: 'no service is registered on this volume' };
  }
  const volume = o.volumes.get(volumeId);
  if (!volume) return { kind: 'wait', volumeId, requeueAfterMs: o.config.pollMs * 4, reason: `EC2 did not describe ${volumeId}` };
  if (volume.multiAttachEnabled === true) {
    if (request && request.refusedReason === null) return refuse(o, volumeId, request, multiAttachReason(volumeId));
    return { kind: 'noop', volumeId, reason: multiAttachReason(volumeId) };
  }
  if (request && request.refusedReason === null) return decideRequest(o, service, volume, request);
  return decideSteady(o, service, volume, journal);
}

/** EC2 could attach a Multi-Attach volume to two instances at once: the one-attachment fence would not hold. */
function multiAttachReason(volumeId: string): string {
  return `${volumeId} has EBS Multi-Attach enabled: never attached or failed over (one attachment is the fence that keeps it exclusive)`;
}

function refuse(o: Observed, volumeId: string, request: ManualRequest, reason: string): Decision {
  return { kind: 'refuseRequest', volumeId, request: { ...request, refusedReason: reason, refusedAt: o.now }, reason: `refused request ${request.requestId}: ${reason}` };
}

/** No failover running: is the volume where its placement says, on a live host, and running there? */
function decideSteady(o: Observed, service: ServiceRecord, volume: VolumeInfo, last: FailoverJournal | undefined): Decision {
  const { volumeId } = service;
  const placement = o.placements.get(volumeId);
  const holder = placement?.instanceId ?? null;
  const generation = placement?.generation ?? 0;
  const attachment = attachmentOf(volume);
  const startAuto = (cause: FailoverCause, fromInstanceId: string | null, why: string): Decision => {
    // The back-off is for an error that retrying would repeat, so only a failover of the same cause waits.
    if (last?.step === 'failed' && causeOf(last) === cause && last.finishedAt !== null && o.now - last.finishedAt < o.config.retryFailedAfterMs) {
      return wait(o, volumeId, `${why}; last ${cause} failover failed (${last.error ?? 'no error recorded'}), retrying later`, o.config.retryFailedAfterMs - (o.now - last.finishedAt));
    }
    if (cause === 'holder-lost' && o.pacing !== null && o.pacing.remaining <= 0 && (fromInstanceId === null || !o.pacing.admitted.includes(fromInstanceId))) {
      return wait(o, volumeId, `${why}; ${o.pacing.reason}: this failover waits for its turn`, o.config.pollMs * 8);
    }
    const journal = newJournal({ volumeId, unit: service.unit, kind: 'auto', fromInstanceId, cause, note: why }, o.now);
    return { kind: 'startFailover', volumeId, journal, deleteRequest: false, reason: why };
  };

  if (holder !== null) {
    const holderIs = liveness(o, holder);
    if (holderIs === 'grace') return graceWait(o, volumeId, holder);
    if (holderIs === 'gone') return startAuto('holder-lost', holder, `holder ${holder}'s lease is gone`);
    if (attachment === undefined) {
      if (volume.state !== 'available') return wait(o, volumeId, `volume is ${volume.state}`);
      // Detached behind our back (console, another tool, an EC2 event): the agent is done with this
      // generation, so only a new one (after a fresh attach) makes it mount and start again.
      return startAuto('reacquire', holder, `placed on live ${holder} (generation ${generation}) but EC2 shows it detached: re-acquiring it`);
    }
    if (attachment.instanceId !== holder) {
      return { kind: 'noop', volumeId, reason: `placed on ${holder} but attached to ${attachment.instanceId}: needs a human (never attached twice)` };
    }
    if (attachment.state !== 'attached') return wait(o, volumeId, `placed on ${holder}, attachment is ${attachment.state}`);
    const report = o.reports.get(reportKey(holder, volumeId));
    if (report?.generation === generation && report.phase === 'active') return { kind: 'noop', volumeId, reason: `held by ${holder} (generation ${generation})` };
    // Not healthy until its agent says so for this generation (drift is re-acquired by the agent itself).
    const now = report ? `${report.phase}@${report.generation}${report.error ? `: ${report.error}` : ''}` : 'no report';
    return wait(o, volumeId, `placed on ${holder} (generation ${generation}) and attached, but its agent reports ${now}`, o.config.pollMs * 8);
  }
  if (attachment === undefined) {
    if (volume.state !== 'available') return wait(o, volumeId, `volume is ${volume.state}`);
    return startAuto('placement', null, 'volume is placed nowhere and attached nowhere: choosing a host');
  }
  const attachedIs = liveness(o, attachment.instanceId);
  if (attachedIs === 'grace') return graceWait(o, volumeId, attachment.instanceId);
  if (attachedIs === 'gone') return startAuto('holder-lost', attachment.instanceId, `placed nowhere, attached to ${attachment.instanceId} which has no live agent`);
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
    { volumeId, unit: service.unit, kind: 'manual', fromInstanceId: holder, toInstanceId: target, force: request.force, requestId: request.requestId, cause: 'manual', note },
    o.now,
  );
  return { kind: 'startFailover', volumeId, journal, deleteRequest: true, reason: note };
}
