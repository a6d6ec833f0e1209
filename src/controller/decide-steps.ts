import type { FailoverJournal, Placement, ServiceRecord } from '../keyspace/records.js';
import type { VolumeAttachment, VolumeInfo } from '../ec2/types.js';
import type { Decision } from './decision.js';
import { graceReason, liveness, reportKey, type Observed } from './observed.js';
import { chooseTarget, deviceTakenOnInstance, freeDevice, hostProblem } from './placement.js';
import { advance, causeOf, retarget } from './state.js';
import { azGoneHint } from './auto-restore.js';

/**
 * The decision core's half for a RUNNING failover: one function per journal step, each pure (see
 * `decide.ts`). A target lost before `active`, or whose attach stuck, is re-targeted (`retarget`).
 */

export function fail(o: Observed, journal: FailoverJournal, reason: string): Decision {
  return { kind: 'fail', volumeId: journal.volumeId, journal: advance(journal, 'failed', o.now, reason, { error: reason }), reason };
}

export function wait(o: Observed, volumeId: string, reason: string, requeueAfterMs = o.config.pollMs): Decision {
  return { kind: 'wait', volumeId, requeueAfterMs, reason };
}

/** `instanceId`'s lease is gone within the grace: look again exactly when the grace ends. */
export function graceWait(o: Observed, volumeId: string, instanceId: string): Decision {
  return wait(o, volumeId, graceReason(o, instanceId), Math.max(1, (o.graceUntil ?? o.now) - o.now));
}

/** The volume's one attachment in any state (Multi-Attach volumes are refused above). */
export function attachmentOf(volume: VolumeInfo): VolumeAttachment | undefined {
  return volume.attachments[0];
}

export function placementFor(service: ServiceRecord, previous: Placement | undefined, instanceId: string | null, device: string | null, now: number): Placement {
  return { volumeId: service.volumeId, unit: service.unit, instanceId, device, generation: (previous?.generation ?? 0) + 1, updatedAt: now };
}

/** One step of a running failover (its journal says which). */
export function decideStep(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo): Decision {
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
      return decideStarting(o, j, service);
    default:
      return { kind: 'noop', volumeId: j.volumeId, reason: `failover is ${j.step}` };
  }
}

/** Placement → nobody (when it names someone), persisted together with the next step. */
function releaseOr(o: Observed, j: FailoverJournal, service: ServiceRecord, journal: FailoverJournal, note: string): Decision {
  const placement = o.placements.get(j.volumeId);
  if (placement === undefined || placement.instanceId === null) return { kind: 'advance', volumeId: j.volumeId, journal, reason: note };
  const next = placementFor(service, placement, null, null, o.now);
  return { kind: 'release', volumeId: j.volumeId, generation: next.generation, placement: next, journal, reason: note };
}

function decideDetected(o: Observed, j: FailoverJournal, service: ServiceRecord): Decision {
  const from = j.fromInstanceId;
  if (from === null) return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'detaching', o.now, 'no previous holder'), reason: 'no previous holder: nothing to fence or release' };
  if (causeOf(j) === 'reacquire') {
    // The holder is live but lost the disk: placement → nobody makes its agent stop the unit and let go
    // of that generation; the next placement (after the re-attach) is a new generation it acquires.
    const note = `${from} lost ${j.volumeId} behind our back: placement → nobody, then re-attach`;
    return releaseOr(o, j, service, advance(j, 'detaching', o.now, note), note);
  }
  const fromIs = liveness(o, from);
  if (j.kind === 'manual' && fromIs === 'grace') return graceWait(o, j.volumeId, from);
  if (j.kind === 'auto' || fromIs === 'gone') {
    // Its lease is gone, so its self-fence (last keepalive + TTL − margin) has already fired; the
    // placement → nobody keeps it down should it come back before the volume has moved.
    const note = `${from}'s lease is gone, so it has fenced itself: fencing it in fleet`;
    return releaseOr(o, j, service, advance(j, 'fencing', o.now, note), note);
  }
  const note = `asking ${from} to stop ${service.unit} and unmount`;
  return releaseOr(o, j, service, advance(j, 'releasing', o.now, note), note);
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
  const fromIs = liveness(o, from);
  if (fromIs === 'grace') return graceWait(o, j.volumeId, from);
  if (fromIs === 'gone') return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'fencing', o.now, `${from} died while releasing`), reason: `${from} died while releasing: fencing it` };
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
  if (attachment.instanceId !== from || from === null) {
    return fail(o, j, `volume is attached to unexpected ${attachment.instanceId} (expected ${from ?? 'nothing'}): refusing to continue`);
  }
  const cause = causeOf(j);
  const fromIs = liveness(o, from);
  if (cause === 'reacquire' && fromIs === 'live' && attachment.state === 'attached') {
    // Attached to the live holder again (by whoever detached it, say): place it there, nothing to move.
    return toAttaching(o, j, service, volume, `attached to ${from} again`);
  }
  // A target this failover gave up (it died before reporting active, or its attach stuck): forced at
  // once. It never ran the unit for a live placement (dead: fenced itself; stuck: never attached).
  const givenUp = j.excludedInstanceIds.includes(from);
  // A fenced holder (auto; not a reacquire, whose holder is live) is forced at once too, see below.
  const forceAtOnce = (j.kind === 'auto' && cause !== 'reacquire') || givenUp;
  // A source whose lease is gone has fenced itself (or is dead): a stuck detach of a manual move is
  // then forced after the bound even without --force, else it would hang forever.
  const sourceGone = fromIs === 'gone';
  // A source that reported `released` for the current generation has stopped the unit and unmounted:
  // nothing on it uses the device, so a detach stuck in `detaching` may be forced after the bound too
  // (chaos seed 55: a manual move without --force otherwise waited forever on a stuck detach).
  const report = o.reports.get(reportKey(from, j.volumeId));
  const sourceReleased = report !== undefined && report.phase === 'released' && report.generation >= (o.placements.get(j.volumeId)?.generation ?? 0);
  const mayForce = forceAtOnce || j.force || sourceGone;
  const elapsed = o.now - (j.detachStartedAt ?? j.stepStartedAt);
  const overdue = elapsed >= o.config.forceDetachAfterMs;
  const why = givenUp ? `given-up target ${from}` : `fenced ${from}`;
  switch (attachment.state) {
    case 'attached':
      // Auto: `from` lost its lease, so it has fenced itself (its deadline is last keepalive + TTL − margin,
      // before etcd could expire the lease) or is dead; nobody will unmount, so a graceful detach would
      // only end up `busy`. Forcing at once saves a DetachVolume round and the detach latency.
      if (forceAtOnce) return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `detaching from ${why} (forced)` };
      return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: mayForce && overdue, reason: `detaching from ${from}${mayForce && overdue ? ' (forced: overdue)' : ''}` };
    case 'busy':
      // Busy means the OS on `from` still has the device open. In an auto failover `from` has lost
      // its lease and so has fenced itself (or is dead): forcing is safe.
      if (forceAtOnce) return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `detach from ${why} is busy: forcing` };
      if (mayForce && overdue) {
        const allows = j.force ? 'request allows it' : `${from}'s lease is gone: it has fenced itself`;
        return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `detach from ${from} busy for ${elapsed} ms: forcing (${allows})` };
      }
      if (overdue) return fail(o, j, `detach from ${from} still busy after ${elapsed} ms and the request does not allow force (retry with --force)`);
      return wait(o, j.volumeId, `detach from ${from} is busy`);
    case 'detaching':
      if ((mayForce || sourceReleased) && overdue) {
        // A forced detach already sent to this holder gets the bound too before the next: re-forcing on
        // every tick spent the account's mutating budget, and with EC2 restarting the detach each time,
        // six volumes of a 1,000-volume event never finished detaching (bench/failover.ts az1000).
        const forcedAt = j.intent?.action === 'detach' && j.intent.force && j.intent.instanceId === from ? j.intent.at : null;
        if (forcedAt !== null && o.now - forcedAt < o.config.forceDetachAfterMs) {
          const left = o.config.forceDetachAfterMs - (o.now - forcedAt);
          return wait(o, j.volumeId, `forced detach from ${from} sent ${o.now - forcedAt} ms ago: ${left} ms more before forcing again`, Math.min(o.config.pollMs, left));
        }
        const allows = mayForce ? '' : ` (${from} released it: nothing there uses the device)`;
        return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `stuck detaching from ${from} for ${elapsed} ms: forcing${allows}` };
      }
      // Bounded: a manual move whose live source has not released never forces, and never hangs either.
      if (overdue && fromIs === 'live') return fail(o, j, `detach from ${from} still detaching after ${elapsed} ms and ${from} has not released the volume (retry with --force-detach)`);
      return wait(o, j.volumeId, `detaching from ${from}`);
    case 'attaching':
      // Only a forced detach ends an attach stuck in `attaching` (AWS's documented remedy).
      if (givenUp) return { kind: 'detach', volumeId: j.volumeId, instanceId: from, force: true, reason: `attach to given-up target ${from} is still attaching: forcing a detach` };
      return wait(o, j.volumeId, `attachment to ${from} is attaching`);
    default:
      return wait(o, j.volumeId, `attachment to ${from} is ${attachment.state}`);
  }
}

/** Choose (or confirm) the target and persist `attaching`, or `blocked` with the reason. */
function toAttaching(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo, why: string): Decision {
  const excluded = new Set(j.excludedInstanceIds);
  let because = why;
  // A manual failover's target, once named (by the operator, or chosen at `attaching`), is kept while it
  // lives: if it has become unusable the failover fails rather than moving the service somewhere nobody
  // asked for. If it DIED, availability comes first: another host is chosen (excluding it).
  if (j.kind === 'manual' && j.toInstanceId !== null && !excluded.has(j.toInstanceId)) {
    const target = j.toInstanceId;
    const targetIs = liveness(o, target);
    if (targetIs === 'grace') return graceWait(o, j.volumeId, target);
    const host = o.hosts.get(target);
    if (host) {
      const problem = hostProblem(o, service, volume.az, host);
      if (problem !== null) return fail(o, j, `requested target ${target} ${problem}`);
      const device = freeDevice(o, target) as string; // hostProblem checked a device is free
      const note = `${why}: attaching to requested ${target} as ${device}`;
      return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'attaching', o.now, note, { toInstanceId: target, device }), reason: note };
    }
    excluded.add(target);
    because = `${why}; requested target ${target} is no longer live`;
  }
  const cause = causeOf(j);
  const from = j.fromInstanceId;
  // A re-acquired volume goes back to its holder when that host can take it; any other failover moves
  // away from `from` (dead, fenced, or the host an operator is emptying).
  if (cause === 'reacquire' && from !== null && !excluded.has(from)) {
    const host = o.hosts.get(from);
    if (host && hostProblem(o, service, volume.az, host) === null) {
      const attached = attachmentOf(volume);
      const device = attached?.instanceId === from ? attached.device : (freeDevice(o, from) as string); // hostProblem checked a device is free
      const note = `${because}: attaching to its holder ${from} as ${device}`;
      return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'attaching', o.now, note, { toInstanceId: from, device }), reason: note };
    }
  } else if (from !== null) excluded.add(from);
  let choice = chooseTarget(o, service, volume.az, excluded);
  if (!choice.ok && excluded.size > 0) {
    // Every live candidate was given up by this failover (or is the host being emptied): availability
    // first, one of them again rather than a service blocked while live hosts could run it. Safe either
    // way: the volume is detached before any attach (chaos seed 96 stayed blocked with two live hosts).
    const again = chooseTarget(o, service, volume.az, new Set());
    if (again.ok) {
      choice = again;
      because = `${because}; every other host was given up by this failover, so one of them again`;
    }
  }
  if (!choice.ok) {
    const given = j.excludedInstanceIds.length > 0 ? ` (given up by this failover: ${j.excludedInstanceIds.join(', ')})` : '';
    // When the whole AZ is gone: the way out (failover restore --az, or controller.autoRestore's bound).
    const reason = `${choice.reason}${given}${azGoneHint(o, service, volume.az)}`;
    if (j.step === 'blocked' && j.blockedReason === reason) return wait(o, j.volumeId, `blocked: ${reason}`, o.config.pollMs * 8);
    return { kind: 'block', volumeId: j.volumeId, journal: advance(j, 'blocked', o.now, reason, { blockedReason: reason, toInstanceId: null, device: null }), reason };
  }
  const note = `${because}: attaching to ${choice.instanceId} as ${choice.device} (${choice.reason})`;
  const journal = advance(j, 'attaching', o.now, note, { toInstanceId: choice.instanceId, device: choice.device });
  return { kind: 'advance', volumeId: j.volumeId, journal, reason: note };
}

function decideAttaching(o: Observed, j: FailoverJournal, service: ServiceRecord, volume: VolumeInfo): Decision {
  const attachment = attachmentOf(volume);
  const target = j.toInstanceId;
  if (attachment !== undefined) {
    if (attachment.instanceId !== target || target === null) {
      return fail(o, j, `volume is attached to unexpected ${attachment.instanceId} (target ${target ?? 'none'}): refusing to attach twice`);
    }
    if (liveness(o, target) === 'gone') {
      const note = `target ${target} lost its lease before the volume was placed there: failing over again at once, without it`;
      return { kind: 'advance', volumeId: j.volumeId, journal: retarget(j, 'target-lost', o.now, note), reason: note };
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
      // From when the target was chosen (the attach follows at once), or EC2's own start if later (a retried call).
      const stuckFor = o.now - Math.max(j.stepStartedAt, attachment.attachTime ?? -Infinity);
      if (stuckFor >= o.config.attachStuckAfterMs) {
        const note = `attach to ${target} stuck in attaching for ${stuckFor} ms: force-detaching it and choosing another host`;
        return { kind: 'advance', volumeId: j.volumeId, journal: retarget(j, 'attach-stuck', o.now, note), reason: note };
      }
      return wait(o, j.volumeId, `attaching to ${target}`);
    }
    return wait(o, j.volumeId, `attachment to ${target} is ${attachment.state}`);
  }
  if (volume.state !== 'available') return wait(o, j.volumeId, `volume is ${volume.state}`);
  if (j.step === 'blocked' || target === null || j.device === null) return toAttaching(o, j, service, volume, 'retrying placement');
  const targetIs = liveness(o, target);
  if (targetIs === 'grace') return graceWait(o, j.volumeId, target);
  const host = o.hosts.get(target);
  if (!host || host.az !== volume.az) return toAttaching(o, j, service, volume, `target ${target} is gone`);
  if (o.now - j.stepStartedAt > o.config.attachTimeoutMs) return fail(o, j, `attach to ${target} did not finish within ${o.config.attachTimeoutMs} ms`);
  if (deviceTakenOnInstance(o, target, j.device, j.volumeId)) {
    // EC2 says the name is in use (InvalidDevice.InUse, or it shows in the instance's mappings): pick another.
    const device = freeDevice(o, target);
    if (device === null) return toAttaching(o, { ...j, toInstanceId: j.kind === 'manual' ? target : null }, service, volume, `${j.device} is in use on ${target} and it has no other free device`);
    const note = `${j.device} is in use on ${target}: attaching as ${device} instead`;
    return { kind: 'advance', volumeId: j.volumeId, journal: advance(j, 'attaching', o.now, note, { device }), reason: note };
  }
  return { kind: 'attach', volumeId: j.volumeId, instanceId: target, device: j.device, reason: `attaching to ${target} as ${j.device}` };
}

function decideStarting(o: Observed, j: FailoverJournal, service: ServiceRecord): Decision {
  const target = j.toInstanceId as string; // starting is only entered with a target
  const generation = j.generation ?? 0;
  const report = o.reports.get(reportKey(target, j.volumeId));
  if (report && report.generation === generation && report.phase === 'active') {
    const note = `${j.unit} active on ${target} (generation ${generation})`;
    return { kind: 'complete', volumeId: j.volumeId, journal: advance(j, 'done', o.now, note), reason: note };
  }
  if (report && report.generation === generation && report.phase === 'failed') return fail(o, j, `agent on ${target} failed: ${report.error ?? 'no error given'}`);
  const targetIs = liveness(o, target);
  if (targetIs === 'grace') return graceWait(o, j.volumeId, target);
  if (targetIs === 'gone') {
    // A dead target is not an EC2 error: fail over again at once, from it and without it. Its lease is
    // gone, so it has fenced itself; placement → nobody keeps it down should it come back.
    const note = `target ${target} lost its lease before reporting active: failing over again at once, without it`;
    return releaseOr(o, j, service, retarget(j, 'target-lost', o.now, note), note);
  }
  if (o.now - j.stepStartedAt > o.config.reportTimeoutMs) return fail(o, j, `${target} did not report active within ${o.config.reportTimeoutMs} ms`);
  return wait(o, j.volumeId, `waiting for ${target} to report active (generation ${generation}, now ${report ? `${report.phase}@${report.generation}` : 'no report'})`);
}
