import type { HostRecord } from '../keyspace/records.js';
import type { Logger } from '../log/logger.js';
import { isActiveJournal, type Observed } from './observed.js';
import type { StoreSnapshot } from './ports.js';

/** When to call a host dead, and how fast to act when many vanish at once; every value is commented. */
export const HOST_TIMING = {
  // 10 s: the host lease TTL assumed when no host record is known (the agents' default).
  defaultHostTtlMs: 10_000,
  // A host gone this many TTLs, and named by no placement or journal, is forgotten (knownHosts stays bounded).
  forgetHostAfterTtls: 10,
  // Many holders vanishing at once (at least this share of the known hosts, and at least 2, within one
  // TTL) looks like an etcd or network event rather than deaths (Kubernetes' node lifecycle controller
  // stops evicting when a whole zone looks unhealthy): a grace first, then failovers caused by a lost
  // holder are paced to this share of the known hosts (at least 1) per TTL. A real AZ outage still
  // fails over, paced.
  suspectShare: 0.5,
  suspectMinHosts: 2,
  pacedShare: 0.1,
  // EC2 proof of death (death-proof.ts) for hosts held back by the grace or the pacing: at most this many
  // hosts per look (one DescribeInstances, one DescribeInstanceStatus), at most one look per second.
  proofBatch: 100,
  proofEveryMs: 1_000,
} as const;

/**
 * The grace a controller that just started, or one that saw etcd go away (a watch reconnect, an etcd
 * stall, a campaign or term lost: controller.ts), gives hosts before it calls any of them dead: the longest
 * host TTL plus the agents' renewal retry back-off (TTL/3), so every agent that is alive has had a full
 * chance to renew against the etcd that is back.
 */
export function hostGraceMs(ttlMs: number): number {
  return ttlMs + Math.ceil(ttlMs / 3);
}

export interface HostTrackerOptions {
  log: Logger;
  /** Overrides `hostGraceMs(longest host TTL)` (tests); 0 disables the grace. */
  hostGraceMs?: number;
  /** Called once per suspect mass vanishing (metrics). */
  onSuspect?: () => void;
}

/** What a look at host liveness reads: the hosts, and what names them (placements, journals). */
export type LivenessSnapshot = Pick<StoreSnapshot, 'hosts' | 'placements' | 'journals'>;

/**
 * The controller's bookkeeping of host liveness, one per controller process: hosts seen (their machine
 * ids are needed to fence them), the grace (granted on the first look, after an etcd reconnect, and
 * when many hosts vanish at once), suspect mass vanishings and the by-host pacing of their failovers.
 *
 * It lives across terms and keeps looking while the controller stands by (standby-liveness.ts): a
 * successor elected because its leader died has watched the hosts vanish itself, so it judges them as
 * the dead leader would have (a plain death at once, a suspect vanishing paced), instead of granting
 * every gone host a fresh grace at its election (bench/failover's leader-killed run lost ~2.7 s to it).
 * What the tracker has NOT watched continuously gets the grace: its first look (a process that just
 * started) and every watch reconnect (an etcd outage, or this controller cut off from etcd).
 */
export class HostTracker {
  /** Hosts seen alive, by instance id; forgotten once long gone and unreferenced. */
  readonly known = new Map<string, HostRecord>();
  /** No host is called dead before this; null until the first look. */
  graceUntil: number | null = null;
  /**
   * When the current grace began (first look, reconnect or stall, suspect vanishing). Its length is
   * recomputed on every look from the longest TTL known then: a grace that began before any host record
   * was read starts with the 10 s default and shortens to the real TTL once the hosts are known.
   */
  private graceFrom: number | null = null;
  private readonly lastSeen = new Map<string, number>();
  /** Hosts live at the previous look, and when each known host vanished (cleared when it is back). */
  private liveBefore = new Set<string>();
  private readonly vanishedAt = new Map<string, number>();
  /** The hosts of a suspect mass vanishing while its failovers are paced; null: none. */
  private suspect: { hosts: Set<string>; at: number } | null = null;
  /**
   * Hosts of a suspect vanishing already handled (every volume moved): their vanishing is not news.
   * Without this, a vanishing still within its TTL started a new suspect episode on the next look, and
   * with it a new grace for every host, on every look (a CI run logged it every few ms).
   */
  private readonly settled = new Set<string>();
  /** Lost holders whose failovers were let start, and when. */
  private readonly admitted = new Map<string, number>();
  private reconnectPending = false;
  /** Gone hosts EC2 proved dead (stopped, terminated, impaired), with the reason: no grace, no pacing for them. */
  private readonly proven = new Map<string, string>();
  private lastProofLook = -Infinity;

  constructor(private readonly opts: HostTrackerOptions) {}

  /** A watch reconnected to etcd: the next look grants the grace again. */
  reconnected(): void {
    this.reconnectPending = true;
  }

  /** The longest lease TTL among the hosts we know, or the agents' default when none is known. */
  ttlMs(): number {
    let ttl = 0;
    for (const h of this.known.values()) ttl = Math.max(ttl, h.leaseTtlMs);
    return ttl > 0 ? ttl : HOST_TIMING.defaultHostTtlMs;
  }

  private graceMs(): number {
    return this.opts.hostGraceMs ?? hostGraceMs(this.ttlMs());
  }

  /** One look at etcd's hosts (once per tick, before deciding). */
  observe(snap: LivenessSnapshot, now: number): void {
    const { log } = this.opts;
    for (const [instanceId, record] of snap.hosts) {
      this.known.set(instanceId, record);
      this.lastSeen.set(instanceId, now);
      this.vanishedAt.delete(instanceId);
      // Back (a new lease): whatever EC2 said of it before is history.
      this.proven.delete(instanceId);
      this.settled.delete(instanceId);
    }
    if (this.graceFrom === null || this.reconnectPending) {
      this.graceFrom = now;
      log.info({ graceMs: this.graceMs(), why: this.reconnectPending ? 'etcd reconnected' : 'first look' }, 'hosts have a grace before any is called dead');
      this.reconnectPending = false;
    }
    for (const instanceId of this.liveBefore) if (!snap.hosts.has(instanceId)) this.vanishedAt.set(instanceId, now);
    this.liveBefore = new Set(snap.hosts.keys());
    this.noticeSuspect(snap, now);
    this.forget(snap, now);
    this.graceUntil = this.graceFrom + this.graceMs();
  }

  private noticeSuspect(snap: LivenessSnapshot, now: number): void {
    const { log } = this.opts;
    const ttlMs = this.ttlMs();
    const recent = [...this.vanishedAt].filter(([id, at]) => now - at <= ttlMs && !this.settled.has(id)).map(([id]) => id);
    const threshold = Math.max(HOST_TIMING.suspectMinHosts, Math.ceil(this.known.size * HOST_TIMING.suspectShare));
    if (recent.length >= threshold) {
      if (this.suspect === null) {
        this.suspect = { hosts: new Set(recent), at: now };
        // Leases revoked together (e.g. etcd resumed after a pause and expired them before any agent could
        // renew) come back as soon as the agents re-register: a grace first, so nothing moves for that.
        this.graceFrom = now;
        this.opts.onSuspect?.();
        log.warn(
          { vanished: recent.length, known: this.known.size, instanceIds: recent, graceMs: this.graceMs() },
          'many hosts vanished at once: suspect (an etcd or network event?); a grace, then their failovers paced',
        );
      } else for (const id of recent) this.suspect.hosts.add(id);
    }
    if (this.suspect !== null) {
      const suspect = this.suspect;
      this.adoptAdmissions(snap, suspect.hosts);
      // Over once no volume is still placed on a vanished host that is still gone (each failed over, or its host is back).
      const pending = [...snap.placements.values()].some((p) => p.instanceId !== null && suspect.hosts.has(p.instanceId) && !snap.hosts.has(p.instanceId));
      if (!pending) {
        log.info({ tookMs: now - suspect.at }, 'suspect mass vanishing handled: failovers no longer paced');
        for (const id of suspect.hosts) this.settled.add(id);
        this.suspect = null;
      }
    }
  }

  /**
   * A suspect holder with a running failover caused by losing it was admitted, by us or by a previous
   * leader (its journal is how a successor learns of it): its other volumes may start too, and its
   * admission counts against the pacing's budget from the journal's start (the writer's clock).
   */
  private adoptAdmissions(snap: LivenessSnapshot, suspects: ReadonlySet<string>): void {
    for (const j of snap.journals.values()) {
      const from = j.fromInstanceId;
      if (from === null || j.cause !== 'holder-lost' || !isActiveJournal(j)) continue;
      if (suspects.has(from) && !this.admitted.has(from) && !this.proven.has(from)) this.admitted.set(from, j.startedAt);
    }
  }

  /** Forgets hosts gone for `forgetHostAfterTtls` TTLs that no placement or journal names. */
  private forget(snap: LivenessSnapshot, now: number): void {
    const ttlMs = this.ttlMs();
    const named = new Set<string>();
    for (const p of snap.placements.values()) if (p.instanceId !== null) named.add(p.instanceId);
    for (const j of snap.journals.values()) for (const id of [j.fromInstanceId, j.toInstanceId, ...j.excludedInstanceIds]) if (id !== null) named.add(id);
    for (const [instanceId, seen] of this.lastSeen) {
      if (snap.hosts.has(instanceId) || named.has(instanceId) || now - seen < HOST_TIMING.forgetHostAfterTtls * ttlMs) continue;
      this.known.delete(instanceId);
      this.lastSeen.delete(instanceId);
      this.vanishedAt.delete(instanceId);
      this.proven.delete(instanceId);
      this.settled.delete(instanceId);
    }
    // An admission is kept a while (10 TTLs) so all of that host's volumes may still start.
    for (const [id, at] of this.admitted) if (now - at > HOST_TIMING.forgetHostAfterTtls * ttlMs) this.admitted.delete(id);
  }

  /** A failover caused by losing `holder` was let start (a proven death takes no turn of the pacing). */
  admit(holder: string, now: number): void {
    if (!this.admitted.has(holder) && !this.proven.has(holder)) this.admitted.set(holder, now);
  }

  /**
   * Gone holders whose failovers the grace or the pacing holds back now, not yet proven dead: the hosts to
   * ask EC2 about (death-proof.ts), at most `proofBatch`, the longest gone first. Empty when nothing is
   * held back, and between looks (`proofEveryMs`), so a quiet cluster costs no call.
   */
  proofWanted(snap: LivenessSnapshot, now: number): string[] {
    if (now - this.lastProofLook < HOST_TIMING.proofEveryMs) return [];
    const inGrace = this.graceUntil !== null && now < this.graceUntil;
    const suspect = this.suspect;
    if (!inGrace && suspect === null) return [];
    const held = new Set<string>();
    const consider = (id: string | null): void => {
      if (id === null || snap.hosts.has(id) || this.proven.has(id)) return;
      // The grace holds every gone holder (a resumed failover's too); the pacing only those without their turn.
      if (inGrace || (suspect?.hosts.has(id) === true && !this.admitted.has(id))) held.add(id);
    };
    for (const p of snap.placements.values()) consider(p.instanceId);
    for (const j of snap.journals.values()) if (isActiveJournal(j)) consider(j.fromInstanceId);
    const since = (id: string): number => this.vanishedAt.get(id) ?? -Infinity;
    return [...held].sort((a, b) => since(a) - since(b) || a.localeCompare(b)).slice(0, HOST_TIMING.proofBatch);
  }

  /** A look at EC2 for `asked` was made now (whatever came back); `found` are the ones it proved dead. */
  proofLooked(asked: readonly string[], found: ReadonlyMap<string, string>, now: number): void {
    this.lastProofLook = now;
    const fresh: Record<string, string> = {};
    for (const [id, why] of found) {
      if (!asked.includes(id) || this.proven.has(id)) continue;
      this.proven.set(id, why);
      fresh[id] = why;
    }
    const n = Object.keys(fresh).length;
    if (n > 0) this.opts.log.warn({ proven: fresh, asked: asked.length }, `EC2 proves ${n} lost host(s) dead: their failovers skip the host grace and the suspect pacing`);
  }

  /** Gone hosts EC2 proved dead, with the reason (Observed.provenDead). */
  provenDead(): ReadonlyMap<string, string> {
    return this.proven;
  }

  /**
   * While a suspect mass vanishing is handled: which lost holders have their turn, and how many more may
   * be admitted now (admissions within the last TTL count against the budget); null: not paced.
   */
  pacing(now: number): Observed['pacing'] {
    if (this.suspect === null) return null;
    const ttlMs = this.ttlMs();
    const perTtl = Math.max(1, Math.floor(this.known.size * HOST_TIMING.pacedShare));
    const recent = [...this.admitted.values()].filter((at) => now - at <= ttlMs).length;
    const reason = `${this.suspect.hosts.size} of ${this.known.size} known hosts vanished at once (suspect): failovers of at most ${perTtl} host(s) per ${ttlMs} ms`;
    // A proven death has its turn at once (decide lets an admitted holder's failovers start).
    return { remaining: perTtl - recent, admitted: [...this.admitted.keys(), ...this.proven.keys()], reason };
  }
}
