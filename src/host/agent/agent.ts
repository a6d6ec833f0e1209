import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { decodeRecord, AgentReport, HostRecord, keyspace as makeKeyspace, type Keyspace, type ServiceRecord } from '../../keyspace/index.js';
import { HostRegistrar, PrefixMirror, type FenceEvent, type RegisteredEvent } from '../../locks/index.js';
import { silentLogger, type Logger } from '../../log/logger.js';
import { apiMetadata, noMetadata, type MetadataPort } from '../fleet-metadata.js';
import { ServiceControl } from '../service.js';
import { MemorySystemd } from '../systemd/memory.js';
import type { SystemdPort } from '../systemd/port.js';
import { fenceAll } from './fence.js';
import { hostVolumes } from './host-volumes.js';
import { DEFAULT_TIMEOUTS, type Agent, type AgentOptions, type AgentTimeouts, type FenceRecord } from './options.js';
import { FRESH_FENCE_MEMORY, decideFence, probePeers, probeTimeoutMs, servePeerEndpoint, type EtcdHealth, type FenceDecision, type FenceMemory, type Peer, type PeerServer, type ProbeResult } from './peers.js';
import type { VolumeOps } from './ports.js';
import { Reconciler } from './reconciler.js';
import { Reporter } from './reporter.js';
import { isUp, systemdServiceName } from './unit-state.js';
import { MirrorView } from './view.js';

/**
 * 2 s per metadata removal while fenced: fleet usually shares etcd's fate, and the removal is retried on
 * recovery anyway; it must not hold up the 'fence' bookkeeping.
 */
const FENCE_METADATA_TIMEOUT_MS = 2_000;
/** Between failed registrations at start (etcd down): short enough to come up promptly when it returns. */
const REGISTER_RETRY_MS = 1_000;

const ScalarOptions = z.object({
  instanceId: z.string().regex(/^i-[0-9a-f]{8,17}$/),
  az: z.string().min(1),
  privateIp: z.string().min(1),
  machineId: z.string().min(1),
  leaseTtlMs: z.number().int().positive(),
  fenceMarginMs: z.number().int().nonnegative(),
  mode: z.enum(['fleet', 'systemd']),
  deviceRoot: z.string().min(1),
  peerListen: z.string().min(1).optional(),
});

export interface AgentExtras {
  /** Device and mount steps; default: src/host/device.ts + src/host/mount.ts over `systemd`. */
  volumes?: VolumeOps;
}

/** Runs the agent until `opts.signal` aborts, then leaves units running and the lease alive (SIGTERM). */
export async function runAgent(opts: AgentOptions & AgentExtras): Promise<void> {
  const agent = await startAgent(opts);
  await new Promise<void>((resolve) => {
    if (!opts.signal) return; // no signal: run for the life of the process
    if (opts.signal.aborted) resolve();
    else opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await agent.shutdown({ keepLease: true });
}

/**
 * Starts the agent: registers the host under a lease, mirrors placements/ and services/, adopts what is
 * already running, and reconciles. Self-fences when the registrar says renewals have failed too long.
 */
export async function startAgent(opts: AgentOptions & AgentExtras): Promise<Agent> {
  ScalarOptions.parse(opts);
  const log = (opts.log ?? silentLogger()).child({ component: 'agent', instanceId: opts.instanceId });
  const ks: Keyspace = opts.keyspace ?? makeKeyspace(opts.prefix);
  const timeouts: AgentTimeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const ownSystemd = opts.systemd === undefined;
  const opened = opts.systemd ? { systemd: opts.systemd, runDir: opts.runDir } : await openSystemd(opts.systemdBus, opts.runDir, log);
  const systemd = opened.systemd;
  const metadata: MetadataPort = opts.metadata ?? (opts.fleet ? apiMetadata(opts.fleet, opts.machineId) : noMetadata());
  const volumes =
    opts.volumes ?? hostVolumes({
      systemd,
      deviceRoot: opts.deviceRoot,
      // The in-memory systemd "mounts" the path as this process sees it.
      unitDeviceRoot: opts.unitDeviceRoot ?? (opened.memory ? opts.deviceRoot : undefined),
      runDir: opened.runDir,
      log,
    });

  // The peer endpoint first: its bound address goes into the host record. It answers from the
  // registrar, which exists a few lines below (until then: "does not reach etcd").
  let health: EtcdHealth | null = null;
  const peerServer = opts.peerListen === undefined ? null : await servePeers(opts.peerListen, opts.instanceId, opts.privateIp, () => health, log);
  // hosts/ as last seen: while etcd is unreachable this is who to ask (the mirror keeps its contents).
  const hosts = new PrefixMirror(opts.etcd, ks.hostsPrefix(), log);
  const peerCheck = peerFenceCheck(opts.instanceId, opts.leaseTtlMs, opts.fenceMarginMs, () => knownPeers(ks, hosts, opts.instanceId, log), () => health, log);

  const registrar = new HostRegistrar({
    client: opts.etcd,
    ks,
    record: {
      instanceId: opts.instanceId,
      az: opts.az,
      privateIp: opts.privateIp,
      machineId: opts.machineId,
      agentVersion: opts.agentVersion ?? '0.0.0',
      labels: opts.labels ?? {},
      ...(peerServer ? { peerEndpoint: peerServer.endpoint } : {}),
    },
    ttlMs: opts.leaseTtlMs,
    fenceMarginMs: opts.fenceMarginMs,
    leaseStateFile: opts.leaseStateFile,
    confirmFence: peerCheck.confirm,
    fenceOnSilence: peerCheck.fenceOnSilence,
    log,
  });
  health = registrar;
  const placements = new PrefixMirror(opts.etcd, ks.placementsPrefix(), log);
  const services = new PrefixMirror(opts.etcd, ks.servicesPrefix(), log);
  const reporter = new Reporter(registrar, ks, opts.instanceId, log);
  // Set once the agent has started; until then the final kickAll covers every change.
  let onServices: (volumes: string[] | 'all') => void = () => undefined;
  const view = new MirrorView(ks, placements, services, log, (volumes) => onServices(volumes));
  const reconciler = new Reconciler(
    { instanceId: opts.instanceId, mode: opts.mode, systemd, service: new ServiceControl(systemd, opts.mode), volumes, metadata, reporter, timeouts, log },
    view,
  );

  const fences: FenceRecord[] = [];
  let started = false;
  let stopping = false;
  /** The fence in progress or awaiting etcd; `claimed` once a recovery handler took it over. */
  let fence: { done: Promise<string[]>; claimed: boolean } | null = null;

  const onFence = (event: FenceEvent): void => {
    if (fence || stopping) return;
    const startedAt = Date.now();
    reconciler.pause('host fenced');
    // Every service in etcd, plus any held here whose record is gone (removed while its unit ran).
    const known = view.allServices();
    const all = [...known, ...reconciler.heldServices().filter((h) => !known.some((k) => k.volumeId === h.volumeId))];
    const held = new Set(reconciler.heldVolumeIds());
    const verdict = peerCheck.lastVerdict();
    const reason = verdict === null ? event.reason : `${event.reason} (peers: ${verdict})`;
    const done = fenceAll({ systemd, metadata, log, stopTimeoutMs: timeouts.stopMs, metadataTimeoutMs: FENCE_METADATA_TIMEOUT_MS }, all, startedAt, reason).then((record) => {
      fences.push(record);
      log.warn({ ...event, stoppedMs: record.stoppedAt - startedAt }, 'fenced; waiting for etcd');
      return all.filter((s) => held.has(s.volumeId)).map((s) => s.volumeId);
    });
    fence = { done, claimed: false };
  };

  const onRegistered = async (event: RegisteredEvent): Promise<void> => {
    if (!started || stopping) return;
    const current = fence;
    if (current && !current.claimed) {
      current.claimed = true;
      const fencedVolumes = await current.done;
      // Report against the generation each volume was held for; the controller reads 'fenced' as "stopped here".
      await Promise.all(
        fencedVolumes.map((volumeId) => {
          const last = reporter.lastReport(volumeId);
          const service = view.service(volumeId, last?.unit);
          if (!service) return undefined;
          return reporter.report({ volumeId, unit: service.unit, generation: last?.generation ?? view.placement(volumeId)?.generation ?? 0, phase: 'fenced', mountActive: false, unitActive: false });
        }),
      );
      // The placements mirror may still hold what it saw before etcd went away (its watch catches up a
      // moment later): resuming on that view restarted a unit at a generation the controller had already
      // moved on (CI chaos seed 15: 44 ms on two hosts). Wait until it shows what etcd holds now.
      await placementsCaughtUp(opts.etcd, ks, placements, fencedVolumes, log);
      reconciler.forgetAfterFence(fencedVolumes);
      fence = null;
      reconciler.resume();
      log.info({ leaseId: event.leaseId, resumed: event.resumed, volumeIds: fencedVolumes }, 'etcd back after fence; reconciling again');
    }
    await reporter.flush(true);
    reconciler.kickAll();
  };

  registrar.on('fence', onFence);
  // Ask the peers at the first failed renewal already, not only at the fence deadline: if etcd is down
  // for everyone, they can say so while the outage is young; at the deadline, on machines busy with the
  // outage, they may not answer in time, and silence reads as "cut off from everyone" (chaos seed 65).
  registrar.on('renewal-failed', (ev) => void peerCheck.survey(ev.failures).catch((err: unknown) => log.warn({ err }, 'early peer survey failed')));
  // 'registered' (a new lease) and 'recovered' (etcd back, same or new lease) both mean: etcd is usable.
  const afterRegistration = (event: RegisteredEvent): void =>
    void onRegistered(event).catch((err: unknown) => log.error({ err }, 'post-registration step failed'));
  registrar.on('registered', afterRegistration);
  registrar.on('recovered', afterRegistration);
  registrar.on('error', (err) => log.error({ err }, 'registrar error'));

  await registerUntilUp(registrar, log, opts.signal);
  await Promise.all([placements.start(), services.start(), hosts.start()]);
  const definedUnits = new Set<string>();
  const defineUnits = (services: readonly ServiceRecord[]): void => {
    if (opened.memory) defineMemoryUnits(opened.memory, services, definedUnits);
  };
  defineUnits(view.allServices());
  await adopt(opts.etcd, ks, opts.instanceId, systemd, view.allServices(), reconciler, log);
  placements.on('change', (change) => {
    if (change === 'reset') reconciler.kickAll();
    else for (const key of change) reconciler.kick(ks.tail(key, ks.placementsPrefix()));
  });
  // Only the volumes whose service record changed: a kick of every volume on every change was quadratic
  // in a bulk registration (bench/failover.ts az1000).
  onServices = (volumes) => {
    if (volumes === 'all') {
      defineUnits(view.allServices());
      reconciler.kickAll();
      return;
    }
    defineUnits(volumes.flatMap((volumeId) => view.servicesOf(volumeId)));
    for (const volumeId of volumes) reconciler.kick(volumeId);
  };
  started = true;
  reconciler.kickAll();
  log.info({ mode: opts.mode, metadata: metadata.kind }, 'agent started');

  return {
    fences,
    peerEndpoint: peerServer?.endpoint ?? null,
    volumeState: (volumeId) => reconciler.stateOf(volumeId),
    held: () => reconciler.held(),
    idle: () => reconciler.idle(),
    shutdown: async ({ keepLease = true } = {}) => {
      if (stopping) return;
      stopping = true;
      reconciler.pause('agent shutting down');
      await reconciler.idle();
      await Promise.all([placements.stop(), services.stop(), hosts.stop()]);
      await registrar.stop({ revoke: !keepLease });
      await peerServer?.close();
      if (ownSystemd) await systemd.close();
      log.info({ keepLease }, 'agent stopped; units and mounts left as they are');
    },
  };
}

async function openSystemd(
  busAddress: string | undefined,
  runDir: string | undefined,
  log: Logger,
): Promise<{ systemd: SystemdPort; runDir: string | undefined; memory?: MemorySystemd }> {
  if (busAddress === 'memory') {
    const dir = runDir ?? (await mkdtemp(join(tmpdir(), 'ebs-failover-agent-run-')));
    const memory = new MemorySystemd({ runDir: dir });
    return { systemd: memory, runDir: dir, memory };
  }
  const { DbusSystemd } = await import('../systemd/dbus.js');
  return { systemd: await DbusSystemd.connect({ ...(busAddress ? { busAddress } : {}), log }), runDir };
}

/**
 * The in-memory systemd (demo, `systemdBus: 'memory'`) only knows units defined in code: define each
 * service's mount unit and its service unit (`Requires=` the mount), as the unit files would.
 */
function defineMemoryUnits(memory: MemorySystemd, services: readonly ServiceRecord[], defined: Set<string>): void {
  for (const service of services) {
    // Only new units: redefining a mount would drop the `What=` it read from its drop-in.
    if (!defined.has(service.mountUnit)) memory.defineUnit({ name: service.mountUnit });
    const unit = systemdServiceName(service.unit);
    if (!defined.has(unit)) memory.defineUnit({ name: unit, requires: [service.mountUnit] });
    defined.add(service.mountUnit).add(unit);
  }
}

/**
 * Registration must succeed before anything is managed (reports need the lease). While etcd is down at
 * start, keep trying rather than exit: an exiting agent would be restarted into the same situation.
 */
async function registerUntilUp(registrar: HostRegistrar, log: Logger, signal: AbortSignal | undefined): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await registrar.start();
      return;
    } catch (err) {
      if (signal?.aborted) throw err;
      log.warn({ err, attempt }, 'cannot register with etcd yet; retrying');
      await new Promise((r) => setTimeout(r, REGISTER_RETRY_MS));
    }
  }
}

/**
 * After a restart the agent takes over what its previous run held: volumes its earlier reports (still
 * alive under a resumed lease) show as not released, and services whose unit or mount is up here.
 * Nothing is stopped here; the reconciler then keeps or releases each according to its placement.
 */
async function adopt(
  etcd: AgentOptions['etcd'],
  ks: Keyspace,
  instanceId: string,
  systemd: SystemdPort,
  services: readonly ServiceRecord[],
  reconciler: Reconciler,
  log: Logger,
): Promise<void> {
  const reports = await etcd.getAll().prefix(ks.statusOfHostPrefix(instanceId)).strings();
  for (const [key, raw] of Object.entries(reports)) {
    const report = decodeRecord(AgentReport, key, raw, log);
    if (report && report.phase !== 'released') reconciler.markHeld(report.volumeId, report.unit);
  }
  await Promise.all(
    services.map(async (service) => {
      const [unit, mount] = await Promise.all([systemd.unitState(systemdServiceName(service.unit)), systemd.unitState(service.mountUnit)]);
      if (isUp(unit.activeState) || isUp(mount.activeState)) reconciler.markHeld(service.volumeId, service.unit);
    }),
  );
}

/**
 * The peer endpoint; a listen failure (port taken) is logged, not fatal: the host then cannot vouch for
 * etcd to its peers (they treat it as not answering), but everything else works, which beats an agent
 * that will not start and so leaves its services unmanaged.
 */
async function servePeers(listen: string, instanceId: string, privateIp: string, health: () => EtcdHealth | null, log: Logger): Promise<PeerServer | null> {
  try {
    return await servePeerEndpoint({ listen, instanceId, privateIp, health, log });
  } catch (err) {
    log.error({ err, listen }, 'peer endpoint not served: peers cannot ask this host whether it reaches etcd');
    return null;
  }
}

/** Other hosts with a peer endpoint, from the hosts/ mirror (self excluded). */
function knownPeers(ks: Keyspace, hosts: PrefixMirror, self: string, log: Logger): Peer[] {
  const out: Peer[] = [];
  for (const [key, raw] of hosts.entries()) {
    const record = decodeRecord(HostRecord, key, raw, log);
    if (record && record.instanceId !== self && record.peerEndpoint !== undefined) out.push({ instanceId: record.instanceId, endpoint: record.peerEndpoint });
  }
  return out;
}

/**
 * Resolves once the placements mirror shows, for each volume, the value etcd holds now (read after the
 * registration that ended a fence). Retries every 100 ms, through etcd errors, until it does.
 */
async function placementsCaughtUp(etcd: AgentOptions['etcd'], ks: Keyspace, mirror: PrefixMirror, volumeIds: readonly string[], log: Logger): Promise<void> {
  const started = performance.now();
  for (let attempt = 0; ; attempt += 1) {
    try {
      const now = await Promise.all(volumeIds.map(async (v) => [ks.placement(v), await etcd.get(ks.placement(v)).string()] as const));
      if (now.every(([key, value]) => (mirror.get(key) ?? null) === value)) {
        if (attempt > 0) log.info({ waitedMs: Math.round(performance.now() - started), volumeIds }, 'placements caught up after the fence');
        return;
      }
    } catch (err) {
      log.warn({ err }, 'reading placements after the fence failed; retrying');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The self-fence's peer check: `confirm` is the registrar's confirmFence, `survey` the early look. */
interface PeerFenceCheck {
  /** Asked when renewals have failed up to the fence deadline (and again every second or so while it answers false). */
  confirm(): Promise<boolean>;
  /**
   * Asked at a failed renewal, long before a fence is due. It only learns "etcd is down for everyone",
   * never fences; at most at the first two failures of an episode (`failures`: the registrar's count in a row).
   */
  survey(failures: number): Promise<void>;
  /** When `confirm` does not answer in time: fence unless peers said etcd is down for everyone this episode. */
  fenceOnSilence(): boolean;
  /** The last verdict's reason, or null before the first question. */
  lastVerdict(): string | null;
}

/** See peers.ts for the rule. Logs each decision with its evidence (warn when it changes, debug when it repeats). */
function peerFenceCheck(self: string, leaseTtlMs: number, fenceMarginMs: number, peers: () => Peer[], health: () => EtcdHealth | null, log: Logger): PeerFenceCheck {
  const timeoutMs = probeTimeoutMs(fenceMarginMs);
  // etcd counts whole seconds, and so does the registrar.
  const ttlMs = Math.max(1, Math.ceil(leaseTtlMs / 1000)) * 1000;
  const renewEveryMs = ttlMs / 3;
  // The registrar's worst time to get through once etcd answers again: its longest retry interval
  // (TTL/3) plus one attempt (at most TTL/3).
  const recoveryGraceMs = (2 * ttlMs) / 3;
  let memory: FenceMemory = FRESH_FENCE_MEMORY;
  let lastSelfAgoMs = Infinity;
  let lastGist = '';
  let verdict: string | null = null;
  let surveying = false;

  /** ms since the last good renewal; a renewal since the last question starts a new episode (memory forgotten). */
  const episode = (): number => {
    const selfRenewalAgoMs = health()?.lastRenewalAgoMs() ?? Infinity;
    if (selfRenewalAgoMs < lastSelfAgoMs) memory = FRESH_FENCE_MEMORY;
    lastSelfAgoMs = selfRenewalAgoMs;
    return selfRenewalAgoMs;
  };

  /** The probes and the pure verdict. */
  const ask = async (): Promise<{ decision: FenceDecision; results: ProbeResult[]; selfRenewalAgoMs: number; started: number }> => {
    const started = performance.now();
    const selfRenewalAgoMs = episode();
    const results = await probePeers(peers(), timeoutMs);
    const decision = decideFence(results, { now: performance.now(), selfRenewalAgoMs, renewEveryMs, recoveryGraceMs }, memory);
    return { decision, results, selfRenewalAgoMs, started };
  };

  const logDecision = (question: 'survey' | 'deadline', fence: boolean, reason: string, asked: { results: ProbeResult[]; selfRenewalAgoMs: number; started: number }): void => {
    const line = {
      instanceId: self, question, fence, reason, selfRenewalAgoMs: Math.round(asked.selfRenewalAgoMs),
      peers: asked.results.map(evidenceOf), probeMs: Math.round(performance.now() - asked.started), timeoutMs,
    };
    // The reason carries changing numbers; compare its first words to log a change once.
    const gist = `${question}:${fence}:${reason.split(':')[0]?.replace(/\d+/g, '#')}`;
    const msg = question === 'survey' ? 'etcd unreachable: asked peers early' : fence ? 'etcd unreachable: peers confirm the fence' : 'etcd unreachable: fence deferred after asking peers';
    if (gist !== lastGist) log.warn(line, msg);
    else log.debug(line, 'fence check repeated');
    lastGist = gist;
  };

  return {
    lastVerdict: () => verdict,
    // As decideFence treats peers that do not answer (and the episode is still the one memory is of:
    // a renewal since would have ended the fence's deadline, and nobody would be asking).
    fenceOnSilence: () => !memory.outageForAll,

    async survey(failures) {
      // Early in the episode only: later, the deadline's own questions are under way.
      episode();
      if (surveying || failures > 2 || memory.outageForAll) return;
      surveying = true;
      try {
        const asked = await ask();
        const { decision } = asked;
        // Only "down for everyone" is learnt early. A peer that reaches etcd proves nothing yet (our own
        // next retry may get through), and silence is judged at the deadline.
        if (!decision.fence && decision.memory.outageForAll && !memory.outageForAll) {
          memory = decision.memory;
          verdict = decision.reason;
        }
        logDecision('survey', false, decision.reason, asked);
      } finally {
        surveying = false;
      }
    },

    async confirm() {
      const asked = await ask();
      let decision = asked.decision;
      // Peers just reached etcd: before stopping everything, one round trip of our own (etcd may be back
      // for us too, ahead of our next scheduled retry at the end of an outage for everyone).
      if (decision.fence && asked.results.some((r) => 'answer' in r && r.answer.fresh && r.answer.reachesEtcd)) {
        const selfReaches = (await health()?.probeEtcd?.(timeoutMs).catch(() => false)) ?? false;
        if (selfReaches) decision = { fence: false, reason: 'peers reach etcd and so does this host again: renewals resume', memory: FRESH_FENCE_MEMORY };
      }
      memory = decision.memory;
      verdict = decision.reason;
      logDecision('deadline', decision.fence, decision.reason, asked);
      return decision.fence;
    },
  };
}

function evidenceOf(r: ProbeResult): Record<string, unknown> {
  return 'answer' in r
    ? { instanceId: r.peer.instanceId, endpoint: r.peer.endpoint, reachesEtcd: r.answer.reachesEtcd, lastRenewalAgoMs: r.answer.lastRenewalAgoMs }
    : { instanceId: r.peer.instanceId, endpoint: r.peer.endpoint, error: r.error };
}
