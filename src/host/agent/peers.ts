import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { Logger } from '../../log/logger.js';

/**
 * The peer check behind the self-fence (Patroni's failsafe mode, adapted): when this host's lease
 * renewals have failed up to the fence deadline, it asks the other agents whether THEY reach etcd.
 *
 * - A peer renewed its lease after this host's renewals began failing → this host is cut off alone →
 *   fence (the controller will move its volumes once the lease expires).
 * - Peers are known but none answers → this host is cut off from everyone → fence.
 * - Some answer and none reaches etcd → etcd is down for everyone → keep running: nothing can move a
 *   volume without etcd (the controller needs it too), and EC2's single attachment keeps each disk
 *   exclusive anyway (an auto failover always detaches before it attaches).
 * - No peer known → cannot tell the two apart → keep running, for the same reason.
 *
 * Two races at the edges of an outage are handled here:
 * - Start: a peer that renewed just before etcd went away still says `reachesEtcd` until its next
 *   renewal fails. Only a renewal SENT after this host's first failing one proves etcd answers others:
 *   `peer.lastRenewalAgoMs + renewEveryMs < selfRenewalAgoMs`. A stale claim is asked about again.
 * - End: after an outage for everyone, peers get through a moment before this host's next retry. Once
 *   a peer reaches etcd again, this host's renewals get `recoveryGraceMs` (its retry back-off plus one
 *   attempt) to succeed before it counts as cut off alone. That is shorter than the grace a controller
 *   grants every host after an election or an etcd recovery (TTL × 4/3), so the fence still comes first.
 *
 * Each agent serves `GET /v1/etcd` → `{ instanceId, reachesEtcd, lastRenewalAgoMs }` from its
 * registrar; its host record's `peerEndpoint` names where.
 */

export const PEER_PATH = '/v1/etcd';

export const PeerAnswer = z.object({
  instanceId: z.string(),
  reachesEtcd: z.boolean(),
  lastRenewalAgoMs: z.number(),
  /**
   * `reachesEtcd` comes from a round trip to etcd made for this question (not from the peer's last
   * periodic renewal, which may predate an outage that just began): a true fresh answer proves etcd
   * answers someone now.
   */
  fresh: z.boolean().default(false),
});
export type PeerAnswer = z.infer<typeof PeerAnswer>;

/** What the endpoint reports; the registrar implements it. */
export interface EtcdHealth {
  reachesEtcd(): boolean;
  lastRenewalAgoMs(): number;
  /** One bounded round trip to etcd now. */
  probeEtcd?(timeoutMs: number): Promise<boolean>;
}

/** Query parameter: how long the asking peer waits for the answer, so the fresh etcd probe fits in it. */
const BUDGET_PARAM = 'budgetMs';

export interface Peer {
  instanceId: string;
  /** `host:port`. */
  endpoint: string;
}

export type ProbeResult = { peer: Peer; answer: PeerAnswer } | { peer: Peer; error: string };

export interface FenceContext {
  /** Monotonic now (ms). */
  now: number;
  /** ms since this host's last confirmed renewal was sent. */
  selfRenewalAgoMs: number;
  /** The renewal period (TTL/3): this host's first failing renewal was sent this long after its last good one. */
  renewEveryMs: number;
  /** After an outage for everyone: how long own renewals may lag behind a peer's before this host fences. */
  recoveryGraceMs: number;
}

/** What the check remembers within one episode of failing renewals (fresh after each good renewal). */
export interface FenceMemory {
  /** Peers said etcd was down for everyone during this episode. */
  outageForAll: boolean;
  /** Since when (monotonic ms) a peer reaches etcd again after such an outage, or null. */
  peersBackSince: number | null;
}

export const FRESH_FENCE_MEMORY: FenceMemory = { outageForAll: false, peersBackSince: null };

export interface FenceDecision {
  fence: boolean;
  reason: string;
  memory: FenceMemory;
}

const KEEP_RUNNING = 'keeping units running (EC2 single attachment keeps each disk exclusive)';

/** Pure: fence or not, from the probes of every known peer (self excluded). See the module comment. */
export function decideFence(results: readonly ProbeResult[], ctx: FenceContext, memory: FenceMemory): FenceDecision {
  if (results.length === 0) {
    return { fence: false, reason: `no peer known: an etcd outage cannot be told from being cut off alone; ${KEEP_RUNNING}`, memory };
  }
  const answered = results.filter((r): r is Extract<ProbeResult, { answer: PeerAnswer }> => 'answer' in r);
  if (answered.length === 0) {
    // Peers said etcd was down for everyone earlier in this episode: silence now is far more likely all
    // of them waking up at once as etcd returns (busy, slow to answer) than this host losing them all.
    // Ask again rather than stop everything; should it really be isolated, EC2's single attachment
    // still holds when the controller moves its volumes (chaos seed 79).
    if (memory.outageForAll) {
      return { fence: false, reason: `none of ${results.length} known peer(s) answered, but they said etcd was down for everyone in this episode: asking again`, memory };
    }
    return { fence: true, reason: `none of ${results.length} known peer(s) answered: this host is cut off from everyone`, memory };
  }
  const claiming = answered.filter((r) => r.answer.reachesEtcd);
  const names = (rs: readonly { peer: Peer }[]): string => rs.map((r) => r.peer.instanceId).join(', ');
  // A fresh answer is a round trip to etcd made for this question: proof on its own, whatever the peer's
  // last renewal (the start-of-outage race cannot fool it). The end-of-outage race still applies: a peer
  // may get through a moment before this host does (its gRPC channels reconnect on their own back-off),
  // so after an outage for everyone the recovery grace below holds for fresh proofs too. (The agent also
  // tries its own round trip before it fences.)
  const proving = claiming.filter((r) => r.answer.fresh || r.answer.lastRenewalAgoMs + ctx.renewEveryMs < ctx.selfRenewalAgoMs);
  if (proving.length > 0) {
    if (!memory.outageForAll) {
      const how = proving.every((r) => r.answer.fresh) ? 'reached etcd just now' : `renewed after this host's renewals began failing (${Math.round(ctx.selfRenewalAgoMs)} ms ago)`;
      return { fence: true, reason: `${names(proving)} ${how}: this host is cut off alone`, memory };
    }
    const since = memory.peersBackSince ?? ctx.now;
    const waited = ctx.now - since;
    if (waited < ctx.recoveryGraceMs) {
      return {
        fence: false,
        reason: `etcd is back for ${names(proving)} after an outage for everyone; own renewals get ${Math.round(ctx.recoveryGraceMs - waited)} ms more before this host counts as cut off alone`,
        memory: { ...memory, peersBackSince: since },
      };
    }
    return { fence: true, reason: `etcd is back for ${names(proving)} for ${Math.round(waited)} ms and still not for this host: cut off alone`, memory: { ...memory, peersBackSince: since } };
  }
  if (claiming.length > 0) {
    return {
      fence: false,
      reason: `${names(claiming)} last renewed before this host's renewals began failing: no proof etcd answers anyone; asking again`,
      memory: { ...memory, peersBackSince: null },
    };
  }
  return {
    fence: false,
    reason: `${answered.length} of ${results.length} peer(s) answered and none reaches etcd: etcd is down for everyone; ${KEEP_RUNNING}`,
    memory: { outageForAll: true, peersBackSince: null },
  };
}

/**
 * How long one round of probes may take: at most half the fence margin (the registrar fences if the
 * answer takes longer than that, and the stops need the rest) and at most 800 ms; a 50 ms floor.
 */
export function probeTimeoutMs(fenceMarginMs: number): number {
  return Math.max(50, Math.min(Math.floor(fenceMarginMs / 2) - 50, 800));
}

/** One peer's answer, or the reason there is none (time-out, refused, garbage). Never throws. */
export async function probePeer(peer: Peer, timeoutMs: number): Promise<ProbeResult> {
  try {
    // Half for the peer's etcd round trip, half for the HTTP exchange: on a loaded machine a fixed
    // small slack left peers answering too late, which reads as "nobody answered" (CI's chaos seed 14).
    const budget = Math.max(1, Math.floor(timeoutMs / 2));
    const res = await fetch(`http://${peer.endpoint}${PEER_PATH}?${BUDGET_PARAM}=${budget}`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { peer, error: `HTTP ${res.status}` };
    const answer = PeerAnswer.parse(await res.json());
    if (answer.instanceId !== peer.instanceId) return { peer, error: `answered as ${answer.instanceId}` };
    return { peer, answer };
  } catch (err) {
    return { peer, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

/** Probes every peer in parallel, each bounded by `timeoutMs`. */
export function probePeers(peers: readonly Peer[], timeoutMs: number): Promise<ProbeResult[]> {
  return Promise.all(peers.map((p) => probePeer(p, timeoutMs)));
}

export interface PeerServer {
  /** The endpoint other agents should use (`ip:port`). */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** `host:port` → parts; IPv6 literals in brackets. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m || m[1] === undefined || m[2] === undefined) throw new Error(`peer listen address ${JSON.stringify(listen)}: expected host:port`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/**
 * What to advertise for a bound address: a wildcard bind (0.0.0.0, ::) is reached at the host's
 * private IP; a specific address as itself.
 */
export function advertisedEndpoint(bound: { address: string; port: number }, privateIp: string): string {
  const host = bound.address === '0.0.0.0' || bound.address === '::' ? privateIp : bound.address;
  return host.includes(':') ? `[${host}]:${bound.port}` : `${host}:${bound.port}`;
}

/** The 1 s cap keeps one question from holding the answering agent; no budget: the asker is an old agent. */
const MAX_BUDGET_MS = 1_000;

/** The answer to one question: a fresh etcd round trip when the asker gave a budget, else the last renewal's word. */
async function answer(instanceId: string, health: EtcdHealth | null, rawBudget: string | null): Promise<PeerAnswer> {
  const budget = Number(rawBudget);
  const lastRenewalAgoMs = (): number => Math.round(health?.lastRenewalAgoMs() ?? -1);
  // Not registered yet: this host cannot vouch for etcd.
  if (health === null) return { instanceId, reachesEtcd: false, lastRenewalAgoMs: -1, fresh: false };
  if (rawBudget === null || !Number.isFinite(budget) || budget <= 0 || health.probeEtcd === undefined) {
    return { instanceId, reachesEtcd: health.reachesEtcd(), lastRenewalAgoMs: lastRenewalAgoMs(), fresh: false };
  }
  const reaches = await health.probeEtcd(Math.min(budget, MAX_BUDGET_MS)).catch(() => false);
  return { instanceId, reachesEtcd: reaches, lastRenewalAgoMs: lastRenewalAgoMs(), fresh: true };
}

/** Serves `GET /v1/etcd`; resolves once listening. */
export async function servePeerEndpoint(opts: { listen: string; instanceId: string; privateIp: string; health: () => EtcdHealth | null; log: Logger }): Promise<PeerServer> {
  const { host, port } = parseListen(opts.listen);
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://peer');
    if (req.method !== 'GET' || url.pathname !== PEER_PATH) {
      res.writeHead(404).end();
      return;
    }
    void answer(opts.instanceId, opts.health(), url.searchParams.get(BUDGET_PARAM)).then((body) => {
      if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  // A peer's probe must never hold this process: short idle time-out, no keep-alive pile-up.
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log.error({ err }, 'peer endpoint error'));
  const endpoint = advertisedEndpoint(server.address() as AddressInfo, opts.privateIp);
  opts.log.info({ listen: opts.listen, endpoint }, 'peer endpoint serving');
  return {
    endpoint,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
