/**
 * `npm run chaos -- --seeds N [--seed S]… [--minutes M] [--hosts H] [--parallel P] [--out DIR]`
 *
 * Runs N seeds (1…N, or the seeds given with --seed, which replays exactly that seed's schedule),
 * `--parallel` worlds side by side, checks each seed's history, prints every violation with its seed,
 * invariant and history slice, then the results table and the plain line `seeds: N, violations: V`.
 * Exit 1 on any violation (or a seed that could not run).
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatViolation } from './checker.js';
import { parseArgs, resultsTable, secs } from './report.js';
import { DEFAULT_CHAOS, activeWorlds, boundFor, runSeed, type ChaosConfig, type SeedResult } from './runner.js';

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // Ctrl-C: stop every world's processes (etcd members, agents, controllers) before leaving.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`chaos: ${sig}, stopping ${activeWorlds.size} world(s)\n`);
      void Promise.all([...activeWorlds].map((w) => w.stop().catch(() => undefined))).finally(() => process.exit(130));
    });
  }
  const out = args.out ?? mkdtempSync(join(tmpdir(), 'ebs-chaos-'));
  mkdirSync(out, { recursive: true });
  const config: ChaosConfig = {
    ...DEFAULT_CHAOS,
    ...(args.minutes === null ? {} : { durationMs: Math.round(args.minutes * 60_000) }),
    hosts: args.hosts,
    outDir: out,
    repo: args.repo,
    log: args.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
  };
  process.stdout.write(`chaos: ${args.seeds.length} seeds, ${config.durationMs / 1000} s of faults each, ${args.parallel} side by side, bound ${boundFor(config)} ms; histories in ${out}\n`);
  const started = Date.now();
  const queue = [...args.seeds];
  const results: SeedResult[] = [];
  const worker = async (): Promise<void> => {
    for (let seed = queue.shift(); seed !== undefined; seed = queue.shift()) {
      const r = await runSeed(seed, config);
      results.push(r);
      const v = r.result.violations;
      process.stdout.write(`seed ${seed}: ${r.error ? 'RUN ERROR' : v.length === 0 ? 'ok' : `${v.length} violation(s)`} in ${secs(r.wallMs)}; recovery ${secs(r.result.recoveryMs)}; history ${r.historyPath}\n`);
      for (const x of v) process.stdout.write(`${formatViolation(x)}\n`);
      if (r.error) process.stdout.write(`  ${r.error.split('\n').slice(0, 3).join('\n  ')}\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.parallel, args.seeds.length) }, () => worker()));
  results.sort((a, b) => a.seed - b.seed);
  const violations = results.reduce((s, r) => s + r.result.violations.length, 0);
  process.stdout.write(`${resultsTable(results, Date.now() - started, args.parallel)}\nhistories: ${out}\n`);
  process.stdout.write(`seeds: ${results.length}, violations: ${violations}\n`);
  process.exit(violations > 0 || results.some((r) => r.error !== undefined) ? 1 : 0);
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
