/** Argument parsing and the results table of `npm run chaos` (main.ts), kept pure for tests. */
import { INVARIANTS, type InvariantId } from './checker.js';
import type { SeedResult } from './runner.js';

export interface Args {
  seeds: number[];
  minutes: number | null;
  hosts: number | undefined;
  parallel: number;
  out: string | null;
  repo: string | undefined;
  quiet: boolean;
}

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: npm run chaos -- --seeds N [--seed S]… [--first F] [--minutes M] [--hosts H] [--parallel P] [--out DIR]\n`);
  process.exit(2);
}

export function parseArgs(argv: readonly string[]): Args {
  let count: number | null = null;
  let first = 1;
  const explicit: number[] = [];
  const args: Args = { seeds: [], minutes: null, hosts: undefined, parallel: 2, out: null, repo: undefined, quiet: false };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) usage(`bad ${flag} ${v ?? ''}`);
    return n;
  };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--seeds': count = num(a, v); i += 1; break;
      case '--first': first = num(a, v); i += 1; break;
      case '--seed': for (const s of (v ?? '').split(',')) explicit.push(num(a, s)); i += 1; break;
      case '--minutes': args.minutes = num(a, v); i += 1; break;
      case '--hosts': args.hosts = num(a, v); i += 1; break;
      case '--parallel': args.parallel = Math.max(1, num(a, v)); i += 1; break;
      case '--out': args.out = v ?? usage('--out needs a dir'); i += 1; break;
      case '--repo': args.repo = v ?? usage('--repo needs a dir'); i += 1; break;
      case '--quiet': args.quiet = true; break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (args.hosts !== undefined && (args.hosts < 4 || args.hosts > 6)) usage('--hosts must be 4–6');
  args.seeds = explicit.length > 0 ? explicit : Array.from({ length: count ?? 10 }, (_, i) => first + i);
  return args;
}

export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
}

export const secs = (ms: number | null): string => (ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`);

export function resultsTable(results: readonly SeedResult[], wallMs: number, parallel: number): string {
  const faults: Record<string, number> = {};
  for (const r of results) for (const [k, n] of Object.entries(r.faultsByKind)) faults[k] = (faults[k] ?? 0) + n;
  const byInv = new Map<number, number[]>();
  const notCheckable = new Map<number, string>();
  for (const r of results) {
    for (const v of r.result.violations) byInv.set(v.invariant, [...(byInv.get(v.invariant) ?? []), r.seed]);
    for (const n of r.result.notCheckable) notCheckable.set(n.invariant, n.reason);
  }
  const recoveries = results.flatMap((r) => (r.result.recoveryMs === null ? [] : [r.result.recoveryMs]));
  const downs = results.flatMap((r) => r.result.downtimesMs);
  const walls = results.map((r) => r.wallMs);
  const lines = [
    '',
    '── chaos results ─────────────────────────────────────────────',
    `seeds              ${results.length} (${results.map((r) => r.seed).join(', ')})`,
    `faults by kind     ${Object.entries(faults).sort().map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `steps skipped      ${results.reduce((s, r) => s + r.skipped, 0)} (target busy with another fault, or nothing to act on)`,
    'violations by invariant:',
    ...(Object.keys(INVARIANTS) as unknown as InvariantId[]).map((id) => {
      const seeds = byInv.get(Number(id)) ?? [];
      const nc = notCheckable.get(Number(id));
      return `  ${id}. ${String(seeds.length).padStart(3)}${seeds.length ? ` (seeds ${[...new Set(seeds)].join(', ')})` : ''}${nc ? `  [not checkable in some seeds: ${nc}]` : ''}  ${INVARIANTS[id]}`;
    }),
    `recovery after heal p50 ${secs(percentile(recoveries, 50))}, p99 ${secs(percentile(recoveries, 99))}, max ${secs(recoveries.length ? Math.max(...recoveries) : null)} (bound ${secs(results[0]?.result.boundMs ?? null)})`,
    `service downtime   p50 ${secs(percentile(downs, 50))}, p99 ${secs(percentile(downs, 99))}, max ${secs(downs.length ? Math.max(...downs) : null)} over ${downs.length} outages`,
    `false failovers    ${results.reduce((s, r) => s + r.result.falseFailovers, 0)}`,
    `wall time          ${secs(wallMs)} total, ${parallel} side by side; per seed p50 ${secs(percentile(walls, 50))}, max ${secs(walls.length ? Math.max(...walls) : null)}`,
    `run errors         ${results.filter((r) => r.error !== undefined).map((r) => r.seed).join(', ') || 'none'}`,
  ];
  return lines.join('\n');
}

