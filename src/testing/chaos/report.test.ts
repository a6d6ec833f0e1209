import { describe, expect, it } from 'vitest';
import { parseArgs, percentile, resultsTable } from './report.js';
import type { SeedResult } from './runner.js';

describe('chaos command line', () => {
  it('runs seeds 1…N, or replays the seeds given', () => {
    expect(parseArgs(['--seeds', '3']).seeds).toEqual([1, 2, 3]);
    expect(parseArgs(['--seeds', '2', '--first', '10']).seeds).toEqual([10, 11]);
    expect(parseArgs(['--seed', '7']).seeds).toEqual([7]);
    expect(parseArgs(['--seed', '4,9', '--parallel', '3', '--minutes', '2', '--hosts', '5'])).toMatchObject({ seeds: [4, 9], parallel: 3, minutes: 2, hosts: 5 });
  });

  it('takes nearest-rank percentiles', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([5, 1, 3, 2, 4], 50)).toBe(3);
    expect(percentile([5, 1, 3, 2, 4], 99)).toBe(5);
  });

  it('tabulates faults, violations by invariant with their seeds, recovery, false failovers and wall time', () => {
    const seed = (n: number, invariants: (1 | 5)[]): SeedResult => ({
      seed: n, historyPath: `/tmp/seed-${n}.jsonl`, wallMs: 60_000 + n, skipped: 1, faultsByKind: { 'proc-kill:agent': 2, net: 1 },
      result: { seed: n, boundMs: 23_750, violations: invariants.map((invariant) => ({ invariant, seed: n, at: 0, message: 'x', slice: [] })), notCheckable: [], recoveryMs: 1_000 * n, downtimesMs: [3_000, 4_000], falseFailovers: invariants.filter((i) => i === 5).length },
    });
    const table = resultsTable([seed(1, []), seed(2, [5, 5]), seed(3, [1])], 130_000, 2);
    expect(table).toContain('seeds              3 (1, 2, 3)');
    expect(table).toContain('net 3, proc-kill:agent 6');
    expect(table).toMatch(/1\.\s+1 \(seeds 3\)/);
    expect(table).toMatch(/5\.\s+2 \(seeds 2\)/);
    expect(table).toContain('false failovers    2');
    expect(table).toContain('recovery after heal p50 2.0 s, p99 3.0 s, max 3.0 s');
    expect(table).toContain('130.0 s total, 2 side by side');
  });
});
