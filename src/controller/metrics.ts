import { createServer, type Server } from 'node:http';

/**
 * Step durations in seconds: EC2 steps take 1-30 s, agent start a few seconds, a blocked volume
 * minutes, so buckets span 0.1 s to 10 min.
 */
const BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

function labels(obj: Record<string, string>): string {
  const parts = Object.entries(obj).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

/** The controller's Prometheus metrics, rendered as text exposition format 0.0.4. */
export class ControllerMetrics {
  private readonly failovers = new Map<string, number>();
  private readonly steps = new Map<string, { counts: number[]; sum: number; count: number }>();
  private blocked = 0;
  private active = 0;
  private leader = 0;
  private actionErrors = 0;
  private retargets = 0;
  private suspects = 0;
  private autoRestores = 0;
  private autoRestoreTracked = 0;

  failoverFinished(kind: string, outcome: 'done' | 'failed'): void {
    const key = labels({ kind, outcome });
    this.failovers.set(key, (this.failovers.get(key) ?? 0) + 1);
  }

  stepDuration(step: string, seconds: number): void {
    const h = this.steps.get(step) ?? { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.counts[i] = (h.counts[i] ?? 0) + 1;
    });
    h.sum += seconds;
    h.count += 1;
    this.steps.set(step, h);
  }

  setGauges(g: { blocked: number; active: number }): void {
    this.blocked = g.blocked;
    this.active = g.active;
  }

  setLeader(isLeader: boolean): void {
    this.leader = isLeader ? 1 : 0;
  }

  actionFailed(): void {
    this.actionErrors += 1;
  }

  /** A failover gave up its target (it died before `active`, or its attach stuck) and went on without it. */
  retargeted(): void {
    this.retargets += 1;
  }

  /** Many hosts vanished at once (an etcd or network event?): a grace, then paced failovers. */
  suspectVanishing(): void {
    this.suspects += 1;
  }

  /** controller.autoRestore swapped a service to a volume restored from a snapshot in another AZ. */
  autoRestored(): void {
    this.autoRestores += 1;
  }

  /** Failovers whose volume's AZ has no live host, counted towards an auto-restore. */
  setAutoRestoreTracked(n: number): void {
    this.autoRestoreTracked = n;
  }

  render(): string {
    const out: string[] = [
      '# HELP ebs_failover_failovers_total Failovers finished, by kind and outcome.',
      '# TYPE ebs_failover_failovers_total counter',
    ];
    for (const [key, n] of this.failovers) out.push(`ebs_failover_failovers_total${key} ${n}`);
    out.push('# HELP ebs_failover_step_duration_seconds Time spent in each failover step.', '# TYPE ebs_failover_step_duration_seconds histogram');
    for (const [step, h] of this.steps) {
      BUCKETS.forEach((b, i) => out.push(`ebs_failover_step_duration_seconds_bucket${labels({ step, le: String(b) })} ${h.counts[i] ?? 0}`));
      out.push(`ebs_failover_step_duration_seconds_bucket${labels({ step, le: '+Inf' })} ${h.count}`);
      out.push(`ebs_failover_step_duration_seconds_sum${labels({ step })} ${h.sum}`);
      out.push(`ebs_failover_step_duration_seconds_count${labels({ step })} ${h.count}`);
    }
    out.push(
      '# HELP ebs_failover_blocked_volumes Volumes waiting for an eligible host.',
      '# TYPE ebs_failover_blocked_volumes gauge',
      `ebs_failover_blocked_volumes ${this.blocked}`,
      '# HELP ebs_failover_active_failovers Failovers in progress.',
      '# TYPE ebs_failover_active_failovers gauge',
      `ebs_failover_active_failovers ${this.active}`,
      '# HELP ebs_failover_leader 1 while this controller leads.',
      '# TYPE ebs_failover_leader gauge',
      `ebs_failover_leader ${this.leader}`,
      '# HELP ebs_failover_action_errors_total Failed controller actions (retried).',
      '# TYPE ebs_failover_action_errors_total counter',
      `ebs_failover_action_errors_total ${this.actionErrors}`,
      '# HELP ebs_failover_retargets_total Failovers that gave up a target (lost before active, or attach stuck) and chose another.',
      '# TYPE ebs_failover_retargets_total counter',
      `ebs_failover_retargets_total ${this.retargets}`,
      '# HELP ebs_failover_suspect_vanishings_total Times many hosts vanished at once (failovers then paced).',
      '# TYPE ebs_failover_suspect_vanishings_total counter',
      `ebs_failover_suspect_vanishings_total ${this.suspects}`,
      '# HELP ebs_failover_auto_restores_total Services restored from a snapshot into another AZ by controller.autoRestore (data-loss window: see events).',
      '# TYPE ebs_failover_auto_restores_total counter',
      `ebs_failover_auto_restores_total ${this.autoRestores}`,
      '# HELP ebs_failover_auto_restore_pending Failovers whose volume\'s AZ has no live host, counting towards an auto-restore.',
      '# TYPE ebs_failover_auto_restore_pending gauge',
      `ebs_failover_auto_restore_pending ${this.autoRestoreTracked}`,
    );
    return `${out.join('\n')}\n`;
  }
}

export class MetricsListenError extends Error {
  override readonly name = 'MetricsListenError';
  constructor(readonly listen: string, options?: { cause?: unknown }) {
    super(`cannot serve metrics on ${listen}`, options);
  }
}

/** Serves `/metrics` on `host:port` (the config defaults to loopback). Resolves once listening. */
export async function serveMetrics(metrics: ControllerMetrics, listen: string): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const idx = listen.lastIndexOf(':');
  const host = listen.slice(0, idx).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(idx + 1));
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics.render());
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new MetricsListenError(listen, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  return { server, port: bound, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
